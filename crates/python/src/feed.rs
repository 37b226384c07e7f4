//! [`Feed`]: a client's message stream handed to asyncio, shared by the
//! CometD ([`Core`](crate::client::Core)) and Pub/Sub
//! ([`PubSubCore`](crate::pubsub::PubSubCore)) clients.
//!
//! `take()` hands out a message the stream already holds (synchronously,
//! no thread hop: a backlog drains at the speed of the Python consumer);
//! only when none is ready does Python await `wait()`, which parks the
//! next item in a stash, so a `wait` whose Python future was cancelled
//! loses nothing.

use std::collections::VecDeque;

use futures::{FutureExt, Stream, StreamExt};

/// A message stream that says how many items it holds.
pub trait Source: Stream + Unpin + Send + 'static {
    /// Items received and not taken yet.
    fn buffered(&self) -> usize;

    /// Whether `item` is a message (not an error), for `pending_count`.
    fn is_message(item: &Self::Item) -> bool;
}

impl Source for sfstream_salesforce::StreamMessages {
    fn buffered(&self) -> usize {
        self.pending_count()
    }

    fn is_message(item: &Self::Item) -> bool {
        item.is_ok()
    }
}

impl Source for sfstream_salesforce::pubsub::PubSubMessages {
    fn buffered(&self) -> usize {
        self.pending_count()
    }

    fn is_message(item: &Self::Item) -> bool {
        item.is_ok()
    }
}

/// What `wait` left for `take`.
enum Next<I> {
    Item(I),
    End,
}

/// What [`Feed::take`] found.
pub enum Taken<I> {
    /// The next item.
    Item(I),
    /// Nothing ready yet: await [`Feed::wait`].
    NotReady,
    /// The stream has ended (or was never set); stays so.
    Ended,
}

/// A stream, once the client is open, and the item a `wait` took from it.
pub struct Feed<S: Source> {
    stream: tokio::sync::Mutex<Option<S>>,
    /// Taken from the stream by a `wait` (at most one).
    stash: parking_lot::Mutex<VecDeque<Next<S::Item>>>,
}

impl<S: Source> Default for Feed<S> {
    fn default() -> Self {
        Self {
            stream: tokio::sync::Mutex::new(None),
            stash: parking_lot::Mutex::new(VecDeque::new()),
        }
    }
}

impl<S: Source> Feed<S>
where
    S::Item: Send,
{
    /// Starts feeding from `stream`.
    pub async fn set(&self, stream: S) {
        *self.stream.lock().await = Some(stream);
    }

    /// The next item if one is ready.
    pub fn take(&self) -> Taken<S::Item> {
        let stashed = self.stash.lock().pop_front();
        let next = match stashed {
            Some(next) => next,
            None => {
                let Ok(mut guard) = self.stream.try_lock() else {
                    return Taken::NotReady; // a `wait` holds the stream
                };
                let Some(stream) = guard.as_mut() else {
                    return Taken::Ended;
                };
                match stream.next().now_or_never() {
                    None => return Taken::NotReady,
                    Some(Some(item)) => Next::Item(item),
                    Some(None) => Next::End,
                }
            }
        };
        match next {
            Next::Item(item) => Taken::Item(item),
            Next::End => {
                // Stays ended for every later call.
                self.stash.lock().push_back(Next::End);
                Taken::Ended
            }
        }
    }

    /// Waits until an item (or the end of the stream) is ready for
    /// [`take`](Self::take); cancelling it loses nothing.
    pub async fn wait(&self) {
        if !self.stash.lock().is_empty() {
            return;
        }
        let mut guard = self.stream.lock().await;
        let next = match guard.as_mut() {
            None => Next::End,
            Some(stream) => match stream.next().await {
                Some(item) => Next::Item(item),
                None => Next::End,
            },
        };
        self.stash.lock().push_back(next);
    }

    /// Messages received and not taken yet.
    pub fn pending_count(&self) -> usize {
        let stashed = self
            .stash
            .lock()
            .iter()
            .filter(|n| matches!(n, Next::Item(item) if S::is_message(item)))
            .count();
        let buffered = self
            .stream
            .try_lock()
            .ok()
            .and_then(|s| s.as_ref().map(S::buffered))
            .unwrap_or(0);
        stashed + buffered
    }
}
