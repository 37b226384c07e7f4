//! The subscription bookkeeping of one client, as a state machine with no
//! I/O: what the user wants, what the server has in the current session,
//! which request is in flight for each channel, who waits for which
//! outcome, and when a refused or lost subscribe is sent again.
//!
//! Rules it keeps (each has a test below):
//! - one request per channel in flight, so a subscribe and an unsubscribe
//!   of one channel are applied in the order they were asked for;
//! - a reply changes state only when it answers the request in flight
//!   (same session, same message id): a stale reply of an old session
//!   neither completes nor re-parks a request of the new one;
//! - every waiter is answered by its deadline;
//! - a refused automatic resubscribe is retried with backoff, never
//!   dropped silently: it ends only as `Subscribed` or as a reported failure.
//!
//! The client task feeds it handshakes, replies and the clock, sends the
//! [`Request`]s it returns, and reports the [`Notice`]s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorField};
use sfstream_common::Backoff;

/// Subscribe or unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Subscribe,
    Unsubscribe,
}

/// A request the client must send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) kind: Kind,
    pub(crate) channel: String,
    /// The Bayeux message id to send it with.
    pub(crate) id: String,
}

/// What the server said to a subscribe or unsubscribe, as classified by the
/// client (which knows the extensions and what an error means).
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// Accepted.
    Accepted,
    /// Refused; `action` says what to do about it.
    Refused { error: ErrorField, action: Refusal },
    /// No usable reply (network error, timeout, no reply for it in the
    /// response): the server may or may not have applied it.
    Lost(String),
}

/// What to do about a refused subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The session is gone or the credentials are being renewed: the
    /// client handshakes again, and the channel is sent again then.
    AfterHandshake,
    /// Send it again at once (an extension changed what it sends).
    Now,
    /// Send it again after a backoff (an automatic resubscribe), or fail
    /// the waiting callers (a subscribe someone is waiting for).
    Later,
    /// Give it up and report it.
    GiveUp,
}

/// Something the client must report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The server accepted a subscription.
    Subscribed(String),
    /// A subscribe is sent again after `retry_in`.
    Retrying {
        channel: String,
        error: String,
        attempt: u32,
        retry_in: Duration,
    },
    /// A subscription nobody was waiting for was given up.
    Failed { channel: String, error: ErrorField },
}

/// Who waits for the outcome of a subscribe or an unsubscribe.
pub(crate) trait Waiter {
    /// Delivers the outcome.
    fn answer(self, outcome: Result<(), Error>);
}

impl Waiter for tokio::sync::oneshot::Sender<Result<(), Error>> {
    fn answer(self, outcome: Result<(), Error>) {
        let _ = self.send(outcome);
    }
}

#[derive(Debug)]
struct InFlight {
    kind: Kind,
    id: String,
    session: u64,
}

#[derive(Debug)]
struct Channel<W> {
    /// The user wants it subscribed.
    wanted: bool,
    /// The server has it subscribed in the current session.
    subscribed: bool,
    in_flight: Option<InFlight>,
    /// Callers waiting for the channel to reach `wanted`, with deadlines.
    waiters: Vec<(W, Instant)>,
    /// Consecutive failed subscribes.
    failures: u32,
    /// Not sent again before this.
    not_before: Option<Instant>,
}

impl<W> Channel<W> {
    fn new() -> Self {
        Self {
            wanted: false,
            subscribed: false,
            in_flight: None,
            waiters: Vec::new(),
            failures: 0,
            not_before: None,
        }
    }

    fn settled(&self) -> bool {
        self.in_flight.is_none() && self.waiters.is_empty() && !self.wanted && !self.subscribed
    }
}

/// The subscriptions of one client.
#[derive(Debug)]
pub(crate) struct Subscriptions<W> {
    channels: BTreeMap<String, Channel<W>>,
    /// The current session (0: none), counted up at every handshake.
    session: u64,
    sessions: u64,
    next_id: u64,
    backoff: Backoff,
    notices: Vec<Notice>,
}

impl<W: Waiter> Subscriptions<W> {
    /// No subscriptions, no session.
    pub(crate) fn new(backoff: Backoff) -> Self {
        Self {
            channels: BTreeMap::new(),
            session: 0,
            sessions: 0,
            next_id: 0,
            backoff,
            notices: Vec::new(),
        }
    }

