//! Transparent mode's ClientHello parser (the SNI of a redirected connection): never a panic,
//! and every prefix of the input reads as the unit tests say it must.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = pipgate_proxy::fuzzing::client_hello_prefixes(data) {
        panic!("{broken}");
    }
});
