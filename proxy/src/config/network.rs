//! `[network]`: hosts that are no index, and how they may be reached.

use std::fmt;

use pipgate_policy::Network;

use super::section::Section;
use super::value::{List, Toml};

/// `unlisted_hosts` and `tunnel_allow`; the hosts named by `[upstream.resolve]` are added by
/// the caller.
pub(super) fn read(s: &mut Section<'_>) -> Network {
    let mut network = Network::default();
    s.set("unlisted_hosts", &mut network.unlisted);
    network.tunnel_allow = s.list("tunnel_allow");
    network
}

/// Prints `[network]`.
pub(super) struct Printed<'a>(pub &'a Network);

impl fmt::Display for Printed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n[network]")?;
        writeln!(f, "unlisted_hosts = {}", Toml(&self.0.unlisted))?;
        writeln!(f, "tunnel_allow = {}", List(&self.0.tunnel_allow))
    }
}
