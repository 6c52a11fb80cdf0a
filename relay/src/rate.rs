//! A byte counter's recent rate, sampled whenever someone asks (the management API, the
//! cloud heartbeat), so nothing has to tick per stream. Pure: time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples closer together than this are not kept (callers may ask many times a second).
const MIN_SPACING: Duration = Duration::from_millis(250);
/// A rate over less than this is too noisy to report; the previous one is repeated.
const MIN_SPAN: Duration = Duration::from_millis(500);

/// The rate of a monotonic byte total over roughly the last `window`.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    /// (when, total); the front is the newest sample at least `window` old, if any.
    samples: VecDeque<(Instant, u64)>,
    last: u64,
}

impl RateMeter {
    /// A meter whose total was `total` at `now` (usually 0 when the counter starts).
    pub fn new(now: Instant, total: u64, window: Duration) -> Self {
        Self {
            window,
            samples: VecDeque::from([(now, total)]),
            last: 0,
        }
    }

    /// Records `total` at `now` and returns bits per second over about the last window (over
    /// everything seen, while that is shorter). Never holds more than window / 250 ms + 2
    /// samples.
    pub fn handle_sample(&mut self, now: Instant, total: u64) -> u64 {
        if self
            .samples
            .back()
            .is_none_or(|&(t, _)| now.saturating_duration_since(t) >= MIN_SPACING)
        {
            self.samples.push_back((now, total));
        }
        while self.samples.len() > 2
            && now.saturating_duration_since(self.samples[1].0) >= self.window
        {
            self.samples.pop_front();
        }
        let Some(&(t0, b0)) = self.samples.front() else {
            return self.last;
        };
        let span = now.saturating_duration_since(t0);
        if span >= MIN_SPAN {
            self.last = (total.saturating_sub(b0) as f64 * 8.0 / span.as_secs_f64()) as u64;
        }
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_steady_stream_reads_its_rate_and_a_stop_reads_zero_after_the_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0, 0, Duration::from_secs(5));
        // 250 kB/s = 2 Mbit/s, asked every 100 ms.
        let mut rate = 0;
        for i in 1..=100u64 {
            rate = m.handle_sample(t0 + Duration::from_millis(100 * i), 25_000 * i);
        }
        assert!((1_990_000..=2_010_000).contains(&rate), "{rate}");
        // The publisher stops sending: the rate falls to zero once the window has passed.
        let total = 25_000 * 100;
        for i in 101..=170u64 {
            rate = m.handle_sample(t0 + Duration::from_millis(100 * i), total);
        }
        assert_eq!(rate, 0);
    }

    #[test]
    fn the_first_answer_is_the_average_since_the_start() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0, 0, Duration::from_secs(5));
        assert_eq!(
            m.handle_sample(t0 + Duration::from_secs(2), 1_000_000),
            4_000_000
        );
        // Too soon after the start to say anything yet.
        let mut m = RateMeter::new(t0, 0, Duration::from_secs(5));
        assert_eq!(m.handle_sample(t0 + Duration::from_millis(100), 1_000), 0);
    }

    proptest! {
        #[test]
        fn samples_stay_bounded(steps in proptest::collection::vec((0u64..2_000, 0u64..1_000_000), 1..400)) {
            let t0 = Instant::now();
            let window = Duration::from_secs(5);
            let mut m = RateMeter::new(t0, 0, window);
            let (mut t, mut total) = (t0, 0u64);
            for (dt, db) in steps {
                t += Duration::from_millis(dt);
                total += db;
                let rate = m.handle_sample(t, total);
                prop_assert!(m.samples.len() <= 5_000 / 250 + 2);
                // Never more than every byte seen over the shortest span reported.
                prop_assert!(rate as f64 <= total as f64 * 8.0 / MIN_SPAN.as_secs_f64());
            }
        }
    }
}
