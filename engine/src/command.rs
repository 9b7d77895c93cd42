//! The generic `command` stage: a shell command with declared inputs and outputs (like a DVC stage).
//!
//! In `cmd`, `${inputs.NAME}` expands to the input's path(s), `${inputs.NAME.list}` to a file
//! listing them one per line (for gathers of thousands: `xargs cat < ${inputs.tables.list}`), and
//! `${outputs.FILE}` to the path the command must write. The command runs as a script file with
//! `sh`, so no length of it meets the OS argument limit. The command runs in the workspace with `PIPE_OUT` (its scratch folder) and
//! `PIPE_THREADS` set; its stdout and stderr go to the node's log. The node's id is not exposed:
//! it is not in the key (a renamed stage is a cache hit), so an output must not hold it; pass what
//! a command needs as `${matrix.AXIS}` in `cmd`, which is.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::log::Stream;
use crate::stage::{InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use crate::value::Value;

/// How long a command's pipes are read after it exits, for what a process it started in the
/// background may still write.
const DRAIN: Duration = Duration::from_secs(3);

/// The `command` stage kind (version 1): runs the `cmd` param with `sh -c` in the workspace and
/// stores each file named in `outputs` as an output of that name. Cancelling the run stops the
/// command's whole process group.
pub struct CommandStage;

fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Expands `${inputs.X}` and `${outputs.X}`; other text is left alone.
fn expand(cmd: &str, ctx: &RunContext) -> Result<String, StageError> {
    let mut out = String::new();
    let mut rest = cmd;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| StageError::failed(format!("unclosed `${{` in cmd `{cmd}`")))?;
        let r = &after[..end];
        match r.split_once('.') {
            // `${inputs.NAME.list}`: a file listing the input's paths, one per line, for a
            // gather of any size (what no argument list holds).
            Some(("inputs", name)) if name.ends_with(".list") && !ctx.inputs.contains_key(name) => {
                let name = &name[..name.len() - ".list".len()];
                let paths = ctx
                    .inputs
                    .get(name)
                    .ok_or_else(|| StageError::failed(format!("cmd uses `${{inputs.{name}.list}}` but the stage declares no input `{name}`")))?;
                let list = ctx.work_dir.join(format!(".inputs-{name}.list"));
                let mut text = String::new();
                for p in paths {
                    text.push_str(&p.to_string_lossy());
                    text.push('\n');
                }
                std::fs::write(&list, text).map_err(|e| StageError::io("cannot write the input list", e))?;
                out.push_str(&quote(&list.to_string_lossy()));
            }
            Some(("inputs", name)) => {
                let paths = ctx
                    .inputs
                    .get(name)
                    .ok_or_else(|| StageError::failed(format!("cmd uses `${{inputs.{name}}}` but the stage declares no input `{name}`")))?;
                let quoted: Vec<String> = paths.iter().map(|p| quote(&p.to_string_lossy())).collect();
                out.push_str(&quoted.join(" "));
            }
            Some(("outputs", name)) => {
                if !ctx.outputs.iter().any(|o| o.name == name) {
                    return Err(StageError::failed(format!("cmd uses `${{outputs.{name}}}` but `outputs` does not list `{name}`")));
                }
                out.push_str(&quote(&ctx.output(name).to_string_lossy()));
            }
            _ => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl StageKind for CommandStage {
    fn name(&self) -> &'static str {
        "command"
    }
    fn version(&self) -> u32 {
        1
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("cmd", ParamType::Str, "shell command; `${inputs.NAME}` and `${outputs.FILE}` expand to paths"),
            ParamSpec::optional(
                "outputs",
                ParamType::List(Box::new(ParamType::Str)),
                Value::List(vec![]),
                "files the command writes, e.g. [model.bin]",
            ),
        ]
    }
    fn inputs(&self) -> InputDecl {
        InputDecl::Any
    }
    fn outputs(&self, params: &Params) -> Result<Vec<OutputSpec>, String> {
        let names = params.str_list("outputs").map_err(|e| e.to_string())?;
        let mut out: Vec<OutputSpec> = Vec::new();
        for n in names {
            if n.is_empty() || n.contains('/') || n.starts_with('.') {
                return Err(format!("output `{n}` must be a plain file name (no `/`, not hidden)"));
            }
            if out.iter().any(|o| o.name == n) {
                return Err(format!("output `{n}` is listed twice"));
            }
            out.push(OutputSpec::new(&n, &n));
        }
        Ok(out)
    }
    fn run(&self, ctx: &RunContext) -> Result<(), StageError> {
        let cmd = expand(ctx.params.str("cmd")?, ctx)?;
        if cmd.len() <= 4096 {
            ctx.log(format!("$ {cmd}"));
        } else {
            let cut = (0..=4096).rev().find(|&i| cmd.is_char_boundary(i)).unwrap_or(0);
            ctx.log(format!("$ {} ... ({} bytes)", &cmd[..cut], cmd.len()));
        }
        // The command is a script file, not an argument: a gather's thousands of paths never meet
        // the kernel's limit on one argument (128 KiB) or on all of them.
        let script = ctx.work_dir.join(".pipe-command.sh");
        std::fs::write(&script, &cmd).map_err(|e| StageError::io("cannot write the command's script", e))?;
        // Its own process group, so cancellation reaches every process the command started.
        let mut child = Command::new("sh")
            .arg(&script)
            .current_dir(&ctx.workspace)
            .env("PIPE_OUT", &ctx.work_dir)
            .env("PIPE_THREADS", ctx.threads.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| StageError::io("cannot start `sh`", e))?;
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let _guard = Guard::start(group);
        // Both pipes are always drained, as bytes (a non-UTF-8 line is logged lossily, never
        // stops the reader), by threads that hand lines over a channel, each line tagged with its
        // stream: the node never waits for a pipe that a background child keeps open, and the
        // end of stderr (a traceback) is kept apart from stdout lines read after it.
        let (tx, rx) = mpsc::channel::<(Stream, Vec<u8>)>();
        let pipes: Vec<(Stream, Box<dyn Read + Send>)> = [
            child.stdout.take().map(|r| (Stream::Stdout, Box::new(r) as Box<dyn Read + Send>)),
            child.stderr.take().map(|r| (Stream::Stderr, Box::new(r) as Box<dyn Read + Send>)),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (stream, pipe) in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                loop {
                    let mut line = Vec::new();
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if tx.send((stream, line)).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        drop(tx);
        let log = |(stream, line): (Stream, Vec<u8>)| ctx.log_from(stream, String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
        let status = loop {
            match try_wait_with_usage(&child) {
                Ok(Some((st, cpu_s))) => {
                    ctx.set_cpu_seconds(Some(cpu_s));
                    break st;
                }
                Ok(None) if ctx.is_cancelled() => {
                    kill_group(group, &mut child);
                    return Err(StageError::Cancelled);
                }
                Ok(None) => {
                    // Everything already read, then wait a moment for more.
                    while let Ok(item) = rx.try_recv() {
                        log(item);
                    }
                    if let Ok(item) = rx.recv_timeout(Duration::from_millis(20)) {
                        log(item);
                    }
                }
                Err(e) => {
                    kill_group(group, &mut child);
                    return Err(StageError::io("waiting for the command", e));
                }
            }
        };
        // The command ended: read its pipes to their end (both readers stop at end of file). A
        // background process it left may hold a pipe open; after a few seconds the node goes on
        // and says so, rather than waiting on it or dropping what was already written.
        let deadline = Instant::now() + DRAIN;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(item) => log(item),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    ctx.log(format!(
                        "[pipe: the command exited, but a process it started still holds its stdout or stderr open after {} s; output after this line is not kept]",
                        DRAIN.as_secs()
                    ));
                    break;
                }
            }
        }
        if status.success() {
            return Ok(());
        }
        // A command killed by a signal while the run is being interrupted (Ctrl-C at a terminal, or
        // `scancel`, which signals every process of the job) was cancelled, not failed: the
        // signal may reach the command a moment before this process's handler sets the flag.
        if status.signal().is_some() {
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline && !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(10));
            }
            if ctx.is_cancelled() {
                return Err(StageError::Cancelled);
            }
        }
        Err(StageError::failed(match (status.code(), status.signal()) {
            (Some(c), _) => format!("command exited with status {c}"),
            (None, Some(sig)) => format!("command was killed by signal {sig}"),
            (None, None) => "command was killed by a signal".to_string(),
        }))
    }
}

