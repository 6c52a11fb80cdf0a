//! A fake AWS IVS (CONTRACTS.md): JSON operations under `POST /{Operation}`, SigV4 checked by
//! signing the received request again with the known secret (a wrong key id, secret or a
//! tampered body is refused as AWS does), `ChannelNotBroadcasting` for a channel that is not
//! live, errors typed by `x-amzn-ErrorType`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{FakeRequest, fake_http_with};

#[derive(Debug, Clone)]
pub struct Channel {
    pub arn: String,
    pub name: String,
    pub tags: Value,
    pub live: bool,
    pub viewers: u64,
}

#[derive(Default)]
struct State {
    key_id: String,
    secret: String,
    region: String,
    ingest_host: String,
    channels: BTreeMap<String, Channel>,
    next: u64,
    failing: u32,
    base: String,
    calls: Vec<String>,
    /// A real ingest (nginx-rtmp): its HLS directory and HTTP base. A channel is live while
    /// its playlist exists there, and plays from there.
    ingest: Option<(std::path::PathBuf, String)>,
    /// `ChannelNotBroadcasting` answers given.
    not_broadcasting: u32,
}

#[derive(Clone)]
pub struct FakeIvs {
    pub url: String,
    state: Arc<Mutex<State>>,
}

type Answer = (u16, Vec<(String, String)>, String);

fn ok(v: Value) -> Answer {
    (200, Vec::new(), v.to_string())
}

fn err(status: u16, kind: &str, message: &str) -> Answer {
    (
        status,
        vec![(
            "x-amzn-ErrorType".into(),
            format!("{kind}:http://internal.amazon.com/coral/com.amazonaws.ivs/"),
        )],
        json!({ "message": message }).to_string(),
    )
}

/// The signature `secret` gives this request (same signing time and headers).
fn expected_signature(st: &State, req: &FakeRequest) -> Option<String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let date = req.headers.get("x-amz-date")?.to_str().ok()?;
    // 20150830T123600Z -> 2015-08-30T12:36:00Z
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[0..4],
        &date[4..6],
        &date[6..8],
        &date[9..11],
        &date[11..13],
        &date[13..15]
    );
    let time = humantime::parse_rfc3339(&iso).ok()?;
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(&st.key_id, &st.secret, None, None, "fake").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&st.region)
        .name("ivs")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let host = req.headers.get("host")?.to_str().ok()?;
    let url = format!("{}{}", st.base, req.path);
    let headers = [("host", host), ("content-type", "application/json")];
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(&req.body),
    )
    .ok()?;
    let (instructions, _) = sign(signable, &params).ok()?.into_parts();
    instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
}

