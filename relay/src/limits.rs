//! Limits that keep one abuser from hurting everyone: a cap on concurrent connections overall
//! and per client address ([`ConnLimiter`]), and a gate that lets a shell log each offender at
//! most once per interval ([`LogGate`]). Both are plain data structures with time passed in;
//! the listeners share them behind a mutex.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("too many connections in total")]
    Total,
    #[error("too many connections from this address")]
    PerIp,
}

impl LimitHit {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            LimitHit::Total => "over_total_limit",
            LimitHit::PerIp => "over_ip_limit",
        }
    }
}

/// Counts open connections overall and per address. `0` means no cap.
#[derive(Debug)]
pub struct ConnCounts {
    max_total: usize,
    max_per_ip: usize,
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnCounts {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Counts a new connection from `ip`, or says which cap it would exceed.
    pub fn try_open(&mut self, ip: IpAddr) -> Result<(), LimitHit> {
        let ip = ip.to_canonical();
        if self.max_total > 0 && self.total >= self.max_total {
            return Err(LimitHit::Total);
        }
        let n = self.per_ip.entry(ip).or_insert(0);
        if self.max_per_ip > 0 && *n >= self.max_per_ip {
            return Err(LimitHit::PerIp);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// Forgets a connection counted by [`ConnCounts::try_open`].
    pub fn close(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

/// A [`ConnCounts`] shared by a listener's tasks; [`ConnLimiter::try_open`] returns a permit
/// that gives the slot back when dropped.
#[derive(Debug, Clone)]
pub struct ConnLimiter(Arc<Mutex<ConnCounts>>);

/// One counted connection.
#[derive(Debug)]
pub struct ConnPermit {
    limiter: ConnLimiter,
    ip: IpAddr,
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self(Arc::new(Mutex::new(ConnCounts::new(max_total, max_per_ip))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnCounts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn try_open(&self, ip: IpAddr) -> Result<ConnPermit, LimitHit> {
        self.lock().try_open(ip)?;
        Ok(ConnPermit {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.limiter.lock().close(self.ip);
    }
}

/// Lets one message per key through per `interval`; remembers at most `capacity` keys (the
/// oldest are forgotten first), so an attacker cycling addresses cannot grow it.
#[derive(Debug)]
pub struct LogGate<K> {
    interval: Duration,
    capacity: usize,
    last: HashMap<K, Instant>,
    /// Messages held back since the key's last logged one.
    suppressed: HashMap<K, u64>,
}

impl<K: std::hash::Hash + Eq + Clone> LogGate<K> {
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Self {
            interval,
            capacity: capacity.max(1),
            last: HashMap::new(),
            suppressed: HashMap::new(),
        }
    }

    /// `Some(n)` when a message about `key` should be logged now, `n` being how many were held
    /// back since the last one; `None` when it should be held back.
    pub fn check(&mut self, key: &K, now: Instant) -> Option<u64> {
        match self.last.get(key) {
            Some(t) if now.saturating_duration_since(*t) < self.interval => {
                *self.suppressed.entry(key.clone()).or_insert(0) += 1;
                None
            }
            _ => {
                if self.last.len() >= self.capacity && !self.last.contains_key(key) {
                    let oldest = self
                        .last
                        .iter()
                        .min_by_key(|(_, t)| **t)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        self.last.remove(&k);
                        self.suppressed.remove(&k);
                    }
                }
                self.last.insert(key.clone(), now);
                Some(self.suppressed.remove(key).unwrap_or(0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn caps() {
        let mut c = ConnCounts::new(3, 2);
        assert!(c.try_open(ip(1)).is_ok());
        assert!(c.try_open(ip(1)).is_ok());
        assert_eq!(c.try_open(ip(1)), Err(LimitHit::PerIp));
        // The IPv4-mapped form is the same client.
        assert_eq!(
            c.try_open("::ffff:10.0.0.1".parse().unwrap()),
            Err(LimitHit::PerIp)
        );
        assert!(c.try_open(ip(2)).is_ok());
        assert_eq!(c.try_open(ip(3)), Err(LimitHit::Total));
        c.close(ip(1));
        assert!(c.try_open(ip(3)).is_ok());
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn permits_give_slots_back() {
        let l = ConnLimiter::new(0, 1);
        let p = l.try_open(ip(1)).unwrap();
        assert!(l.try_open(ip(1)).is_err());
        drop(p);
        assert!(l.try_open(ip(1)).is_ok());
    }

    #[test]
    fn log_gate() {
        let t0 = Instant::now();
        let mut g = LogGate::new(Duration::from_secs(60), 2);
        assert_eq!(g.check(&ip(1), t0), Some(0));
        assert_eq!(g.check(&ip(1), t0 + Duration::from_secs(1)), None);
        assert_eq!(g.check(&ip(1), t0 + Duration::from_secs(2)), None);
        assert_eq!(g.check(&ip(2), t0), Some(0));
        assert_eq!(g.check(&ip(1), t0 + Duration::from_secs(61)), Some(2));
        // Capacity: a third key evicts the oldest.
        assert_eq!(g.check(&ip(3), t0 + Duration::from_secs(62)), Some(0));
        assert_eq!(g.last.len(), 2);
    }

    proptest! {
        /// Any sequence of opens and closes keeps the counts consistent and within the caps.
        #[test]
        fn counts_stay_consistent(ops in proptest::collection::vec((any::<bool>(), 0u8..4), 0..200)) {
            let mut c = ConnCounts::new(5, 2);
            let mut open: Vec<IpAddr> = Vec::new();
            for (is_open, n) in ops {
                if is_open {
                    if c.try_open(ip(n)).is_ok() { open.push(ip(n)); }
                } else if let Some(i) = open.iter().position(|x| *x == ip(n)) {
                    open.remove(i);
                    c.close(ip(n));
                }
                prop_assert_eq!(c.total(), open.len());
                prop_assert!(c.total() <= 5);
                for k in 0..4 {
                    prop_assert!(open.iter().filter(|x| **x == ip(k)).count() <= 2);
                }
            }
        }
    }
}
