//! Rendering the media playlist (full and delta) and the multivariant playlist.

use std::fmt::Write as _;
use std::sync::Arc;

use super::{Playlist, SegmentEntry, format_pdt};
use crate::text::Rendered;

impl Playlist {
    fn can_skip_until(&self) -> f64 {
        6.0 * self.target_duration as f64
    }

    /// The media playlist text; `skip` asks for a delta update (`_HLS_skip=YES`).
    pub fn render(&mut self, skip: bool) -> Arc<Rendered> {
        let slot = usize::from(skip);
        if let Some(r) = &self.cache[slot] {
            return r.clone();
        }
        let r = Rendered::new(self.render_uncached(skip));
        self.cache[slot] = Some(r.clone());
        r
    }

    fn render_uncached(&self, skip: bool) -> String {
        let mut out = String::with_capacity(4096);
        let part_target = self.cfg.part_target.as_secs_f64();
        let td = self.target_duration;
        let _ = writeln!(out, "#EXTM3U");
        let _ = writeln!(out, "#EXT-X-VERSION:9");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{td}");
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.first_msn());
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={:.3}",
            self.can_skip_until(),
            self.cfg.part_hold_back().as_secs_f64()
        );
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part_target:.3}");

        let all: Vec<&SegmentEntry> = self.segments.iter().chain(self.open.as_ref()).collect();
        let total: f64 = all.iter().map(|s| s.duration()).sum();
        // Delta update: skip complete segments that start more than CAN-SKIP-UNTIL before
        // the end of the playlist.
        let mut skipped = 0;
        if skip && !self.ended {
            let mut start = 0.0;
            for s in &self.segments {
                if total - start > self.can_skip_until() && !s.discontinuity {
                    skipped += 1;
                    start += s.duration();
                } else {
                    break;
                }
            }
        }
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        // Parts are listed only near the live edge: for segments that start within three
        // target durations of the end, and for at most the last three segments. The segment in
        // progress always counts as one of them, even before its first part, because the
        // preload hint belongs to it (strict parsers such as hls-parser count it that way).
        let parts_from = total - 3.0 * td as f64;
        let parts_from_index = self.segments.len().saturating_sub(2);
        let mut elapsed = 0.0;
        let mut last_init = None;
        for (i, s) in all.iter().enumerate() {
            let seg_start = elapsed;
            elapsed += s.duration();
            if i < skipped {
                last_init = Some(s.init_id);
                continue;
            }
            if s.discontinuity {
                let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
            }
            if last_init != Some(s.init_id) || i == skipped {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", self.names.init(s.init_id));
                last_init = Some(s.init_id);
            }
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(s.pdt_ms));
            let is_open = self.open.as_ref().is_some_and(|o| o.msn == s.msn);
            if i >= parts_from_index && seg_start >= parts_from - 1e-9 && !self.ended {
                let mut offset = 0;
                for p in &s.parts {
                    let (uri, range) = if self.cfg.byterange_parts {
                        let range = format!(",BYTERANGE=\"{}@{offset}\"", p.bytes);
                        offset += p.bytes;
                        (self.names.segment(s.msn), range)
                    } else {
                        (self.names.part(p.index), String::new())
                    };
                    let _ = writeln!(
                        out,
                        "#EXT-X-PART:DURATION={:.5},URI=\"{uri}\"{range}{}",
                        p.duration,
                        if p.independent {
                            ",INDEPENDENT=YES"
                        } else {
                            ""
                        }
                    );
                }
            }
            if !is_open {
                let _ = writeln!(out, "#EXTINF:{:.5},", s.duration());
                let _ = writeln!(out, "{}", self.names.segment(s.msn));
            }
        }
        if self.ended {
            let _ = writeln!(out, "#EXT-X-ENDLIST");
        } else if self.cfg.byterange_parts {
            // The next part begins where the open segment's bytes end (a new segment: at 0).
            let (msn, start) = self.open.as_ref().map_or((self.next_msn, 0), |o| {
                (o.msn, o.parts.iter().map(|p| p.bytes).sum::<u64>())
            });
            let start = if start > 0 {
                format!(",BYTERANGE-START={start}")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"{start}",
                self.names.segment(msn)
            );
        } else {
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                self.names.part(self.next_part)
            );
        }
        out
    }
}

/// The multivariant playlist (`index.m3u8`): one variant pointing at `media_uri`.
pub fn render_multivariant(
    tracks: &crate::cmaf::TrackSet,
    bandwidth: u64,
    frame_rate: Option<f64>,
    media_uri: &str,
) -> String {
    let mut inf = format!(
        "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"",
        bandwidth.max(1),
        tracks.codecs()
    );
    if let Some(v) = &tracks.video {
        let _ = write!(inf, ",RESOLUTION={}x{}", v.width, v.height);
        if let Some(f) = frame_rate {
            let _ = write!(inf, ",FRAME-RATE={f:.3}");
        }
    }
    format!("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n{inf}\n{media_uri}\n")
}
