//! The names of a stream's media files, made and read in one place: what the playlists and
//! the MPD list is exactly what the HTTP origin parses back. Names carry a per-session prefix,
//! so a name is never reused by another publishing session (no stale cache hits).

/// File names of one stream's media, unique per publishing session thanks to `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn init(&self, id: u32) -> String {
        format!("{}-init{id}.mp4", self.prefix)
    }
    pub fn part(&self, index: u64) -> String {
        format!("{}-p{index}.m4s", self.prefix)
    }
    pub fn segment(&self, msn: u64) -> String {
        format!("{}-s{msn}.m4s", self.prefix)
    }
    /// Segment template for DASH, with `$Number$` for the msn.
    pub fn segment_template(&self) -> String {
        format!("{}-s$Number$.m4s", self.prefix)
    }
    /// Single-track init segment for DASH.
    pub fn track_init(&self, id: u32, kind: TrackKind) -> String {
        format!("{}-init{id}{}.mp4", self.prefix, kind.letter())
    }
    /// Single-track segment for DASH.
    pub fn track_segment(&self, msn: u64, kind: TrackKind) -> String {
        format!("{}-{}{msn}.m4s", self.prefix, kind.letter())
    }
    /// Single-track segment template for DASH, with `$Number$` for the msn.
    pub fn track_template(&self, kind: TrackKind) -> String {
        format!("{}-{}$Number$.m4s", self.prefix, kind.letter())
    }
}

/// A file of a stream, parsed from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaName {
    Init(u32),
    Part(u64),
    Segment(u64),
    /// Single-track init for DASH.
    TrackInit(u32, TrackKind),
    /// Single-track segment for DASH, cut from the muxed parts on request.
    TrackSegment(u64, TrackKind),
}

/// Which track of a muxed stream a DASH file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

impl TrackKind {
    /// The letter that marks the track in file names.
    pub fn letter(self) -> char {
        match self {
            TrackKind::Video => 'v',
            TrackKind::Audio => 'a',
        }
    }

    fn from_char(c: char) -> Option<Self> {
        match c {
            'v' => Some(TrackKind::Video),
            'a' => Some(TrackKind::Audio),
            _ => None,
        }
    }
}

impl MediaName {
    /// Parses `{prefix}-init{n}.mp4`, `{prefix}-p{n}.m4s`, `{prefix}-s{n}.m4s`, and the DASH
    /// single-track names `{prefix}-init{n}v.mp4`, `{prefix}-v{n}.m4s` (and `a` for audio).
    pub fn parse(prefix: &str, name: &str) -> Option<Self> {
        let digits = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        };
        let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
        if let Some(n) = rest
            .strip_prefix("init")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            if let Some(id) = digits(n) {
                return u32::try_from(id).ok().map(MediaName::Init);
            }
            let kind = TrackKind::from_char(n.chars().last()?)?;
            let id = u32::try_from(digits(&n[..n.len() - 1])?).ok()?;
            return Some(MediaName::TrackInit(id, kind));
        }
        let body = rest.strip_suffix(".m4s")?;
        let mut chars = body.chars();
        let tag = chars.next()?;
        let n = digits(chars.as_str())?;
        match tag {
            'p' => Some(MediaName::Part(n)),
            's' => Some(MediaName::Segment(n)),
            other => TrackKind::from_char(other).map(|k| MediaName::TrackSegment(n, k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every name made here is read back as what it names, and only with its own prefix.
        #[test]
        fn names_round_trip(n in any::<u32>(), msn in any::<u64>(), video in any::<bool>()) {
            let names = Names { prefix: "a1b2".into() };
            let kind = if video { TrackKind::Video } else { TrackKind::Audio };
            let parse = |s: &str| MediaName::parse("a1b2", s);
            prop_assert_eq!(parse(&names.init(n)), Some(MediaName::Init(n)));
            prop_assert_eq!(parse(&names.part(msn)), Some(MediaName::Part(msn)));
            prop_assert_eq!(parse(&names.segment(msn)), Some(MediaName::Segment(msn)));
            prop_assert_eq!(parse(&names.track_init(n, kind)), Some(MediaName::TrackInit(n, kind)));
            prop_assert_eq!(
                parse(&names.track_segment(msn, kind)),
                Some(MediaName::TrackSegment(msn, kind))
            );
            prop_assert_eq!(MediaName::parse("other", &names.part(msn)), None);
        }
    }

    #[test]
    fn templates_expand_to_names() {
        let names = Names { prefix: "p".into() };
        assert_eq!(
            names.segment_template().replace("$Number$", "7"),
            names.segment(7)
        );
        assert_eq!(
            names
                .track_template(TrackKind::Audio)
                .replace("$Number$", "7"),
            names.track_segment(7, TrackKind::Audio)
        );
        assert_eq!(MediaName::parse("p", "p-x7.m4s"), None);
        assert_eq!(MediaName::parse("p", "p-p.m4s"), None);
        for bad in [
            "p-s5.mp4",
            "p-p-1.m4s",
            "p-s+5.m4s",
            "p-initv.mp4",
            "p-init2x.mp4",
        ] {
            assert_eq!(MediaName::parse("p", bad), None, "{bad}");
        }
    }
}
