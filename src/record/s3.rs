//! Recordings in S3-compatible object storage (AWS S3, Cloudflare R2, MinIO, …) through
//! `object_store`. The local recording directory is the spool: the writer stores every file
//! there first, this uploads it in order ([`super::spool`]) and deletes the local copy of media
//! once it is in the bucket. Playlists stay local too (the catalog). A store that is slow or
//! down only makes the spool grow; the live stream never waits for it.
//!
//! Keys mirror the local layout under the configured prefix:
//! `{prefix}/{userId}/{streamId}/{recordingId}/{file}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use origin::naming::MediaName;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span, warn};

use super::catalog::{Catalog, STORED_MARKER, State};
use super::spool::{Event, Item, Kind, RecKey, Spool};
use super::{Ready, RecordMetrics};
use crate::config::record::S3Settings;

/// Files at least this large go up as multipart uploads (S3's smallest part is 5 MiB).
const MULTIPART_FROM: usize = 8 << 20;
/// Recordings uploading side by side.
const CONCURRENCY: usize = 4;
/// How long a stopping relay keeps uploading before it leaves the rest to the next start.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The bucket (and key prefix) recordings go to.
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl Remote {
    pub fn new(s: &S3Settings) -> anyhow::Result<Self> {
        let options = ClientOptions::new()
            .with_allow_http(s.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(30));
        // One quick retry inside the client; the spool retries for as long as it takes.
        let retry = RetryConfig {
            max_retries: 1,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        };
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&s.bucket)
            .with_region(&s.region)
            .with_client_options(options)
            .with_retry(retry);
        if !s.endpoint.is_empty() {
            // R2, MinIO and friends: path-style requests to the given endpoint.
            b = b
                .with_endpoint(&s.endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if !s.access_key_id.is_empty() {
            b = b
                .with_access_key_id(&s.access_key_id)
                .with_secret_access_key(&s.secret_access_key);
        }
        let store = b
            .build()
            .with_context(|| format!("the object store for s3://{}", s.bucket))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: s.prefix.clone(),
        })
    }

    /// The key of the recording directory `dir` (`{userId}/{streamId}/{id}`, percent-encoded
    /// as in URLs): its segments decoded, so the bucket's keys are what a URL path names
    /// (`…/alice%40example.com/…` reaches the key `…/alice@example.com/…` through any CDN).
    pub fn dir_key(&self, dir: &str) -> Key {
        let decoded = dir.split('/').map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        let prefix = self
            .prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from);
        Key::from_iter(prefix.chain(decoded))
    }

    /// The key of `file` in the recording directory `dir`.
    pub fn key(&self, dir: &str, file: &str) -> Key {
        self.dir_key(dir).child(file)
    }

    /// Uploads the local file `local` as `key`: one PUT, or a multipart upload when large.
    pub async fn upload(&self, local: &Path, key: &Key) -> anyhow::Result<u64> {
        let data = tokio::fs::read(local)
            .await
            .with_context(|| format!("reading {}", local.display()))?;
        let len = data.len() as u64;
        if data.len() < MULTIPART_FROM {
            self.store
                .put(key, data.into())
                .await
                .with_context(|| format!("uploading {key}"))?;
        } else {
            let mut w = object_store::buffered::BufWriter::with_capacity(
                self.store.clone(),
                key.clone(),
                MULTIPART_FROM,
            );
            w.write_all(&data)
                .await
                .with_context(|| format!("uploading {key}"))?;
            w.shutdown()
                .await
                .with_context(|| format!("completing the upload of {key}"))?;
        }
        Ok(len)
    }

    /// The object `key`, whole.
    pub async fn get(&self, key: &Key) -> object_store::Result<bytes::Bytes> {
        self.store.get(key).await?.bytes().await
    }

    /// Deletes every object of the recording directory `dir`.
    pub async fn delete_dir(&self, dir: &str) -> anyhow::Result<()> {
        use futures_util::TryStreamExt as _;
        let prefix = self.dir_key(dir);
        let keys: Vec<Key> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .with_context(|| format!("listing {prefix}"))?;
        for k in keys {
            self.store
                .delete(&k)
                .await
                .with_context(|| format!("deleting {k}"))?;
        }
        Ok(())
    }
}

/// What the writer tells the uploader.
pub enum Msg {
    /// A file was stored locally.
    Stored(Item),
    /// The recording's broadcast ended: its files are all stored locally.
    Ended(RecKey),
    /// The recording was deleted.
    Removed(RecKey),
}

