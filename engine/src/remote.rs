//! A remote tier for the artifact store, through the `object_store` crate: S3 and S3-compatible
//! servers (`s3://bucket/prefix`) or a shared directory (`file:///path`).
//!
//! The remote holds the same layout as the local store (`objects/`, `nodes/`, `refs/`, `runs/`,
//! `tasks/`). Objects are content-addressed, so uploading one twice is harmless and nothing relies on
//! conditional puts (which some S3 servers ignore); a node record is uploaded only after its objects,
//! so a record on the remote always points at complete objects.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};

use crate::store::error::StoreError;

/// An object in a listing.
pub struct Listed {
    /// Its path relative to the remote's prefix.
    pub rel: String,
    /// Its size in bytes.
    pub size: u64,
    /// Unix seconds.
    pub modified: i64,
}

/// A remote store: S3 (or an S3-compatible server) or a shared directory, holding the local store's
/// layout under a prefix. Its methods block; errors name the URL, the operation and a likely fix.
pub struct Remote {
    url: String,
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    rt: tokio::runtime::Runtime,
    /// Objects larger than this move in parts of this size (multipart upload, ranged GETs), so
    /// memory stays bounded and S3's 5 GB single-PUT limit does not apply.
    part_size: usize,
    /// Set once a write was refused (read-only credentials, a read-only share): later shared
    /// bookkeeping stays in the local cache without asking again.
    read_only: std::sync::atomic::AtomicBool,
}

/// Default part size: 16 MiB (`PIPE_S3_PART_SIZE` overrides; S3's minimum is 5 MiB).
const PART_SIZE: usize = 16 << 20;

fn remote_err(url: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
    let msg = e.to_string();
    // Transport failures first: their text holds URLs and ports (a port like 35403 must not read
    // as HTTP 403), and a request that never got an answer has no status to match.
    let transport = msg.contains("error sending request") || msg.contains("connect") || msg.contains("timed out") || msg.contains("dns error");
    let hint = if msg.contains("169.254.169.254") || msg.contains("169.254.170.2") {
        "no credentials were found (the cloud metadata service, tried last, did not give any): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials"
    } else if transport {
        "the endpoint is unreachable: check AWS_ENDPOINT_URL (or endpoint_url in ~/.aws/config) and that the server is up"
    } else if msg.contains("403 Forbidden")
        || msg.contains("status 403")
        || msg.contains("InvalidAccessKeyId")
        || msg.contains("SignatureDoesNotMatch")
        || msg.contains("AccessDenied")
    {
        "the server refused the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile in ~/.aws/credentials)"
    } else if msg.contains("InvalidBucketName") {
        "the bucket name is not valid S3 (3-63 lowercase letters, digits, dots and hyphens)"
    } else if msg.contains("NoSuchBucket") {
        "the bucket does not exist: create it, or fix the bucket name in the store URL"
    } else {
        "check the store URL, endpoint and credentials"
    };
    StoreError::Remote { url: url.to_string(), what: what.to_string(), message: msg, hint: hint.to_string() }
}

/// Whether the remote refused a write for lack of permission: S3's 401/403 (read-only
/// credentials), or a share the user may not write (EACCES, EPERM, EROFS).
fn refused(e: &object_store::Error) -> bool {
    if matches!(e, object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem) || io.raw_os_error() == Some(1) {
                return true;
            }
        }
        source = err.source();
    }
    let msg = e.to_string();
    msg.contains("AccessDenied") || msg.contains("403 Forbidden") || msg.contains("Permission denied") || msg.contains("Read-only file system")
}

/// `[profile]` sections of an AWS-style INI file.
fn ini_section(text: &str, wanted: &[String]) -> Vec<(String, String)> {
    let mut in_section = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = wanted.iter().any(|w| w == name.trim());
        } else if in_section {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

/// Settings from `~/.aws/credentials` and `~/.aws/config` (profile `AWS_PROFILE`, else `default`),
/// used where the environment has none.
fn aws_files() -> Vec<(String, String)> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let creds = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").map(Into::into).unwrap_or_else(|| home.join(".aws/credentials"));
    let config = std::env::var_os("AWS_CONFIG_FILE").map(Into::into).unwrap_or_else(|| home.join(".aws/config"));
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string::<std::path::PathBuf>(creds) {
        out.extend(ini_section(&t, std::slice::from_ref(&profile)));
    }
    if let Ok(t) = std::fs::read_to_string::<std::path::PathBuf>(config) {
        out.extend(ini_section(&t, &[format!("profile {profile}"), profile.clone()]));
    }
    out
}

