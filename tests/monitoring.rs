//! The operator's kit in `deploy/`, checked with the real tools: the alert rules with
//! `promtool check rules` and `promtool test rules`; a real Prometheus (Debian `prometheus`)
//! scraping a relay during a live stream, with the rules loaded, asked through its HTTP API;
//! every metric the rules and the Grafana dashboard use exists in what the relay exports; the
//! systemd unit through `systemd-analyze verify`; the example configuration through
//! `glasscast check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::nginx_rtmp::NginxRtmp;
use common::*;
use serde_json::{Value, json};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// Runs `cmd` and returns (success, stdout + stderr).
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_alert_rules_pass_promtool() {
    require_any("promtool", "--version");
    let (ok, out) = run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(deploy("prometheus/glasscast.rules.yml")));
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 9 rules found"), "{out}");
    let (ok, out) = run(Command::new("promtool")
        .args(["test", "rules", "glasscast.rules.test.yml"])
        .current_dir(deploy("prometheus")));
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // The example scrape configuration is valid too (it names the rules file next to it).
    let (ok, out) = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(deploy("prometheus/prometheus.yml")));
    assert!(ok, "{out}");
}

#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    require_any("systemd-analyze", "--version");
    let unit = std::fs::read_to_string(deploy("systemd/glasscast.service")).unwrap();
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "StateDirectory=glasscast",
        "RestartPreventExitStatus=2",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    // systemd-analyze checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("glasscast.service");
    std::fs::write(
        &local,
        unit.replace("/usr/local/bin/glasscast", env!("CARGO_BIN_EXE_glasscast")),
    )
    .unwrap();
    let (ok, out) = run(Command::new("systemd-analyze").arg("verify").arg(&local));
    // It exits 0 on unknown or misspelt settings, and says so: nothing may be said.
    assert!(ok && out.trim().is_empty(), "{out}");
}

