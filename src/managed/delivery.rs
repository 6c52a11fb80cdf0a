//! The life of one stream on a managed platform, as a sans-IO core: create the platform
//! stream, forward the publisher's stream to its ingest, poll until the platform serves it
//! (the seed polls every 2 s and gives up after 60 s), announce its playback URLs, and delete
//! the platform stream when ours ends. Creating it may fail; then the stream falls back to our
//! own origin when allowed, or reports an error.
//!
//! The shell calls `handle_*` with what happened and the time, and carries out what
//! [`Delivery::poll_action`] asks for; [`Delivery::poll_timeout`] says when to call again.
//! Nothing here talks to a platform, sleeps or reads a clock.

use std::time::{Duration, Instant};

use super::{PlatformError, PlatformStream, Playback};

/// Timing and policy of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Between playback polls.
    pub poll_interval: Duration,
    /// No playback this long after forwarding started: report an error (forwarding goes on).
    pub live_timeout: Duration,
    /// When the platform stream cannot be created, serve the stream from our origin instead.
    pub fallback_to_self: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            live_timeout: Duration::from_secs(60),
            fallback_to_self: true,
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the platform stream, then call [`Delivery::handle_created`].
    Create,
    /// Forward the publisher's stream to this ingest URL (secret) with a pusher.
    Forward(String),
    /// Ask the platform for playback URLs, then call [`Delivery::handle_playback`].
    PollPlayback(String),
    /// Tell the cloud the platform serves the stream at these URLs.
    Announce(Playback),
    /// Serve the stream from our own origin after all, and say why in the status.
    FallBack(String),
    /// Report this problem in the stream's status.
    ReportError(String),
    /// Stop forwarding and delete the platform stream (id).
    End(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing asked yet.
    Start,
    /// `Create` handed out, no answer yet.
    Creating,
    /// Forwarding; polling for playback until `deadline`.
    Waiting {
        id: String,
        next_poll: Instant,
        deadline: Instant,
        /// A poll is out.
        polling: bool,
    },
    /// Playback announced (or given up on); forwarding goes on.
    Serving { id: String },
    /// Serving from our origin; nothing on the platform.
    OnSelf,
    /// The platform stream is being (or was) deleted.
    Done,
}

/// One stream's delivery to a platform.
#[derive(Debug)]
pub struct Delivery {
    cfg: DeliveryConfig,
    state: State,
    actions: std::collections::VecDeque<Action>,
    ended: bool,
}

impl Delivery {
    pub fn new(cfg: DeliveryConfig) -> Self {
        Self {
            cfg,
            state: State::Start,
            actions: std::collections::VecDeque::new(),
            ended: false,
        }
    }

    /// The platform stream's id, while there is one.
    pub fn platform_id(&self) -> Option<&str> {
        match &self.state {
            State::Waiting { id, .. } | State::Serving { id } => Some(id),
            _ => None,
        }
    }

    /// True once the stream is served from our origin instead.
    pub fn fell_back(&self) -> bool {
        self.state == State::OnSelf
    }

    /// True once our stream has ended and nothing is left to do (no answer awaited, no
    /// action pending).
    pub fn is_finished(&self) -> bool {
        self.ended && self.actions.is_empty() && self.state != State::Creating
    }

    /// The answer to [`Action::Create`].
    pub fn handle_created(&mut self, r: Result<PlatformStream, PlatformError>, now: Instant) {
        if self.state != State::Creating {
            return;
        }
        match r {
            Ok(s) if self.ended => {
                // Our stream ended while the platform was creating its own: delete it at once.
                self.actions.push_back(Action::End(s.id));
                self.state = State::Done;
            }
            Ok(s) => {
                self.actions.push_back(Action::Forward(s.ingest_url));
                self.state = State::Waiting {
                    id: s.id,
                    next_poll: now + self.cfg.poll_interval,
                    deadline: now + self.cfg.live_timeout,
                    polling: false,
                };
            }
            // Nothing was made and nothing is wanted any more.
            Err(_) if self.ended => self.state = State::Done,
            Err(e) if self.cfg.fallback_to_self => {
                self.actions.push_back(Action::FallBack(e.to_string()));
                self.state = State::OnSelf;
            }
            Err(e) => {
                self.actions.push_back(Action::ReportError(e.to_string()));
                self.state = State::Done;
            }
        }
    }

