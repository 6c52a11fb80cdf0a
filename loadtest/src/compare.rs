//! A/B comparison of two deliveries of one broadcast (our origin against a managed platform,
//! or any two playlist URLs): each side is probed from the run's start until its playlist is
//! playable (the time to first playable playlist), then watched by the same number of viewers;
//! the report names the winner of each figure.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::playlist;
use crate::report::TargetReport;
use crate::viewer::{Http, media_playlist_url};

/// Where one side's playlist is.
#[derive(Debug, Clone)]
pub enum Side {
    /// A fixed playlist URL.
    Url(String),
    /// Read from a relay's stream status (`GET /v1/streams/{userId}/{streamId}` on the admin
    /// listener) at a JSON pointer (`/hlsUrl`, `/delivery/platformHlsUrl`), once it is there.
    Status {
        status_url: String,
        pointer: String,
        token: Option<String>,
    },
}

impl Side {
    /// Our origin and the platform of a stream in `ab` mode, from its admin API status.
    pub fn ab_pair(status_url: &str, token: Option<String>) -> [Side; 2] {
        let at = |pointer: &str| Side::Status {
            status_url: status_url.to_string(),
            pointer: pointer.to_string(),
            token: token.clone(),
        };
        [at("/hlsUrl"), at("/delivery/platformHlsUrl")]
    }

    fn label(&self) -> String {
        match self {
            Side::Url(u) => u.clone(),
            Side::Status { pointer, .. } if pointer == "/hlsUrl" => "self (our origin)".into(),
            Side::Status { pointer, .. } => format!("platform ({pointer})"),
        }
    }

    async fn resolve(&self, http: &Http) -> Option<String> {
        match self {
            Side::Url(u) => Some(u.clone()),
            Side::Status {
                status_url,
                pointer,
                token,
            } => {
                let auth = token.as_ref().map(|t| format!("Bearer {t}"));
                let headers: Vec<(&str, &str)> = auth
                    .as_deref()
                    .map(|a| ("authorization", a))
                    .into_iter()
                    .collect();
                let (status, body) = http
                    .get_with(status_url, &headers, Duration::from_secs(5))
                    .await;
                if status != 200 {
                    return None;
                }
                let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
                v.pointer(pointer)
                    .and_then(|u| u.as_str())
                    .filter(|u| !u.is_empty())
                    .map(String::from)
            }
        }
    }
}

/// True when the playlist at `url` (multivariant or media) lists media to play.
async fn playable(http: &Http, url: &str) -> bool {
    let media = media_playlist_url(http, url).await;
    let (status, body) = http.get(&media, Duration::from_secs(5)).await;
    if status != 200 {
        return false;
    }
    let pl = playlist::parse(&String::from_utf8_lossy(&body));
    !pl.parts.is_empty() || !pl.segments.is_empty()
}

/// One side before the viewers start: its URL and how long it took to become playable.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub label: String,
    pub url: Option<String>,
    /// From the run's start (the publishers' start when the run publishes), ms.
    pub first_playable_ms: Option<f64>,
}

/// Polls `side` every 100 ms from `start` until its playlist is playable or `deadline`.
pub async fn probe(http: Http, side: Side, start: Instant, deadline: Instant) -> Probe {
    let mut url = None;
    while Instant::now() < deadline {
        if url.is_none() {
            url = side.resolve(&http).await;
        }
        if let Some(u) = &url
            && playable(&http, u).await
        {
            return Probe {
                label: side.label(),
                url,
                first_playable_ms: Some(start.elapsed().as_secs_f64() * 1000.0),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Probe {
        label: side.label(),
        url,
        first_playable_ms: None,
    }
}

/// The two sides' figures and who won each.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub sides: [Probe; 2],
    /// (figure, value A, value B, winner: `A`, `B`, `tie` or `n/a`).
    pub figures: Vec<(String, String, String, String)>,
}

/// Lower is better; `None` (never measured) loses.
fn winner(a: Option<f64>, b: Option<f64>) -> &'static str {
    match (a, b) {
        (Some(a), Some(b)) if (a - b).abs() < f64::EPSILON => "tie",
        (Some(a), Some(b)) if a < b => "A",
        (Some(_), Some(_)) => "B",
        (Some(_), None) => "A",
        (None, Some(_)) => "B",
        (None, None) => "n/a",
    }
}

fn show(v: Option<f64>, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}{unit}"))
}

impl Comparison {
    pub fn new(sides: [Probe; 2], a: &TargetReport, b: &TargetReport) -> Self {
        let lat = |t: &TargetReport, f: fn(&crate::stats::Summary) -> f64| {
            (t.latency_ms.count > 0).then(|| f(&t.latency_ms))
        };
        let rows: Vec<(&str, Option<f64>, Option<f64>, &str)> = vec![
            (
                "time to first playable playlist",
                sides[0].first_playable_ms,
                sides[1].first_playable_ms,
                " ms",
            ),
            ("latency p50", lat(a, |s| s.p50), lat(b, |s| s.p50), " ms"),
            ("latency p95", lat(a, |s| s.p95), lat(b, |s| s.p95), " ms"),
            ("latency p99", lat(a, |s| s.p99), lat(b, |s| s.p99), " ms"),
            ("stalls", Some(a.stalls as f64), Some(b.stalls as f64), ""),
            ("errors", Some(a.errors as f64), Some(b.errors as f64), ""),
        ];
        let figures = rows
            .into_iter()
            .map(|(name, va, vb, unit)| {
                (
                    name.to_string(),
                    show(va, unit),
                    show(vb, unit),
                    winner(va, vb).to_string(),
                )
            })
            .collect();
        Self { sides, figures }
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "\n## A/B\n\nA = {} ({}), B = {} ({}).\n\n| figure | A | B | winner |\n| --- | --- | --- | --- |\n",
            self.sides[0].label,
            self.sides[0].url.as_deref().unwrap_or("never available"),
            self.sides[1].label,
            self.sides[1].url.as_deref().unwrap_or("never available"),
        );
        for (name, a, b, w) in &self.figures {
            s += &format!("| {name} | {a} | {b} | {w} |\n");
        }
        s += "\nLatency is read on each side's own EXT-X-PROGRAM-DATE-TIME: a platform stamps it at \
              its ingest, so its figure leaves out the hop from the relay to it; the time to first \
              playable playlist includes everything from the publish start.\n";
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_wins_and_missing_loses() {
        assert_eq!(winner(Some(1.0), Some(2.0)), "A");
        assert_eq!(winner(Some(3.0), Some(2.0)), "B");
        assert_eq!(winner(Some(2.0), Some(2.0)), "tie");
        assert_eq!(winner(None, Some(2.0)), "B");
        assert_eq!(winner(None, None), "n/a");
    }
}