#[test]
fn the_example_configuration_is_valid() {
    let (ok, out) = run(Command::new(env!("CARGO_BIN_EXE_glasscast"))
        .args(["check", "--config"])
        .arg(deploy("glasscast.toml"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null()));
    assert!(ok, "{out}");
}

/// A Prometheus server on loopback scraping `target` every second, with the alert rules.
struct Prometheus {
    url: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(target: &str) -> Self {
        require_any("prometheus", "--version");
        let dir = tempfile::tempdir().unwrap();
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [deploy("prometheus/glasscast.rules.yml")],
            "scrape_configs": [{
                "job_name": "glasscast",
                "static_configs": [{"targets": [target]}],
            }],
        });
        // JSON is YAML.
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config.to_string()).unwrap();
        let port = free_port();
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        eventually("prometheus ready", Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()?;
            (get_text(&ready).await.0 == 200).then_some(())
        })
        .await;
        Self {
            url,
            child,
            _dir: dir,
        }
    }

    async fn api(&self, path: &str) -> Value {
        let (code, body) = get_text(&format!("{}/api/v1/{path}", self.url)).await;
        assert_eq!(code, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }

    /// The value of an instant query with one result, if it has one.
    async fn scalar(&self, query: &str) -> Option<f64> {
        let q: String = url_encode(query);
        let data = self.api(&format!("query?query={q}")).await;
        let result = data["result"].as_array()?;
        (result.len() == 1).then(|| result[0]["value"][1].as_str()?.parse().ok())?
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Metric names a PromQL expression selects (a name followed by `{` or `[`, or standing alone
/// as the whole selector).
fn selected_metrics(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let before = expr[..start].trim_end();
            let inside_braces = before.rfind('{') > before.rfind('}');
            let next = expr[i..].trim_start().chars().next();
            if !inside_braces && matches!(next, Some('{') | Some('[')) {
                names.push(expr[start..i].to_string());
            }
        } else if c == b'"' {
            // Skip string literals (label values).
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    names
}

/// Every expression of the rules file and the dashboard.
fn kit_expressions() -> Vec<String> {
    let rules = std::fs::read_to_string(deploy("prometheus/glasscast.rules.yml")).unwrap();
    let mut exprs: Vec<String> = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(e) = l.trim().strip_prefix("expr:") else {
            continue;
        };
        let mut e = e.trim().to_string();
        if e == "|" {
            e.clear();
            while let Some(next) = lines.peek()
                && next.starts_with("            ")
            {
                e.push_str(next.trim());
                e.push(' ');
                lines.next();
            }
        }
        exprs.push(e);
    }
    assert_eq!(exprs.len(), 9, "{exprs:?}");
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/glasscast.json")).unwrap())
            .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() > 20);
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

#[test]
fn expressions_are_parsed_for_their_metrics() {
    assert_eq!(
        selected_metrics(
            r#"sum by (instance) (rate(rtmp_errors_total[5m])) / up{job="x",a=~"b{c"} > 0.2"#
        ),
        vec!["rtmp_errors_total", "up"]
    );
    assert_eq!(
        selected_metrics(r#"histogram_quantile(0.95, sum by (le) (rate(x_bucket{i=~"$i"}[5m])))"#),
        vec!["x_bucket"]
    );
}

/// Prometheus scrapes the admin listener while a stream is live and restreamed: the key series
/// are there with sane values, the rules load, nothing fires, and every metric the rules and
/// the dashboard select is one the relay exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_live_relay() {
    let nginx = NginxRtmp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rule = format!("live/ -> {}", nginx.url("monitoring-dest"));
    // A cloud and an object store that are down, so their failure series exist too.
    let dead_cloud = format!("http://127.0.0.1:{}", free_port());
    let dead_store = format!("http://127.0.0.1:{}", free_port());
    let server = start(&[
        ("GLASSCAST_RESTREAM_RULES", &rule),
        ("GLASSCAST_RECORD_ENABLED", "true"),
        ("GLASSCAST_RECORD_PATH", dir.path().to_str().unwrap()),
        ("GLASSCAST_RECORD_S3_URL", "s3://monitoring/rec"),
        ("GLASSCAST_RECORD_S3_ENDPOINT", &dead_store),
        ("GLASSCAST_RECORD_S3_ACCESS_KEY_ID", "id"),
        ("GLASSCAST_RECORD_S3_SECRET_ACCESS_KEY", "secret"),
        ("GLASSCAST_CLOUD_URL", &dead_cloud),
        ("GLASSCAST_CLOUD_HEARTBEAT_MS", "500"),
    ])
    .await;
    let prom = Prometheus::start(&server.admin_addr.to_string()).await;
    let mut publisher = publish(&Source::normal(120.0), &rtmp_url(&server, "live/u/s"));
    // A client that is not RTMP, a URL too long, and a viewer.
    {
        use tokio::io::AsyncWriteExt as _;
        let mut junk = tokio::net::TcpStream::connect(server.rtmp_addr)
            .await
            .unwrap();
        junk.write_all(&[0x42; 2000]).await.unwrap();
    }
    let long = format!("live/u/s/{}", "x".repeat(5000));
    assert_eq!(get(&http_url(&server, &long)).await.0, 414);
    eventually("a playlist", Duration::from_secs(20), || async {
        (get(&http_url(&server, "live/u/s/media.m3u8")).await.0 == 200).then_some(())
    })
    .await;

    eventually("the relay scraped", Duration::from_secs(30), || async {
        (prom.scalar(r#"up{job="glasscast"}"#).await == Some(1.0)).then_some(())
    })
    .await;
    eventually("the stream seen", Duration::from_secs(30), || async {
        (prom.scalar("rtmp_active_streams").await == Some(1.0)).then_some(())
    })
    .await;
    eventually(
        "the destination active",
        Duration::from_secs(30),
        || async {
            (prom
                .scalar(r#"restream_destinations{state="active"}"#)
                .await
                == Some(1.0))
            .then_some(())
        },
    )
    .await;
    // Rates need a few scrapes: parts at 5/s, about 2 Mbit/s in, the same out to nginx.
    let rate = |q: &'static str, range: std::ops::Range<f64>| {
        let prom = &prom;
        async move {
            eventually(q, Duration::from_secs(30), || async {
                prom.scalar(q).await.filter(|r| range.contains(r))
            })
            .await
        }
    };
    rate("rate(hls_parts_total[10s])", 3.0..7.0).await;
    let ingest = rate(
        "rate(rtmp_bandwidth_bytes_total[10s]) * 8",
        300_000.0..20_000_000.0,
    )
    .await;
    let out = rate(
        "rate(restream_bytes_total[10s]) * 8",
        300_000.0..20_000_000.0,
    )
    .await;
    assert!(
        out > ingest * 0.5 && out < ingest * 2.0,
        "restream {out} vs ingest {ingest}"
    );
    let recorded = eventually("recording", Duration::from_secs(30), || async {
        prom.scalar(r#"record_segments_total{result="ok"}"#)
            .await
            .filter(|r| *r > 0.0)
    })
    .await;
    assert!(recorded >= 1.0);

    // The rules are loaded and healthy. The dead cloud makes its alert pending (it fires
    // after 5 minutes); nothing else is wrong enough to alert on.
    let rules = eventually(
        "the cloud alert pending",
        Duration::from_secs(30),
        || async {
            let rules = prom.api("rules").await;
            rules["groups"][0]["rules"]
                .as_array()?
                .iter()
                .any(|r| r["name"] == "GlasscastCloudUnreachable" && r["state"] == "pending")
                .then_some(rules)
        },
    )
    .await;
    let group = &rules["groups"][0];
    assert_eq!(group["name"], "glasscast");
    let loaded = group["rules"].as_array().unwrap();
    assert_eq!(loaded.len(), 9);
    for r in loaded {
        assert_eq!(r["health"], "ok", "{r}");
        if r["name"] != "GlasscastCloudUnreachable" {
            assert_eq!(r["state"], "inactive", "{r}");
        }
    }

    // Every metric the kit selects is exported: a family of the relay's /metrics (its TYPE
    // line is there before the first sample, e.g. errors that have not happened).
    let (_, text) = get_text(&admin_url(&server, "metrics")).await;
    let exported: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    // And Prometheus has the samples of the ones that have some.
    let meta = prom
        .api(&format!(
            "targets/metadata?match_target={}",
            url_encode(r#"{job="glasscast"}"#)
        ))
        .await;
    for m in meta.as_array().unwrap() {
        let name = m["metric"].as_str().unwrap();
        assert!(exported.iter().any(|e| e == name), "{name}");
    }
    assert!(meta.as_array().unwrap().len() >= 20, "{meta}");
    for failing in [
        r#"rtmp_errors_total{kind="handshake"}"#,
        r#"http_limit_hits_total{limit="url_too_long"}"#,
        r#"record_failures_total{kind="upload"}"#,
    ] {
        eventually(failing, Duration::from_secs(30), || async {
            prom.scalar(failing).await.filter(|v| *v >= 1.0)
        })
        .await;
    }
    let known = |name: &str| {
        name == "up"
            || ["", "_total", "_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| {
                    name.strip_suffix(suffix)
                        .is_some_and(|base| exported.iter().any(|e| e == base))
                })
    };
    for expr in kit_expressions() {
        for name in selected_metrics(&expr) {
            assert!(
                known(&name),
                "{name} (in `{expr}`) is not exported: {exported:?}"
            );
        }
    }
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
}
