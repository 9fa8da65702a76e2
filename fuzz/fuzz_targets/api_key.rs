//! The API-key format: prefix, id, secret and checksum, as a client sends them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::authn::api_key::{ApiKeys, KeyFormat};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let format = KeyFormat::new("pal").unwrap();
    if let Ok(parsed) = format.parse(s) {
        // A key that parses has an id that round-trips.
        let id = parsed.id().to_string();
        assert_eq!(
            id.parse::<palisade::authn::api_key::KeyId>().ok().as_ref(),
            Some(parsed.id())
        );
    }
    let _ = ApiKeys::new().hash(s);
});
