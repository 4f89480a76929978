//! A provenance object and a file name as an index serves them (both upstream bytes): reading
//! and verifying them never panics, whatever they hold. Input: the file name, a NUL, the JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipgate_provenance::{verify, verify_attestation, Provenance, TrustedRoot};

fuzz_target!(|data: &[u8]| {
    let (name, json) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"pkg-1.0-py3-none-any.whl"[..], data),
    };
    let name = String::from_utf8_lossy(name);
    let digest = [0u8; 32];
    let root = TrustedRoot::production();
    if let Ok(provenance) = Provenance::from_json(json) {
        let _ = verify(&provenance, &name, &digest, root);
    }
    let _ = verify_attestation(json, &name, &digest, root);
});
