//! Which connections need the core task: each connection's socket holds a waker of its own
//! that, when the socket turns readable or writable, puts the connection's id on the shared
//! ready list and wakes the core task. No task per connection, so an idle connection costs
//! a small allocation here and nothing on a task's stack.

use atomic_waker::AtomicWaker;
use gearman_core::server::ConnId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// Ids of connections whose socket reported readiness, for the core task.
#[derive(Default)]
pub(crate) struct ReadyList {
    ids: Mutex<Vec<ConnId>>,
    core: AtomicWaker,
}

impl ReadyList {
    fn push(&self, id: ConnId) {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
        self.core.wake();
    }

    /// Moves every queued id to the back of `into`; `Pending` (the task's waker kept for the
    /// next push) when there is none.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, into: &mut VecDeque<ConnId>) -> Poll<()> {
        self.core.register(cx.waker());
        self.take(into)
    }

    /// Moves every queued id to the back of `into`, without waiting.
    pub(crate) fn take(&self, into: &mut VecDeque<ConnId>) -> Poll<()> {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.is_empty() {
            return Poll::Pending;
        }
        into.extend(ids.drain(..));
        Poll::Ready(())
    }
}

/// One connection's waker: queues its id once, until the core task services it.
pub(crate) struct ConnWaker {
    id: ConnId,
    queued: AtomicBool,
    list: Arc<ReadyList>,
}

impl ConnWaker {
    /// A waker for `id` on `list`, and the handle to re-arm it.
    pub(crate) fn new(id: ConnId, list: &Arc<ReadyList>) -> (Arc<ConnWaker>, Waker) {
        let me = Arc::new(ConnWaker {
            id,
            queued: AtomicBool::new(false),
            list: list.clone(),
        });
        let waker = Waker::from(me.clone());
        (me, waker)
    }

    /// The core task is about to service the connection: a wake from now on queues it again.
    pub(crate) fn serviced(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.list.push(self.id);
        }
    }
}
