//! When to try a platform request again (`seeds/002_*`: "Retry with exponential backoff (3
//! attempts)", "Respect platform limits"). A pure decision: the caller says how the last
//! attempt went, this says whether and after how long to try again.

use std::time::Duration;

/// How an attempt ended, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// 429, with the `Retry-After` the platform asked for (if any).
    RateLimited(Option<Duration>),
    /// 5xx, a timeout or no connection: worth another try.
    Failed,
    /// Success, or an answer that will not change by asking again (4xx).
    Final,
}

/// Capped exponential backoff over a fixed number of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// The longest `Retry-After` honoured; a platform asking for more gets an error instead
    /// of a stalled caller.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// After attempt number `n` (1-based) ended as `how`: the wait before the next one, or
    /// `None` to stop.
    pub fn next_delay(&self, n: u32, how: Attempt) -> Option<Duration> {
        if n >= self.attempts {
            return None;
        }
        let backoff = self
            .base
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(self.cap);
        match how {
            Attempt::Final => None,
            Attempt::Failed => Some(backoff),
            Attempt::RateLimited(None) => Some(backoff),
            Attempt::RateLimited(Some(d)) if d <= self.max_retry_after => Some(d),
            Attempt::RateLimited(Some(_)) => None,
        }
    }
}

/// A `Retry-After` header value: delay-seconds (the HTTP-date form is read as "now").
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    match v.parse::<u64>() {
        Ok(s) => Some(Duration::from_secs(s)),
        Err(_) => humantime::parse_rfc3339_weak(v).ok().map(|t| {
            t.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn three_attempts_with_backoff_and_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.next_delay(1, Attempt::Failed),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            p.next_delay(2, Attempt::Failed),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            p.next_delay(3, Attempt::Failed),
            None,
            "three attempts in all"
        );
        assert_eq!(p.next_delay(1, Attempt::Final), None);
        assert_eq!(
            p.next_delay(1, Attempt::RateLimited(Some(Duration::from_secs(7)))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            p.next_delay(1, Attempt::RateLimited(Some(Duration::from_secs(600)))),
            None,
            "an absurd Retry-After is an error, not a stall"
        );
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon"), None);
    }

    proptest! {
        #[test]
        fn never_more_than_the_attempts_nor_the_cap(n in 1u32..40, secs in proptest::option::of(0u64..100)) {
            let p = RetryPolicy::default();
            for how in [Attempt::Failed, Attempt::RateLimited(secs.map(Duration::from_secs))] {
                match p.next_delay(n, how) {
                    Some(d) => {
                        prop_assert!(n < p.attempts);
                        prop_assert!(d <= p.cap.max(p.max_retry_after));
                    }
                    None => prop_assert!(n >= p.attempts || matches!(how, Attempt::RateLimited(Some(d)) if d > p.max_retry_after)),
                }
            }
        }
    }
}
