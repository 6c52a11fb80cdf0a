//! A fake Cloudflare Stream API that follows CONTRACTS.md exactly, awkward parts included:
//! the `{"result","success","errors","messages"}` envelope on every answer, a live input's
//! status as `null`, a string or `{"current":{"state"}}`, outputs with separate `url` and
//! `streamKey` (both required), playback URLs only from a video that is `live-inprogress`,
//! 429 with `Retry-After`, 401 for a wrong token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{FakeRequest, fake_http_with};

#[derive(Debug, Clone)]
pub struct Input {
    pub uid: String,
    pub meta: Value,
    pub created: String,
    pub connected: bool,
    /// A live input that never had a connection reports `status: null`.
    pub ever_connected: bool,
    pub live_video: bool,
    pub outputs: Vec<Value>,
}

#[derive(Default)]
struct State {
    token: String,
    ingest: String,
    inputs: BTreeMap<String, Input>,
    next: u64,
    rate_limited: u32,
    failing: u32,
    /// Report a connected input's status as `{"current":{"state"}}` instead of a string.
    status_object: bool,
    calls: Vec<(String, String)>,
    receiver: Option<Receiver>,
}

/// A real ingest behind the fake: a second Glasscast receiving `live/{user}/{streamKey}`.
struct Receiver {
    registry: Arc<relay::registry::Registry>,
    origin: Arc<origin::packager::Origin>,
    http: String,
    user: String,
}

/// The fake; `url` is the base up to `/stream`.
#[derive(Clone)]
pub struct FakeCloudflare {
    pub url: String,
    state: Arc<Mutex<State>>,
}

fn envelope(result: Value) -> (u16, String) {
    (
        200,
        json!({"result": result, "success": true, "errors": [], "messages": []}).to_string(),
    )
}

fn error(status: u16, code: u32, message: &str) -> (u16, String) {
    (
        status,
        json!({"result": null, "success": false, "errors": [{"code": code, "message": message}], "messages": []})
            .to_string(),
    )
}

