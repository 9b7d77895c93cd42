//! Training checkpoints at epoch boundaries, so an interrupted or extended training resumes with
//! the same bytes as a cold run.
//!
//! One safetensors file per checkpoint in the checkpoint folder, written atomically (a temporary
//! file in the same folder, synced, then renamed): `epoch-{k}.partial.safetensors` while training,
//! `epoch-{E}.safetensors` once a training of `epochs = E` completes. Writing partial k removes the
//! partial files of earlier epochs; completed files are never removed (a later `epochs: 2E` run
//! resumes from them). Non-tensor state is stored as tensors:
//!
//! | name | dtype, shape | content |
//! |---|---|---|
//! | `checkpoint.format` | i64 [1] | [`FORMAT`] |
//! | `checkpoint.kind` | u8 [n] | `pretrain_ae` or `train_svdd` (UTF-8) |
//! | `checkpoint.config` | u8 [n] | the settings that shape the trajectory, all but `epochs` (UTF-8) |
//! | `checkpoint.epoch` | i64 [1] | epochs done, k |
//! | `var.<name>` | as the variable | every VarStore variable (BatchNorm running statistics too) |
//! | `adam.*` | | the optimiser state ([`Adam::state_tensors`]) |
//! | `rng.state` | i64 [1] | the shuffling generator ([`Rng::state`], bits as i64) |
//! | `history.*` | i64/f64 [k] | `epoch`, `loss`, `svdd_loss`, `reconstruction_loss`, `lr` |
//! | others | | what the loop carries (Deep SVDD: `svdd.c` f32 [rep_dim], `svdd.radius` f64 [1]) |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use super::adam::Adam;
use super::History;
use crate::rng::Rng;
use crate::{io_err, Error, Monitor, Result};

/// Version of the checkpoint layout; another value is refused.
pub const FORMAT: i64 = 1;

/// Where and how often a training saves its state.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    /// The checkpoint folder (created when missing). One folder per training: its files are
    /// resumed whenever their settings (all but `epochs`) match.
    pub dir: PathBuf,
    /// Least time between two saves; zero saves every epoch. The last epoch is always saved.
    pub min_interval: Duration,
}

impl Checkpoints {
    /// Checkpoints in `dir`, one per epoch.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpoints { dir: dir.into(), min_interval: Duration::ZERO }
    }

    /// The same, saving at most every `min_interval` (and always at the last epoch).
    pub fn with_min_interval(mut self, min_interval: Duration) -> Self {
        self.min_interval = min_interval;
        self
    }
}

/// The file name of the checkpoint after `epoch` epochs: `epoch-{epoch}.safetensors` when the
/// training completed there, `epoch-{epoch}.partial.safetensors` otherwise.
pub fn file_name(epoch: usize, complete: bool) -> String {
    if complete {
        format!("epoch-{epoch}.safetensors")
    } else {
        format!("epoch-{epoch}.partial.safetensors")
    }
}

/// Parses a checkpoint file name: (epoch, complete).
fn parse_name(name: &str) -> Option<(usize, bool)> {
    let rest = name.strip_prefix("epoch-")?;
    let (num, complete) = match rest.strip_suffix(".partial.safetensors") {
        Some(n) => (n, false),
        None => (rest.strip_suffix(".safetensors")?, true),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((num.parse().ok()?, complete))
}

/// The checkpoint files in `dir` as (epoch, complete, path); none when `dir` does not exist.
fn list(dir: &Path) -> Result<Vec<(usize, bool, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if let Some((epoch, complete)) = entry.file_name().to_str().and_then(parse_name) {
            out.push((epoch, complete, entry.path()));
        }
    }
    Ok(out)
}

/// The checkpoint to resume a training of `epochs` epochs from: the highest epoch <= `epochs`,
/// the completed file when both exist.
pub fn latest(dir: &Path, epochs: usize) -> Result<Option<(usize, PathBuf)>> {
    Ok(list(dir)?.into_iter().filter(|(e, _, _)| *e <= epochs).max_by_key(|(e, complete, _)| (*e, *complete)).map(|(e, _, p)| (e, p)))
}

/// Where a checkpoint's SHA-256 is kept: `<file>.sha256`, one line of hex.
pub fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".sha256");
    path.with_file_name(name)
}

/// The SHA-256 of a file's bytes, lowercase hex.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn take(t: &mut BTreeMap<String, Tensor>, k: &str) -> Result<Tensor, String> {
    t.remove(k).ok_or_else(|| format!("no tensor `{k}`"))
}

/// The loop's mutable state that a checkpoint captures besides its own extra tensors.
pub(crate) struct LoopState<'a> {
    pub vs: &'a VarStore,
    pub adam: &'a mut Adam,
    pub rng: &'a mut Rng,
    pub history: &'a mut History,
}

