//! Configuration tests: layering, every problem at once, the auth rules, and that the README
//! documents every key.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_valid() {
    let c = load(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.rtmp_listen, "127.0.0.1:1935".parse().unwrap());
    assert_eq!(c.http_listen, "127.0.0.1:8888".parse().unwrap());
    assert_eq!(c.part_target, Duration::from_millis(200));
    assert_eq!(c.reconnect_grace, Duration::from_secs(30));
    assert!(c.rtmps.is_none() && c.http_tls.is_none() && c.public_url.is_none());
}

#[test]
fn precedence_flags_over_env_over_file() {
    let file = "[http]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://file\"\n[hls]\npart_target_ms = 300\n";
    let e = env(&[
        ("GLASSCAST_HTTP_LISTEN", "127.0.0.1:2"),
        ("GLASSCAST_HLS_SEGMENT_TARGET_MS", "4000"),
        ("PATH", "/bin"),
    ]);
    let flags = Overrides {
        http_listen: Some("127.0.0.1:3".into()),
        ..Default::default()
    };
    let c = load(Some(("f.toml", file)), e, &flags).unwrap();
    assert_eq!(c.http_listen.port(), 3);
    assert_eq!(c.public_url.as_deref(), Some("http://file"));
    assert_eq!(c.part_target, Duration::from_millis(300));
    assert_eq!(c.segment_target, Duration::from_secs(4));
}

#[test]
fn every_problem_is_reported() {
    let file = "[hls]\npart_target_ms = 10\nwindow_segments = 2\nbogus = 1\n[http]\ntls_cert = \"/nonexistent\"\n";
    let e = env(&[
        ("GLASSCAST_RTMP_LISTEN", "not an address"),
        ("GLASSCAST_NOPE_X", "1"),
    ]);
    let errs = load(Some(("f.toml", file)), e, &Overrides::default()).unwrap_err();
    let all = errs.join("\n");
    for needle in [
        "unknown key `hls.bogus`",
        "GLASSCAST_NOPE_X is not a known setting",
        "rtmp.listen = \"not an address\" (from environment)",
        "hls.part_target_ms must be between 50 and 5000",
        "hls.window_segments must be at least 6",
        "http.tls_cert and http.tls_key must be set together",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(errs.len(), 6, "{all}");
}

#[test]
fn restream_rules() {
    let e = env(&[(
        "GLASSCAST_RESTREAM_RULES",
        "live/a@b.c/ -> rtmp://yt.example/live2/K1; live/ -> rtmps://tw.example/app/K2",
    )]);
    let c = load(None, e, &Overrides::default()).unwrap();
    assert_eq!(c.restream_rules.len(), 2);
    assert_eq!(c.restream_rules[1].prefix, "live/");
    let e = env(&[("GLASSCAST_RESTREAM_RULES", "live/ -> ftp://x/a/SECRET")]);
    let errs = load(None, e, &Overrides::default()).unwrap_err();
    assert!(errs[0].starts_with("restream.rules: rule 1:"), "{errs:?}");
    assert!(!errs[0].contains("SECRET"));
}

#[test]
fn auth_rules() {
    let load_env = |pairs: &[(&str, &str)]| load(None, env(pairs), &Overrides::default());
    // Open on a public address needs an explicit opt-in.
    let errs = load_env(&[("GLASSCAST_RTMP_LISTEN", "0.0.0.0:1935")]).unwrap_err();
    assert!(errs[0].contains("auth.allow_open"), "{errs:?}");
    assert!(
        load_env(&[
            ("GLASSCAST_RTMP_LISTEN", "0.0.0.0:1935"),
            ("GLASSCAST_AUTH_ALLOW_OPEN", "true")
        ])
        .is_ok()
    );
    assert!(
        load_env(&[
            ("GLASSCAST_RTMP_LISTEN", "0.0.0.0:1935"),
            ("GLASSCAST_AUTH_MODE", "keys")
        ])
        .is_ok()
    );
    let errs = load_env(&[
        ("GLASSCAST_AUTH_MODE", "token"),
        ("GLASSCAST_AUTH_REDIS_URL", "http://x"),
    ])
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    let errs = load_env(&[("GLASSCAST_AUTH_MODE", "callback")]).unwrap_err();
    assert!(errs[0].contains("cloud.url"), "{errs:?}");
    let errs = load_env(&[("GLASSCAST_AUTH_MODE", "nope")]).unwrap_err();
    assert!(errs[0].contains("open, keys, token, callback"), "{errs:?}");
    let c = load_env(&[
        ("GLASSCAST_AUTH_MODE", "token"),
        ("GLASSCAST_AUTH_TOKEN_SECRET", "0123456789abcdef"),
        ("GLASSCAST_ADMIN_TOKEN", "adm-SECRET"),
    ])
    .unwrap();
    assert_eq!(c.auth.mode, AuthMode::Token);
    assert_eq!(c.admin.listen, "127.0.0.1:9997".parse().unwrap());
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("SECRET") && !dbg.contains("0123456789abcdef"),
        "{dbg}"
    );
}

