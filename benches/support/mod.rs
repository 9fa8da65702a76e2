//! Fixtures shared by the benches.

#![allow(dead_code)]

use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};

/// A store of 10,000 keys plus the keys each bench case presents.
pub(crate) struct KeyFixture {
    pub(crate) keys: ApiKeys,
    pub(crate) store: MemoryKeyStore,
    /// A live key.
    pub(crate) valid: String,
    /// A well-formed key whose id is stored with another key's hash.
    pub(crate) wrong_secret: String,
    /// A well-formed key whose id is not stored.
    pub(crate) unknown_id: String,
    /// The live key with one character changed.
    pub(crate) bad_checksum: String,
}

impl KeyFixture {
    pub(crate) fn new() -> Self {
        let keys = ApiKeys::new();
        let store = MemoryKeyStore::new();
        for i in 0..10_000 {
            let issued = keys
                .generate(KeySpec::new(format!("user{i}")).role("reader"))
                .unwrap();
            store.insert(issued.record);
        }
        let issued = keys
            .generate(KeySpec::new("alice").role("admin").scope("orders:read"))
            .unwrap();
        store.insert(issued.record.clone());
        let valid = issued.plaintext.expose_secret().to_owned();
        let decoy = keys.generate(KeySpec::new("decoy")).unwrap();
        store.insert(KeySpec::new("alice").into_record(*decoy.record.id(), *issued.record.hash()));
        let unknown = keys.generate(KeySpec::new("ghost")).unwrap();
        let mut typo = valid.clone().into_bytes();
        typo[40] = if typo[40] == b'x' { b'y' } else { b'x' };
        Self {
            keys,
            store,
            wrong_secret: decoy.plaintext.expose_secret().to_owned(),
            unknown_id: unknown.plaintext.expose_secret().to_owned(),
            bad_checksum: String::from_utf8(typo).unwrap(),
            valid,
        }
    }

    /// The key of bench case `name` (`missing` → `None`).
    pub(crate) fn key(&self, name: &str) -> Option<&str> {
        match name {
            "valid" => Some(&self.valid),
            "wrong_secret" => Some(&self.wrong_secret),
            "unknown_id" => Some(&self.unknown_id),
            "bad_checksum" => Some(&self.bad_checksum),
            "missing" => None,
            other => panic!("unknown case {other}"),
        }
    }
}

pub(crate) const CASES: [&str; 5] = [
    "valid",
    "unknown_id",
    "wrong_secret",
    "bad_checksum",
    "missing",
];
