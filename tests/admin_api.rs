//! The management API on the admin listener, against a live stream: every error code of
//! CONTRACTS.md, outputs merged with the cloud's list (and reported in stream-status with the
//! key masked), stopped when removed, ownership by app, the bearer token, kicking a publisher.
//! Without a token the API answers on a loopback admin listener.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const TOKEN: &str = "admin-token-for-tests";

/// An RTMP "destination" that accepts connections and never answers: outputs pointing at it
/// stay `connecting`. Returns its port and a counter of connections it saw closed.
async fn silent_destination() -> (u16, Arc<Mutex<(usize, usize)>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new((0usize, 0usize)));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            s.lock().unwrap().0 += 1;
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                s.lock().unwrap().1 += 1;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_streams_and_every_error_code() {
    let statuses: Arc<Mutex<Vec<Value>>> = Arc::default();
    let st = statuses.clone();
    let cloud = fake_http(move |req| {
        let st = st.clone();
        async move {
            if req.path.starts_with("/api/rtmp-relay/restream-destinations/") {
                return (
                    200,
                    json!({"destinations": [{"name": "cloud-one", "url": "rtmp://127.0.0.1:9/live/CLOUDKEY"}]})
                        .to_string(),
                );
            }
            if req.path == "/api/rtmp-relay/stream-status" {
                st.lock().unwrap().push(serde_json::from_slice(&req.body).unwrap());
            }
            (200, "{}".into())
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&[
        ("GLASSCAST_ADMIN_TOKEN", TOKEN),
        ("GLASSCAST_CLOUD_URL", &cloud),
        ("GLASSCAST_CLOUD_HEARTBEAT_MS", "300"),
        (
            "GLASSCAST_AUTH_KEYS_FILE",
            dir.path().join("k.json").to_str().unwrap(),
        ),
    ])
    .await;
    let mut publisher = publish(
        &Source::normal(60.0),
        &rtmp_url(&server, "live/alice%40example.com/m1"),
    );
    let base = admin_url(&server, "v1/streams/alice%40example.com/m1");
    let auth = format!("Bearer {TOKEN}");
    let h = |app: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("authorization", format!("Bearer {TOKEN}")),
            ("x-package-name", app.to_string()),
        ]
    };
    let call = |method: &'static str,
                url: String,
                headers: Vec<(&'static str, String)>,
                body: Option<Value>| async move {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request_json(method, &url, &hs, body).await
    };
    let expect = |got: (u16, Value), status: u16, code: &str| {
        assert_eq!(got.0, status, "{}", got.1);
        assert_eq!(got.1["error"], code, "{}", got.1);
        assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    };
    eventually("stream live", Duration::from_secs(10), || async {
        let (s, _) = call("GET", base.clone(), h("a"), None).await;
        (s == 200).then_some(())
    })
    .await;

    // UNAUTHORIZED: no token, wrong token. Metrics and health stay open.
    expect(
        call("GET", admin_url(&server, "v1/streams"), vec![], None).await,
        401,
        "UNAUTHORIZED",
    );
    expect(
        call(
            "GET",
            admin_url(&server, "v1/streams"),
            vec![("authorization", "Bearer nope".into())],
            None,
        )
        .await,
        401,
        "UNAUTHORIZED",
    );
    assert_eq!(get_text(&admin_url(&server, "metrics")).await.0, 200);
    assert_eq!(get_text(&admin_url(&server, "healthz")).await.0, 200);
    assert_eq!(
        get_text(&admin_url(&server, "v1/openapi.json")).await.0,
        200
    );

    // The stream, with the cloud's output listed (masked).
    let (s, v) = call("GET", admin_url(&server, "v1/streams"), h("a"), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["streams"][0]["userId"], "alice@example.com");
    assert_eq!(v["streams"][0]["state"], "live");
    assert_eq!(v["streams"][0]["clientIp"], "127.0.0.1");
    let outputs_url = format!("{base}/outputs");
    let cloud_listed = eventually("cloud output listed", Duration::from_secs(10), || async {
        let (_, v) = call("GET", outputs_url.clone(), h("a"), None).await;
        (v["total"] == 1).then_some(v)
    })
    .await;
    let cloud_out = &cloud_listed["outputs"][0];
    assert_eq!(cloud_out["addedBy"], "cloud");
    assert_eq!(cloud_out["url"], "rtmp://127.0.0.1:9/live/***");
    assert_eq!(cloud_listed["maxPerStream"], 10);

    // STREAM_NOT_FOUND, INVALID_REQUEST, INVALID_URL.
    let missing = admin_url(&server, "v1/streams/nobody/none/outputs");
    let url_body = |u: &str| Some(json!({ "url": u }));
    let no_app = vec![("authorization", auth.clone())];
    for (method, url, headers, body, status, code) in [
        ("GET", &missing, h("a"), None, 404, "STREAM_NOT_FOUND"),
        (
            "POST",
            &missing,
            h("a"),
            url_body("rtmp://127.0.0.1:9/a/b"),
            404,
            "STREAM_NOT_FOUND",
        ),
        (
            "POST",
            &outputs_url,
            no_app,
            url_body("rtmp://127.0.0.1:9/a/b"),
            400,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            &outputs_url,
            h("a"),
            Some(json!({"nope": 1})),
            400,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            &outputs_url,
            h("a"),
            url_body("https://example.com/live/KEY"),
            400,
            "INVALID_URL",
        ),
        (
            "POST",
            &outputs_url,
            h("a"),
            url_body("rtmp://127.0.0.1:9/nokey"),
            400,
            "INVALID_URL",
        ),
    ] {
        expect(call(method, url.clone(), headers, body).await, status, code);
    }

    // Outputs by app "a" (ten, then MAX_APP_OUTPUTS_REACHED) and "b" (stream full:
    // MAX_OUTPUTS_REACHED), DUPLICATE_URL.
    let (port, seen) = silent_destination().await;
    let url = |k: &str| format!("rtmp://127.0.0.1:{port}/live/SECRET-{k}");
    let (s, added) = call(
        "POST",
        outputs_url.clone(),
        h("a"),
        Some(json!({"url": url("a0"), "name": "A0"})),
    )
    .await;
    assert_eq!(s, 201, "{added}");
    let a0 = added["outputId"].as_str().unwrap().to_string();
    expect(
        call(
            "POST",
            outputs_url.clone(),
            h("b"),
            Some(json!({"url": url("a0")})),
        )
        .await,
        409,
        "DUPLICATE_URL",
    );
    expect(
        call(
            "POST",
            outputs_url.clone(),
            h("b"),
            Some(json!({"url": "rtmp://127.0.0.1:9/live/CLOUDKEY"})),
        )
        .await,
        409,
        "DUPLICATE_URL",
    );
    for i in 1..9 {
        let (s, v) = call(
            "POST",
            outputs_url.clone(),
            h("a"),
            Some(json!({"url": url(&format!("a{i}"))})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    // 1 cloud + 9 from "a" = 10: the stream is full, whoever asks.
    expect(
        call(
            "POST",
            outputs_url.clone(),
            h("b"),
            Some(json!({"url": url("b0")})),
        )
        .await,
        409,
        "MAX_OUTPUTS_REACHED",
    );
    // Output ownership: "b" cannot remove "a"'s output, nobody can remove the cloud's.
    let a0_url = format!("{outputs_url}/{a0}");
    expect(
        call("DELETE", a0_url.clone(), h("b"), None).await,
        403,
        "NOT_AUTHORIZED",
    );
    let cloud_id = cloud_out["outputId"].as_str().unwrap();
    expect(
        call("DELETE", format!("{outputs_url}/{cloud_id}"), h("a"), None).await,
        403,
        "NOT_AUTHORIZED",
    );
    expect(
        call(
            "DELETE",
            format!("{outputs_url}/doesnotexist"),
            h("a"),
            None,
        )
        .await,
        404,
        "OUTPUT_NOT_FOUND",
    );
    // The outputs connect, and stream-status reports them with their keys masked.
    eventually(
        "nine outputs connected",
        Duration::from_secs(10),
        || async { (seen.lock().unwrap().0 >= 9).then_some(()) },
    )
    .await;
    let reported = eventually(
        "outputs in stream-status",
        Duration::from_secs(10),
        || async {
            let all = statuses.lock().unwrap().clone();
            all.into_iter()
                .rev()
                .find(|s| s["outputs"].as_array().is_some_and(|o| o.len() == 10))
        },
    )
    .await;
    let text = reported.to_string();
    assert!(
        !text.contains("SECRET") && !text.contains("CLOUDKEY"),
        "{text}"
    );
    assert!(
        text.contains(&format!("rtmp://127.0.0.1:{port}/live/***")),
        "{text}"
    );

    // "a" removes its output: it stops (the destination sees the connection close).
    let (s, _) = call("DELETE", a0_url.clone(), h("a"), None).await;
    assert_eq!(s, 204);
    eventually(
        "removed output's connection closed",
        Duration::from_secs(10),
        || async { (seen.lock().unwrap().1 >= 1).then_some(()) },
    )
    .await;
    expect(
        call("DELETE", a0_url, h("a"), None).await,
        404,
        "OUTPUT_NOT_FOUND",
    );
    // Removing freed a place: the stream takes a tenth output again.
    let (s, _) = call(
        "POST",
        outputs_url.clone(),
        h("a"),
        Some(json!({"url": url("a9")})),
    )
    .await;
    assert_eq!(s, 201);
    let (_, listed) = call("GET", outputs_url.clone(), h("a"), None).await;
    assert_eq!(listed["total"], 10);
    assert!(!listed.to_string().contains("SECRET"));

    // Keys: create, KEY_NOT_FOUND, INVALID_REQUEST.
    let keys = admin_url(&server, "v1/keys");
    let (s, k) = call(
        "POST",
        keys.clone(),
        h("a"),
        Some(json!({"userId": "alice@example.com", "streamId": "m9"})),
    )
    .await;
    assert_eq!(s, 201, "{k}");
    let (_, list) = call("GET", keys.clone(), h("a"), None).await;
    assert!(!list.to_string().contains(k["key"].as_str().unwrap()));
    expect(
        call("POST", keys.clone(), h("a"), Some(json!({"streamId": "x"}))).await,
        400,
        "INVALID_REQUEST",
    );
    expect(
        call(
            "POST",
            keys.clone(),
            h("a"),
            Some(json!({"userId": "u", "allowIps": ["nope"]})),
        )
        .await,
        400,
        "INVALID_REQUEST",
    );
    expect(
        call("DELETE", admin_url(&server, "v1/keys/0000"), h("a"), None).await,
        404,
        "KEY_NOT_FOUND",
    );

    // Kick: the publisher is disconnected and the playlist ends.
    let (s, _) = call("DELETE", base.clone(), h("a"), None).await;
    assert_eq!(s, 204);
    let status = tokio::time::timeout(Duration::from_secs(10), publisher.wait())
        .await
        .expect("ffmpeg disconnected by the kick")
        .unwrap();
    assert!(!status.success());
    let text = wait_ended(
        &http_url(&server, "live/alice%40example.com/m1"),
        Duration::from_secs(10),
    )
    .await;
    assert!(text.contains("#EXT-X-ENDLIST"));
    expect(
        call("GET", base, h("a"), None).await,
        404,
        "STREAM_NOT_FOUND",
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_output_limit_without_token_on_loopback() {
    let server = start(&[]).await;
    let mut publisher = publish(&Source::normal(30.0), &rtmp_url(&server, "live/u/s"));
    let outputs = admin_url(&server, "v1/streams/u/s/outputs");
    // No token configured, loopback listener: the API answers.
    eventually("stream live", Duration::from_secs(10), || async {
        (request_json("GET", &outputs, &[], None).await.0 == 200).then_some(())
    })
    .await;
    let (port, _) = silent_destination().await;
    for i in 0..10 {
        let (s, v) = request_json(
            "POST",
            &outputs,
            &[("x-package-name", "app")],
            Some(json!({"url": format!("rtmp://127.0.0.1:{port}/live/k{i}")})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = request_json(
        "POST",
        &outputs,
        &[("x-package-name", "app")],
        Some(json!({"url": format!("rtmp://127.0.0.1:{port}/live/k10")})),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("MAX_APP_OUTPUTS_REACHED")),
        "{v}"
    );
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
}
