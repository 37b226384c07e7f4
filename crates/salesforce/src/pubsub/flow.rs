//! Flow control of one subscription: how many events to ask the server for,
//! so that memory stays bounded by `max_pending` and the stream never stalls.
//!
//! A pure state machine; the subscription task feeds it what happens and
//! sends the `num_requested` it answers.

use sfstream_pubsub::MAX_REQUESTED;

/// The bookkeeping of one subscription stream.
///
/// Invariants: `outstanding <= MAX_REQUESTED` and
/// `outstanding + buffered <= max_pending`, where `outstanding` is what
/// the server still owes and `buffered` what was received and not yet
/// taken by the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flow {
    max_pending: u32,
    outstanding: u32,
    buffered: u32,
}

impl Flow {
    /// A flow allowing at most `max_pending` events requested or buffered
    /// (at least 1).
    pub(crate) fn new(max_pending: usize) -> Self {
        Self {
            max_pending: u32::try_from(max_pending).unwrap_or(u32::MAX).max(1),
            outstanding: 0,
            buffered: 0,
        }
    }

    /// Events the server still owes.
    pub(crate) fn outstanding(&self) -> u32 {
        self.outstanding
    }

    /// Events received and not yet taken by the consumer.
    pub(crate) fn buffered(&self) -> u32 {
        self.buffered
    }

    /// What may still be asked for.
    fn room(&self) -> u32 {
        let by_memory = self
            .max_pending
            .saturating_sub(self.outstanding + self.buffered);
        let by_server = (MAX_REQUESTED as u32).saturating_sub(self.outstanding);
        by_memory.min(by_server)
    }

    /// The `num_requested` to send now, if any, and counts it as
    /// outstanding. Asks when nothing is outstanding (so the stream never
    /// stalls while there is room), else only once at least half a batch
    /// is free (so a steady consumer does not cause a request per event).
    pub(crate) fn request(&mut self) -> Option<i32> {
        let room = self.room();
        if room == 0 {
            return None;
        }
        let batch = self.max_pending.min(MAX_REQUESTED as u32);
        if self.outstanding > 0 && room < batch.div_ceil(2) {
            return None;
        }
        self.outstanding += room;
        i32::try_from(room).ok()
    }

    /// `n` events arrived; they are buffered until taken.
    pub(crate) fn received(&mut self, n: u32) {
        // A server sending more than asked is tolerated, never trusted to
        // grow what we ask for.
        self.outstanding = self.outstanding.saturating_sub(n);
        self.buffered = self.buffered.saturating_add(n);
    }

    /// The consumer took `n` events.
    pub(crate) fn taken(&mut self, n: u32) {
        self.buffered = self.buffered.saturating_sub(n);
    }

    /// The server's own count of what it owes (`pending_num_requested`):
    /// believed only when lower, so we never ask for more than we have room
    /// for.
    pub(crate) fn server_owes(&mut self, pending: i32) {
        let pending = u32::try_from(pending).unwrap_or(0);
        self.outstanding = self.outstanding.min(pending);
    }

    /// A new stream owes nothing yet.
    pub(crate) fn restart(&mut self) {
        self.outstanding = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn asks_in_batches_of_at_most_100_and_tops_up() {
        let mut flow = Flow::new(1000);
        assert_eq!(flow.request(), Some(100));
        assert_eq!(flow.request(), None);
        flow.received(30);
        assert_eq!(flow.request(), None, "less than half a batch is free");
        flow.received(30);
        assert_eq!(flow.request(), Some(60));
        assert_eq!(flow.outstanding(), 100);
    }

    #[test]
    fn a_slow_consumer_pauses_the_server() {
        let mut flow = Flow::new(10);
        assert_eq!(flow.request(), Some(10));
        flow.received(10);
        assert_eq!(flow.request(), None);
        assert_eq!(flow.buffered(), 10);
        flow.taken(4);
        assert_eq!(flow.request(), Some(4));
        flow.restart();
        assert_eq!(flow.request(), Some(4));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Request,
        Receive(u32),
        Take(u32),
        ServerOwes(i32),
        Restart,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Request),
            (0u32..120).prop_map(Step::Receive),
            (0u32..120).prop_map(Step::Take),
            (-5i32..120).prop_map(Step::ServerOwes),
            Just(Step::Restart),
        ]
    }

    proptest! {
        #[test]
        fn never_over_requests_and_never_stalls(
            max in 1usize..400,
            steps in prop::collection::vec(step(), 0..200),
        ) {
            let mut flow = Flow::new(max);
            for step in steps {
                match step {
                    Step::Request => {
                        let before = flow.outstanding();
                        if let Some(n) = flow.request() {
                            prop_assert!(n > 0 && n <= MAX_REQUESTED);
                            prop_assert_eq!(flow.outstanding(), before + n as u32);
                        }
                    }
                    // The server sends at most what it owes.
                    Step::Receive(n) => flow.received(n.min(flow.outstanding())),
                    Step::Take(n) => flow.taken(n.min(flow.buffered())),
                    Step::ServerOwes(p) => flow.server_owes(p),
                    Step::Restart => flow.restart(),
                }
                prop_assert!(flow.outstanding() <= MAX_REQUESTED as u32);
                prop_assert!(flow.outstanding() + flow.buffered() <= max as u32);
                // Never stall: nothing owed and room left means a request.
                if flow.outstanding() == 0 && (flow.buffered() as usize) < max {
                    let mut probe = flow.clone();
                    prop_assert!(probe.request().is_some());
                }
            }
            // Draining the consumer always lets the stream go on.
            flow.taken(flow.buffered());
            flow.restart();
            prop_assert!(flow.request().is_some());
        }
    }
}
