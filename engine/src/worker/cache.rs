//! The interface cache: what a worker said about its kinds, kept on disk per worker executable,
//! so that `pipe status` starts no worker once it has seen the pipeline.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::protocol::{stamp, KindDesc, Read, Stamp};
use super::{stat_of, WorkerError};
use crate::error::render;
use crate::stage::{OutputSpec, Params};

/// What a worker said, trusted while its executable's content is the same (a rebuilt worker with
/// the same bytes keeps it).
#[derive(Default, Serialize, Deserialize)]
struct KindCache {
    /// blake3 of the worker executable.
    worker: String,
    /// (size, mtime ns, inode) of the executable when `worker` was computed.
    stat: (u64, i64, u64),
    kinds: Vec<KindDesc>,
    /// kind + params (JSON) -> outputs: a pure function of the kind's code and the params.
    outputs: HashMap<String, Result<Vec<OutputSpec>, String>>,
    /// kind + params + working directory -> the environment and the stamps it depended on.
    environment: HashMap<String, CachedEnv>,
    #[serde(skip)]
    dirty: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct CachedEnv {
    values: BTreeMap<String, String>,
    read: Read,
}

/// The answers of one worker executable: in memory, saved to `~/.cache/pipe/workers/`.
pub(crate) struct Answers {
    cache: Mutex<KindCache>,
    file: Option<PathBuf>,
    /// Stamps of watched paths, taken once per process.
    stamps: Mutex<HashMap<PathBuf, Stamp>>,
    last_save: Mutex<Instant>,
}

fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("pipe").join("workers"))
}

impl Answers {
    /// The saved answers of `exe`, or none when it changed since; with the executable's stat
    /// (size, mtime, inode) now. Errors: `exe` is not there or cannot be read.
    pub(crate) fn open(exe: &Path) -> Result<(Answers, (u64, i64, u64)), String> {
        let meta = std::fs::metadata(exe).map_err(|e| render(&WorkerError::Missing { exe: exe.to_path_buf(), source: e }))?;
        let stat = stat_of(&meta);
        let file = cache_dir().map(|d| d.join(format!("{}.json", &blake3::hash(exe.as_os_str().as_encoded_bytes()).to_hex()[..16])));
        let mut cache: KindCache =
            file.as_deref().and_then(|f| std::fs::read(f).ok()).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        if cache.stat != stat || cache.kinds.is_empty() {
            let content = crate::hash::hash_file(exe).map_err(|e| format!("reading the stage worker {}: {e}", exe.display()))?;
            if content != cache.worker || cache.kinds.is_empty() {
                cache = KindCache { worker: content, ..Default::default() };
            }
            cache.stat = stat;
            cache.dirty = true;
        }
        let answers = Answers { cache: Mutex::new(cache), file, stamps: Mutex::new(HashMap::new()), last_save: Mutex::new(Instant::now()) };
        Ok((answers, stat))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KindCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kinds described (empty until [`Answers::set_kinds`]).
    pub(crate) fn kinds(&self) -> Vec<KindDesc> {
        self.lock().kinds.clone()
    }

    /// Keeps what `describe` answered.
    pub(crate) fn set_kinds(&self, kinds: Vec<KindDesc>) {
        let mut c = self.lock();
        c.kinds = kinds;
        c.dirty = true;
    }

    /// Saves new answers at most every two seconds (a grid of new nodes asks many questions);
    /// the rest are saved by [`Answers::save`].
    fn save_soon(&self) {
        let due = self.last_save.lock().unwrap_or_else(|e| e.into_inner()).elapsed() > Duration::from_secs(2);
        if due {
            self.save();
        }
    }

    /// Writes unsaved answers. A cache: a failed write is ignored (asked again next time), and
    /// another process may write at the same time; the last complete write wins.
    pub(crate) fn save(&self) {
        *self.last_save.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let Some(file) = &self.file else { return };
        let mut c = self.lock();
        if !c.dirty {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(&*c) {
            if crate::store::write_atomic(file, &bytes).is_ok() {
                c.dirty = false;
            }
        }
    }

    fn stamp(&self, p: &Path) -> Stamp {
        let mut s = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        *s.entry(p.to_path_buf()).or_insert_with(|| stamp(p))
    }

    /// `kind`'s outputs for `params`: kept, else `ask`ed and kept. Errors: what the kind (or the
    /// worker, asked) said.
    pub(crate) fn outputs(
        &self,
        kind: &str,
        params: &Params,
        ask: impl FnOnce() -> Result<Result<Vec<OutputSpec>, String>, String>,
    ) -> Result<Vec<OutputSpec>, String> {
        let key = format!("{kind}\n{}", serde_json::to_string(params).unwrap_or_default());
        if let Some(o) = self.lock().outputs.get(&key) {
            return o.clone();
        }
        let outputs = ask()?;
        let mut c = self.lock();
        c.outputs.insert(key, outputs.clone());
        c.dirty = true;
        drop(c);
        self.save_soon();
        outputs
    }

    /// `kind`'s environment for `params` here: kept while nothing it read changed, else `ask`ed
    /// (and kept when the kind said what it read). A worker that cannot answer gives a value no
    /// run ever recorded, so the node is not fresh (never a cache hit on an environment nobody
    /// checked), and running it reports the worker's failure.
    pub(crate) fn environment(
        &self,
        kind: &str,
        params: &Params,
        ask: impl FnOnce() -> Result<(BTreeMap<String, String>, Option<Read>), String>,
    ) -> BTreeMap<String, String> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let key = format!("{kind}\n{}\n{}", serde_json::to_string(params).unwrap_or_default(), cwd.display());
        let cached = self.lock().environment.get(&key).cloned();
        if let Some(e) = &cached {
            let same = e.read.paths.iter().all(|(p, s)| self.stamp(p) == *s) && e.read.vars.iter().all(|(v, x)| std::env::var(v).ok() == *x);
            if same {
                return e.values.clone();
            }
        }
        let (values, read) = match ask() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(kind, "the stage worker could not say the environment: {e}");
                return BTreeMap::from([("worker".to_string(), format!("unavailable: {e}"))]);
            }
        };
        if let Some(read) = read {
            let entry = CachedEnv { values: values.clone(), read };
            let mut c = self.lock();
            c.environment.insert(key, entry);
            c.dirty = true;
            drop(c);
            self.save_soon();
        }
        values
    }
}
