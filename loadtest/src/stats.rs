//! Latency samples and their summary.

use serde::Serialize;

/// Percentiles of a set of samples (milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        // Nearest-rank percentile.
        let pct = |p: f64| s[((p / 100.0 * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Self {
            count: s.len(),
            p50: pct(50.0),
            p95: pct(95.0),
            p99: pct(99.0),
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        }
    }
}

/// Publish-to-viewer latency of a part received at `received_ms` (wall clock): the time since
/// its newest frame was published, i.e. since the part's end on the PROGRAM-DATE-TIME clock.
pub fn part_latency_ms(part_end_ms: f64, received_ms: f64) -> f64 {
    received_ms - part_end_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&v);
        assert_eq!(
            (s.count, s.p50, s.p95, s.p99, s.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(s.mean, 50.5);
        assert_eq!(Summary::of(&[]).count, 0);
        assert_eq!(Summary::of(&[7.0]).p99, 7.0);
    }

    #[test]
    fn latency_from_pdt() {
        // A part ending at t=1000 ms received at 1350 ms: 350 ms behind the publisher.
        assert_eq!(part_latency_ms(1000.0, 1350.0), 350.0);
        let p = crate::playlist::parse(
            "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:01.000Z\n#EXT-X-PART:DURATION=0.2,URI=\"p0\"\n",
        );
        assert_eq!(part_latency_ms(p.parts[0].end_ms().unwrap(), 1500.0), 300.0);
    }
}