/// Starts the uploader. Recordings a previous run left in the spool are queued first.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    remote: Remote,
    root: PathBuf,
    spool_max_bytes: u64,
    catalog: Arc<Catalog>,
    metrics: RecordMetrics,
    ready: Ready,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<mpsc::Sender<Msg>> {
    let mut spool = Spool::new(spool_max_bytes, CONCURRENCY);
    let mut resumed = 0;
    for info in catalog.list(None, None) {
        if info.state != State::Uploading {
            continue;
        }
        let rec = RecKey {
            seq: info.seq(),
            dir: info.dir.clone(),
        };
        for item in spooled_files(&root, &rec).await? {
            spool.handle_stored(item);
        }
        spool.handle_ended(&rec);
        resumed += 1;
    }
    if resumed > 0 {
        info!(
            recordings = resumed,
            bytes = spool.bytes(),
            "resuming uploads left by an earlier run"
        );
    }
    metrics.spool_bytes.set(spool.bytes() as i64);
    metrics
        .spool_limit_bytes
        .set(i64::try_from(spool_max_bytes).unwrap_or(i64::MAX));
    let (tx, rx) = mpsc::channel(1024);
    let uploader = Uploader {
        remote,
        root,
        spool,
        catalog,
        metrics,
        ready,
    };
    tasks.spawn(
        uploader
            .run(rx, shutdown)
            .instrument(info_span!("uploader")),
    );
    Ok(tx)
}

/// The files of a recording still in the spool, in upload order: inits, segments by number,
/// then the playlist.
async fn spooled_files(root: &Path, rec: &RecKey) -> anyhow::Result<Vec<Item>> {
    let dir = root.join(&rec.dir);
    let mut media = Vec::new();
    let mut rd = tokio::fs::read_dir(&dir)
        .await
        .with_context(|| format!("reading {}", dir.display()))?;
    while let Some(e) = rd.next_entry().await? {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".m4s") || name.ends_with(".mp4")) {
            continue;
        }
        let bytes = e.metadata().await?.len();
        // Inits before segments, segments by number.
        let id = rec.dir.rsplit('/').next().unwrap_or_default();
        let rank = match MediaName::parse(id, &name) {
            Some(MediaName::Init(n)) | Some(MediaName::TrackInit(n, _)) => (0, u64::from(n)),
            Some(MediaName::Segment(n)) | Some(MediaName::TrackSegment(n, _)) => (1, n),
            _ => continue,
        };
        media.push((
            rank,
            Item {
                rec: rec.clone(),
                file: name,
                bytes,
                kind: Kind::Media,
            },
        ));
    }
    media.sort_by_key(|m| m.0);
    let mut out: Vec<Item> = media.into_iter().map(|(_, i)| i).collect();
    for file in [super::local::PLAYLIST, super::mpd::MANIFEST] {
        if tokio::fs::try_exists(dir.join(file)).await.unwrap_or(false) {
            out.push(Item {
                rec: rec.clone(),
                file: file.into(),
                bytes: 0,
                kind: Kind::Manifest,
            });
        }
    }
    Ok(out)
}

struct Uploader {
    remote: Remote,
    root: PathBuf,
    spool: Spool,
    catalog: Arc<Catalog>,
    metrics: RecordMetrics,
    ready: Ready,
}

