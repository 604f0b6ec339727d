//! Connection slots for the TCP servers (DNS over TCP, the admin API): a
//! cap on open connections, and the list of connections waiting for their
//! client, from which the longest-waiting one is closed to make room
//! (RFC 7766 section 6.2.3), so idle clients cannot lock new ones out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How long an accept waits for an evicted connection to give up its slot.
const EVICTION_GRACE: Duration = Duration::from_millis(500);

/// A slot for a new connection: at once, or by closing the connection that
/// has waited longest for its client; `None` when every one is busy.
pub(crate) async fn admit(slots: &Arc<Semaphore>, idle: &IdleList) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    if !idle.evict_oldest() {
        return None;
    }
    tokio::time::timeout(EVICTION_GRACE, slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Connections waiting for their client, oldest first.
#[derive(Default)]
pub(crate) struct IdleList {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    waiting: BTreeMap<u64, Arc<Notify>>,
}

/// A connection's place in the list while it waits; leaves when dropped.
pub(crate) struct Waiting<'a> {
    list: &'a IdleList,
    ticket: u64,
    /// Notified when the connection is to close.
    pub(crate) evicted: Arc<Notify>,
}

impl IdleList {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enters the list as its newest member, with a fresh notifier.
    pub(crate) fn enter(&self) -> Waiting<'_> {
        let evicted = Arc::new(Notify::new());
        let ticket = self.join(&evicted);
        Waiting {
            list: self,
            ticket,
            evicted,
        }
    }

    /// Adds `evicted` as the newest member; its ticket, for [`Self::leave`].
    /// For connections that come and go across tasks (the admin API's).
    pub(crate) fn join(&self, evicted: &Arc<Notify>) -> u64 {
        let mut inner = self.lock();
        let ticket = inner.next;
        inner.next += 1;
        inner.waiting.insert(ticket, evicted.clone());
        ticket
    }

    pub(crate) fn leave(&self, ticket: u64) {
        self.lock().waiting.remove(&ticket);
    }

    /// Tells the longest-waiting connection to close; false if none waits.
    pub(crate) fn evict_oldest(&self) -> bool {
        match self.lock().waiting.pop_first() {
            Some((_, evicted)) => {
                // A stored permit wakes the connection even if it is not
                // awaiting yet.
                evicted.notify_one();
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().waiting.is_empty()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.list.leave(self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eviction_closes_the_longest_waiting_connection_first() {
        let list = IdleList::default();
        let first = list.enter();
        let second = list.enter();
        assert!(list.evict_oldest());
        tokio::time::timeout(Duration::from_millis(100), first.evicted.notified())
            .await
            .expect("the oldest is told to close");
        drop(first);
        drop(second);
        assert!(!list.evict_oldest(), "nothing left to evict");
        assert!(list.is_empty());
    }

    #[tokio::test]
    async fn a_full_house_admits_by_eviction_or_not_at_all() {
        let slots = Arc::new(Semaphore::new(1));
        let list = IdleList::default();
        let held = admit(&slots, &list).await.expect("a free slot");
        assert!(admit(&slots, &list).await.is_none(), "busy, nobody idle");
        let waiting = list.enter();
        let evicted = waiting.evicted.clone();
        let closer = tokio::spawn(async move {
            evicted.notified().await;
            drop(held);
        });
        assert!(
            admit(&slots, &list).await.is_some(),
            "the idle one made room"
        );
        closer.await.expect("closed");
        drop(waiting);
    }
}
