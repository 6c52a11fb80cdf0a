//! The run's report: JSON for machines, Markdown for people, SVG charts (latency histogram and
//! latency over time) drawn with plotters.

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::publisher::PublisherStats;
use crate::stats::Summary;
use crate::viewer::ViewerStats;

/// Results for one playback URL (or one stream).
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub url: String,
    pub viewers: usize,
    pub parts: u64,
    pub errors: u64,
    pub stalls: u64,
    /// Publish-to-viewer latency (ms).
    pub latency_ms: Summary,
    /// Time blocking playlist requests were held (ms).
    pub held_ms: Summary,
    /// Blocking-reload wake-up: when the playlist response arrived minus the end of the
    /// awaited part on the PROGRAM-DATE-TIME clock, i.e. minus the moment the part could
    /// exist (ms).
    pub wakeup_ms: Summary,
    #[serde(skip)]
    pub latencies: Vec<f64>,
    #[serde(skip)]
    pub timeline: Vec<(f64, f64)>,
}

impl TargetReport {
    pub fn from_viewers(url: &str, stats: &[ViewerStats]) -> Self {
        let latencies: Vec<f64> = stats
            .iter()
            .flat_map(|s| s.latency_ms.iter().copied())
            .collect();
        let held: Vec<f64> = stats
            .iter()
            .flat_map(|s| s.held_ms.iter().copied())
            .collect();
        let wakeup: Vec<f64> = stats
            .iter()
            .flat_map(|s| s.wakeup_ms.iter().copied())
            .collect();
        Self {
            url: url.to_string(),
            viewers: stats.len(),
            parts: stats.iter().map(|s| s.parts).sum(),
            errors: stats.iter().map(|s| s.errors).sum(),
            stalls: stats.iter().map(|s| s.stalls).sum(),
            latency_ms: Summary::of(&latencies),
            held_ms: Summary::of(&held),
            wakeup_ms: Summary::of(&wakeup),
            latencies,
            timeline: stats
                .iter()
                .flat_map(|s| s.timeline.iter().copied())
                .collect(),
        }
    }
}

/// What the publishers managed: whether the server took their media in real time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublisherReport {
    pub count: usize,
    /// Publishers that failed (connect, refused, reset), with the first few reasons.
    pub errors: usize,
    pub error_samples: Vec<String>,
    pub bytes: u64,
    /// Each publisher's largest lag behind its real-time schedule (ms), summarized.
    pub max_lag_ms: Summary,
    /// Each publisher's lag at its last tag (ms), summarized.
    pub final_lag_ms: Summary,
    /// Publishers still more than [`PublisherReport::BEHIND_MS`] behind real time at the end.
    pub behind: usize,
}

impl PublisherReport {
    /// A publisher this late is no longer live: its server did not keep up.
    pub const BEHIND_MS: f64 = 1000.0;

    pub fn from_publishers(stats: &[PublisherStats], errors: &[String]) -> Self {
        let lags: Vec<f64> = stats.iter().map(|s| s.max_lag_ms).collect();
        let finals: Vec<f64> = stats.iter().map(|s| s.final_lag_ms).collect();
        Self {
            count: stats.len() + errors.len(),
            errors: errors.len(),
            error_samples: errors.iter().take(5).cloned().collect(),
            bytes: stats.iter().map(|s| s.bytes).sum(),
            max_lag_ms: Summary::of(&lags),
            final_lag_ms: Summary::of(&finals),
            behind: finals.iter().filter(|l| **l > Self::BEHIND_MS).count(),
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started: String,
    pub duration_s: f64,
    pub publishers: PublisherReport,
    pub targets: Vec<TargetReport>,
    /// `--compare`: the two sides' figures and winners (the last two targets).
    pub comparison: Option<crate::compare::Comparison>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let p = &self.publishers;
        let mut s = format!(
            "# Load test, {}\n\n{:.0} s, {} publisher(s)",
            self.started, self.duration_s, p.count
        );
        if p.count > 0 {
            s += &format!(
                ": {} failed, {} ended over {:.0} ms behind real time, largest lag {:.0} ms",
                p.errors,
                p.behind,
                PublisherReport::BEHIND_MS,
                p.max_lag_ms.max
            );
        }
        s += ".\n\n\
             | target | viewers | parts | errors | stalls | latency p50 | p95 | p99 | max | held p50 | held p99 | wake-up p50 | wake-up p99 |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
        for t in &self.targets {
            s += &format!(
                "| {} | {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |\n",
                t.url,
                t.viewers,
                t.parts,
                t.errors,
                t.stalls,
                t.latency_ms.p50,
                t.latency_ms.p95,
                t.latency_ms.p99,
                t.latency_ms.max,
                t.held_ms.p50,
                t.held_ms.p99,
                t.wakeup_ms.p50,
                t.wakeup_ms.p99
            );
        }
        if let Some(c) = &self.comparison {
            s += &c.markdown();
        }
        s
    }

    /// Writes `report.json`, `report.md`, `latency-histogram.svg`, `latency-over-time.svg`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        self.histogram(&dir.join("latency-histogram.svg"))?;
        self.over_time(&dir.join("latency-over-time.svg"))?;
        Ok(())
    }