    /// The user asks for `channel` to be subscribed (or not); `waiter` is
    /// answered when it is, when that fails, or at `deadline`.
    pub(crate) fn want(&mut self, channel: &str, kind: Kind, waiter: W, deadline: Instant) {
        let state = self
            .channels
            .entry(channel.to_string())
            .or_insert_with(Channel::new);
        let wanted = kind == Kind::Subscribe;
        if state.wanted != wanted {
            // A new wish supersedes callers waiting for the opposite one.
            for (waiter, _) in state.waiters.drain(..) {
                waiter.answer(Err(Error::Superseded(channel.to_string())));
            }
            state.wanted = wanted;
            state.failures = 0;
            state.not_before = None;
        }
        state.waiters.push((waiter, deadline));
    }

    /// Channels the user wants subscribed.
    #[cfg(test)]
    pub(crate) fn wanted(&self) -> impl Iterator<Item = &str> {
        self.channels
            .iter()
            .filter(|(_, c)| c.wanted)
            .map(|(name, _)| name.as_str())
    }

    /// A handshake succeeded: a new session, in which nothing is subscribed
    /// and every request still in flight is stale.
    pub(crate) fn session_started(&mut self) {
        self.sessions += 1;
        self.session = self.sessions;
        for channel in self.channels.values_mut() {
            channel.subscribed = false;
            channel.in_flight = None;
            channel.not_before = None;
        }
    }

    /// The session ended (lost, refused, or re-authenticating): nothing
    /// can be sent until the next handshake.
    pub(crate) fn session_ended(&mut self) {
        self.session = 0;
    }

    /// Whether a request sent in `session` is still current.
    pub(crate) fn is_current(&self, session: u64) -> bool {
        session != 0 && session == self.session
    }

    /// The current session (0: none).
    pub(crate) fn session(&self) -> u64 {
        self.session
    }

    /// The requests to send now, and the waiters whose deadline passed
    /// (answered with a timeout). Channels nobody wants any more and that
    /// the server does not have are forgotten.
    pub(crate) fn poll(&mut self, now: Instant) -> Vec<Request> {
        let mut requests = Vec::new();
        let session = self.session;
        for (name, channel) in self.channels.iter_mut() {
            let mut kept = Vec::with_capacity(channel.waiters.len());
            for (waiter, deadline) in channel.waiters.drain(..) {
                if deadline <= now {
                    waiter.answer(Err(Error::Timeout(format!(
                        "{} of {name}",
                        if channel.wanted {
                            "subscribe"
                        } else {
                            "unsubscribe"
                        }
                    ))));
                    if channel.wanted && !channel.subscribed {
                        // The caller was told it failed: do not subscribe
                        // behind its back.
                        channel.wanted = false;
                    }
                } else {
                    kept.push((waiter, deadline));
                }
            }
            channel.waiters = kept;
            if channel.wanted == channel.subscribed {
                for (waiter, _) in channel.waiters.drain(..) {
                    waiter.answer(Ok(()));
                }
            }
            if session == 0 || channel.in_flight.is_some() {
                continue;
            }
            if channel.not_before.is_some_and(|t| t > now) {
                continue;
            }
            let kind = match (channel.wanted, channel.subscribed) {
                (true, false) => Kind::Subscribe,
                (false, true) => Kind::Unsubscribe,
                _ => continue,
            };
            self.next_id += 1;
            let id = format!("s{}", self.next_id);
            channel.in_flight = Some(InFlight {
                kind,
                id: id.clone(),
                session,
            });
            channel.not_before = None;
            requests.push(Request {
                kind,
                channel: name.clone(),
                id,
            });
        }
        if session == 0 {
            // Outside a session the server has nothing: an unsubscribe is done.
            for channel in self.channels.values_mut() {
                channel.subscribed = false;
                if !channel.wanted {
                    for (waiter, _) in channel.waiters.drain(..) {
                        waiter.answer(Ok(()));
                    }
                }
            }
        }
        self.channels.retain(|_, c| !c.settled());
        requests
    }

