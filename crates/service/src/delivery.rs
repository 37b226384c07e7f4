//! Commit-after-success delivery: the contiguous watermark of one channel.
//!
//! Handlers run concurrently (up to `max_workers` events at once) and
//! finish in any order. A channel's replay marker may only advance to an
//! event when that event **and every event received before it** on the
//! channel are done, or a crash would skip the unfinished earlier ones. A
//! [`Watermark`] keeps the window of in-flight events of one channel in
//! arrival order; [`Watermark::complete`] marks one done and pops the
//! contiguous done prefix, returning its last event: the one whose marker
//! to commit. The committed marker therefore only moves forward.
//!
//! An event delivered to N handlers (several entrypoints on one channel)
//! is *done* when all N succeeded (or were recorded as failed under the
//! skip policy); the runtime completes it once, after the last of them.
//!
//! This module does no I/O; the runtime acknowledges the returned event
//! (`StreamMessage::ack`), and the replay store never moves backwards.

use std::collections::VecDeque;

/// Identifies an event in a [`Watermark`]: its position in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

impl Ticket {
    /// The position of the event in arrival order on its channel (0-based).
    pub fn position(self) -> u64 {
        self.0
    }
}

#[derive(Debug)]
struct Slot<T> {
    item: T,
    done: bool,
}

/// The in-flight events of one channel, in arrival order, and the
/// contiguous done prefix that may be committed.
///
/// ```
/// use sfstream_service::delivery::Watermark;
///
/// let mut window = Watermark::new();
/// let a = window.push("event 1");
/// let b = window.push("event 2");
/// let c = window.push("event 3");
/// // Event 2 finishes first: nothing may be committed yet.
/// assert_eq!(window.complete(b), None);
/// // Event 1 finishes: 1 and 2 are done, commit 2.
/// assert_eq!(window.complete(a), Some("event 2"));
/// assert_eq!(window.in_flight(), 1);
/// assert_eq!(window.complete(c), Some("event 3"));
/// assert!(window.is_empty());
/// ```
#[derive(Debug)]
pub struct Watermark<T> {
    /// The ticket of the window's first slot.
    base: u64,
    window: VecDeque<Slot<T>>,
    committed: u64,
}

impl<T> Default for Watermark<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Watermark<T> {
    /// An empty window.
    pub fn new() -> Self {
        Self {
            base: 0,
            window: VecDeque::new(),
            committed: 0,
        }
    }

    /// Adds an event received after every event pushed so far.
    pub fn push(&mut self, item: T) -> Ticket {
        let ticket = Ticket(self.base + self.window.len() as u64);
        self.window.push_back(Slot { item, done: false });
        ticket
    }

    /// Marks an event done. Returns the newest event of the done prefix
    /// when the prefix grew (the event whose marker to commit), `None`
    /// when an earlier event is still in flight (or the ticket is unknown
    /// or already done).
    pub fn complete(&mut self, ticket: Ticket) -> Option<T> {
        let index = ticket.0.checked_sub(self.base)?;
        let slot = self.window.get_mut(usize::try_from(index).ok()?)?;
        if slot.done {
            return None;
        }
        slot.done = true;
        let mut newest = None;
        while self.window.front().is_some_and(|s| s.done) {
            if let Some(slot) = self.window.pop_front() {
                self.base += 1;
                self.committed += 1;
                newest = Some(slot.item);
            }
        }
        newest
    }

    /// Events received and not yet below the watermark (in flight, or done
    /// behind an unfinished earlier one): the watermark lag.
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }

    /// Whether every pushed event is below the watermark.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// How many events have passed the watermark so far.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The oldest event not yet done, if any (what holds the watermark).
    pub fn oldest_pending(&self) -> Option<&T> {
        self.window.iter().find(|s| !s.done).map(|s| &s.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_commits_each() {
        let mut w = Watermark::new();
        let tickets: Vec<_> = (0..5).map(|i| w.push(i)).collect();
        for (i, t) in tickets.into_iter().enumerate() {
            assert_eq!(w.complete(t), Some(i));
        }
        assert!(w.is_empty());
        assert_eq!(w.committed(), 5);
    }

    #[test]
    fn a_stuck_event_holds_the_watermark() {
        let mut w = Watermark::new();
        let a = w.push(1);
        let b = w.push(2);
        let c = w.push(3);
        assert_eq!(w.complete(c), None);
        assert_eq!(w.complete(b), None);
        assert_eq!(w.oldest_pending(), Some(&1));
        assert_eq!(w.in_flight(), 3);
        assert_eq!(w.complete(a), Some(3));
        // Completing twice or an unknown ticket does nothing.
        assert_eq!(w.complete(a), None);
        assert_eq!(w.complete(Ticket(99)), None);
    }

    #[test]
    fn pushes_after_commits_keep_counting() {
        let mut w = Watermark::new();
        let a = w.push('a');
        assert_eq!(w.complete(a), Some('a'));
        let b = w.push('b');
        assert_eq!(b.position(), 1);
        let c = w.push('c');
        assert_eq!(w.complete(c), None);
        assert_eq!(w.complete(b), Some('c'));
    }

    proptest! {
        /// Whatever order events complete in, interleaved with arrivals:
        /// the committed event only moves forward, every committed event
        /// has every earlier one done, and the last commit is the last
        /// event.
        #[test]
        fn watermark_is_contiguous_and_monotonic(
            n in 1usize..60,
            order in prop::collection::vec(any::<prop::sample::Index>(), 60),
            arrivals in prop::collection::vec(0usize..4, 60),
        ) {
            let mut w = Watermark::new();
            let mut tickets = Vec::new();
            let mut pushed = 0usize;
            let mut done = vec![false; n];
            let mut last_commit: Option<usize> = None;
            let mut step = 0usize;
            while done.iter().any(|d| !d) {
                // Some arrivals, then one completion among the pushed.
                let burst = arrivals[step % arrivals.len()].max(usize::from(pushed == 0));
                for _ in 0..burst {
                    if pushed < n {
                        tickets.push(w.push(pushed));
                        pushed += 1;
                    }
                }
                let open: Vec<usize> = (0..pushed).filter(|i| !done[*i]).collect();
                if open.is_empty() {
                    step += 1;
                    continue;
                }
                let pick = open[order[step % order.len()].index(open.len())];
                done[pick] = true;
                if let Some(committed) = w.complete(tickets[pick]) {
                    prop_assert!(last_commit.is_none_or(|l| committed > l));
                    prop_assert!(done[..=committed].iter().all(|d| *d));
                    last_commit = Some(committed);
                }
                prop_assert_eq!(w.in_flight(), pushed - last_commit.map_or(0, |l| l + 1));
                step += 1;
            }
            prop_assert_eq!(last_commit, Some(n - 1));
            prop_assert!(w.is_empty());
        }
    }
}
