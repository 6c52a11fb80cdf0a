//! A small cache of policy decisions, so a reconnect storm does not become a cloud storm:
//! allows are remembered for one TTL, refusals for another (shorter) one, and the cache holds
//! at most a fixed number of entries (the ones closest to expiry go first).
//! Keys are opaque digests chosen by the caller (they must not contain a credential).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use relay::auth::Decision;

/// Decisions by key, with expiry.
#[derive(Debug)]
pub struct DecisionCache {
    allow_ttl: Duration,
    deny_ttl: Duration,
    capacity: usize,
    entries: HashMap<[u8; 32], (Decision, Instant)>,
}

impl DecisionCache {
    pub fn new(allow_ttl: Duration, deny_ttl: Duration, capacity: usize) -> Self {
        Self {
            allow_ttl,
            deny_ttl,
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    /// The remembered decision for `key`, if it has not expired at `now`.
    pub fn get(&mut self, key: &[u8; 32], now: Instant) -> Option<Decision> {
        match self.entries.get(key) {
            Some((d, until)) if *until > now => Some(d.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers `decision` from `now` (a zero TTL remembers nothing).
    pub fn insert(&mut self, key: [u8; 32], decision: Decision, now: Instant) {
        let ttl = match decision {
            Decision::Allow(_) => self.allow_ttl,
            Decision::Deny(_) => self.deny_ttl,
        };
        if ttl.is_zero() {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= self.capacity
                && let Some(k) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| *k)
            {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(key, (decision, now + ttl));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay::auth::DenyReason;
    use relay::path::StreamPath;

    fn allow() -> Decision {
        Decision::Allow(StreamPath {
            user_id: "u".into(),
            stream_id: "s".into(),
        })
    }

    #[test]
    fn ttls_by_outcome() {
        let t0 = Instant::now();
        let mut c = DecisionCache::new(Duration::from_secs(30), Duration::from_secs(5), 10);
        c.insert([1; 32], allow(), t0);
        c.insert([2; 32], Decision::Deny(DenyReason::CallbackDenied), t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(c.get(&[1; 32], at(29)), Some(allow()));
        assert_eq!(
            c.get(&[2; 32], at(4)),
            Some(Decision::Deny(DenyReason::CallbackDenied))
        );
        assert_eq!(c.get(&[2; 32], at(5)), None);
        assert_eq!(c.get(&[1; 32], at(30)), None);
        assert_eq!(c.get(&[3; 32], t0), None);
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut c = DecisionCache::new(Duration::from_secs(30), Duration::ZERO, 3);
        for i in 0..10u8 {
            c.insert([i; 32], allow(), t0 + Duration::from_secs(u64::from(i)));
        }
        assert_eq!(c.len(), 3);
        // The newest survive.
        assert!(c.get(&[9; 32], t0 + Duration::from_secs(10)).is_some());
        assert!(c.get(&[0; 32], t0 + Duration::from_secs(10)).is_none());
        // A zero TTL caches nothing.
        c.insert([42; 32], Decision::Deny(DenyReason::CallbackDenied), t0);
        assert!(c.get(&[42; 32], t0).is_none());
    }

    proptest::proptest! {
        /// Never more than the capacity, whatever is inserted.
        #[test]
        fn never_over_capacity(ops in proptest::collection::vec((0u8..20, 0u64..100, proptest::bool::ANY), 0..200)) {
            let t0 = Instant::now();
            let mut c = DecisionCache::new(Duration::from_secs(10), Duration::from_secs(3), 5);
            for (k, t, ok) in ops {
                let d = if ok { allow() } else { Decision::Deny(DenyReason::CallbackDenied) };
                c.insert([k; 32], d, t0 + Duration::from_secs(t));
                proptest::prop_assert!(c.len() <= 5);
            }
        }
    }
}
