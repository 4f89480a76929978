//! The tokio runtime shared by every server and probe of one test process.
use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The process-wide multi-thread runtime; its worker threads outlive every test, so servers
/// started by one test keep answering while the (synchronous) test thread blocks on a client.
pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("it-harness")
            .build()
            .expect("build the harness tokio runtime")
    })
}

/// Runs `fut` to completion from a synchronous test thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    runtime().block_on(fut)
}

/// Aborts a background task (an accept loop and, through its `JoinSet`, its connections) when
/// the handle owning it is dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
