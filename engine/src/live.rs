//! What a running node is doing, visible from outside the run: while a node computes, its
//! progress (epoch, loss) is kept in the store as `running/<key>.json`, rewritten at most five times
//! a second and removed when the node ends, so `pipe status` in another terminal shows each running
//! node's epoch, loss and time to go. A file whose process is gone (the run was killed) is
//! ignored, not shown as running.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::stage::Progress;
use crate::store::{now, write_atomic, Dir, Entry};

/// A running node's progress as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Running {
    /// The node's id.
    pub node: String,
    /// Its cache key.
    pub key: String,
    /// The host and process running it.
    pub host: String,
    /// Process id on `host`.
    pub pid: u32,
    /// When that process started (clock ticks after boot, from `/proc/PID/stat`): a pid reused by
    /// another process after the run was killed is not taken for the run.
    #[serde(default)]
    pub pid_started: Option<u64>,
    /// When the node started, in seconds since the Unix epoch.
    pub started_at: f64,
    /// When this was written.
    pub updated_at: f64,
    /// Steps done (epochs) and of how many; 0 of 0 before the kind says.
    pub position: u64,
    /// Steps in all.
    pub length: u64,
    /// The position the node started from (a resumed training's first epoch is not 0).
    pub first_position: Option<u64>,
    /// The kind's last message (e.g. `loss 0.01234`).
    pub message: String,
    /// Metric name -> (step, value) so far, in the order reported ([`Progress::metric`]): the
    /// running node's curves (a resumed training's start at its first step after the checkpoint).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub curves: std::collections::BTreeMap<String, Vec<(u64, f64)>>,
}

impl Running {
    /// Seconds to go at the rate since the node started, when it has moved.
    pub fn eta_s(&self) -> Option<f64> {
        let first = self.first_position.unwrap_or(0);
        let done = self.position.checked_sub(first).filter(|d| *d > 0)? as f64;
        let rate = (self.updated_at - self.started_at) / done;
        Some(rate * self.length.saturating_sub(self.position) as f64)
    }

    /// One line for `pipe status`: `epoch 12/50, loss 0.01234, 1m 3s so far, about 2m 40s to go (pid 41 on host)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.length > 0 {
            parts.push(format!("epoch {}/{}", self.position, self.length));
        }
        if !self.message.is_empty() {
            parts.push(self.message.clone());
        }
        parts.push(format!("{} so far", human(now() - self.started_at)));
        if let Some(eta) = self.eta_s() {
            parts.push(format!("about {} to go", human(eta)));
        }
        format!("{} (pid {} on {})", parts.join(", "), self.pid, self.host)
    }
}

/// A duration in seconds as `pipe status` prints it: `42s`, `3m 5s`, `2h 10m`.
pub fn human(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// This machine's host name ("" when it cannot be read).
pub fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// When process `pid` started, in clock ticks after boot (field 22 of `/proc/PID/stat`).
fn process_started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
}

/// Whether `r`'s process still runs (on another host: assumed, as nothing here can tell): the
/// pid is alive and, where its start time was recorded, started then.
fn alive(r: &Running, host: &str) -> bool {
    if r.host != host {
        return true;
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(r.pid as i32), None).is_ok()
        && (r.pid_started.is_none() || process_started(r.pid) == r.pid_started)
}

/// The nodes running now, by key, from `root`'s `running/` folder (files of dead processes skipped).
pub fn running(root: &Path) -> Vec<Running> {
    let host = hostname();
    let mut out: Vec<Running> = std::fs::read_dir(root.join(Entry::Dir(Dir::Running).rel()))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| serde_json::from_slice::<Running>(&std::fs::read(e.path()).ok()?).ok())
        .filter(|r| alive(r, &host))
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// A [`Progress`] that passes everything on and keeps `running/<key>.json` up to date; the file
/// goes when this is dropped (the node ended, however it ended).
pub struct LiveProgress {
    inner: Arc<dyn Progress>,
    path: PathBuf,
    state: Mutex<(Running, Option<Instant>)>,
}

