//! The configuration file loader (YAML, TOML, JSON) and what is built from it without I/O:
//! key format, client-address resolver, route table, policy and validation rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::config::{Config, Format};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match selector % 3 {
        0 => Format::Yaml,
        1 => Format::Toml,
        _ => Format::Json,
    };
    let Ok(config) = Config::parse(text, format) else {
        return;
    };
    let _ = config.api_keys();
    let _ = config.key_store();
    let _ = config.client_ip();
    let _ = config.route_table();
    let _ = config.policy();
    let _ = config.validate_layer();
});