/// `child`'s exit status and CPU seconds (user + system: the shell's and those of the processes
/// it waited for) once it has exited (reaped here, with `wait4`, which `try_wait` cannot report);
/// `None` while it runs.
/// Errors: the wait failed (the child is not this process's).
fn try_wait_with_usage(child: &std::process::Child) -> std::io::Result<Option<(std::process::ExitStatus, f64)>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 writes the status and a whole `rusage` into the pointers when it returns the pid.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, libc::WNOHANG, usage.as_mut_ptr()) };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(None),
        _ => {
            // SAFETY: initialised by the successful call above.
            let u = unsafe { usage.assume_init() };
            Ok(Some((std::process::ExitStatus::from_raw(status), cpu_seconds_of(&u))))
        }
    }
}

/// The CPU seconds (user + system) a `rusage` counts.
pub(crate) fn cpu_seconds_of(u: &libc::rusage) -> f64 {
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// Kills a command's process group if the process running the command dies first (`kill -9`,
/// the OOM killer, a Slurm job's end), so no process a stage started outlives it unseen: a `sh`
/// outside the group waits on a pipe only this process holds (close-on-exec, so the command
/// never inherits it). When this process dies the pipe reaches end of file and the guard sends
/// SIGKILL to the group; when the node ends normally the guard is told `done` and exits.
struct Guard(Option<(std::process::Child, std::process::ChildStdin)>);

impl Guard {
    fn start(group: nix::unistd::Pid) -> Guard {
        let script = format!("read -r line; [ \"$line\" = done ] || kill -9 -{group} 2>/dev/null");
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a terminal's Ctrl-C (handled by pipe itself) does not end it.
            .process_group(0)
            .spawn();
        match spawned {
            Ok(mut child) => {
                let stdin = child.stdin.take();
                Guard(stdin.map(|s| (child, s)))
            }
            Err(e) => {
                tracing::warn!("cannot start the guard of a command's processes: {e}");
                Guard(None)
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self.0.take() {
            use std::io::Write as _;
            let _ = stdin.write_all(b"done\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Stops a command's whole process group: SIGTERM, then SIGKILL after a second at most.
fn kill_group(group: nix::unistd::Pid, child: &mut std::process::Child) {
    use nix::sys::signal::{killpg, Signal};
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stragglers that ignored SIGTERM.
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}