impl Remote {
    /// Opens `s3://bucket[/prefix]` or `file:///dir` and checks that it answers (a clear error
    /// within seconds for wrong credentials, a missing bucket or an unreachable endpoint).
    pub fn open(url: &str) -> Result<Remote, StoreError> {
        let bad = |message: &str| StoreError::Remote {
            url: url.to_string(),
            what: "open".into(),
            message: message.to_string(),
            hint: "use s3://BUCKET/PREFIX or file:///DIR".into(),
        };
        let (inner, prefix): (Arc<dyn ObjectStore>, String) = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name"));
            }
            // Fail in seconds, not minutes: short connect timeout, few retries.
            let client = ClientOptions::new().with_connect_timeout(Duration::from_secs(3)).with_timeout(Duration::from_secs(300));
            let retry = RetryConfig {
                backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2), base: 2.0 },
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
            };
            let mut b = AmazonS3Builder::from_env().with_client_options(client).with_retry(retry).with_bucket_name(bucket);
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let files = aws_files();
            let file = |k: &str| files.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.clone());
            if env("AWS_ACCESS_KEY_ID").is_none() {
                if let (Some(id), Some(secret)) = (file("aws_access_key_id"), file("aws_secret_access_key")) {
                    b = b.with_access_key_id(id).with_secret_access_key(secret);
                    if let Some(t) = file("aws_session_token") {
                        b = b.with_token(t);
                    }
                }
            }
            if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
                b = b.with_region(file("region").unwrap_or_else(|| "us-east-1".into()));
            }
            let endpoint = env("AWS_ENDPOINT_URL").or_else(|| env("AWS_ENDPOINT")).or_else(|| file("endpoint_url"));
            if let Some(ep) = &endpoint {
                b = b.with_endpoint(ep);
            }
            // Plain http only when asked for: an http:// endpoint or AWS_ALLOW_HTTP=true.
            let allow_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) || env("AWS_ALLOW_HTTP").is_some_and(|v| v == "true");
            let s3 = b.with_allow_http(allow_http).build().map_err(|e| remote_err(url, "configure", e))?;
            (Arc::new(s3), prefix.trim_matches('/').to_string())
        } else if let Some(dir) = url.strip_prefix("file://").filter(|d| !d.starts_with('/')) {
            return Err(StoreError::Remote {
                url: url.to_string(),
                what: "open".into(),
                message: format!("`{dir}` is not an absolute path (in a file:// URL it would name a host)"),
                hint: format!(
                    "write file:///ABSOLUTE/DIR with three slashes, e.g. file://{}",
                    std::path::absolute(dir).map(|p| p.display().to_string()).unwrap_or_else(|_| format!("/{dir}"))
                ),
            });
        } else if let Some(dir) = url.strip_prefix("file://") {
            // A shared folder that is not there (an unmounted share, a typo) is an error, never
            // an empty store created in its place: only the local default store is made on first use.
            if !Path::new(dir).is_dir() {
                let what = if Path::new(dir).exists() { "is not a folder" } else { "does not exist" };
                return Err(StoreError::Remote {
                    url: url.to_string(),
                    what: "open".into(),
                    message: format!("{dir} {what}"),
                    hint: format!("mount the share, or fix the path; for a new shared store create the folder first (`mkdir -p {dir}`)"),
                });
            }
            (Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(|e| remote_err(url, "open", e))?), String::new())
        } else {
            return Err(bad("unknown scheme"));
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pipe-remote")
            .enable_all()
            .build()
            .map_err(|e| remote_err(url, "start the I/O runtime", e))?;
        let part_size = match std::env::var("PIPE_S3_PART_SIZE") {
            Ok(v) => v.parse::<usize>().ok().filter(|n| *n >= 5 << 20).ok_or_else(|| StoreError::Remote {
                url: url.to_string(),
                what: "PIPE_S3_PART_SIZE".into(),
                message: format!("`{v}` is not a byte count of at least 5 MiB (5242880)"),
                hint: "unset it (16 MiB parts) or give a number of bytes >= 5242880".into(),
            })?,
            Err(_) => PART_SIZE,
        };
        let remote = Remote { url: url.to_string(), inner, prefix, rt, part_size, read_only: Default::default() };
        let probe = remote.path("objects");
        remote.rt.block_on(remote.inner.list_with_delimiter(Some(&probe))).map_err(|e| remote_err(url, "list objects/", e))?;
        Ok(remote)
    }

    /// The shared directory of a `file://` remote (where every machine sees the same files, and
    /// file locks: `crate::store::Claim`); `None` for S3.
    pub fn shared_dir(&self) -> Option<&Path> {
        self.url.strip_prefix("file://").map(Path::new)
    }

    /// The URL the remote was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, rel: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(rel)
        } else {
            ObjPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// The bytes at `rel`, or None when there is no such object.
    pub fn get(&self, rel: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(rel);
        let got = self.rt.block_on(async {
            match self.inner.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map_err(|e| remote_err(&self.url, &format!("get {rel}"), e))
    }

    /// The size of the object at `rel`, or None when there is none.
    pub fn size(&self, rel: &str) -> Result<Option<u64>, StoreError> {
        match self.rt.block_on(self.inner.head(&self.path(rel))) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote_err(&self.url, &format!("head {rel}"), e)),
        }
    }

    /// Writes bookkeeping that other machines may use but no command here needs (a ref, a run
    /// record, a failed attempt's log): like [`Remote::put`], except that where the remote refuses
    /// writes (read-only credentials or share: `pull`, `status`, a fully cached `run` must work
    /// there) it warns once and keeps the entry in the local cache only. Other errors are errors.
    pub fn put_shared(&self, rel: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self.read_only.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.put_raw(rel, bytes) {
            Ok(()) => Ok(()),
            Err(e) if refused(&e) => {
                if !self.read_only.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "warning: {} refuses writes (read-only access): refs and run records are kept in the local cache only; results already there are used as they are",
                        self.url
                    );
                }
                Ok(())
            }
            Err(e) => Err(remote_err(&self.url, &format!("put {rel}"), e)),
        }
    }

    /// Writes `bytes` at `rel` in one PUT, replacing any object there.
    pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.put_raw(rel, bytes).map_err(|e| remote_err(&self.url, &format!("put {rel}"), e))
    }

    /// One PUT of `bytes` at `rel`, its error as object_store gives it.
    fn put_raw(&self, rel: &str, bytes: Vec<u8>) -> Result<(), object_store::Error> {
        self.rt.block_on(self.inner.put(&self.path(rel), PutPayload::from(bytes))).map(|_| ())
    }

    /// Uploads a file: one PUT, or a multipart upload in `part_size` parts for a large one (read
    /// a part at a time, at most 4 parts in flight; aborted on error).
    pub fn put_file(&self, rel: &str, path: &Path) -> Result<(), StoreError> {
        use std::io::Read;
        let read_err = |e: std::io::Error| remote_err(&self.url, &format!("read {}", path.display()), e);
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size <= self.part_size as u64 {
            return self.put(rel, std::fs::read(path).map_err(read_err)?);
        }
        let mut file = std::fs::File::open(path).map_err(read_err)?;
        let location = self.path(rel);
        self.rt.block_on(async {
            let upload = self.inner.put_multipart(&location).await.map_err(|e| remote_err(&self.url, &format!("start upload of {rel}"), e))?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, self.part_size);
            let mut buf = vec![0u8; self.part_size];
            let result: Result<(), StoreError> = async {
                loop {
                    let n = file.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        return Ok(());
                    }
                    writer.wait_for_capacity(4).await.map_err(|e| remote_err(&self.url, &format!("upload {rel}"), e))?;
                    writer.write(&buf[..n]);
                }
            }
            .await;
            match result {
                Ok(()) => writer.finish().await.map(|_| ()).map_err(|e| remote_err(&self.url, &format!("finish upload of {rel}"), e)),
                Err(e) => {
                    let _ = writer.abort().await;
                    Err(e)
                }
            }
        })
    }

    /// Downloads `rel` (`size` bytes) into `dest`, a part at a time for a large object; returns
    /// the blake3 hash of what was written, or None when there is no such object.
    pub fn get_to_file(&self, rel: &str, size: u64, dest: &Path) -> Result<Option<String>, StoreError> {
        use std::io::Write;
        let write_err = |e: std::io::Error| remote_err(&self.url, &format!("write {}", dest.display()), e);
        let mut hasher = blake3::Hasher::new();
        let mut file = std::fs::File::create(dest).map_err(write_err)?;
        if size <= self.part_size as u64 {
            let Some(bytes) = self.get(rel)? else { return Ok(None) };
            hasher.update(&bytes);
            file.write_all(&bytes).map_err(write_err)?;
        } else {
            let location = self.path(rel);
            let mut start = 0u64;
            while start < size {
                let end = (start + self.part_size as u64).min(size);
                let part = match self.rt.block_on(self.inner.get_range(&location, start..end)) {
                    Ok(b) => b,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(remote_err(&self.url, &format!("get {rel} bytes {start}..{end}"), e)),
                };
                if part.is_empty() {
                    break; // shorter than the record says: the hash check will tell
                }
                hasher.update(&part);
                file.write_all(&part).map_err(write_err)?;
                start += part.len() as u64;
            }
        }
        file.sync_all().map_err(write_err)?;
        Ok(Some(hasher.finalize().to_hex().to_string()))
    }

    /// One level of a listing under `rel`: (objects as (path, size, modified unix seconds),
    /// sub-folders), all relative to the store's prefix.
    pub fn list(&self, rel: &str) -> Result<(Vec<Listed>, Vec<String>), StoreError> {
        let listing =
            self.rt.block_on(self.inner.list_with_delimiter(Some(&self.path(rel)))).map_err(|e| remote_err(&self.url, &format!("list {rel}"), e))?;
        let strip = |p: &ObjPath| {
            let p = p.as_ref();
            if self.prefix.is_empty() {
                p.to_string()
            } else {
                p.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(p).to_string()
            }
        };
        let objects =
            listing.objects.iter().map(|m| Listed { rel: strip(&m.location), size: m.size, modified: m.last_modified.timestamp() }).collect();
        Ok((objects, listing.common_prefixes.iter().map(strip).collect()))
    }

    /// Deletes the object at `rel`; one that is not there is no error.
    pub fn delete(&self, rel: &str) -> Result<(), StoreError> {
        match self.rt.block_on(self.inner.delete(&self.path(rel))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote_err(&self.url, &format!("delete {rel}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_from_ini() {
        let text = "[default]\naws_access_key_id = A\n[other]\naws_access_key_id=B\nAWS_Secret_Access_Key = S\n";
        assert_eq!(
            ini_section(text, &["other".into()]),
            vec![("aws_access_key_id".into(), "B".into()), ("aws_secret_access_key".into(), "S".into())]
        );
        assert_eq!(ini_section(text, &["default".into()]), vec![("aws_access_key_id".into(), "A".into())]);
    }

    #[test]
    fn file_remote_round_trip() {
        let dir = std::env::temp_dir().join(format!("pipe-remote-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A share that is not there is an error (an unmounted share must not become an empty store).
        let e = Remote::open(&format!("file://{}", dir.display())).err().expect("a missing folder is refused");
        assert!(e.to_string().contains("does not exist"), "{e}");
        std::fs::create_dir_all(&dir).unwrap();
        let r = Remote::open(&format!("file://{}", dir.display())).unwrap();
        assert!(r.get("nodes/x.json").unwrap().is_none());
        r.put("nodes/x.json", b"{}".to_vec()).unwrap();
        assert_eq!(r.get("nodes/x.json").unwrap().unwrap().as_ref(), b"{}");
        assert_eq!(r.size("nodes/x.json").unwrap(), Some(2));
        r.delete("nodes/x.json").unwrap();
        assert!(r.size("nodes/x.json").unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hints_follow_the_failure_not_digits_in_the_url() {
        let hint = |msg: &str| match remote_err("s3://b/p", "list objects/", msg) {
            StoreError::Remote { hint, .. } => hint,
            other => panic!("{other:?}"),
        };
        // A dead endpoint whose port holds "403" is unreachable, not a refusal of credentials.
        let dead = "Error performing GET http://127.0.0.1:35403/b?list-type=2 in 389.5ms, after 3 retries - HTTP error: error sending request";
        assert!(hint(dead).contains("unreachable"), "{}", hint(dead));
        assert!(hint("Client error with status 403 Forbidden: <Error><Code>InvalidAccessKeyId</Code></Error>").contains("refused the credentials"));
        assert!(hint("Client error with status 404 Not Found: NoSuchBucket").contains("does not exist"));
    }

    #[test]
    fn bad_scheme_is_named() {
        let e = crate::error::render(&Remote::open("gs://b/p").err().unwrap());
        assert!(e.contains("gs://b/p") && e.contains("s3://BUCKET/PREFIX"), "{e}");
    }
}
