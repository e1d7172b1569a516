//! The functions a worker serves, kept once for every adapter: by name, a plain handler or
//! a map/reduce pair, with an optional run-time limit, and their registration on a fresh
//! connection (after every reconnect).

use super::WorkerConnection;
use crate::error::UsageError;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;

/// How a function runs. The adapter picks the handler types (boxed closures, futures).
#[derive(Clone, Debug)]
pub enum Handler<H, M, A> {
    /// One handler produces the result.
    Plain(H),
    /// A mapper splits the job, reducer jobs run the pieces, an aggregator joins their
    /// results (see [`map_reduce`](super::map_reduce)).
    MapReduce(M, A),
}

/// A function's handler and its run-time limit.
type Entry<H, M, A> = (Handler<H, M, A>, Option<Duration>);

/// The functions of one worker.
#[derive(Clone, Debug)]
pub struct Functions<H, M, A> {
    map: HashMap<Bytes, Entry<H, M, A>>,
}

impl<H, M, A> Default for Functions<H, M, A> {
    fn default() -> Self {
        Functions {
            map: HashMap::new(),
        }
    }
}

impl<H, M, A> Functions<H, M, A> {
    /// Adds (or replaces) `name`, with a server-side run-time limit if `timeout` is set.
    pub fn insert(&mut self, name: Bytes, handler: Handler<H, M, A>, timeout: Option<Duration>) {
        self.map.insert(name, (handler, timeout));
    }

    /// The handler of `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Handler<H, M, A>> {
        self.map.get(name).map(|(h, _)| h)
    }

    /// Sends CAN_DO / CAN_DO_TIMEOUT for every function on `conn`. Returns the functions
    /// refused (a name too long or containing NUL) and why, for the adapter to report.
    pub fn register(&self, conn: &mut WorkerConnection) -> Vec<(Bytes, UsageError)> {
        self.register_except(conn, |_| false)
    }

    /// Like [`Functions::register`], leaving out the functions `skip` names (those the
    /// application unregistered at run time).
    pub fn register_except(
        &self,
        conn: &mut WorkerConnection,
        skip: impl Fn(&[u8]) -> bool,
    ) -> Vec<(Bytes, UsageError)> {
        let wanted = self.map.iter().filter(|(name, _)| !skip(name));
        wanted
            .filter_map(|(name, (_, timeout))| {
                let refused = conn.can_do(name.clone(), *timeout).err()?;
                Some((name.clone(), refused))
            })
            .collect()
    }
}
