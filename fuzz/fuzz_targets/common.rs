//! Shared by the fuzz targets: a request head built from fuzzed header values, and a runtime
//! for the layers that are tower services.

#![allow(dead_code)]

use std::sync::OnceLock;

use http::request::Parts;

/// A `GET /` head with `name: value` for each pair whose value is a valid header value.
pub fn parts(headers: &[(&str, &[u8])]) -> Parts {
    let mut b = http::Request::get("/v1/orders/1");
    for (name, value) in headers {
        if let Ok(v) = http::HeaderValue::from_bytes(value) {
            b = b.header(*name, v);
        }
    }
    b.body(()).unwrap().into_parts().0
}

/// One current-thread runtime per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Splits `data` at its first `\n` (or not at all).
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