    /// The answer to [`Action::PollPlayback`].
    pub fn handle_playback(&mut self, r: Result<Option<Playback>, PlatformError>, now: Instant) {
        let State::Waiting {
            id,
            next_poll,
            polling,
            ..
        } = &mut self.state
        else {
            return;
        };
        *polling = false;
        match r {
            Ok(Some(p)) => {
                let id = std::mem::take(id);
                self.actions.push_back(Action::Announce(p));
                self.state = State::Serving { id };
            }
            // Not live yet, or a failed poll (the platform's client already retried): ask
            // again at the next interval, until the deadline.
            Ok(None) | Err(_) => *next_poll = now + self.cfg.poll_interval,
        }
    }

    /// Our stream ended (grace period over, kicked, shutdown).
    pub fn handle_stream_ended(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        match std::mem::replace(&mut self.state, State::Done) {
            State::Waiting { id, .. } | State::Serving { id } => {
                self.actions.push_back(Action::End(id))
            }
            // The answer to Create will tell whether there is something to delete.
            State::Creating => self.state = State::Creating,
            State::Start | State::OnSelf | State::Done => {}
        }
    }

    /// The next thing to do at `now`, if any.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        match &mut self.state {
            State::Start if !self.ended => {
                self.state = State::Creating;
                Some(Action::Create)
            }
            State::Waiting {
                id,
                next_poll,
                deadline,
                polling,
            } => {
                if now >= *deadline && !*polling {
                    let id = std::mem::take(id);
                    let waited = self.cfg.live_timeout;
                    self.state = State::Serving { id };
                    return Some(Action::ReportError(format!(
                        "the platform did not serve the stream within {waited:?}"
                    )));
                }
                if now >= *next_poll && !*polling {
                    *polling = true;
                    return Some(Action::PollPlayback(id.clone()));
                }
                None
            }
            _ => None,
        }
    }

    /// When [`Delivery::poll_action`] may have something new without any `handle_*` call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.actions.is_empty() {
            return None;
        }
        match &self.state {
            State::Waiting {
                next_poll,
                deadline,
                polling: false,
                ..
            } => Some((*next_poll).min(*deadline)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream() -> PlatformStream {
        PlatformStream {
            id: "in1".into(),
            ingest_url: "rtmps://ingest/live/KEY".into(),
        }
    }

    fn playback() -> Playback {
        Playback {
            hls: "https://cdn/x.m3u8".into(),
            dash: None,
            webrtc: None,
        }
    }

    fn unavailable() -> PlatformError {
        PlatformError::Unavailable {
            platform: "Fake",
            message: "down".into(),
        }
    }

    #[test]
    fn create_forward_poll_announce_end() {
        let t0 = Instant::now();
        let s = |x| t0 + Duration::from_secs(x);
        let mut d = Delivery::new(DeliveryConfig::default());
        assert_eq!(d.poll_action(t0), Some(Action::Create));
        assert_eq!(d.poll_action(t0), None, "one create at a time");
        d.handle_created(Ok(stream()), t0);
        assert_eq!(
            d.poll_action(t0),
            Some(Action::Forward("rtmps://ingest/live/KEY".into()))
        );
        assert_eq!(d.poll_action(t0), None);
        assert_eq!(d.poll_timeout(), Some(s(2)));
        assert_eq!(
            d.poll_action(s(2)),
            Some(Action::PollPlayback("in1".into()))
        );
        assert_eq!(d.poll_timeout(), None, "waiting for the answer");
        d.handle_playback(Ok(None), s(2));
        assert_eq!(d.poll_action(s(3)), None);
        assert_eq!(
            d.poll_action(s(4)),
            Some(Action::PollPlayback("in1".into()))
        );
        d.handle_playback(Err(unavailable()), s(4));
        assert_eq!(
            d.poll_action(s(6)),
            Some(Action::PollPlayback("in1".into()))
        );
        d.handle_playback(Ok(Some(playback())), s(6));
        assert_eq!(d.poll_action(s(6)), Some(Action::Announce(playback())));
        assert_eq!(d.poll_action(s(100)), None, "no more polls once live");
        assert_eq!(d.platform_id(), Some("in1"));
        d.handle_stream_ended();
        assert_eq!(d.poll_action(s(101)), Some(Action::End("in1".into())));
        assert_eq!(d.poll_action(s(101)), None);
        d.handle_stream_ended();
        assert_eq!(d.poll_action(s(102)), None, "ended once");
    }

    #[test]
    fn gives_up_waiting_but_keeps_forwarding() {
        let t0 = Instant::now();
        let mut d = Delivery::new(DeliveryConfig {
            live_timeout: Duration::from_secs(5),
            ..Default::default()
        });
        d.poll_action(t0);
        d.handle_created(Ok(stream()), t0);
        d.poll_action(t0);
        let mut t = t0;
        let mut error = None;
        while t < t0 + Duration::from_secs(10) {
            t += Duration::from_secs(1);
            match d.poll_action(t) {
                Some(Action::PollPlayback(_)) => d.handle_playback(Ok(None), t),
                Some(Action::ReportError(e)) => error = Some((t, e)),
                Some(other) => panic!("{other:?}"),
                None => {}
            }
        }
        let (at, e) = error.expect("an error after the timeout");
        assert_eq!(at, t0 + Duration::from_secs(5));
        assert!(e.contains("did not serve"), "{e}");
        assert_eq!(d.platform_id(), Some("in1"), "forwarding goes on");
    }

    #[test]
    fn create_failure_falls_back_or_reports() {
        let t0 = Instant::now();
        let mut d = Delivery::new(DeliveryConfig::default());
        d.poll_action(t0);
        d.handle_created(Err(unavailable()), t0);
        assert_eq!(
            d.poll_action(t0),
            Some(Action::FallBack("Fake is unavailable: down".into()))
        );
        assert!(d.fell_back());
        d.handle_stream_ended();
        assert_eq!(d.poll_action(t0), None, "nothing to delete");

        let mut d = Delivery::new(DeliveryConfig {
            fallback_to_self: false,
            ..Default::default()
        });
        d.poll_action(t0);
        d.handle_created(Err(unavailable()), t0);
        assert!(matches!(d.poll_action(t0), Some(Action::ReportError(_))));
        assert!(!d.fell_back());
    }

    #[test]
    fn ended_while_creating_deletes_what_was_made() {
        let t0 = Instant::now();
        let mut d = Delivery::new(DeliveryConfig::default());
        d.poll_action(t0);
        d.handle_stream_ended();
        assert_eq!(d.poll_action(t0), None);
        d.handle_created(Ok(stream()), t0);
        assert_eq!(d.poll_action(t0), Some(Action::End("in1".into())));
        assert_eq!(d.poll_action(t0), None, "never forwarded");
        // Ended before anything was asked: nothing is created.
        let mut d = Delivery::new(DeliveryConfig::default());
        d.handle_stream_ended();
        assert_eq!(d.poll_action(t0), None);
    }

    proptest! {
        /// Whatever happens, in whatever order: one Create at most, one End at most and only
        /// for a stream that was created, Forward before any poll, and an End for every
        /// created platform stream once ours has ended.
        #[test]
        fn invariants(events in proptest::collection::vec(0u8..6, 0..60)) {
            let t0 = Instant::now();
            let mut d = Delivery::new(DeliveryConfig { live_timeout: Duration::from_secs(20), ..Default::default() });
            let (mut creates, mut ends, mut forwarded, mut created) = (0, 0, false, false);
            let mut pending_create = false;
            let mut t = t0;
            for e in events {
                t += Duration::from_millis(700);
                match e {
                    0 if pending_create => { d.handle_created(Ok(stream()), t); pending_create = false; created = true; }
                    1 if pending_create => { d.handle_created(Err(unavailable()), t); pending_create = false; }
                    2 => d.handle_playback(Ok(Some(playback())), t),
                    3 => d.handle_playback(Ok(None), t),
                    4 => d.handle_stream_ended(),
                    _ => {}
                }
                while let Some(a) = d.poll_action(t) {
                    match a {
                        Action::Create => { creates += 1; pending_create = true; }
                        Action::Forward(_) => forwarded = true,
                        Action::PollPlayback(_) => prop_assert!(forwarded),
                        Action::End(_) => { ends += 1; prop_assert!(created); }
                        _ => {}
                    }
                }
            }
            if pending_create {
                d.handle_created(Ok(stream()), t);
                created = true;
            }
            d.handle_stream_ended();
            while let Some(a) = d.poll_action(t) {
                if matches!(a, Action::End(_)) { ends += 1; }
            }
            prop_assert!(creates <= 1);
            prop_assert!(ends <= 1);
            prop_assert_eq!(ends == 1, created);
        }
    }
}