impl FakeCloudflare {
    /// `ingest` is what `rtmps.url` says (`rtmps://host:port/live/`).
    pub async fn start(token: &str, ingest: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            token: token.into(),
            ingest: ingest.into(),
            ..Default::default()
        }));
        let s = state.clone();
        let base = fake_http_with(move |req| {
            let s = s.clone();
            async move {
                let (status, body) = Self::handle(&s, req);
                let headers = if status == 429 {
                    vec![("retry-after".to_string(), "1".to_string())]
                } else {
                    Vec::new()
                };
                (status, headers, body)
            }
        })
        .await;
        Self {
            url: format!("{base}/client/v4/accounts/acct123/stream"),
            state,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// The next `n` requests get 429 with `Retry-After: 1`.
    pub fn rate_limit(&self, n: u32) {
        self.lock().rate_limited = n;
    }

    /// The next `n` requests get 500.
    pub fn fail(&self, n: u32) {
        self.lock().failing = n;
    }

    pub fn status_as_object(&self, yes: bool) {
        self.lock().status_object = yes;
    }

    pub fn set_connected(&self, uid: &str, connected: bool) {
        if let Some(i) = self.lock().inputs.get_mut(uid) {
            i.connected = connected;
            i.ever_connected |= connected;
        }
    }

    /// Makes the input's video `live-inprogress` (playback URLs appear).
    pub fn set_live(&self, uid: &str, live: bool) {
        if let Some(i) = self.lock().inputs.get_mut(uid) {
            i.live_video = live;
        }
    }

    /// Adds an input as if made earlier (by this relay or by someone else).
    pub fn insert(&self, meta: Value, created: &str, connected: bool) -> String {
        let mut st = self.lock();
        st.next += 1;
        let uid = format!("{:032x}", 0xfeed_0000 + st.next);
        st.inputs.insert(
            uid.clone(),
            Input {
                uid: uid.clone(),
                meta,
                created: created.into(),
                connected,
                ever_connected: connected,
                live_video: false,
                outputs: Vec::new(),
            },
        );
        uid
    }

    /// Inputs are connected while `server` receives `live/{user}/{streamKey}` (the path the
    /// `ingest` URL given to `start` leads to), live once it has a playable part, and play
    /// from its origin: what the fake platform serves is what it received.
    pub fn serve_from(&self, server: &glasscast::server::Server, user: &str) {
        self.lock().receiver = Some(Receiver {
            registry: server.registry.clone(),
            origin: server.origin.clone(),
            http: format!("http://{}", server.http_addr),
            user: user.into(),
        });
    }

    fn key_of(uid: &str) -> String {
        format!("key-{}", &uid[24..])
    }

    /// Connection and liveness from the real ingest, when there is one.
    fn refresh(st: &mut State) {
        let Some(r) = &st.receiver else { return };
        for i in st.inputs.values_mut() {
            let path = relay::path::StreamPath {
                user_id: r.user.clone(),
                stream_id: Self::key_of(&i.uid),
            };
            i.connected = r.registry.get(&path).is_some_and(|s| s.is_publishing());
            i.ever_connected |= i.connected;
            i.live_video =
                i.connected && r.origin.get(&path).is_some_and(|o| o.next_part_index() > 0);
        }
    }

    pub fn inputs(&self) -> Vec<Input> {
        self.lock().inputs.values().cloned().collect()
    }

    /// `(method, path)` of every request so far.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.lock().calls.clone()
    }

    fn status(st: &State, i: &Input) -> Value {
        match (i.connected, st.status_object) {
            (false, _) if !i.ever_connected => Value::Null,
            (true, false) => json!("connected"),
            (true, true) => json!({"current": {"state": "connected"}}),
            (false, false) => json!("disconnected"),
            (false, true) => json!({"current": {"state": "disconnected"}}),
        }
    }

    fn input_json(st: &State, i: &Input) -> Value {
        let key = Self::key_of(&i.uid);
        json!({
            "uid": i.uid,
            "meta": i.meta,
            "created": i.created,
            "rtmps": {"url": st.ingest, "streamKey": key},
            "srt": {"url": "srt://127.0.0.1:778", "streamId": i.uid, "passphrase": "x"},
            "webRTC": {"url": format!("https://127.0.0.1/{}/webRTC/publish", i.uid)},
            "recording": {"mode": "automatic", "timeoutSeconds": 0, "requireSignedURLs": false},
            "status": Self::status(st, i),
        })
    }

    fn handle(state: &Mutex<State>, req: FakeRequest) -> (u16, String) {
        let mut st = state.lock().unwrap();
        st.calls.push((req.method.clone(), req.path.clone()));
        Self::refresh(&mut st);
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {}", st.token) {
            return error(401, 10000, "Authentication error");
        }
        if st.rate_limited > 0 {
            st.rate_limited -= 1;
            // Sent with `Retry-After: 1`.
            return error(
                429,
                971,
                "Please wait and consider throttling your request speed",
            );
        }
        if st.failing > 0 {
            st.failing -= 1;
            return error(500, 10002, "Internal error");
        }
        let Some(rest) = req.path.split("/stream").nth(1) else {
            return error(404, 10003, "Not found");
        };
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        match (req.method.as_str(), segs.as_slice()) {
            ("POST", ["live_inputs"]) => {
                if body["recording"]["mode"] != "automatic" {
                    return error(400, 10005, "recording.mode must be automatic");
                }
                st.next += 1;
                let uid = format!("{:032x}", 0xabc0_0000 + st.next);
                let created =
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
                let input = Input {
                    uid: uid.clone(),
                    meta: body["meta"].clone(),
                    created,
                    connected: false,
                    ever_connected: false,
                    live_video: false,
                    outputs: Vec::new(),
                };
                let v = Self::input_json(&st, &input);
                st.inputs.insert(uid, input);
                envelope(v)
            }
            ("GET", ["live_inputs"]) => {
                let list: Vec<Value> = st
                    .inputs
                    .values()
                    .map(|i| Self::input_json(&st, i))
                    .collect();
                envelope(json!(list))
            }
            ("GET", ["live_inputs", uid]) => match st.inputs.get(*uid) {
                Some(i) => envelope(Self::input_json(&st, i)),
                None => error(404, 10003, "Live input not found"),
            },
            ("DELETE", ["live_inputs", uid]) => match st.inputs.remove(*uid) {
                Some(_) => envelope(Value::Null),
                None => error(404, 10003, "Live input not found"),
            },
            ("GET", ["live_inputs", uid, "videos"]) => match st.inputs.get(*uid) {
                Some(i) if i.live_video => envelope(json!([{
                    "uid": format!("video-{uid}"),
                    "playback": match &st.receiver {
                        Some(r) => json!({
                            "hls": format!("{}/live/{}/{}/index.m3u8", r.http, r.user, Self::key_of(uid)),
                            "dash": format!("{}/live/{}/{}/index.mpd", r.http, r.user, Self::key_of(uid)),
                        }),
                        None => json!({
                            "hls": format!("https://customer-fake.cloudflarestream.com/{uid}/manifest/video.m3u8"),
                            "dash": format!("https://customer-fake.cloudflarestream.com/{uid}/manifest/video.mpd"),
                        }),
                    },
                    "status": {"state": "live-inprogress"},
                }])),
                Some(_) => envelope(json!([])),
                None => error(404, 10003, "Live input not found"),
            },
            ("GET", ["live_inputs", uid, "outputs"]) => match st.inputs.get(*uid) {
                Some(i) => envelope(json!(i.outputs)),
                None => error(404, 10003, "Live input not found"),
            },
            ("POST", ["live_inputs", uid, "outputs"]) => {
                let (url, key) = (body["url"].as_str(), body["streamKey"].as_str());
                let (Some(url), Some(key)) = (url, key) else {
                    return error(400, 10006, "url and streamKey are required");
                };
                if url.is_empty() || key.is_empty() || !url.starts_with("rtmp") {
                    return error(400, 10006, "url and streamKey are required");
                }
                st.next += 1;
                let id = format!("out{:08x}", st.next);
                let Some(i) = st.inputs.get_mut(*uid) else {
                    return error(404, 10003, "Live input not found");
                };
                let o = json!({"uid": id, "url": url, "streamKey": key, "enabled": body["enabled"].as_bool().unwrap_or(true)});
                i.outputs.push(o.clone());
                envelope(o)
            }
            ("PUT", ["live_inputs", uid, "outputs", out]) => {
                let Some(i) = st.inputs.get_mut(*uid) else {
                    return error(404, 10003, "Live input not found");
                };
                match i.outputs.iter_mut().find(|o| o["uid"] == *out) {
                    Some(o) => {
                        o["enabled"] = body["enabled"].clone();
                        envelope(o.clone())
                    }
                    None => error(404, 10003, "Output not found"),
                }
            }
            ("DELETE", ["live_inputs", uid, "outputs", out]) => {
                let Some(i) = st.inputs.get_mut(*uid) else {
                    return error(404, 10003, "Live input not found");
                };
                let before = i.outputs.len();
                i.outputs.retain(|o| o["uid"] != *out);
                if i.outputs.len() < before {
                    envelope(Value::Null)
                } else {
                    error(404, 10003, "Output not found")
                }
            }
            _ => error(404, 10003, "Not found"),
        }
    }
}
