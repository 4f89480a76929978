//! Where the servers (nginx, mitmproxy, pipgate) run: on 127.0.0.1 by default, or, for the
//! simulated-link runs of `scripts/bench-link.sh`, in the network namespace named by
//! `PIPGATE_BENCH_NETNS` on the address `PIPGATE_BENCH_IP`, so that every byte between the
//! client (this process, outside) and them crosses a veth pair shaped by `tc netem`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;

/// The address the servers listen on.
pub(crate) fn server_ip() -> IpAddr {
    std::env::var("PIPGATE_BENCH_IP")
        .ok()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// `bin`, run in the servers' namespace (`ip netns exec NS bin`, which execs: the child's pid
/// is the server's).
pub(crate) fn server_command(bin: &Path) -> Command {
    match std::env::var("PIPGATE_BENCH_NETNS") {
        Ok(ns) if !ns.is_empty() => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &ns]).arg(bin);
            cmd
        }
        _ => Command::new(bin),
    }
}
