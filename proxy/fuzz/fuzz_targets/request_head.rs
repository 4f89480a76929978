//! The first request head of a client connection (CONNECT, absolute-form, transparent plain
//! HTTP): never a panic, and every prefix of the input reads as the unit tests say it must.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = pipgate_proxy::fuzzing::request_head_prefixes(data) {
        panic!("{broken}");
    }
});