/// Checkpointing of one training run: finds and restores the latest checkpoint, saves new ones.
pub(crate) struct Session<'a> {
    ck: Option<&'a Checkpoints>,
    kind: &'static str,
    config: String,
    epochs: usize,
    last_save: Instant,
}

impl<'a> Session<'a> {
    /// `kind` and `config` (every setting that changes the trajectory, except `epochs`) are stored
    /// in each checkpoint and must match to resume.
    pub fn new(ck: Option<&'a Checkpoints>, kind: &'static str, config: String, epochs: usize) -> Self {
        Session { ck, kind, config, epochs, last_save: Instant::now() }
    }

    /// Restores the latest usable checkpoint into `state`; returns its epoch and what `extras`
    /// made of the remaining tensors (the loop's own state), or None for a cold start. A file that
    /// does not load is an error naming it (never a silent restart).
    pub fn resume<T>(
        &self,
        state: LoopState<'_>,
        extras: impl FnOnce(&mut BTreeMap<String, Tensor>) -> Result<T, String>,
        monitor: &dyn Monitor,
    ) -> Result<Option<(usize, T)>> {
        let Some(ck) = self.ck else { return Ok(None) };
        let Some((epoch, path)) = latest(&ck.dir, self.epochs)? else { return Ok(None) };
        let extras = self.restore(&path, epoch, state, extras).map_err(|why| {
            Error::Data(format!(
                "{}: cannot resume training from this checkpoint: {why}. `pipe run --no-resume` starts over from epoch 0; \
                 deleting this file resumes from an earlier checkpoint in {}",
                path.display(),
                ck.dir.display()
            ))
        })?;
        monitor.log(&format!("resumed from epoch {epoch} of {} ({})", self.epochs, path.display()));
        Ok(Some((epoch, extras)))
    }

