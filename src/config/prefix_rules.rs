//! Per-path-prefix rules (`PREFIX -> VALUE; PREFIX -> VALUE`), as `delivery.prefixes` and
//! `record.prefixes` write them: the longest prefix matching the stream's path wins.

use relay::path::StreamPath;

/// Parses `PREFIX -> VALUE; …`, each value with `value`; `shape` names the value in errors.
pub fn parse<T>(
    text: &str,
    shape: &str,
    value: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<(String, T)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|rule| {
            let (prefix, v) = rule
                .split_once("->")
                .ok_or_else(|| format!("{rule:?} is not `PATH_PREFIX -> {shape}`"))?;
            Ok((prefix.trim().to_string(), value(v.trim())?))
        })
        .collect()
}

/// The value of the longest prefix matching `path` (`live/{userId}/{streamId}`, decoded or
/// percent-encoded).
pub fn lookup<'a, T>(rules: &'a [(String, T)], path: &StreamPath) -> Option<&'a T> {
    let decoded = format!("live/{}/{}", path.user_id, path.stream_id);
    let encoded = path.url_path();
    rules
        .iter()
        .filter(|(p, _)| decoded.starts_with(p.as_str()) || encoded.starts_with(p.as_str()))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_off(v: &str) -> Result<bool, String> {
        match v {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(format!("{other:?} is not on or off")),
        }
    }

    #[test]
    fn the_longest_matching_prefix_wins_decoded_or_encoded() {
        let rules = parse(
            "live/ -> off; live/a@b.c/ -> on ; live/a%40b.c/cam -> off",
            "on|off",
            on_off,
        )
        .unwrap();
        let path = |u: &str, s: &str| StreamPath {
            user_id: u.into(),
            stream_id: s.into(),
        };
        assert_eq!(lookup(&rules, &path("a@b.c", "x")), Some(&true));
        assert_eq!(lookup(&rules, &path("a@b.c", "cam")), Some(&false));
        assert_eq!(lookup(&rules, &path("z", "x")), Some(&false));
        assert_eq!(lookup(&[] as &[(String, bool)], &path("z", "x")), None);
    }

    #[test]
    fn a_bad_rule_is_named() {
        let e = parse("live/ on", "on|off", on_off).unwrap_err();
        assert!(e.contains("PATH_PREFIX -> on|off"), "{e}");
        let e = parse("live/ -> maybe", "on|off", on_off).unwrap_err();
        assert!(e.contains("maybe"), "{e}");
    }
}