impl FakeIvs {
    pub async fn start(key_id: &str, secret: &str, region: &str, ingest_host: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            key_id: key_id.into(),
            secret: secret.into(),
            region: region.into(),
            ingest_host: ingest_host.into(),
            ..Default::default()
        }));
        let s = state.clone();
        let url = fake_http_with(move |req| {
            let s = s.clone();
            async move { Self::handle(&s, req) }
        })
        .await;
        state.lock().unwrap().base = url.clone();
        Self { url, state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn set_live(&self, arn: &str, live: bool, viewers: u64) {
        if let Some(c) = self.lock().channels.get_mut(arn) {
            c.live = live;
            c.viewers = viewers;
        }
    }

    /// Channels are live when the nginx-rtmp ingest writes their HLS into `hls_dir`, and
    /// their playback URL is that HLS (`{http_base}/hls/{streamKey}.m3u8`).
    pub fn serve_from(&self, hls_dir: std::path::PathBuf, http_base: String) {
        self.lock().ingest = Some((hls_dir, http_base));
    }

    /// The stream key of a channel this fake created.
    pub fn stream_key(&self, arn: &str) -> String {
        Self::key_of(&self.lock(), arn)
    }

    /// How many `GetStream` calls were answered `ChannelNotBroadcasting`.
    pub fn not_broadcasting(&self) -> u32 {
        self.lock().not_broadcasting
    }

    fn key_of(st: &State, arn: &str) -> String {
        format!("sk_{}_{}", st.region, arn.rsplit('/').next().unwrap_or(""))
    }

    fn is_live(st: &State, c: &Channel) -> bool {
        c.live
            || st.ingest.as_ref().is_some_and(|(dir, _)| {
                dir.join(format!("{}.m3u8", Self::key_of(st, &c.arn)))
                    .exists()
            })
    }

    pub fn fail(&self, n: u32) {
        self.lock().failing = n;
    }

    pub fn insert(&self, tags: Value, live: bool) -> String {
        let mut st = self.lock();
        st.next += 1;
        let arn = format!(
            "arn:aws:ivs:{}:123456789012:channel/old{:04}",
            st.region, st.next
        );
        st.channels.insert(
            arn.clone(),
            Channel {
                arn: arn.clone(),
                name: "old".into(),
                tags,
                live,
                viewers: 0,
            },
        );
        arn
    }

    pub fn channels(&self) -> Vec<Channel> {
        self.lock().channels.values().cloned().collect()
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn channel_json(st: &State, c: &Channel) -> Value {
        let id = c.arn.rsplit('/').next().unwrap_or("");
        json!({
            "arn": c.arn,
            "name": c.name,
            "latencyMode": "LOW",
            "type": "STANDARD",
            "ingestEndpoint": st.ingest_host,
            "playbackUrl": match &st.ingest {
                Some((_, http)) => format!("{http}/hls/{}.m3u8", Self::key_of(st, &c.arn)),
                None => format!("https://fake.{}.playback.live-video.net/api/video/v1/{id}.m3u8", st.region),
            },
            "tags": c.tags,
        })
    }

    fn handle(state: &Mutex<State>, req: FakeRequest) -> Answer {
        let mut st = state.lock().unwrap();
        let op = req.path.trim_start_matches('/').to_string();
        st.calls.push(op.clone());
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let credential = format!("Credential={}/", st.key_id);
        if !auth.starts_with("AWS4-HMAC-SHA256 ") || !auth.contains(&credential) {
            return err(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            );
        }
        if expected_signature(&st, &req).as_deref() != Some(auth.as_str()) {
            return err(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            );
        }
        if st.failing > 0 {
            st.failing -= 1;
            return err(500, "InternalServerException", "internal error");
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        match op.as_str() {
            "CreateChannel" => {
                st.next += 1;
                let id = format!("ch{:08x}", st.next);
                let arn = format!("arn:aws:ivs:{}:123456789012:channel/{id}", st.region);
                let c = Channel {
                    arn: arn.clone(),
                    name: body["name"].as_str().unwrap_or("").into(),
                    tags: body["tags"].clone(),
                    live: false,
                    viewers: 0,
                };
                let channel = Self::channel_json(&st, &c);
                st.channels.insert(arn.clone(), c);
                ok(json!({
                    "channel": channel,
                    "streamKey": {"arn": format!("arn:aws:ivs:{}:123456789012:stream-key/{id}", st.region), "channelArn": arn, "value": Self::key_of(&st, &arn)},
                }))
            }
            "DeleteChannel" => match st.channels.remove(body["arn"].as_str().unwrap_or("")) {
                Some(_) => (204, Vec::new(), String::new()),
                None => err(404, "ResourceNotFoundException", "channel not found"),
            },
            "GetChannel" => match st.channels.get(body["arn"].as_str().unwrap_or("")) {
                Some(c) => ok(json!({ "channel": Self::channel_json(&st, c) })),
                None => err(404, "ResourceNotFoundException", "channel not found"),
            },
            "GetStream" => match st.channels.get(body["channelArn"].as_str().unwrap_or("")) {
                Some(c) if Self::is_live(&st, c) => ok(json!({"stream": {
                    "channelArn": c.arn, "state": "LIVE", "health": "HEALTHY", "viewerCount": c.viewers,
                    "playbackUrl": Self::channel_json(&st, c)["playbackUrl"],
                }})),
                Some(_) => {
                    st.not_broadcasting += 1;
                    err(404, "ChannelNotBroadcasting", "Channel is not broadcasting")
                }
                None => err(404, "ResourceNotFoundException", "channel not found"),
            },
            "ListStreams" => {
                let streams: Vec<Value> = st
                    .channels
                    .values()
                    .filter(|c| Self::is_live(&st, c))
                    .map(|c| json!({"channelArn": c.arn, "state": "LIVE"}))
                    .collect();
                ok(json!({ "streams": streams }))
            }
            "ListChannels" => {
                let channels: Vec<Value> = st
                    .channels
                    .values()
                    .map(|c| json!({"arn": c.arn, "name": c.name, "tags": c.tags}))
                    .collect();
                ok(json!({ "channels": channels }))
            }
            _ => err(404, "UnknownOperationException", "unknown operation"),
        }
    }
}
