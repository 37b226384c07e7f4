//! One handler at a time, in delivery order, for ordered queues: a ticket
//! is taken when a delivery arrives (in order, on the consumer's task) and
//! its handler runs when all earlier tickets are finished.

use std::collections::BTreeSet;

use tokio::sync::watch;

pub(crate) struct Sequencer {
    state: parking_lot::Mutex<State>,
    /// The ticket whose turn it is.
    serving: watch::Sender<u64>,
}

struct State {
    next: u64,
    serving: u64,
    /// Finished tickets not yet reached (dropped before their turn).
    finished: BTreeSet<u64>,
}

/// A place in line. Finishes (lets the next one run) when dropped, also if
/// dropped before its turn came.
pub(crate) struct Ticket {
    sequencer: std::sync::Arc<Sequencer>,
    number: u64,
}

impl Sequencer {
    pub(crate) fn new() -> Self {
        Self {
            state: parking_lot::Mutex::new(State {
                next: 0,
                serving: 0,
                finished: BTreeSet::new(),
            }),
            serving: watch::channel(0).0,
        }
    }

    pub(crate) fn ticket(self: &std::sync::Arc<Self>) -> Ticket {
        let mut state = self.state.lock();
        let number = state.next;
        state.next += 1;
        Ticket {
            sequencer: self.clone(),
            number,
        }
    }

    fn finish(&self, number: u64) {
        let mut state = self.state.lock();
        state.finished.insert(number);
        let mut serving = state.serving;
        while state.finished.remove(&serving) {
            serving += 1;
        }
        state.serving = serving;
        self.serving.send_replace(serving);
    }
}

impl Ticket {
    /// Waits until every earlier ticket is finished.
    pub(crate) async fn turn(&self) {
        let mut rx = self.sequencer.serving.subscribe();
        let number = self.number;
        // The sender lives as long as the sequencer this ticket holds.
        let _ = rx.wait_for(|serving| *serving >= number).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.sequencer.finish(self.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_in_ticket_order_even_if_polled_out_of_order() {
        let seq = Arc::new(Sequencer::new());
        let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let tickets: Vec<_> = (0..5).map(|_| seq.ticket()).collect();
        assert_eq!(tickets[3].number, 3);
        let mut tasks = Vec::new();
        // Spawned in reverse: each waits for its turn.
        for ticket in tickets.into_iter().rev() {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                ticket.turn().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                log.lock().push(ticket.number);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*log.lock(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_ticket_dropped_early_is_skipped() {
        let seq = Arc::new(Sequencer::new());
        let first = seq.ticket();
        let second = seq.ticket();
        let third = seq.ticket();
        drop(second);
        let waiting = tokio::spawn(async move { third.turn().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the first ticket is still running");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("third runs once the first finished")
            .expect("task");
    }
}