    fn restore<T>(
        &self,
        path: &Path,
        epoch: usize,
        state: LoopState<'_>,
        extras: impl FnOnce(&mut BTreeMap<String, Tensor>) -> Result<T, String>,
    ) -> Result<T, String> {
        let want =
            std::fs::read_to_string(sidecar(path)).map_err(|e| format!("its checksum file {} cannot be read ({e})", sidecar(path).display()))?;
        let have = sha256_file(path).map_err(|e| e.to_string())?;
        if want.trim() != have {
            return Err(format!("its bytes changed since it was written (SHA-256 {have}, recorded {})", want.trim()));
        }
        let mut t: BTreeMap<String, Tensor> = Tensor::read_safetensors(path).map_err(|e| e.to_string())?.into_iter().collect();
        let int = |t: Tensor, k: &str| match (t.kind(), t.numel()) {
            (Kind::Int64, 1) => Ok(t.int64_value(&[0])),
            _ => Err(format!("`{k}` must be one int64")),
        };
        let text = |t: Tensor, k: &str| match t.kind() {
            Kind::Uint8 => String::from_utf8(Vec::<u8>::try_from(t.flatten(0, -1)).map_err(|e| e.to_string())?).map_err(|e| e.to_string()),
            _ => Err(format!("`{k}` must be u8 text")),
        };
        let format = int(take(&mut t, "checkpoint.format")?, "checkpoint.format")?;
        if format != FORMAT {
            return Err(format!("checkpoint format {format}, this build reads {FORMAT}"));
        }
        let kind = text(take(&mut t, "checkpoint.kind")?, "checkpoint.kind")?;
        if kind != self.kind {
            return Err(format!("it was written by `{kind}`, not `{}`", self.kind));
        }
        let config = text(take(&mut t, "checkpoint.config")?, "checkpoint.config")?;
        if config != self.config {
            return Err(format!("it was written with other settings ({config}; now {})", self.config));
        }
        let stored = int(take(&mut t, "checkpoint.epoch")?, "checkpoint.epoch")?;
        if stored != epoch as i64 {
            return Err(format!("it holds epoch {stored}, its name says {epoch}"));
        }
        // Variables: every one present, same shape and dtype.
        let mut vars: Vec<(String, Tensor)> = state.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut loaded = Vec::with_capacity(vars.len());
        for (name, var) in &vars {
            let k = format!("var.{name}");
            let src = take(&mut t, &k)?;
            if src.size() != var.size() || src.kind() != var.kind() {
                return Err(format!("`{k}` is {:?} {:?}, the model's is {:?} {:?}", src.kind(), src.size(), var.kind(), var.size()));
            }
            loaded.push(src);
        }
        if let Some(k) = t.keys().find(|k| k.starts_with("var.")) {
            return Err(format!("`{k}` is not a variable of this model"));
        }
        state.adam.load_state(&t).map_err(|e| e.to_string())?;
        t.retain(|k, _| !k.starts_with(super::adam::STATE_PREFIX));
        let rng = int(take(&mut t, "rng.state")?, "rng.state")?;
        let mut h = History::default();
        let col = |t: Tensor, k: &str, kind: Kind| {
            if t.kind() != kind || t.size() != [epoch as i64] {
                return Err(format!("`{k}` must be {kind:?} [{epoch}]"));
            }
            Ok(t)
        };
        h.epoch = Vec::<i64>::try_from(col(take(&mut t, "history.epoch")?, "history.epoch", Kind::Int64)?).map_err(|e| e.to_string())?;
        for (k, dst) in [
            ("history.loss", &mut h.loss),
            ("history.svdd_loss", &mut h.svdd),
            ("history.reconstruction_loss", &mut h.reconstruction),
            ("history.lr", &mut h.lr),
        ] {
            *dst = Vec::<f64>::try_from(col(take(&mut t, k)?, k, Kind::Double)?).map_err(|e| e.to_string())?;
        }
        if h.epoch != (1..=epoch as i64).collect::<Vec<_>>() {
            return Err(format!("`history.epoch` is not 1..={epoch}"));
        }
        let extras = extras(&mut t)?;
        // Every check passed: only now touch the model.
        tch::no_grad(|| {
            for ((_, var), src) in vars.iter().zip(&loaded) {
                var.shallow_clone().f_copy_(src).map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })?;
        *state.rng = Rng::from_state(rng as u64);
        *state.history = h;
        Ok(extras)
    }

    /// Called after each epoch: saves when `epoch` is the last one or `min_interval` has passed
    /// since the last save; `extra` are the loop's own tensors.
    pub fn epoch_done(&mut self, epoch: usize, state: LoopState<'_>, extra: impl FnOnce() -> Vec<(String, Tensor)>) -> Result<()> {
        let Some(ck) = self.ck else { return Ok(()) };
        let complete = epoch == self.epochs;
        if !complete && self.last_save.elapsed() < ck.min_interval {
            return Ok(());
        }
        let text = |s: &str| Tensor::from_slice(s.as_bytes());
        let mut named: Vec<(String, Tensor)> = vec![
            ("checkpoint.format".into(), Tensor::from_slice(&[FORMAT])),
            ("checkpoint.kind".into(), text(self.kind)),
            ("checkpoint.config".into(), text(&self.config)),
            ("checkpoint.epoch".into(), Tensor::from_slice(&[epoch as i64])),
            ("rng.state".into(), Tensor::from_slice(&[state.rng.state() as i64])),
            ("history.epoch".into(), Tensor::from_slice(&state.history.epoch)),
            ("history.loss".into(), Tensor::from_slice(&state.history.loss)),
            ("history.svdd_loss".into(), Tensor::from_slice(&state.history.svdd)),
            ("history.reconstruction_loss".into(), Tensor::from_slice(&state.history.reconstruction)),
            ("history.lr".into(), Tensor::from_slice(&state.history.lr)),
        ];
        let mut vars: Vec<(String, Tensor)> = state.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        named.extend(vars.into_iter().map(|(k, v)| (format!("var.{k}"), v.detach().to_device(tch::Device::Cpu).contiguous())));
        named.extend(state.adam.state_tensors());
        named.extend(extra().into_iter().map(|(k, v)| (k, v.detach().to_device(tch::Device::Cpu).contiguous())));
        std::fs::create_dir_all(&ck.dir).map_err(io_err(&ck.dir))?;
        let path = ck.dir.join(file_name(epoch, complete));
        let tmp = ck.dir.join(format!(".{}.tmp-{}", file_name(epoch, complete), std::process::id()));
        // The file's SHA-256 goes beside it (first, so a checkpoint is never without one): a
        // checkpoint whose bytes changed on disk is refused, never resumed into a wrong result.
        let written = Tensor::write_safetensors(&named, &tmp).map_err(Error::from).and_then(|()| {
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err(&tmp))?;
            let digest = sha256_file(&tmp).map_err(io_err(&tmp))?;
            let side = sidecar(&path);
            let side_tmp = ck.dir.join(format!(".{}.tmp-{}", side.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), std::process::id()));
            std::fs::write(&side_tmp, format!("{digest}\n")).map_err(io_err(&side_tmp))?;
            std::fs::rename(&side_tmp, &side).map_err(io_err(&side))?;
            std::fs::rename(&tmp, &path).map_err(io_err(&path))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Superseded partial files (never completed ones, nor later epochs' of a longer run).
        for (e, done, p) in list(&ck.dir)? {
            if !done && e < epoch {
                match std::fs::remove_file(&p) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&p)(err)),
                    _ => {}
                }
                let _ = std::fs::remove_file(sidecar(&p));
            }
        }
        self.last_save = Instant::now();
        Ok(())
    }
}
