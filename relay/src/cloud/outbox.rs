//! What the relay still has to tell the cloud about one stream, decided without I/O.
//!
//! - `hls-ready` is delivered exactly once (kept until the cloud accepts it or it expires);
//! - `stream-status` is "latest state wins": a newer status replaces an undelivered older one,
//!   so a cloud that was down receives the current state, not a backlog;
//! - delivery is in order (hls-ready before any later status), one request at a time, with
//!   capped exponential backoff after failures;
//! - an event older than `max_age` is dropped (counted) rather than retried forever.
//!
//! Call order: `handle_*`, then `poll_request(now)`; report the result with
//! `handle_delivered`/`handle_failed`; sleep until `poll_timeout`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One request the shell should send (its JSON body is prepared by the shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<S> {
    HlsReady,
    Status(S),
}

/// Outbox settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Undelivered events older than this are dropped.
    pub max_age: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_age: Duration::from_secs(300),
        }
    }
}

/// Per-stream delivery state. `S` is the status payload.
#[derive(Debug)]
pub struct Outbox<S> {
    cfg: OutboxConfig,
    queue: VecDeque<(Event<S>, Instant)>,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
    dropped: u64,
    delivered: u64,
}

impl<S: Clone> Outbox<S> {
    pub fn new(cfg: OutboxConfig) -> Self {
        Self {
            cfg,
            queue: VecDeque::new(),
            in_flight: false,
            failures: 0,
            retry_at: None,
            dropped: 0,
            delivered: 0,
        }
    }

