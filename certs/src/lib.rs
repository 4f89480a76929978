//! The CA and the leaf certificates pipgate mints for intercepted hosts.
