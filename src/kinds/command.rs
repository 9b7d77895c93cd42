//! The generic `command` stage: a shell command with declared inputs and outputs (like a DVC stage).
//!
//! In `cmd`, `${inputs.NAME}` expands to the input's path(s) and `${outputs.FILE}` to the path the
//! command must write. The command runs in the workspace with `PIPE_OUT`, `PIPE_NODE` and
//! `PIPE_THREADS` set; its stdout and stderr go to the node's log.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::stage::{InputDecl, OutputSpec, ParamSpec, ParamType, Params, RunContext, StageError, StageKind};
use crate::value::Value;

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
            Some(("inputs", name)) => {
                let paths = ctx.inputs.get(name).ok_or_else(|| {
                    StageError::failed(format!("cmd uses `${{inputs.{name}}}` but the stage declares no input `{name}`"))
                })?;
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
            ParamSpec::optional("outputs", ParamType::List(Box::new(ParamType::Str)), Value::List(vec![]), "files the command writes, e.g. [model.bin]"),
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
        ctx.log(format!("$ {cmd}"));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(&ctx.workspace)
            .env("PIPE_OUT", &ctx.work_dir)
            .env("PIPE_NODE", &ctx.node)
            .env("PIPE_THREADS", ctx.threads.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StageError::io("cannot start `sh`", e))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let status = std::thread::scope(|s| {
            fn pump<R: Read + Send>(r: Option<R>, ctx: &RunContext) {
                if let Some(r) = r {
                    for line in BufReader::new(r).lines().map_while(Result::ok) {
                        ctx.log(line);
                    }
                }
            }
            s.spawn(|| pump(stdout, ctx));
            s.spawn(|| pump(stderr, ctx));
            loop {
                match child.try_wait() {
                    Ok(Some(st)) => return Ok(st),
                    Ok(None) if ctx.is_cancelled() => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(StageError::Cancelled);
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => return Err(StageError::io("waiting for the command", e)),
                }
            }
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(StageError::failed(match status.code() {
                Some(c) => format!("command exited with status {c}"),
                None => "command was killed by a signal".to_string(),
            }))
        }
    }
}
