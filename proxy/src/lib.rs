//! The pipgate server.