    /// When [`Self::poll`] next has something to do on its own (a retry
    /// or a deadline).
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.channels
            .values()
            .flat_map(|c| {
                c.waiters
                    .iter()
                    .map(|(_, d)| *d)
                    .chain(c.not_before.filter(|_| c.in_flight.is_none()))
            })
            .min()
    }

    /// A reply to the request `id` for `channel`, sent in `session`.
    /// Replies that do not answer the request in flight are ignored.
    pub(crate) fn reply(&mut self, channel: &str, id: &str, session: u64, reply: Reply) {
        let Some(state) = self.channels.get_mut(channel) else {
            return;
        };
        let current = state
            .in_flight
            .as_ref()
            .is_some_and(|f| f.id == id && f.session == session && session == self.session);
        if !current {
            return;
        }
        let Some(InFlight { kind, .. }) = state.in_flight.take() else {
            return;
        };
        match (kind, reply) {
            (Kind::Subscribe, Reply::Accepted) => {
                state.subscribed = true;
                state.failures = 0;
                self.notices.push(Notice::Subscribed(channel.to_string()));
            }
            (Kind::Unsubscribe, Reply::Accepted) => state.subscribed = false,
            (Kind::Unsubscribe, Reply::Refused { error, .. }) => {
                // The server does not have it (or will not say): either
                // way the channel is no longer wanted; tell the callers.
                state.subscribed = false;
                for (waiter, _) in state.waiters.drain(..) {
                    waiter.answer(Err(Error::Refused {
                        channel: crate::message::UNSUBSCRIBE.into(),
                        error: error.clone(),
                    }));
                }
            }
            (kind, Reply::Lost(error)) => {
                // Unknown outcome: ask again after a backoff.
                if kind == Kind::Unsubscribe {
                    state.subscribed = true;
                }
                state.failures += 1;
                let retry_in = self.backoff.delay(state.failures);
                state.not_before = Some(Instant::now() + retry_in);
                if state.wanted {
                    self.notices.push(Notice::Retrying {
                        channel: channel.to_string(),
                        error,
                        attempt: state.failures,
                        retry_in,
                    });
                }
            }
            (Kind::Subscribe, Reply::Refused { error, action }) => {
                let action = if action == Refusal::Later && !state.waiters.is_empty() {
                    Refusal::GiveUp
                } else {
                    action
                };
                match action {
                    // The session is gone: nothing more can be sent in it.
                    Refusal::AfterHandshake => self.session = 0,
                    Refusal::Now => {}
                    Refusal::Later => {
                        state.failures += 1;
                        let retry_in = self.backoff.delay(state.failures);
                        state.not_before = Some(Instant::now() + retry_in);
                        self.notices.push(Notice::Retrying {
                            channel: channel.to_string(),
                            error: error.to_string(),
                            attempt: state.failures,
                            retry_in,
                        });
                    }
                    Refusal::GiveUp => {
                        state.wanted = false;
                        if state.waiters.is_empty() {
                            self.notices.push(Notice::Failed {
                                channel: channel.to_string(),
                                error: error.clone(),
                            });
                        }
                        for (waiter, _) in state.waiters.drain(..) {
                            waiter.answer(Err(Error::SubscriptionFailed {
                                channel: channel.to_string(),
                                error: error.clone(),
                            }));
                        }
                    }
                }
            }
        }
        if state.wanted == state.subscribed {
            for (waiter, _) in state.waiters.drain(..) {
                waiter.answer(Ok(()));
            }
        }
    }

    /// What happened since the last call, to report.
    pub(crate) fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// The client stops: every waiter gets `error`.
    pub(crate) fn close(&mut self, error: &Error) {
        for channel in self.channels.values_mut() {
            for (waiter, _) in channel.waiters.drain(..) {
                waiter.answer(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A waiter that records its outcome.
    #[derive(Debug, Clone, Default)]
    struct Probe(Rc<RefCell<Option<Result<(), String>>>>);

    impl Waiter for Probe {
        fn answer(self, outcome: Result<(), Error>) {
            let mut slot = self.0.borrow_mut();
            assert!(slot.is_none(), "answered twice");
            *slot = Some(outcome.map_err(|e| e.to_string()));
        }
    }

    impl Probe {
        fn outcome(&self) -> Option<Result<(), String>> {
            self.0.borrow().clone()
        }
    }

    fn machine() -> Subscriptions<Probe> {
        Subscriptions::new(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        })
    }

    fn later(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    /// Answers the request in flight of its channel, in the current session.
    fn answer(s: &mut Subscriptions<Probe>, request: &Request, reply: Reply) {
        let session = s.session();
        s.reply(&request.channel, &request.id, session, reply);
    }

    /// `channel` subscribed in a first session, then a new session: returns
    /// the automatic resubscribe sent in it.
    fn resubscribe_after_a_new_session(s: &mut Subscriptions<Probe>, channel: &str) -> Request {
        s.want(channel, Kind::Subscribe, Probe::default(), later(60));
        s.session_started();
        let first = s.poll(Instant::now()).remove(0);
        answer(s, &first, Reply::Accepted);
        s.take_notices();
        s.session_started();
        s.poll(Instant::now()).remove(0)
    }

    /// In a session, a caller subscribes to `channel`: its probe and the
    /// subscribe sent.
    fn first_subscribe(s: &mut Subscriptions<Probe>, channel: &str) -> (Probe, Request) {
        s.session_started();
        let probe = Probe::default();
        s.want(channel, Kind::Subscribe, probe.clone(), later(60));
        let sent = s.poll(Instant::now()).remove(0);
        (probe, sent)
    }

    fn refused(text: &str, action: Refusal) -> Reply {
        Reply::Refused {
            error: ErrorField::parse(text),
            action,
        }
    }

    #[test]
    fn subscribe_waits_for_a_session_then_completes() {
        let mut s = machine();
        let probe = Probe::default();
        s.want("/a", Kind::Subscribe, probe.clone(), later(60));
        assert!(s.poll(Instant::now()).is_empty(), "no session yet");
        s.session_started();
        let sent = s.poll(Instant::now());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].kind, Kind::Subscribe);
        assert!(probe.outcome().is_none());
        s.reply("/a", &sent[0].id, s.session(), Reply::Accepted);
        assert_eq!(probe.outcome(), Some(Ok(())));
        assert_eq!(s.take_notices(), vec![Notice::Subscribed("/a".into())]);
        assert!(s.poll(Instant::now()).is_empty(), "nothing more to send");
    }

    #[test]
    fn a_stale_reply_of_an_old_session_changes_nothing() {
        let mut s = machine();
        let probe = Probe::default();
        s.want("/a", Kind::Subscribe, probe.clone(), later(60));
        s.session_started();
        let old = s.poll(Instant::now()).remove(0);
        let old_session = s.session();
        // The session is lost; a new one starts and resends.
        s.session_ended();
        s.session_started();
        let new = s.poll(Instant::now()).remove(0);
        assert_ne!(old.id, new.id);
        // The old reply (accepted, or "unknown client") arrives late.
        s.reply("/a", &old.id, old_session, Reply::Accepted);
        s.reply(
            "/a",
            &old.id,
            old_session,
            refused("403::Unknown client", Refusal::AfterHandshake),
        );
        assert!(probe.outcome().is_none(), "not completed by a stale reply");
        assert!(s.poll(Instant::now()).is_empty(), "still in flight");
        s.reply("/a", &new.id, s.session(), Reply::Accepted);
        assert_eq!(probe.outcome(), Some(Ok(())));
    }

    #[test]
    fn subscribe_and_unsubscribe_of_one_channel_are_applied_in_order() {
        let mut s = machine();
        s.session_started();
        let sub = Probe::default();
        let unsub = Probe::default();
        s.want("/a", Kind::Subscribe, sub.clone(), later(60));
        let first = s.poll(Instant::now());
        assert_eq!(first.len(), 1);
        // Unsubscribe asked while the subscribe is in flight: not sent yet.
        s.want("/a", Kind::Unsubscribe, unsub.clone(), later(60));
        assert!(s.poll(Instant::now()).is_empty());
        assert!(
            sub.outcome().is_some_and(|o| o.is_err()),
            "the subscribe caller hears it was superseded"
        );
        s.reply("/a", &first[0].id, s.session(), Reply::Accepted);
        // Now the unsubscribe goes out, after the subscribe was applied.
        let second = s.poll(Instant::now());
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].kind, Kind::Unsubscribe);
        s.reply("/a", &second[0].id, s.session(), Reply::Accepted);
        s.poll(Instant::now());
        assert_eq!(unsub.outcome(), Some(Ok(())));
        assert!(s.wanted().next().is_none());
    }

    #[test]
    fn every_waiter_is_answered_by_its_deadline() {
        let mut s = machine();
        let probe = Probe::default();
        let deadline = later(5);
        s.want("/a", Kind::Subscribe, probe.clone(), deadline);
        // No session ever comes (e.g. the connect loop is paused).
        assert_eq!(s.next_due(), Some(deadline));
        s.poll(deadline);
        assert!(probe.outcome().is_some_and(|o| o.is_err()));
        assert!(
            s.wanted().next().is_none(),
            "a subscribe reported as failed is not made later"
        );
    }

    #[test]
    fn a_refused_automatic_resubscribe_is_retried_with_backoff() {
        let mut s = machine();
        // The automatic resubscribe of a new session is refused (e.g. 401
        // during token rollover, or a transient server error).
        let r = resubscribe_after_a_new_session(&mut s, "/a");
        answer(
            &mut s,
            &r,
            refused("503::Server is too busy", Refusal::Later),
        );
        let notices = s.take_notices();
        assert!(
            matches!(&notices[..], [Notice::Retrying { channel, attempt: 1, .. }] if channel == "/a"),
            "{notices:?}"
        );
        assert!(s.wanted().any(|c| c == "/a"), "never dropped");
        assert!(s.poll(Instant::now()).is_empty(), "not before the backoff");
        let due = s.next_due().expect("a retry is due");
        let r = s.poll(due + Duration::from_millis(1)).remove(0);
        assert_eq!(r.kind, Kind::Subscribe);
        answer(&mut s, &r, Reply::Accepted);
        assert_eq!(s.take_notices(), vec![Notice::Subscribed("/a".into())]);
    }

    #[test]
    fn a_refused_first_subscribe_fails_its_caller_at_once() {
        let mut s = machine();
        let (probe, r) = first_subscribe(&mut s, "/nope");
        answer(
            &mut s,
            &r,
            refused("405:/nope:Invalid channel", Refusal::Later),
        );
        assert!(probe.outcome().is_some_and(|o| o.is_err()));
        assert!(s.take_notices().is_empty(), "the caller heard it");
        assert!(s.wanted().next().is_none());
    }

    #[test]
    fn given_up_automatic_resubscribes_are_reported() {
        let mut s = machine();
        let r = resubscribe_after_a_new_session(&mut s, "/a");
        answer(
            &mut s,
            &r,
            refused("400::replay id expired", Refusal::GiveUp),
        );
        assert!(matches!(&s.take_notices()[..], [Notice::Failed { .. }]));
        assert!(s.wanted().next().is_none());
    }

    #[test]
    fn a_lost_session_keeps_the_waiter_until_the_next_handshake() {
        let mut s = machine();
        let (probe, r) = first_subscribe(&mut s, "/a");
        answer(
            &mut s,
            &r,
            refused("402::session_unknown", Refusal::AfterHandshake),
        );
        assert!(probe.outcome().is_none());
        s.session_ended();
        assert!(s.poll(Instant::now()).is_empty());
        s.session_started();
        let r = s.poll(Instant::now()).remove(0);
        s.reply("/a", &r.id, s.session(), Reply::Accepted);
        assert_eq!(probe.outcome(), Some(Ok(())));
    }

    #[test]
    fn a_refusal_asking_for_a_retry_is_sent_again_at_once() {
        let mut s = machine();
        let (_probe, r) = first_subscribe(&mut s, "/a");
        answer(&mut s, &r, refused("400::The replayId {5} …", Refusal::Now));
        let again = s.poll(Instant::now());
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].id, r.id);
    }

    #[test]
    fn unsubscribe_outside_a_session_is_done_at_once() {
        let mut s = machine();
        let probe = Probe::default();
        s.want("/a", Kind::Unsubscribe, probe.clone(), later(60));
        s.poll(Instant::now());
        assert_eq!(probe.outcome(), Some(Ok(())));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Want(u8, bool),
            Handshake,
            Lose,
            ReplyOk(u8),
            ReplyRefused(u8, u8),
            ReplyLost(u8),
            Stale(u8),
            Tick(u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u8..3, any::<bool>()).prop_map(|(c, w)| Op::Want(c, w)),
                Just(Op::Handshake),
                Just(Op::Lose),
                (0u8..3).prop_map(Op::ReplyOk),
                (0u8..3, 0u8..4).prop_map(|(c, a)| Op::ReplyRefused(c, a)),
                (0u8..3).prop_map(Op::ReplyLost),
                (0u8..3).prop_map(Op::Stale),
                (0u8..30).prop_map(Op::Tick),
            ]
        }

        proptest! {
            /// Whatever happens: at most one request per channel is in
            /// flight, every waiter is answered once and by its deadline,
            /// and a wanted channel is either subscribed, in flight,
            /// scheduled, or waiting for a session: never dropped silently.
            #[test]
            fn invariants(ops in prop::collection::vec(op(), 1..80)) {
                let mut s = machine();
                let start = Instant::now();
                let mut now = start;
                let mut probes: Vec<(Probe, Instant)> = Vec::new();
                let mut sent: Vec<(Request, u64)> = Vec::new();
                let names = ["/a", "/b", "/c"];
                for op in ops {
                    match op {
                        Op::Want(c, w) => {
                            let p = Probe::default();
                            let deadline = now + Duration::from_secs(10);
                            s.want(names[c as usize], if w { Kind::Subscribe } else { Kind::Unsubscribe }, p.clone(), deadline);
                            probes.push((p, deadline));
                        }
                        Op::Handshake => s.session_started(),
                        Op::Lose => s.session_ended(),
                        Op::ReplyOk(c) | Op::ReplyRefused(c, _) | Op::ReplyLost(c) | Op::Stale(c) => {
                            let name = names[c as usize];
                            let Some(pos) = sent.iter().rposition(|(r, _)| r.channel == name) else { continue };
                            let (request, session) = sent.remove(pos);
                            let session = if matches!(op, Op::Stale(_)) { session.saturating_sub(1) } else { session };
                            let reply = match op {
                                Op::ReplyOk(_) | Op::Stale(_) => Reply::Accepted,
                                Op::ReplyLost(_) => Reply::Lost("network".into()),
                                Op::ReplyRefused(_, a) => refused("500::x", [Refusal::AfterHandshake, Refusal::Now, Refusal::Later, Refusal::GiveUp][a as usize]),
                                _ => unreachable!(),
                            };
                            s.reply(name, &request.id, session, reply);
                        }
                        Op::Tick(ms) => now += Duration::from_millis(u64::from(ms) * 100),
                    }
                    for request in s.poll(now) {
                        prop_assert!(!sent.iter().any(|(r, sess)| r.channel == request.channel && *sess == s.session()),
                            "two requests in flight for {}", request.channel);
                        sent.push((request, s.session()));
                    }
                    for (probe, deadline) in &probes {
                        if *deadline <= now {
                            prop_assert!(probe.outcome().is_some(), "a waiter outlived its deadline");
                        }
                    }
                    // Requests of older sessions are stale: forget them.
                    let session = s.session();
                    sent.retain(|(_, sess)| *sess == session);
                    // In a session, a channel not as wanted is being worked on:
                    // in flight, or scheduled for a retry.
                    if s.session() != 0 {
                        for name in names {
                            if let Some(state) = s.channels.get(name) && state.wanted != state.subscribed {
                                prop_assert!(
                                    state.in_flight.is_some() || state.not_before.is_some_and(|t| t > now),
                                    "{name} is neither in flight nor scheduled: {state:?}"
                                );
                            }
                        }
                    }
                    // A wanted channel leaves the wanted set only with a
                    // report: its caller's error, or a Failed notice.
                    for notice in s.take_notices() {
                        if let Notice::Failed { channel, .. } = notice {
                            prop_assert!(!s.wanted().any(|c| c == channel));
                        }
                    }
                }
            }
        }
    }
}
