//! Commands are run as a careful shell runs them: output read as bytes, the node ends when its
//! command ends, and a reader that goes away does not crash `pipe`.

mod common;
use common::Workspace;

use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn a_non_utf8_line_is_logged_and_the_command_is_not_killed() {
    let ws = Workspace::new("latin1");
    // One Latin-1 byte, then far more output than a pipe buffer holds: a reader that stopped at
    // the bad line would leave the command to die of SIGPIPE.
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    params: {cmd: \"printf 'caf\\\\351\\\\n'; seq 1 200000; echo done > ${outputs.o}\", outputs: [o]}\n",
    );
    ws.ok(&["run", "p.yaml"]);
    let show = String::from_utf8(ws.pipe(&["show", "p.yaml", "a"]).stdout).unwrap();
    assert!(show.contains("caf\u{FFFD}") && show.contains("\n200000\n"), "{}", &show[..show.len().min(400)]);
}

#[test]
fn a_background_child_does_not_keep_the_node_running() {
    let ws = Workspace::new("background");
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    params: {cmd: \"sleep 30 & echo ok > ${outputs.o}\", outputs: [o]}\n    publish: {o: out.txt}\n",
    );
    let t = Instant::now();
    ws.ok(&["run", "p.yaml"]);
    assert!(t.elapsed() < Duration::from_secs(10), "the node waited for its background child: {:?}", t.elapsed());
    assert_eq!(ws.read("out.txt"), "ok\n");
}

#[test]
fn a_closed_stdout_ends_status_quietly() {
    let ws = Workspace::new("epipe");
    // ~500 KB of status lines: far more than a pipe buffer, so `pipe` must meet the closed pipe.
    ws.write(
        "p.yaml",
        "stages:\n  a:\n    kind: command\n    matrix: {x: [VALUES]}\n    params: {cmd: \"true\"}\n"
            .replace("VALUES", &(0..20_000).map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
            .as_str(),
    );
    let mut child = ws.cmd(&["status", "p.yaml", "-v"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reader goes away (as `| head` does).
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    // Ended by SIGPIPE, as `head`'s other Unix writers are.
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&out.status), Some(13), "{:?}: {stderr}", out.status);
}

#[test]
fn sigterm_stops_the_node_and_its_children_quickly_and_keeps_the_record() {
    let ws = Workspace::new("sigterm");
    // A unique marker so the test finds exactly this command's background child.
    let marker = format!("{}", 4_000_000 + std::process::id() % 1_000_000);
    ws.write(
        "p.yaml",
        &format!("stages:\n  a:\n    kind: command\n    params: {{cmd: \"sleep {marker} & sleep {marker}; echo > ${{outputs.o}}\", outputs: [o]}}\n"),
    );
    let mut child = ws.cmd(&["run", "p.yaml"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    assert_eq!(status.code(), Some(130));
    assert_eq!(ws.last_run_status(), "interrupted");
    std::thread::sleep(Duration::from_millis(300));
    let left = std::process::Command::new("pgrep").args(["-f", &format!("sleep {marker}")]).output().unwrap();
    assert!(left.stdout.is_empty(), "children left running: {}", String::from_utf8_lossy(&left.stdout));
}
