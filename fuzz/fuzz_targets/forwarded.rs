//! `Forwarded` (RFC 7239) and `X-Forwarded-For` parsing: whatever a client writes, the resolved
//! address is the peer or an address a trusted proxy recorded.
#![no_main]

#[path = "common.rs"]
mod common;

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use palisade::client_ip::{ClientIpResolver, ForwardedHeader};

fuzz_target!(|data: &[u8]| {
    let (xff, fwd) = common::split(data);
    let parts = common::parts(&[("x-forwarded-for", xff), ("forwarded", fwd)]);
    let untrusted = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    let trusted = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let resolver = ClientIpResolver::new()
            .trust_proxy("10.0.0.0/8".parse().unwrap())
            .with_header(header);
        // From an untrusted peer, the headers count for nothing.
        assert_eq!(resolver.resolve(untrusted, &parts.headers), untrusted);
        let _ = resolver.resolve(trusted, &parts.headers);
    }
});
