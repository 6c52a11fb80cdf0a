//! Simulated viewers. An LL-HLS viewer behaves like hls.js in low-latency mode: a blocking
//! playlist reload for the next part and a GET of the preload-hinted part, in parallel, again
//! and again. A legacy viewer reloads the playlist and fetches whole segments.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::playlist::{self, MediaPlaylist};
use crate::stats::part_latency_ms;

/// A keep-alive HTTP/1.1 client (http and https) with one connection pool; clones share it.
#[derive(Clone)]
pub struct Http(Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>);

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self(Client::builder(TokioExecutor::new()).build(https))
    }

    /// GET with a timeout; an error is reported as a status of 0.
    pub async fn get(&self, url: &str, timeout: Duration) -> (u16, Bytes) {
        self.get_with(url, &[], timeout).await
    }

    /// GET with extra request headers (an `authorization` for an admin API).
    pub async fn get_with(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> (u16, Bytes) {
        let mut b = hyper::Request::get(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let Ok(req) = b.body(Empty::new()) else {
            return (0, Bytes::new());
        };
        let fut = async {
            let resp = self.0.request(req).await.ok()?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .ok()
            .flatten()
            .unwrap_or((0, Bytes::new()))
    }
}

/// What one viewer saw.
#[derive(Debug, Clone, Default)]
pub struct ViewerStats {
    pub parts: u64,
    /// Publish-to-viewer latency of each part (or segment for legacy viewers), ms.
    pub latency_ms: Vec<f64>,
    /// How long each blocking playlist request was held, ms.
    pub held_ms: Vec<f64>,
    /// Each blocking reload's arrival minus the awaited part's end on the PDT clock, ms.
    pub wakeup_ms: Vec<f64>,
    /// (seconds since the run started, latency ms), for the latency-over-time chart.
    pub timeline: Vec<(f64, f64)>,
    pub errors: u64,
    /// Gaps between two received parts longer than three part targets.
    pub stalls: u64,
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A response body as text, copying only when it is not valid UTF-8.
fn text(body: &[u8]) -> std::borrow::Cow<'_, str> {
    std::str::from_utf8(body).map_or_else(|_| String::from_utf8_lossy(body), Into::into)
}

/// `https://h/a/b/media.m3u8?x` -> (`https://h/a/b/`, `https://h/a/b/media.m3u8`).
fn split_url(url: &str) -> (String, String) {
    let no_query = url.split('?').next().unwrap_or(url).to_string();
    let base = match no_query.rfind('/') {
        Some(i) => no_query[..=i].to_string(),
        None => no_query.clone(),
    };
    (base, no_query)
}

fn resolve(base: &str, uri: &str) -> String {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        uri.to_string()
    } else {
        format!("{base}{uri}")
    }
}

/// Follows a multivariant playlist to its first media playlist.
pub async fn media_playlist_url(http: &Http, url: &str) -> String {
    let (status, body) = http.get(url, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&body);
    if status == 200 && text.contains("#EXT-X-STREAM-INF") {
        let (base, _) = split_url(url);
        if let Some(uri) = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
        {
            return resolve(&base, uri);
        }
    }
    url.to_string()
}

/// Runs an LL-HLS viewer on `url` (multivariant or media playlist) until `until`. With
/// `fetch_parts` false it makes only the blocking playlist requests.
pub async fn ll_viewer(
    http: Http,
    url: String,
    fetch_parts: bool,
    run_start: Instant,
    until: Instant,
) -> ViewerStats {
    let mut st = ViewerStats::default();
    let url = media_playlist_url(&http, &url).await;
    let (base, playlist_url) = split_url(&url);
    let timeout = Duration::from_secs(15);
    let (status, body) = http.get(&playlist_url, timeout).await;
    if status != 200 {
        st.errors += 1;
        return st;
    }
    let mut pl: MediaPlaylist = playlist::parse(&text(&body));
    let part_target = pl.part_target.unwrap_or(1.0);
    let mut last_part_at = Instant::now();
    while Instant::now() < until && !pl.ended {
        let Some(hint) = pl.preload_hint.clone() else {
            // Not an LL-HLS playlist: behave like a legacy viewer for the rest of the run.
            let rest = legacy_viewer(http.clone(), url.clone(), run_start, until).await;
            st.parts += rest.parts;
            st.latency_ms.extend(rest.latency_ms);
            st.timeline.extend(rest.timeline);
            st.errors += rest.errors;
            return st;
        };
        // Like hls.js: delta updates when the server offers them.
        let blocking = format!(
            "{playlist_url}?_HLS_msn={}&_HLS_part={}{}",
            pl.open_msn,
            pl.open_parts,
            if pl.can_skip { "&_HLS_skip=YES" } else { "" }
        );
        let part_url = resolve(&base, &hint);
        let t0 = Instant::now();
        let reload = async {
            let r = http.get(&blocking, timeout).await;
            (r, t0.elapsed(), wall_ms())
        };
        let part = async {
            if fetch_parts {
                Some(http.get(&part_url, timeout).await)
            } else {
                None
            }
        };
        let (((pstatus, pbody), held, reloaded), part) = tokio::join!(reload, part);
        let received = wall_ms();
        let part_ok = part.is_none_or(|(s, body)| s == 200 && !body.is_empty());
        if pstatus != 200 || !part_ok {
            st.errors += 1;
            // Do not spin on a broken server.
            tokio::time::sleep(Duration::from_secs_f64(part_target)).await;
            let (s, b) = http.get(&playlist_url, timeout).await;
            if s == 200 {
                pl = playlist::parse(&text(&b));
            }
            continue;
        }
        st.held_ms.push(held.as_secs_f64() * 1000.0);
        pl = playlist::parse(&text(&pbody));
        st.parts += 1;
        if last_part_at.elapsed() > Duration::from_secs_f64(3.0 * part_target) && st.parts > 1 {
            st.stalls += 1;
        }
        last_part_at = Instant::now();
        if let Some(end) = pl
            .parts
            .iter()
            .find(|p| p.uri == hint)
            .and_then(|p| p.end_ms())
        {
            st.wakeup_ms.push(reloaded - end);
            if fetch_parts {
                let l = part_latency_ms(end, received);
                st.latency_ms.push(l);
                st.timeline.push((run_start.elapsed().as_secs_f64(), l));
            }
        }
    }
    st
}

/// A legacy viewer: reloads the playlist every half target duration and fetches each new
/// complete segment. Latency is measured at the segment's end.
pub async fn legacy_viewer(
    http: Http,
    url: String,
    run_start: Instant,
    until: Instant,
) -> ViewerStats {
    let mut st = ViewerStats::default();
    let url = media_playlist_url(&http, &url).await;
    let (base, playlist_url) = split_url(&url);
    let timeout = Duration::from_secs(15);
    let mut next_msn: Option<u64> = None;
    while Instant::now() < until {
        let (s, b) = http.get(&playlist_url, timeout).await;
        if s != 200 {
            st.errors += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let pl = playlist::parse(&text(&b));
        // Start at the live edge, like a player without low-latency support.
        let from = next_msn.unwrap_or_else(|| pl.segments.last().map_or(0, |s| s.0));
        for (msn, uri, duration, start) in pl.segments.iter().filter(|s| s.0 >= from) {
            let (s, body) = http.get(&resolve(&base, uri), timeout).await;
            if s != 200 || body.is_empty() {
                st.errors += 1;
                continue;
            }
            st.parts += 1;
            if let Some(start) = start {
                let l = part_latency_ms(start + duration * 1000.0, wall_ms());
                st.latency_ms.push(l);
                st.timeline.push((run_start.elapsed().as_secs_f64(), l));
            }
            next_msn = Some(msn + 1);
        }
        if pl.ended {
            break;
        }
        tokio::time::sleep(Duration::from_secs_f64((pl.target_duration / 2.0).max(0.2))).await;
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (base, pl) = split_url("http://h:1/live/u%40x/s/media.m3u8?_HLS_msn=1");
        assert_eq!(base, "http://h:1/live/u%40x/s/");
        assert_eq!(pl, "http://h:1/live/u%40x/s/media.m3u8");
        assert_eq!(resolve(&base, "p1.m4s"), "http://h:1/live/u%40x/s/p1.m4s");
        assert_eq!(resolve(&base, "https://cdn/x.m4s"), "https://cdn/x.m4s");
    }
}