    /// Events dropped because they expired undelivered.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Nothing left to send.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && !self.in_flight
    }

    pub fn handle_hls_ready(&mut self, now: Instant) {
        self.queue.push_back((Event::HlsReady, now));
    }
    pub fn handle_status(&mut self, status: S, now: Instant) {
        // A newer status supersedes every undelivered one (the one in flight stays); hls-ready
        // keeps its place before it.
        let first_unsent = usize::from(self.in_flight);
        let mut i = 0;
        self.queue.retain(|(e, _)| {
            let keep = i < first_unsent || !matches!(e, Event::Status(_));
            i += 1;
            keep
        });
        self.queue.push_back((Event::Status(status), now));
    }

    fn expire(&mut self, now: Instant) {
        let first = usize::from(self.in_flight);
        let max_age = self.cfg.max_age;
        let before = self.queue.len();
        let mut i = 0;
        self.queue.retain(|(_, at)| {
            let keep = i < first || now.saturating_duration_since(*at) <= max_age;
            i += 1;
            keep
        });
        self.dropped += (before - self.queue.len()) as u64;
    }

    /// The next request to send, if one is due.
    pub fn poll_request(&mut self, now: Instant) -> Option<Event<S>> {
        if self.in_flight {
            return None;
        }
        self.expire(now);
        if self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        let (event, _) = self.queue.front()?;
        self.in_flight = true;
        Some(event.clone())
    }

    /// The request from `poll_request` was accepted by the cloud.
    pub fn handle_delivered(&mut self) {
        if self.in_flight {
            self.in_flight = false;
            self.queue.pop_front();
            self.failures = 0;
            self.retry_at = None;
            self.delivered += 1;
        }
    }

    /// The request failed (network, timeout, 5xx): retry later.
    pub fn handle_failed(&mut self, now: Instant) {
        if self.in_flight {
            self.in_flight = false;
            // A failed status that a newer one has superseded is not retried.
            let superseded = matches!(self.queue.front(), Some((Event::Status(_), _)))
                && self
                    .queue
                    .iter()
                    .skip(1)
                    .any(|(e, _)| matches!(e, Event::Status(_)));
            if superseded {
                self.queue.pop_front();
            }
            let factor = 2u32.saturating_pow(self.failures.min(16));
            let delay = self
                .cfg
                .initial_backoff
                .saturating_mul(factor)
                .min(self.cfg.max_backoff);
            self.failures = self.failures.saturating_add(1);
            self.retry_at = Some(now + delay);
        }
    }

    /// The cloud refused the request for good (4xx other than 429): drop it.
    pub fn handle_rejected(&mut self) {
        if self.in_flight {
            self.in_flight = false;
            self.queue.pop_front();
            self.dropped += 1;
        }
    }

    /// When to call `poll_request` again while something is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight || self.queue.is_empty() {
            return None;
        }
        self.retry_at
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn latest_status_wins_while_the_cloud_is_down() {
        let mut o: Outbox<u32> = Outbox::new(OutboxConfig::default());
        let mut now = Instant::now();
        o.handle_hls_ready(now);
        o.handle_status(1, now);
        assert_eq!(o.poll_request(now), Some(Event::HlsReady));
        o.handle_failed(now);
        assert_eq!(o.poll_request(now), None, "backing off");
        o.handle_status(2, now);
        o.handle_status(3, now);
        now = o.poll_timeout().unwrap();
        assert_eq!(
            o.poll_request(now),
            Some(Event::HlsReady),
            "hls-ready is kept"
        );
        o.handle_delivered();
        assert_eq!(
            o.poll_request(now),
            Some(Event::Status(3)),
            "only the latest status"
        );
        o.handle_delivered();
        assert!(o.is_idle());
        assert_eq!(o.delivered(), 2);
    }
    #[test]
    fn a_failed_status_before_hls_ready_is_superseded() {
        let mut o: Outbox<u32> = Outbox::new(OutboxConfig::default());
        let mut now = Instant::now();
        o.handle_status(1, now);
        assert_eq!(o.poll_request(now), Some(Event::Status(1)));
        o.handle_failed(now);
        o.handle_hls_ready(now);
        for s in 2..10 {
            o.handle_status(s, now);
        }
        now = o.poll_timeout().unwrap();
        let mut sent = Vec::new();
        while let Some(e) = o.poll_request(now) {
            sent.push(e);
            o.handle_delivered();
        }
        assert_eq!(sent, vec![Event::HlsReady, Event::Status(9)]);
    }

    #[test]
    fn a_status_in_flight_is_not_replaced() {
        let mut o: Outbox<u32> = Outbox::new(OutboxConfig::default());
        let now = Instant::now();
        o.handle_status(1, now);
        assert_eq!(o.poll_request(now), Some(Event::Status(1)));
        o.handle_status(2, now);
        o.handle_delivered();
        assert_eq!(o.poll_request(now), Some(Event::Status(2)));
    }

    #[test]
    fn old_events_expire() {
        let cfg = OutboxConfig {
            max_age: Duration::from_secs(60),
            ..Default::default()
        };
        let mut o: Outbox<u32> = Outbox::new(cfg);
        let t0 = Instant::now();
        o.handle_hls_ready(t0);
        assert!(o.poll_request(t0).is_some());
        o.handle_failed(t0);
        assert_eq!(o.poll_request(t0 + Duration::from_secs(61)), None);
        assert_eq!(o.dropped(), 1);
        assert!(o.is_idle());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Ready,
        Status(u8),
        Poll,
        Ok,
        Fail,
        Advance(u16),
    }

    proptest! {
        /// Whatever the cloud does, hls-ready is sent before any status queued after it, it is
        /// delivered at most once, and the last status given is the last one delivered
        /// (unless it expired).
        #[test]
        fn ordering_and_latest_state(ops in proptest::collection::vec(prop_oneof![
            1 => Just(Op::Ready),
            4 => any::<u8>().prop_map(Op::Status),
            4 => Just(Op::Poll),
            3 => Just(Op::Ok),
            2 => Just(Op::Fail),
            2 => (0u16..5000).prop_map(Op::Advance),
        ], 1..200)) {
            let cfg = OutboxConfig { max_age: Duration::from_secs(3600), ..Default::default() };
            let mut o: Outbox<u8> = Outbox::new(cfg);
            let mut now = Instant::now();
            let mut in_flight: Option<Event<u8>> = None;
            let mut delivered: Vec<Event<u8>> = Vec::new();
            let mut last_status = None;
            let mut readies = 0;
            for op in ops {
                match op {
                    Op::Ready => { readies += 1; o.handle_hls_ready(now); }
                    Op::Status(s) => { last_status = Some(s); o.handle_status(s, now); }
                    Op::Poll => {
                        let r = o.poll_request(now);
                        if in_flight.is_some() { prop_assert!(r.is_none(), "two requests in flight"); }
                        if r.is_some() { in_flight = r; }
                    }
                    Op::Ok => { if let Some(e) = in_flight.take() { delivered.push(e); o.handle_delivered(); } }
                    Op::Fail => { if in_flight.take().is_some() { o.handle_failed(now); } }
                    Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
                }
            }            // Drain with a healthy cloud: whatever piled up collapses to one status.
            if let Some(e) = in_flight.take() { delivered.push(e); o.handle_delivered(); }
            let before_drain = delivered.len();
            for _ in 0..1000 {
                now += Duration::from_secs(20);
                match o.poll_request(now) {
                    Some(e) => { delivered.push(e); o.handle_delivered(); }
                    None => break,
                }
            }            prop_assert!(o.is_idle());
            let drained_statuses = delivered[before_drain..].iter().filter(|e| matches!(e, Event::Status(_))).count();
            prop_assert!(drained_statuses <= 1, "{} statuses replayed", drained_statuses);
            let ready_count = delivered.iter().filter(|e| matches!(e, Event::HlsReady)).count();
            prop_assert_eq!(ready_count, readies);
            if let Some(s) = last_status {
                let last = delivered.iter().rev().find_map(|e| match e { Event::Status(s) => Some(*s), _ => None });
                prop_assert_eq!(last, Some(s));
            }
        }
    }
}