impl Uploader {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, shutdown: CancellationToken) {
        let mut uploads: JoinSet<(Item, anyhow::Result<u64>, Duration)> = JoinSet::new();
        let mut open = true;
        // Set when the relay stops: uploading goes on for a grace period, the rest waits in
        // the spool for the next start.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            self.start_uploads(&mut uploads);
            self.handle_events();
            self.metrics.spool_bytes.set(self.spool.bytes() as i64);
            if deadline.is_some() && !open && uploads.is_empty() && self.spool.is_empty() {
                break;
            }
            let wake = self.spool.poll_wake().map(tokio::time::Instant::from_std);
            tokio::select! {
                msg = rx.recv(), if open => match msg {
                    Some(msg) => self.handle_msg(msg).await,
                    None => open = false,
                },
                Some(done) = uploads.join_next(), if !uploads.is_empty() => {
                    if let Ok((item, result, took)) = done {
                        self.handle_done(item, result, took).await;
                    }
                }
                _ = sleep_until(wake) => {}
                _ = sleep_until(deadline) => break,
                _ = shutdown.cancelled(), if deadline.is_none() => {
                    deadline = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                }
            }
        }
        if self.spool.bytes() > 0 {
            info!(
                bytes = self.spool.bytes(),
                "uploads left for the next start"
            );
        }
    }

    fn start_uploads(&mut self, uploads: &mut JoinSet<(Item, anyhow::Result<u64>, Duration)>) {
        while let Some(item) = self.spool.poll_upload(Instant::now()) {
            self.spawn_upload(uploads, item);
        }
    }

    fn spawn_upload(
        &self,
        uploads: &mut JoinSet<(Item, anyhow::Result<u64>, Duration)>,
        item: Item,
    ) {
        let remote = self.remote.clone();
        let local = self.root.join(&item.rec.dir).join(&item.file);
        let key = remote.key(&item.rec.dir, &item.file);
        uploads.spawn(async move {
            let started = Instant::now();
            let result = match remote.upload(&local, &key).await {
                // A manifest that was never written (a recording without one) is not waited for.
                Err(e) if item.kind == Kind::Manifest && !local.exists() => {
                    tracing::debug!(error = format!("{e:#}"), "no manifest to upload");
                    Ok(0)
                }
                r => r,
            };
            (item, result, started.elapsed())
        });
    }

    async fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Stored(item) => {
                let path = self.root.join(&item.rec.dir).join(&item.file);
                if !self.spool.handle_stored(item) {
                    // Its recording was given up: the file is not kept either.
                    let _ = tokio::fs::remove_file(&path).await;
                }
            }
            Msg::Ended(rec) => self.spool.handle_ended(&rec),
            Msg::Removed(rec) => {
                self.spool.handle_removed(&rec);
            }
        }
    }

    async fn handle_done(&mut self, item: Item, result: anyhow::Result<u64>, took: Duration) {
        match result {
            Ok(_) => {
                self.metrics.upload_seconds.observe(took.as_secs_f64());
                if item.kind == Kind::Media {
                    // In the bucket now: the spool's copy goes.
                    let local = self.root.join(&item.rec.dir).join(&item.file);
                    if let Err(e) = tokio::fs::remove_file(&local).await
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        warn!(file = %local.display(), error = %e, "removing an uploaded file");
                    }
                }
                self.spool.handle_uploaded(&item);
            }
            Err(e) => {
                self.metrics.failure("upload");
                let delay = self.spool.handle_failed(&item, Instant::now());
                // Loud while the backoff grows, then quiet: a store that stays down would
                // otherwise log every few seconds for every recording.
                if delay < super::spool::MAX_BACKOFF {
                    warn!(
                        recording = %item.rec.dir,
                        file = %item.file,
                        retry_in_ms = delay.as_millis() as u64,
                        error = %e,
                        cause = %e.root_cause(),
                        "upload failed"
                    );
                } else {
                    tracing::debug!(recording = %item.rec.dir, file = %item.file, cause = %e.root_cause(), "upload failed again");
                }
            }
        }
    }

    fn handle_events(&mut self) {
        while let Some(event) = self.spool.poll_event() {
            match event {
                Event::Complete(rec) => {
                    let dir = self.root.join(&rec.dir);
                    if let Err(e) = std::fs::write(dir.join(STORED_MARKER), b"") {
                        warn!(recording = %rec.dir, error = %e, "marking a recording stored");
                    }
                    let id = rec.dir.rsplit('/').next().unwrap_or_default().to_string();
                    self.catalog.update(&id, |i| i.state = State::Complete);
                    if let Some(info) = self.catalog.get(&id) {
                        (self.ready)(info);
                    }
                }
                Event::GivenUp(rec, items) => {
                    self.metrics.failure("spool_full");
                    warn!(
                        recording = %rec.dir,
                        files = items.len(),
                        "recording spool full: the oldest recording's waiting files are given up"
                    );
                    for item in items {
                        let _ = std::fs::remove_file(self.root.join(&rec.dir).join(&item.file));
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a restart finds in the spool goes up in the order it was stored: inits, then
    /// segments by number (not by name: s10 after s9), then the manifests; other files stay.
    #[tokio::test]
    async fn the_spool_resumes_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = RecKey {
            seq: 1,
            dir: "u/s/ab".into(),
        };
        let dir = tmp.path().join(&rec.dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in [
            "ab-s10.m4s",
            "ab-s9.m4s",
            "ab-init1a.mp4",
            "ab-s2.m4s",
            "ab-init1.mp4",
            "index.m3u8",
            "dash.jsonl",
            "ab-s3.m4s.tmp",
            "other.m4s",
        ] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        let files: Vec<String> = spooled_files(tmp.path(), &rec)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.file)
            .collect();
        assert_eq!(files.len(), 6, "{files:?}");
        assert!(files[..2].iter().all(|f| f.contains("-init1")), "{files:?}");
        assert_eq!(
            files[2..],
            ["ab-s2.m4s", "ab-s9.m4s", "ab-s10.m4s", "index.m3u8"]
        );
    }
}
