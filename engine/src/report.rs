//! Run events and their consumers: the terminal display (indicatif bars or plain lines) and logs.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::graph::Graph;
use crate::stage::{NoProgress, Progress};
use crate::store::{RunNode, RunState};

/// What the scheduler reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// The run starts.
    Planned {
        /// The number of nodes in the graph.
        total: usize,
    },
    /// A node missed the cache and starts running (here, or as a Slurm job).
    Started {
        /// The node's id.
        node: &'a str,
    },
    /// A node's end, however it ended: ran, cached, failed (its stage, its inputs, storing or
    /// publishing its outputs), skipped after an upstream failure, or cancelled. Exactly one per
    /// node and run; the run record is these entries ([`Recorder`]).
    Finished {
        /// The node's entry in the run record.
        node: &'a RunNode,
    },
    /// Something to know that does not fail the node (a damaged cache entry recomputed, an existing file kept before publishing over it).
    Warning {
        /// The node's id.
        node: &'a str,
        /// The warning.
        message: &'a str,
    },
    /// A node's stage (or Slurm job) ended, however it ended: its progress sink is no longer used.
    ProgressDone {
        /// The node's id.
        node: &'a str,
    },
}

/// Receives a run's events and hands out progress sinks; the scheduler's threads call it concurrently.
pub trait Reporter: Send + Sync {
    /// Handles one event.
    fn event(&self, e: &Event<'_>);
    /// A progress sink for long work inside `node`.
    fn progress(&self, node: &str) -> Arc<dyn Progress>;
}

/// Folds a run's events into its record: each node's [`Event::Finished`] entry, in the graph's
/// order ([`Recorder::nodes`]), passing every event on to the reporter it wraps (the terminal).
/// The run's summary line and exit code come from these entries ([`crate::store::Tally`]).
pub struct Recorder<'a> {
    inner: &'a dyn Reporter,
    finished: Mutex<HashMap<String, RunNode>>,
}

impl<'a> Recorder<'a> {
    /// A recorder in front of `inner`.
    pub fn new(inner: &'a dyn Reporter) -> Self {
        Recorder { inner, finished: Mutex::default() }
    }

    /// The run record's nodes, one per node of `graph` in its order. A node no `Finished` event
    /// reached (the run was not started, or a scheduler bug) is recorded as cancelled, so the
    /// record never claims more than happened.
    pub fn nodes(&self, graph: &Graph) -> Vec<RunNode> {
        let mut done = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        graph
            .order()
            .iter()
            .map(|&i| {
                let n = graph.node(i);
                done.remove(&n.id).unwrap_or_else(|| RunNode::not_run(&n.id, &n.stage, RunState::Cancelled, "not started".into()))
            })
            .collect()
    }
}

impl Reporter for Recorder<'_> {
    fn event(&self, e: &Event<'_>) {
        if let Event::Finished { node } = e {
            self.finished.lock().unwrap_or_else(|e| e.into_inner()).insert(node.node.clone(), (*node).clone());
        }
        self.inner.event(e);
    }
    fn progress(&self, node: &str) -> Arc<dyn Progress> {
        self.inner.progress(node)
    }
}

/// Shows nothing (benchmarks, library use).
pub struct Silent;
impl Reporter for Silent {
    fn event(&self, _: &Event<'_>) {}
    fn progress(&self, _: &str) -> Arc<dyn Progress> {
        Arc::new(NoProgress)
    }
}

/// Progress bars on a terminal; one line per finished node otherwise (CI logs, pipes).
pub struct Terminal {
    bars: Option<MultiProgress>,
    main: Mutex<Option<ProgressBar>>,
    node_bars: Mutex<HashMap<String, ProgressBar>>,
    verbose_cached: bool,
}

impl Terminal {
    /// Progress bars when stderr is a terminal, plain lines otherwise; with `verbose_cached`, a line per cache hit too.
    pub fn new(verbose_cached: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        Terminal {
            bars: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))),
            main: Mutex::new(None),
            node_bars: Mutex::new(HashMap::new()),
            verbose_cached,
        }
    }

    fn line(&self, s: String) {
        match &self.bars {
            Some(mp) => {
                let _ = mp.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    fn tick(&self) {
        if let Some(b) = self.main.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.inc(1);
        }
    }

    /// Clears the overall progress bar; call once the run is over.
    pub fn finish(&self) {
        if let Some(b) = self.main.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

/// A node's line: a spinner while its length is unknown (a shell command, a Slurm job in the
/// queue), a bar with an ETA once the stage says how many steps it has (epochs).
struct BarProgress(ProgressBar, std::sync::Once);
impl Progress for BarProgress {
    fn set_length(&self, len: u64) {
        self.1.call_once(|| {
            self.0.disable_steady_tick();
            self.0.set_style(
                ProgressStyle::with_template("  {prefix:.bold} {bar:25.green/white} {pos}/{len} {msg} [{elapsed}<{eta}]").expect("valid template"),
            );
        });
        self.0.set_length(len);
    }
    fn set_position(&self, pos: u64) {
        self.0.set_position(pos);
    }
    fn set_message(&self, msg: String) {
        self.0.set_message(msg);
    }
}

impl Reporter for Terminal {
    fn event(&self, e: &Event<'_>) {
        match *e {
            Event::Planned { total } => {
                if let Some(mp) = &self.bars {
                    let b = mp.add(ProgressBar::new(total as u64));
                    b.set_style(
                        ProgressStyle::with_template("{spinner} nodes {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}] {msg}")
                            .expect("valid template"),
                    );
                    b.enable_steady_tick(Duration::from_millis(200));
                    *self.main.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
                }
            }
            Event::Started { node } => tracing::debug!(node, "started"),
            Event::Finished { node: rn } => {
                let node = &rn.node;
                match rn.state {
                    RunState::Cached if !self.verbose_cached => {}
                    RunState::Cached => self.line(format!("  cached    {node}")),
                    RunState::Ran => self.line(format!("  ran       {node} ({:.1}s)", rn.duration_s)),
                    RunState::Failed => self.line(format!("  FAILED    {node}\n{}", indent(rn.error.as_deref().unwrap_or_default()))),
                    RunState::Skipped | RunState::Cancelled => {
                        self.line(format!("  {:<9} {node}: {}", rn.state.as_str(), rn.error.as_deref().unwrap_or_default()))
                    }
                }
                self.tick();
            }
            Event::Warning { node, message } => self.line(format!("  warning   {node}: {message}")),
            Event::ProgressDone { node } => {
                if let Some(b) = self.node_bars.lock().unwrap_or_else(|e| e.into_inner()).remove(node) {
                    b.finish_and_clear();
                }
            }
        }
    }

    fn progress(&self, node: &str) -> Arc<dyn Progress> {
        let Some(mp) = &self.bars else { return Arc::new(NoProgress) };
        let b = mp.add(ProgressBar::new(0));
        b.set_style(ProgressStyle::with_template("  {spinner} {prefix:.bold} {msg} [{elapsed}]").expect("valid template"));
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b.set_prefix(node.to_string());
        self.node_bars.lock().unwrap_or_else(|e| e.into_inner()).insert(node.to_string(), b.clone());
        Arc::new(BarProgress(b, std::sync::Once::new()))
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n")
}
