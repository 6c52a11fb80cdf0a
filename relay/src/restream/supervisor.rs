//! Supervision of one restream destination: a sans-IO state machine.
//!
//! States: idle -> connecting -> live, and on a network failure backoff -> connecting again
//! with capped exponential backoff and jitter (from an injected seed, so tests are
//! deterministic). A rejection by the destination (bad stream key, `NetStream.Publish.BadName`,
//! connect refused by the application) is terminal: `failed`, never retried. `stopped` is
//! terminal too (the destination was removed or the stream ended).
//!
//! Call order: `handle_*` with the current time, then drain `poll_action` and re-arm the
//! timer from `poll_timeout`. The shell owns the socket; this only says when to (re)connect.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Fraction of each delay that is randomized away: a delay lies in
    /// `[base * (1 - jitter), base]`, where `base` doubles per consecutive failure.
    pub jitter: f64,
    /// A connection that stayed live this long resets the failure count.
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: 0.3,
            stable_after: Duration::from_secs(30),
        }
    }
}

/// Where a destination is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestState {
    Idle,
    Connecting,
    Live,
    Backoff {
        until: Instant,
    },
    /// Terminal: the destination refused us; retrying would not help.
    Failed {
        reason: String,
    },
    /// Terminal: removed, or the stream ended.
    Stopped,
}

impl DestState {
    /// The status word used in the cloud's `stream-status` payload.
    pub fn status(&self) -> &'static str {
        match self {
            DestState::Idle | DestState::Connecting | DestState::Backoff { .. } => "connecting",
            DestState::Live => "active",
            DestState::Failed { .. } => "error",
            DestState::Stopped => "stopped",
        }
    }
}

/// Why a connection attempt or a live connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Network trouble, timeouts, the destination going away: retry with backoff.
    Network(String),
    /// The destination refused the publish (bad key, bad app): terminal.
    Rejected(String),
    /// The destination closed the connection after accepting `connect` but before accepting
    /// `publish`. Servers such as nginx-rtmp reject a bad key this way, without a status, but
    /// a network fault looks the same once: retried once, terminal the second time in a row.
    ClosedBeforePublish(String),
}

/// What the shell must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a new connection (attempt number, starting at 1).
    Connect { attempt: u64 },
    /// Close the current connection (if any) and stop.
    Disconnect,
}

/// SplitMix64: small, seedable, good enough for jitter.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One destination's supervisor.
#[derive(Debug)]
pub struct Supervisor {
    cfg: BackoffConfig,
    state: DestState,
    /// Consecutive failures since the last stable connection.
    failures: u32,
    attempts: u64,
    live_since: Option<Instant>,
    last_error: Option<String>,
    last_delay: Option<Duration>,
    reconnects: u64,
    /// Consecutive `ClosedBeforePublish` failures.
    closed_before_publish: u32,
    rng: Rng,
    actions: VecDeque<Action>,
}

impl Supervisor {
    pub fn new(cfg: BackoffConfig, seed: u64) -> Self {
        Self {
            cfg,
            state: DestState::Idle,
            failures: 0,
            attempts: 0,
            live_since: None,
            last_error: None,
            last_delay: None,
            reconnects: 0,
            closed_before_publish: 0,
            rng: Rng(seed),
            actions: VecDeque::new(),
        }
    }

    pub fn state(&self) -> &DestState {
        &self.state
    }

    /// The most recent failure, for status reports.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Connections opened after the first one.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The delay chosen at the last failure.
    pub fn last_delay(&self) -> Option<Duration> {
        self.last_delay
    }

    fn connect(&mut self) {
        self.attempts += 1;
        if self.attempts > 1 {
            self.reconnects += 1;
        }
        self.state = DestState::Connecting;
        self.actions.push_back(Action::Connect {
            attempt: self.attempts,
        });
    }

    /// The stream has media to send: start connecting (only from idle).
    pub fn handle_start(&mut self, _now: Instant) {
        if self.state == DestState::Idle {
            self.connect();
        }
    }

