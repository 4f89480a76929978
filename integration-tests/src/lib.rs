//! Test harness: local TLS indexes, a pipgate process, real Python clients.
// The harness is test-support code: a setup step that fails must abort the test that asked for
// it with a message, and panicking is how a `#[test]` reports that.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod clients;
pub mod fixtures;
pub mod installer;
pub mod origin;
pub mod pipgate;
pub mod probe;
pub mod runtime;
pub mod tls;
pub mod tunnel;
pub mod venv;
pub mod world;
