//! Test harness: local TLS indexes, a pipgate process, real Python clients.

pub mod clients;