#[test]
fn typed_sections_from_str() {
    let s = from_str("[hls]\npart_target_ms = 300\n[auth]\nmode = \"keys\"\n").unwrap();
    assert_eq!(s.hls.part_target_ms, 300);
    assert_eq!(s.auth.mode, "keys");
    assert_eq!(s.rtmp.listen, "127.0.0.1:1935");
    // Wrong types are each reported, naming the key (a misplaced secret is not echoed).
    let Err(errs) = from_str(
        "[hls]\npart_target_ms = \"fast\"\n[auth]\nallow_open = 3\n[rtmp]\nread_timeout_ms = -1\n",
    ) else {
        panic!("wrong types must be refused");
    };
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("auth.allow_open (from config file)"))
    );
}

#[test]
fn malformed_file_is_an_error() {
    let errs = load(Some(("f.toml", "[hls")), env(&[]), &Overrides::default()).unwrap_err();
    assert!(errs[0].starts_with("f.toml:"));
}

mod readme {

    /// The README's configuration reference lists every key with its default.
    #[test]
    fn readme_documents_every_key() {
        let readme = include_str!("../../README.md");
        let defaults = super::layers::defaults();
        for (section, key, _) in super::docs::DOCS {
            let default = match super::layers::default_of(&defaults, section, key) {
                Some(toml::Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => panic!("{section}.{key} is documented but not a setting"),
            };
            let row = if default.is_empty() {
                format!("| `{section}.{key}` | |")
            } else {
                format!("| `{section}.{key}` | `{default}` |")
            };
            assert!(readme.contains(&row), "README is missing {row}");
        }
    }
}

#[test]
fn a_device_as_ca_file_is_an_error_not_a_hang() {
    let errs = load(
        None,
        env(&[("GLASSCAST_RESTREAM_CA_FILE", "/dev/zero")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("restream.ca_file") && e.contains("not a regular file")),
        "{errs:?}"
    );
}

mod delivery {
    use super::*;
    use crate::managed::mode::{DeliveryMode, PlatformKind};

    #[test]
    fn nested_sections_from_file_and_env() {
        let file = "[delivery]\nmode = \"ab\"\nprefixes = \"live/vip/ -> ivs\"\n\
                    [managed.cloudflare]\napi_url = \"https://api.cloudflare.com/client/v4/accounts/a/stream/\"\n\
                    [managed.ivs]\nregion = \"eu-west-1\"\n";
        let e = env(&[
            ("GLASSCAST_MANAGED_CLOUDFLARE_API_TOKEN", "cf-SECRET"),
            ("GLASSCAST_MANAGED_IVS_ACCESS_KEY_ID", "AKID"),
            ("GLASSCAST_MANAGED_IVS_SECRET_ACCESS_KEY", "aws-SECRET"),
            ("GLASSCAST_MANAGED_ORPHAN_AGE_S", "60"),
        ]);
        let c = load(Some(("f.toml", file)), e, &Overrides::default()).unwrap();
        assert_eq!(c.delivery.rules.default, DeliveryMode::Ab);
        assert_eq!(
            c.delivery.rules.prefixes,
            vec![(
                "live/vip/".into(),
                DeliveryMode::Platform(PlatformKind::Ivs)
            )]
        );
        let cf = c.managed.cloudflare.as_ref().unwrap();
        assert_eq!(
            cf.api_url,
            "https://api.cloudflare.com/client/v4/accounts/a/stream"
        );
        assert_eq!(cf.api_token, "cf-SECRET");
        let ivs = c.managed.ivs.as_ref().unwrap();
        assert_eq!(ivs.endpoint, "https://ivs.eu-west-1.amazonaws.com");
        assert_eq!(ivs.ingest_port, 443);
        assert_eq!(c.managed.orphan_age, Duration::from_secs(60));
        assert!(!format!("{:?}", c.managed).contains("SECRET"));
    }

    #[test]
    fn a_mode_needs_its_platform_and_every_problem_is_listed() {
        let file = "[delivery]\nmode = \"cloudflare\"\nprefixes = \"live/x -> ivs; live/y -> vimeo\"\n\
                    [managed.cloudflare]\napi_token = \"t\"\n[managed.bogus]\nx = 1\n";
        let errs = load(Some(("f.toml", file)), env(&[]), &Overrides::default()).unwrap_err();
        let all = errs.join("\n");
        for want in [
            "unknown key `managed.bogus`",
            "delivery.prefixes",
            "managed.cloudflare.api_url and managed.cloudflare.api_token must be set together",
            "delivery uses cloudflare",
        ] {
            assert!(all.contains(want), "{want} missing from:\n{all}");
        }
        let errs = load(
            None,
            env(&[("GLASSCAST_DELIVERY_MODE", "ivs")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("delivery uses ivs")),
            "{errs:?}"
        );
        let errs = load(
            None,
            env(&[("GLASSCAST_MANAGED_NOPE_X", "1")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(errs[0].contains("GLASSCAST_MANAGED_NOPE_X is not a known setting"));
    }
}

#[test]
fn part_hold_back_defaults_to_three_parts_and_may_not_go_below_two() {
    let c = load(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.part_hold_back, None);
    let c = load(
        None,
        env(&[("GLASSCAST_HLS_PART_HOLD_BACK_MS", "500")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.part_hold_back, Some(Duration::from_millis(500)));
    let errs = load(
        None,
        env(&[("GLASSCAST_HLS_PART_HOLD_BACK_MS", "300")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(
        errs.join("\n").contains(
            "hls.part_hold_back_ms (300) must be at least twice hls.part_target_ms (200)"
        ),
        "{errs:?}"
    );
}

#[test]
fn fleet_settings_are_checked() {
    let cfg = load(
        None,
        env(&[
            ("GLASSCAST_NODE_ID", "edge-1"),
            (
                "GLASSCAST_NODE_RTMP_URL",
                "rtmp://ingest-1.example.com:1935/",
            ),
            ("GLASSCAST_FLEET_REDIS_URL", "redis://10.0.0.9:6379/0"),
            ("GLASSCAST_FLEET_MAX_STREAMS", "300"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.fleet.node_id, "edge-1");
    assert_eq!(cfg.fleet.rtmp_url, "rtmp://ingest-1.example.com:1935");
    assert_eq!(cfg.fleet.max_streams, 300);
    assert!(cfg.fleet.redis_url.is_some());
    // Without Redis, a single node.
    assert!(
        load(None, env(&[]), &Overrides::default())
            .unwrap()
            .fleet
            .redis_url
            .is_none()
    );
    let errs = load(
        None,
        env(&[
            ("GLASSCAST_NODE_ID", "two words"),
            ("GLASSCAST_NODE_RTMP_URL", "http://x"),
            ("GLASSCAST_NODE_HTTP_URL", "https://node-1.internal"),
            ("GLASSCAST_FLEET_REDIS_URL", "redis://r:6379"),
            ("GLASSCAST_FLEET_HEARTBEAT_MS", "10"),
        ]),
        &Overrides::default(),
    )
    .unwrap_err();
    for needle in [
        "node.id",
        "node.rtmp_url",
        "node.http_url",
        "fleet.heartbeat_ms",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(needle)),
            "{needle}: {errs:?}"
        );
    }
}
