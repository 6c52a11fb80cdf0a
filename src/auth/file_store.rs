//! The embedded key store: records in memory, persisted to one JSON file written atomically
//! (a temporary file beside it, fsync, rename), so a crash leaves the old or the new file and
//! never half of one. The file is re-read when it changes on disk, so keys made by
//! `glasscast keys create` reach a running server without a restart.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use relay::auth::key::KeyRecord;
use serde::{Deserialize, Serialize};

use super::store::{KeyStore, StoreError, StoreFuture, now_s};

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileData {
    /// By key id.
    keys: BTreeMap<String, KeyRecord>,
}

struct State {
    data: FileData,
    /// Modification time of the file when it was last read or written.
    seen: Option<SystemTime>,
}

/// Keys in a JSON file.
pub struct FileStore {
    path: PathBuf,
    state: Mutex<State>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl FileStore {
    /// Opens (or starts) the store at `path`. A file that exists but cannot be read is an
    /// error: starting with no keys would silently lock every publisher out.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let data = Self::read(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                data,
                seen: mtime(path),
            }),
        })
    }

    fn read(path: &Path) -> Result<FileData, StoreError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Unavailable(format!("{} is not a key file: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileData::default()),
            Err(e) => Err(StoreError::Unavailable(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the current data (re-read if the file changed), and writes the file when
    /// `f` changed something.
    fn with<T>(
        &self,
        write: bool,
        f: impl FnOnce(&mut FileData) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut st = self.lock();
        let now_seen = mtime(&self.path);
        if now_seen != st.seen {
            st.data = Self::read(&self.path)?;
            st.seen = now_seen;
        }
        let now = now_s();
        // Expired keys are dropped on the way (the metadata check refuses them anyway); the
        // file loses them at the next write, so a read-only key file still works.
        st.data.keys.retain(|_, r| r.expires_at > now);
        let out = f(&mut st.data)?;
        if write {
            self.persist(&st.data)?;
            st.seen = mtime(&self.path);
        }
        Ok(out)
    }

    fn persist(&self, data: &FileData) -> Result<(), StoreError> {
        let err = |e: std::io::Error| {
            StoreError::Unavailable(format!("cannot write {}: {e}", self.path.display()))
        };
        let json =
            serde_json::to_vec_pretty(data).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tmp = tempfile_in(dir, &self.path).map_err(err)?;
        tmp.1.write_all(&json).map_err(err)?;
        tmp.1.sync_all().map_err(err)?;
        std::fs::rename(&tmp.0, &self.path).map_err(err)?;
        // The rename is durable once the directory is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// A new file beside `target`, readable by the owner only (it lists who may publish).
fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = target
        .file_name()
        .map_or("keys".into(), |n| n.to_string_lossy().into_owned());
    let path = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    Ok((path.clone(), opts.open(&path)?))
}

fn ready<'a, T: Send + 'a>(r: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(r))
}

fn alias_owner<'a>(data: &'a FileData, alias: &str) -> Option<&'a KeyRecord> {
    data.keys
        .values()
        .find(|r| r.alias.as_deref() == Some(alias))
}

impl KeyStore for FileStore {
    fn get(&self, key_id: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        ready(self.with(false, |d| Ok(d.keys.get(key_id).cloned())))
    }

    fn alias(&self, alias: &str) -> StoreFuture<'_, Option<String>> {
        ready(self.with(false, |d| {
            Ok(alias_owner(d, alias).map(|r| r.key_id.clone()))
        }))
    }

    fn insert(&self, record: KeyRecord) -> StoreFuture<'_, ()> {
        ready(self.with(true, |d| {
            if let Some(a) = &record.alias
                && alias_owner(d, a).is_some()
            {
                return Err(StoreError::AliasTaken(a.clone()));
            }
            d.keys.insert(record.key_id.clone(), record);
            Ok(())
        }))
    }

    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        ready(self.with(false, |d| Ok(d.keys.values().cloned().collect())))
    }

    fn revoke(&self, key_id: &str) -> StoreFuture<'_, ()> {
        ready(self.with(true, |d| {
            d.keys
                .remove(key_id)
                .map(|_| ())
                .ok_or(StoreError::NotFound)
        }))
    }

    fn set_alias(&self, key_id: &str, alias: &str) -> StoreFuture<'_, ()> {
        ready(self.with(true, |d| {
            if !relay::auth::key::valid_alias(alias) {
                return Err(relay::auth::key::KeyError::BadAlias.into());
            }
            if let Some(owner) = alias_owner(d, alias)
                && owner.key_id != key_id
            {
                return Err(StoreError::AliasTaken(alias.into()));
            }
            let r = d.keys.get_mut(key_id).ok_or(StoreError::NotFound)?;
            r.alias = Some(alias.into());
            Ok(())
        }))
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay::auth::key::KeySpec;

    fn spec(alias: Option<&str>) -> KeySpec {
        KeySpec {
            user_id: "alice@example.com".into(),
            stream_id: Some("m1".into()),
            alias: alias.map(String::from),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn survives_restart_and_sees_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keys.json");
        let a = FileStore::open(&path).unwrap();
        let k = super::super::store::create(&a, &spec(Some("preview")))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&k.key), "the key itself is never stored");
        // Another process (the CLI) opens the same file and sees the key.
        let b = FileStore::open(&path).unwrap();
        assert_eq!(
            b.get(&k.record.key_id).await.unwrap(),
            Some(k.record.clone())
        );
        assert_eq!(
            b.alias("preview").await.unwrap(),
            Some(k.record.key_id.clone())
        );
        // ... and a revocation through it reaches the first.
        b.revoke(&k.record.key_id).await.unwrap();
        assert_eq!(a.get(&k.record.key_id).await.unwrap(), None);
        assert!(matches!(
            a.revoke(&k.record.key_id).await,
            Err(StoreError::NotFound)
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file is private");
        }
    }

    #[tokio::test]
    async fn aliases_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(&dir.path().join("k.json")).unwrap();
        let k1 = super::super::store::create(&s, &spec(Some("a1")))
            .await
            .unwrap();
        assert!(matches!(
            super::super::store::create(&s, &spec(Some("a1"))).await,
            Err(StoreError::AliasTaken(_))
        ));
        let k2 = super::super::store::create(&s, &spec(None)).await.unwrap();
        assert!(matches!(
            s.set_alias(&k2.record.key_id, "a1").await,
            Err(StoreError::AliasTaken(_))
        ));
        s.set_alias(&k2.record.key_id, "a2").await.unwrap();
        assert_eq!(s.alias("a2").await.unwrap(), Some(k2.record.key_id));
        assert_eq!(s.alias("a1").await.unwrap(), Some(k1.record.key_id));
        assert!(matches!(
            s.set_alias("nope", "a3").await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn expired_keys_disappear_and_corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let s = FileStore::open(&path).unwrap();
        let mut r = spec(None).make([3; 32], 0).unwrap().record;
        r.expires_at = 1;
        s.insert(r.clone()).await.unwrap();
        assert_eq!(s.get(&r.key_id).await.unwrap(), None);
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            FileStore::open(&path),
            Err(StoreError::Unavailable(_))
        ));
    }
}