    fn histogram(&self, path: &Path) -> anyhow::Result<()> {
        let max = self
            .targets
            .iter()
            .map(|t| t.latency_ms.p99)
            .fold(100.0f64, f64::max)
            * 1.2;
        let bins = 40usize;
        let width = max / bins as f64;
        let counts: Vec<Vec<usize>> = self
            .targets
            .iter()
            .map(|t| {
                let mut c = vec![0usize; bins];
                for l in &t.latencies {
                    let i = ((l.max(0.0) / width) as usize).min(bins - 1);
                    c[i] += 1;
                }
                c
            })
            .collect();
        let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
        let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Publish-to-viewer latency", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max, 0usize..top + top / 10 + 1)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms)")
            .y_desc("parts")
            .draw()?;
        for (i, (t, c)) in self.targets.iter().zip(&counts).enumerate() {
            let color = Palette99::pick(i);
            chart
                .draw_series(c.iter().enumerate().map(|(b, n)| {
                    let x0 = b as f64 * width;
                    Rectangle::new([(x0, 0), (x0 + width, *n)], color.mix(0.5).filled())
                }))?
                .label(t.url.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }

    fn over_time(&self, path: &Path) -> anyhow::Result<()> {
        let max_t = self.duration_s.max(1.0);
        let max_l = self
            .targets
            .iter()
            .map(|t| t.latency_ms.max)
            .fold(100.0f64, f64::max)
            * 1.1;
        let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency over time", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_t, 0f64..max_l)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("latency (ms)")
            .draw()?;
        for (i, t) in self.targets.iter().enumerate() {
            let color = Palette99::pick(i);
            chart
                .draw_series(
                    t.timeline
                        .iter()
                        .map(|(x, y)| Circle::new((*x, *y), 1, color.filled())),
                )?
                .label(t.url.clone())
                .legend(move |(x, y)| Circle::new((x + 5, y), 3, color.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_files() {
        let v = ViewerStats {
            parts: 3,
            latency_ms: vec![500.0, 700.0, 900.0],
            held_ms: vec![150.0, 190.0, 200.0],
            wakeup_ms: vec![2.0, 3.0, 40.0],
            timeline: vec![(1.0, 500.0), (2.0, 700.0), (3.0, 900.0)],
            errors: 0,
            stalls: 0,
        };
        let r = Report {
            started: "now".into(),
            duration_s: 3.0,
            publishers: PublisherReport::from_publishers(
                &[
                    PublisherStats {
                        bytes: 10,
                        max_lag_ms: 3.0,
                        final_lag_ms: 1.0,
                    },
                    // Caught up after a slow start: not behind.
                    PublisherStats {
                        bytes: 5,
                        max_lag_ms: 2500.0,
                        final_lag_ms: 2.0,
                    },
                    PublisherStats {
                        bytes: 5,
                        max_lag_ms: 4000.0,
                        final_lag_ms: 4000.0,
                    },
                ],
                &["refused".to_string()],
            ),
            targets: vec![TargetReport::from_viewers("http://a/media.m3u8", &[v])],
            comparison: None,
        };
        assert_eq!(r.targets[0].latency_ms.p50, 700.0);
        assert_eq!(r.targets[0].wakeup_ms.p50, 3.0);
        let p = &r.publishers;
        assert_eq!((p.count, p.errors, p.bytes, p.behind), (4, 1, 20, 1));
        assert_eq!(p.max_lag_ms.max, 4000.0);
        assert_eq!(p.final_lag_ms.p50, 2.0);
        let md = r.markdown();
        assert!(
            md.contains("| http://a/media.m3u8 | 1 | 3 | 0 | 0 | 700 ms |"),
            "{md}"
        );
        assert!(md.contains("| 3 ms | 40 ms |\n"), "{md}");
        assert!(
            md.contains("4 publisher(s): 1 failed, 1 ended over 1000 ms behind"),
            "{md}"
        );
        let dir = std::env::temp_dir().join(format!("gc-loadtest-{}", std::process::id()));
        r.write(&dir).unwrap();
        for f in [
            "report.json",
            "report.md",
            "latency-histogram.svg",
            "latency-over-time.svg",
        ] {
            assert!(std::fs::metadata(dir.join(f)).unwrap().len() > 100, "{f}");
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
        assert_eq!(json["targets"][0]["parts"], 3);
        let _ = std::fs::remove_dir_all(dir);
    }
}
