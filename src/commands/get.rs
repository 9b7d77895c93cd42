//! `pipe get FILE NODE OUTPUT DEST`: copy one output of a fresh node out of the store.

use std::path::{Path, PathBuf};

use crate::args::PipelineArgs;
use crate::commands::common::{load, one_node, open_store, ref_namespace, select, workspace};
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::plan::{self, Freshness};

/// `pipe get`'s arguments.
pub(crate) struct GetArgs {
    pub file: PathBuf,
    pub set: Vec<String>,
    pub node: String,
    pub output: String,
    pub dest: PathBuf,
}

/// `pipe get`.
pub(crate) fn get(g: &Ctx<'_>, a: GetArgs) -> Result<ExitStatus, CliError> {
    let GetArgs { file, set, node, output, dest } = a;
    let p = PipelineArgs { file: Some(file), set };
    let (pipeline, graph) = load(&p, g.registry)?;
    let id = &one_node(&pipeline.nodes, &graph, std::slice::from_ref(&node))?;
    // Only the node and its upstream decide whether it is fresh.
    let (graph, _) = select(&pipeline.nodes, std::slice::from_ref(id), false)?;
    let store = open_store(g.store, g.cache)?;
    let st = plan::status(&graph, &store, &ref_namespace(p.path()), &workspace());
    let s = st.iter().find(|s| &s.node == id).expect("every node has a status");
    let (Some(key), Freshness::Fresh) = (&s.key, s.state) else {
        return Err(CliError::NotFresh { node: id.clone(), state: s.state, reasons: s.reasons.join("; "), file: p.path().to_path_buf() });
    };
    let rec = match plan::lookup(&store, key, true) {
        plan::Lookup::Hit(rec) => rec,
        _ => {
            return Err(CliError::Unreadable { node: id.clone(), key: key[..12].to_string(), store: store.describe(), file: p.path().to_path_buf() });
        }
    };
    let Some(obj) = rec.outputs.get(&output) else {
        return Err(CliError::NoSuchOutput { node: id.clone(), output: output.clone(), outputs: rec.outputs.keys().cloned().collect() });
    };
    let file =
        graph.node(graph.find(id).expect("found above")).outputs.iter().find(|o| o.name == output).map(|o| o.file.clone()).unwrap_or(output.clone());
    let target = if dest.is_dir() { dest.join(&file) } else { dest.clone() };
    write_like_cp(&store.object_path(obj), &target).map_err(|source| CliError::CannotWrite { path: target.clone(), source })?;
    println!("{} ({} bytes) -> {}", output, obj.size, target.display());
    Ok(ExitStatus::Success)
}

/// Copies `src` to `dest` as `cp` does, but never leaves a partial file: a new file gets the
/// umask's mode (0666 masked), an existing one keeps its mode (a symlink is written through, to
/// its target); the bytes go to a temporary file beside it, synced, then renamed over it (so a
/// hard link to the old file keeps the old bytes, and the new file is owned by the user).
/// Errors, as `cp`'s: an existing file this user may not write, a dangling symlink, a destination
/// that is not a regular file; reading `src`; creating, writing or renaming in `dest`'s folder.
fn write_like_cp(src: &Path, dest: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let refuse = |what: &str| Err(std::io::Error::other(what.to_string()));
    let dest = match std::fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(dest) {
            Ok(target) => target,
            Err(_) => return refuse("it is a symlink to nothing (cp does not write through a dangling symlink)"),
        },
        _ => dest.to_path_buf(),
    };
    let existing = std::fs::metadata(&dest).ok();
    if let Some(m) = &existing {
        if !m.is_file() {
            return refuse("it exists and is not a regular file (a pipe, socket, device or folder); give a file path");
        }
        // What `cp` would be refused: opening the file for writing (nothing is written here).
        std::fs::OpenOptions::new().write(true).open(&dest)?;
    }
    let keep_mode = existing.map(|m| m.permissions().mode() & 0o7777);
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.pipe-get.{}.tmp", std::process::id()));
    let written = (|| {
        let mut input = std::fs::File::open(src)?;
        let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o666).open(&tmp)?;
        std::io::copy(&mut input, &mut out)?;
        if let Some(mode) = keep_mode {
            out.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        out.flush()?;
        out.sync_all()?;
        std::fs::rename(&tmp, &dest)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
