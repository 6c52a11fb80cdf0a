//! The publish path: `live/{userId}/{streamId}` (or `live/{key}`) with an optional `?key=` /
//! `?token=` query.
//!
//! RTMP clients split the URL path differently (ffmpeg: app `live`, name `u/s`; librtmp: app
//! `live/u`, name `s`), so the app and the stream name are joined before interpreting them.

use std::fmt;

use crate::auth::{BareName, PublishName};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters left as they are when a path segment is encoded for a URL: RFC 3986 unreserved.
pub const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Identifies one live stream: the decoded user id and stream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamPath {
    pub user_id: String,
    pub stream_id: String,
}

/// A credential carried in the publish URL's query. Its value never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Key(String),
    Token(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Key(_) => f.write_str("Key(***)"),
            Credential::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// A parsed publish request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishTarget {
    pub name: PublishName,
    pub credential: Option<Credential>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("publish path must be live/{{userId}}/{{streamId}}, got {0} segment(s)")]
    Shape(usize),
    #[error("publish path must start with `live/`")]
    App,
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{0} is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    #[error("{0} contains a control character")]
    Control(&'static str),
}

impl StreamPath {
    /// Parses a URL path `live/{userId}/{streamId}` whose segments are percent-encoded.
    pub fn from_url_segments(app: &str, user: &str, stream: &str) -> Result<Self, PathError> {
        if app != "live" {
            return Err(PathError::App);
        }
        Ok(Self {
            user_id: decode_segment(user, "userId")?,
            stream_id: decode_segment(stream, "streamId")?,
        })
    }

    /// `live/{userId}/{streamId}` with both segments percent-encoded, as used in playback URLs.
    pub fn url_path(&self) -> String {
        format!(
            "live/{}/{}",
            utf8_percent_encode(&self.user_id, SEGMENT),
            utf8_percent_encode(&self.stream_id, SEGMENT)
        )
    }
}

impl fmt::Display for StreamPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url_path())
    }
}

fn decode_segment(raw: &str, what: &'static str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::Empty(what));
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::Encoding(what))?
        .into_owned();
    if decoded.is_empty() {
        return Err(PathError::Empty(what));
    }
    if decoded.chars().any(char::is_control) {
        return Err(PathError::Control(what));
    }
    Ok(decoded)
}

impl PublishTarget {
    /// Interprets an RTMP app name and stream name, however the client split the URL.
    pub fn from_rtmp(app: &str, stream_name: &str) -> Result<Self, PathError> {
        // The query may have landed in the app (when a client puts it in the tcUrl) or in
        // the stream name; strip it from each half before joining the path.
        let (app, app_query) = split_query(app);
        let (name, name_query) = split_query(stream_name);
        let path = format!("{app}/{name}");
        let query = [app_query, name_query]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("&");
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let name = match segments.as_slice() {
            [app, user, stream] => {
                PublishName::Stream(StreamPath::from_url_segments(app, user, stream)?)
            }
            // `live/{key-or-alias}`: only a key policy can give it a meaning.
            ["live", bare] => PublishName::Bare(BareName(decode_segment(bare, "stream name")?)),
            [_, _] if segments[0] != "live" => return Err(PathError::App),
            _ => return Err(PathError::Shape(segments.len())),
        };
        let credential = parse_credential(&query);
        Ok(Self { name, credential })
    }

    /// The stream path when the client named one (`live/{userId}/{streamId}`).
    pub fn path(&self) -> Option<&StreamPath> {
        match &self.name {
            PublishName::Stream(p) => Some(p),
            PublishName::Bare(_) => None,
        }
    }
}

fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    }
}

fn parse_credential(query: &str) -> Option<Credential> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode_str(v).decode_utf8_lossy().into_owned();
        match k {
            "key" => return Some(Credential::Key(v)),
            "token" => return Some(Credential::Token(v)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_and_librtmp_splits_agree() {
        let ffmpeg = PublishTarget::from_rtmp("live", "alice%40example.com/m1").unwrap();
        let librtmp = PublishTarget::from_rtmp("live/alice%40example.com", "m1").unwrap();
        assert_eq!(ffmpeg, librtmp);
        let p = ffmpeg.path().unwrap();
        assert_eq!(p.user_id, "alice@example.com");
        assert_eq!(p.stream_id, "m1");
        assert_eq!(p.url_path(), "live/alice%40example.com/m1");
    }

    #[test]
    fn query_in_either_half() {
        let a = PublishTarget::from_rtmp("live", "u/s?key=sekret").unwrap();
        let b = PublishTarget::from_rtmp("live/u?token=t0k", "s").unwrap();
        assert_eq!(a.credential, Some(Credential::Key("sekret".into())));
        assert_eq!(b.credential, Some(Credential::Token("t0k".into())));
        assert_eq!(a.path().unwrap().stream_id, "s");
        assert_eq!(format!("{:?}", a), format!("{:?}", a).replace("sekret", ""));
    }

    #[test]
    fn bad_shapes() {
        assert_eq!(
            PublishTarget::from_rtmp("live", ""),
            Err(PathError::Shape(1))
        );
        assert_eq!(
            PublishTarget::from_rtmp("live", "a/b/c"),
            Err(PathError::Shape(4))
        );
        assert_eq!(PublishTarget::from_rtmp("app", "k"), Err(PathError::App));
        assert_eq!(PublishTarget::from_rtmp("app", "u/s"), Err(PathError::App));
        assert_eq!(
            PublishTarget::from_rtmp("live", "%ff/s"),
            Err(PathError::Encoding("userId"))
        );
        assert_eq!(
            PublishTarget::from_rtmp("live", "a%0Ab/s"),
            Err(PathError::Control("userId"))
        );
    }

    #[test]
    fn bare_key_or_alias() {
        let t = PublishTarget::from_rtmp("live", "K3y-_x?token=t").unwrap();
        assert_eq!(t.name, PublishName::Bare(BareName("K3y-_x".into())));
        assert_eq!(t.credential, Some(Credential::Token("t".into())));
        assert_eq!(t.path(), None);
        // librtmp splits `live/KEY` into app `live`, name `KEY` as well.
        assert_eq!(
            PublishTarget::from_rtmp("live/", "K").unwrap().name,
            PublishName::Bare(BareName("K".into()))
        );
    }

    proptest::proptest! {
        /// Any email-like user id survives encode -> publish path -> decode exactly.
        #[test]
        fn emails_round_trip(local in "[a-zA-Z0-9._%+\\-!#$&'*=?^`{|}~]{1,30}", domain in "[a-z0-9\\-]{1,20}\\.[a-z]{2,6}", stream in "[a-zA-Z0-9_\\-]{1,20}") {
            let email = format!("{local}@{domain}");
            let path = StreamPath { user_id: email.clone(), stream_id: stream.clone() };
            let url = path.url_path();
            let (app, rest) = url.split_once('/').unwrap();
            let parsed = PublishTarget::from_rtmp(app, rest).unwrap();
            let p = parsed.path().unwrap();
            proptest::prop_assert_eq!(&p.user_id, &email);
            proptest::prop_assert_eq!(&p.stream_id, &stream);
            let (user_seg, stream_seg) = rest.split_once('/').unwrap();
            let librtmp = PublishTarget::from_rtmp(&format!("live/{user_seg}"), stream_seg).unwrap();
            proptest::prop_assert_eq!(librtmp.name, parsed.name);
        }
    }
}
