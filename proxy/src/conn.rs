//! What one client connection carries through pipgate: the shared state, the runtime it was
//! admitted under, who the client is, how it arrived, and the signal to wind down.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::access::Mode;
use crate::config::Limits;
use crate::state::{Runtime, Shared};

/// A client connection's context, from admission to close.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    /// The runtime loaded when the connection was admitted: its limits and the connection's
    /// own decisions (where it may go) hold for the connection's life. Each request on it
    /// loads the current one, so a reload applies to the next request.
    pub(crate) rt: Arc<Runtime>,
    pub(crate) peer: SocketAddr,
    pub(crate) mode: Mode,
    /// The proxy user its credentials named (when `access.credentials` is set).
    pub(crate) user: Option<Arc<str>>,
    /// Turns true when in-flight work should wind down (shutdown).
    pub(crate) stop: watch::Receiver<bool>,
}

impl Conn {
    pub(crate) fn limits(&self) -> &Limits {
        &self.rt.config.limits
    }
}