/// How often the file is rewritten at most (an epoch's end is seen within this).
const EVERY: Duration = Duration::from_millis(200);

impl LiveProgress {
    /// Starts keeping node `node` (key `key`) in `root`'s `running/` folder.
    pub fn new(inner: Arc<dyn Progress>, root: &Path, node: &str, key: &str) -> LiveProgress {
        let t = now();
        let r = Running {
            node: node.to_string(),
            key: key.to_string(),
            host: hostname(),
            pid: std::process::id(),
            pid_started: process_started(std::process::id()),
            started_at: t,
            updated_at: t,
            position: 0,
            length: 0,
            first_position: None,
            message: String::new(),
            curves: Default::default(),
        };
        let live = LiveProgress { inner, path: root.join(Entry::Running(key).rel()), state: Mutex::new((r, None)) };
        live.update(|_| {}, true);
        live
    }

    fn update(&self, f: impl FnOnce(&mut Running), force: bool) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut st.0);
        if force || st.1.is_none_or(|t| t.elapsed() >= EVERY) {
            st.0.updated_at = now();
            st.1 = Some(Instant::now());
            // Best effort: a store that cannot take it only loses the live view.
            let _ = write_atomic(&self.path, &serde_json::to_vec(&st.0).expect("serialises"));
        }
    }
}

impl Progress for LiveProgress {
    fn set_length(&self, len: u64) {
        self.inner.set_length(len);
        self.update(|r| r.length = len, false);
    }
    fn set_position(&self, pos: u64) {
        self.inner.set_position(pos);
        self.update(
            |r| {
                // The first epoch reported after a resume says where it started.
                if r.first_position.is_none() {
                    r.first_position = Some(pos.saturating_sub(1));
                }
                r.position = pos;
            },
            false,
        );
    }
    fn set_message(&self, msg: String) {
        self.inner.set_message(msg.clone());
        self.update(|r| r.message = msg, false);
    }
    fn metric(&self, name: &str, step: u64, value: f64) {
        self.inner.metric(name, step, value);
        self.update(
            |r| {
                let curve = r.curves.entry(name.to_string()).or_default();
                // A bounded file however long the training: past the cap, every other point goes.
                if curve.len() >= MAX_POINTS {
                    let mut i = 0;
                    curve.retain(|_| {
                        i += 1;
                        i % 2 == 1
                    });
                }
                curve.push((step, value));
            },
            false,
        );
    }
}

/// Points kept per curve in a running file.
const MAX_POINTS: usize = 2000;

impl Drop for LiveProgress {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_to_go_counts_from_where_the_node_started() {
        let mut r = Running {
            node: "train".into(),
            key: "k".into(),
            host: "h".into(),
            pid: 1,
            pid_started: None,
            started_at: 100.0,
            updated_at: 160.0,
            position: 13,
            length: 50,
            first_position: Some(10),
            message: "loss 0.5".into(),
            curves: Default::default(),
        };
        // 3 epochs in 60 s since the resume at 10: 20 s each, 37 to go.
        assert_eq!(r.eta_s(), Some(740.0));
        r.first_position = Some(13);
        assert_eq!(r.eta_s(), None);
        assert_eq!(human(740.0), "12m 20s");
        assert_eq!(human(7325.0), "2h 2m");
    }

    #[test]
    fn a_reused_pid_is_not_the_run() {
        let me = std::process::id();
        let started = process_started(me);
        assert!(started.is_some());
        let mut r = Running {
            node: "n".into(),
            key: "k".into(),
            host: hostname(),
            pid: me,
            pid_started: started,
            started_at: 0.0,
            updated_at: 0.0,
            position: 0,
            length: 0,
            first_position: None,
            message: String::new(),
            curves: Default::default(),
        };
        assert!(alive(&r, &hostname()));
        r.pid_started = started.map(|t| t + 1);
        assert!(!alive(&r, &hostname()), "same pid, another start time: another process");
    }
}
