//! The memory budget of pages held whole (`limits.max_buffered_page_bytes`): the legacy JSON
//! API, HEAD-less HTTP/1.0 page answers and private-index lookups are read (and rewritten)
//! in memory, and one client can ask for many at once (100 streams on each of 512
//! connections). Every byte such a page holds is taken from one budget shared by all requests;
//! a page that would pass it is refused with a 503 naming the limit, and the others go on.
//! Pages that stream (project pages, root listings) hold a few chunks and take nothing.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in units of this many bytes (the semaphore counts permits).
const UNIT: usize = 1024;

/// A budget of bytes shared by every request of one runtime.
#[derive(Debug, Clone)]
pub(crate) struct PageBudget {
    units: Arc<Semaphore>,
    bytes: usize,
}

/// The budget is spent: `limit` bytes are held by other pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted {
    pub limit: usize,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "limits.max_buffered_page_bytes ({} bytes) is held by other pages read whole",
            self.limit
        )
    }
}

impl PageBudget {
    pub(crate) fn new(bytes: usize) -> PageBudget {
        let units = (bytes / UNIT).min(Semaphore::MAX_PERMITS);
        PageBudget {
            units: Arc::new(Semaphore::new(units)),
            bytes,
        }
    }

    /// A share of the budget, empty until it grows; what it holds returns when it is dropped.
    pub(crate) fn share(&self) -> Share {
        Share {
            units: Arc::clone(&self.units),
            held: None,
            limit: self.bytes,
        }
    }

    /// Bytes of the budget not held by anyone (for tests).
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }
}

/// What one page holds of the budget.
#[derive(Debug)]
pub(crate) struct Share {
    units: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    limit: usize,
}

impl Share {
    /// Grows the share to cover `bytes` (it never shrinks); refused at once, without waiting,
    /// when the budget has not that much left.
    pub(crate) fn cover(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let want = bytes.div_ceil(UNIT);
        let have = self
            .held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        if want <= have {
            return Ok(());
        }
        let more = u32::try_from(want - have).map_err(|_| Exhausted { limit: self.limit })?;
        let permit = Arc::clone(&self.units)
            .try_acquire_many_owned(more)
            .map_err(|_| Exhausted { limit: self.limit })?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_take_from_one_budget_and_give_back_when_dropped() {
        let budget = PageBudget::new(10 * UNIT);
        let mut a = budget.share();
        a.cover(4 * UNIT).unwrap();
        a.cover(3 * UNIT).unwrap();
        assert_eq!(budget.available(), 6 * UNIT);
        let mut b = budget.share();
        b.cover(6 * UNIT).unwrap();
        assert_eq!(b.cover(6 * UNIT + 1), Err(Exhausted { limit: 10 * UNIT }));
        drop(a);
        b.cover(6 * UNIT + 1).unwrap();
        assert_eq!(budget.available(), 3 * UNIT);
        drop(b);
        assert_eq!(budget.available(), 10 * UNIT);
    }
}
