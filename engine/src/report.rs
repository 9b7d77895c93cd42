//! Run events and their consumers: the terminal display (indicatif bars or plain lines) and logs.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stage::{NoProgress, Progress};

/// What the scheduler reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    Planned {
        total: usize,
    },
    Started {
        node: &'a str,
    },
    Cached {
        node: &'a str,
    },
    Ran {
        node: &'a str,
        seconds: f64,
    },
    Failed {
        node: &'a str,
        error: &'a str,
    },
    /// Skipped because an upstream failed, or cancelled by an interrupt.
    NotRun {
        node: &'a str,
        state: crate::store::RunState,
        reason: &'a str,
    },
    Warning {
        node: &'a str,
        message: &'a str,
    },
    ProgressDone {
        node: &'a str,
    },
}

pub trait Reporter: Send + Sync {
    fn event(&self, e: &Event<'_>);
    /// A progress sink for long work inside `node`.
    fn progress(&self, node: &str) -> Arc<dyn Progress>;
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
            Event::Cached { node } => {
                if self.verbose_cached {
                    self.line(format!("  cached    {node}"));
                }
                self.tick();
            }
            Event::Ran { node, seconds } => {
                self.line(format!("  ran       {node} ({seconds:.1}s)"));
                self.tick();
            }
            Event::Failed { node, error } => {
                self.line(format!("  FAILED    {node}\n{}", indent(error)));
                self.tick();
            }
            Event::NotRun { node, state, reason } => {
                self.line(format!("  {state:<9} {node}: {reason}"));
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
