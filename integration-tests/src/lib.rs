//! Test harness: local TLS indexes, a pipgate process, real Python clients.