    /// The connection is up and the destination accepted the publish.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state == DestState::Connecting {
            self.state = DestState::Live;
            self.live_since = Some(now);
            self.closed_before_publish = 0;
        }
    }

    /// The attempt or the live connection failed.
    pub fn handle_failure(&mut self, now: Instant, failure: Failure) {
        if !matches!(self.state, DestState::Connecting | DestState::Live) {
            return;
        }
        if self
            .live_since
            .take()
            .is_some_and(|since| now.saturating_duration_since(since) >= self.cfg.stable_after)
        {
            self.failures = 0;
        }
        let (terminal, reason) = match failure {
            Failure::Rejected(reason) => {
                self.closed_before_publish = 0;
                (true, reason)
            }
            Failure::Network(reason) => {
                self.closed_before_publish = 0;
                (false, reason)
            }
            Failure::ClosedBeforePublish(reason) => {
                self.closed_before_publish += 1;
                if self.closed_before_publish >= 2 {
                    (
                        true,
                        format!("{reason} (twice in a row: treated as a rejection)"),
                    )
                } else {
                    (false, reason)
                }
            }
        };
        self.last_error = Some(reason.clone());
        if terminal {
            self.state = DestState::Failed { reason };
        } else {
            let delay = self.delay(self.failures);
            self.failures = self.failures.saturating_add(1);
            self.last_delay = Some(delay);
            self.state = DestState::Backoff { until: now + delay };
        }
    }

    /// Base delay after `failures` earlier consecutive failures (before jitter).
    pub fn base_delay(cfg: &BackoffConfig, failures: u32) -> Duration {
        let factor = 2f64.powi(failures.min(30) as i32);
        cfg.initial.mul_f64(factor).min(cfg.max)
    }

    fn delay(&mut self, failures: u32) -> Duration {
        let base = Self::base_delay(&self.cfg, failures);
        let jitter = self.cfg.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter * self.rng.next_f64())
    }

    /// The destination was removed or the stream ended: stop for good.
    pub fn handle_stop(&mut self, _now: Instant) {
        if matches!(self.state, DestState::Connecting | DestState::Live) {
            self.actions.push_back(Action::Disconnect);
        }
        if !matches!(self.state, DestState::Failed { .. }) {
            self.state = DestState::Stopped;
        }
        self.live_since = None;
    }

    /// Timer expiry: a backoff that is over turns into a new attempt.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let DestState::Backoff { until } = self.state
            && now >= until
        {
            self.connect();
        }
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            DestState::Backoff { until } => Some(until),
            _ => None,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn net() -> Failure {
        Failure::Network("connection refused".into())
    }

    #[test]
    fn retries_with_growing_capped_backoff() {
        let cfg = BackoffConfig {
            jitter: 0.0,
            ..Default::default()
        };
        let mut s = Supervisor::new(cfg, 1);
        let mut now = Instant::now();
        s.handle_start(now);
        assert_eq!(s.poll_action(), Some(Action::Connect { attempt: 1 }));
        let mut delays = Vec::new();
        for i in 0..10 {
            s.handle_failure(now, net());
            let until = s.poll_timeout().expect("backing off");
            delays.push(until - now);
            now = until;
            s.handle_timeout(now);
            assert_eq!(s.poll_action(), Some(Action::Connect { attempt: i + 2 }));
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
        assert_eq!(s.reconnects(), 10);
        assert_eq!(s.state().status(), "connecting");
    }

    #[test]
    fn rejection_is_terminal() {
        let mut s = Supervisor::new(BackoffConfig::default(), 7);
        let now = Instant::now();
        s.handle_start(now);
        s.poll_action();
        s.handle_failure(now, Failure::Rejected("NetStream.Publish.BadName".into()));
        assert_eq!(
            s.state(),
            &DestState::Failed {
                reason: "NetStream.Publish.BadName".into()
            }
        );
        assert_eq!(s.state().status(), "error");
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(now + Duration::from_secs(3600));
        s.handle_start(now);
        assert_eq!(s.poll_action(), None);
        // Stopping keeps the failure visible.
        s.handle_stop(now);
        assert!(matches!(s.state(), DestState::Failed { .. }));
    }

    #[test]
    fn closed_before_publish_is_retried_once_then_terminal() {
        let mut s = Supervisor::new(BackoffConfig::default(), 5);
        let mut now = Instant::now();
        s.handle_start(now);
        assert_eq!(s.poll_action(), Some(Action::Connect { attempt: 1 }));
        s.handle_failure(
            now,
            Failure::ClosedBeforePublish("closed after publish".into()),
        );
        now = s.poll_timeout().expect("retried once");
        s.handle_timeout(now);
        assert_eq!(s.poll_action(), Some(Action::Connect { attempt: 2 }));
        s.handle_failure(
            now,
            Failure::ClosedBeforePublish("closed after publish".into()),
        );
        assert!(matches!(s.state(), DestState::Failed { .. }));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn a_stable_connection_resets_the_backoff() {
        let cfg = BackoffConfig {
            jitter: 0.0,
            ..Default::default()
        };
        let mut s = Supervisor::new(cfg, 1);
        let mut now = Instant::now();
        s.handle_start(now);
        for _ in 0..4 {
            s.handle_failure(now, net());
            now = s.poll_timeout().unwrap();
            s.handle_timeout(now);
        }
        assert_eq!(s.last_delay(), Some(Duration::from_secs(4)));
        s.handle_connected(now);
        now += Duration::from_secs(31);
        s.handle_failure(now, net());
        assert_eq!(s.last_delay(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn stop_disconnects_and_ends_retries() {
        let mut s = Supervisor::new(BackoffConfig::default(), 3);
        let now = Instant::now();
        s.handle_start(now);
        s.poll_action();
        s.handle_connected(now);
        s.handle_stop(now);
        assert_eq!(s.poll_action(), Some(Action::Disconnect));
        assert_eq!(s.state(), &DestState::Stopped);
        s.handle_failure(now, net());
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.state().status(), "stopped");
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Start,
        Connected,
        NetFail,
        Reject,
        Stop,
        Advance(u32),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            2 => Just(Ev::Start),
            3 => Just(Ev::Connected),
            4 => Just(Ev::NetFail),
            1 => Just(Ev::Reject),
            1 => Just(Ev::Stop),
            4 => (0u32..60_000).prop_map(Ev::Advance),
        ]
    }

    proptest! {
        #[test]
        fn supervisor_invariants(seed: u64, events in proptest::collection::vec(ev(), 1..200)) {
            let cfg = BackoffConfig::default();
            let mut s = Supervisor::new(cfg, seed);
            let mut now = Instant::now();
            let mut in_flight = 0i64;
            let mut failures_seen = 0u32;
            let mut terminal = false;
            let mut live_since: Option<Instant> = None;
            for e in events {
                match e {
                    Ev::Start => s.handle_start(now),
                    Ev::Connected => {
                        if *s.state() == DestState::Connecting {
                            live_since = Some(now);
                        }
                        s.handle_connected(now);
                    }
                    Ev::NetFail => {
                        let was = matches!(s.state(), DestState::Connecting | DestState::Live);
                        s.handle_failure(now, net());
                        if was {
                            // A connection that stayed up long enough resets the backoff.
                            if live_since.take().is_some_and(|t| now - t >= cfg.stable_after) {
                                failures_seen = 0;
                            }
                            in_flight -= 1;
                            // Bounded, and within the jitter band of a growing base.
                            let d = s.last_delay().unwrap();
                            prop_assert!(d <= cfg.max);
                            let base = Supervisor::base_delay(&cfg, failures_seen);
                            prop_assert!(d <= base && d >= base.mul_f64(1.0 - cfg.jitter) - Duration::from_nanos(1));
                            failures_seen += 1;
                        }
                    }
                    Ev::Reject => {
                        live_since = None;
                        if matches!(s.state(), DestState::Connecting | DestState::Live) {
                            in_flight -= 1;
                            terminal = true;
                        }
                        s.handle_failure(now, Failure::Rejected("bad key".into()));
                    }
                    Ev::Stop => {
                        if matches!(s.state(), DestState::Connecting | DestState::Live) {
                            in_flight -= 1;
                        }
                        s.handle_stop(now);
                        terminal = true;
                    }
                    Ev::Advance(ms) => {
                        now += Duration::from_millis(u64::from(ms));
                        if s.poll_timeout().is_some_and(|t| t <= now) {
                            s.handle_timeout(now);
                        }
                    }
                }
                while let Some(a) = s.poll_action() {
                    match a {
                        Action::Connect { .. } => {
                            prop_assert!(!terminal, "connect after a terminal state");
                            in_flight += 1;
                        }
                        Action::Disconnect => {}
                    }
                    prop_assert!(in_flight <= 1, "more than one connect in flight");
                }
                if terminal {
                    prop_assert_eq!(s.poll_timeout(), None);
                }
                prop_assert!(in_flight >= 0);
            }
        }
    }
}
