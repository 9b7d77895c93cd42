//! Pipeline files: YAML -> validated spec -> expanded nodes, with every error located in the file.

pub mod diag;
pub mod grid;
pub mod spec;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics};
pub use grid::{InputRef, NodeSpec};
pub use spec::PipelineSpec;

use crate::stage::Registry;

/// A validated, expanded pipeline.
#[derive(Debug)]
pub struct Pipeline {
    /// The pipeline's `name:`, or the file's stem when it sets none.
    pub name: String,
    /// Every node of the expanded grid, stages in dependency order; `InputRef::Node` indexes this list.
    pub nodes: Vec<NodeSpec>,
    /// `report: PATH`: the workspace path `pipe run` writes the HTML report to after each run
    /// (a path ending in `/` gets `report.html`); never a path a stage publishes.
    pub report: Option<PathBuf>,
    /// `compare:`: how the HTML report compares each published results table's cells.
    pub compare: Option<spec::CompareSpec>,
}

/// Why a pipeline file gave no pipeline.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read as a pipeline file (missing, a directory, too large, not UTF-8).
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The file is read but invalid: every problem found, each at its line and column.
    #[error("{0}")]
    Invalid(Box<Diagnostics>),
}

impl crate::error::Hint for LoadError {
    /// How to read the file; an invalid file's diagnostics carry their own hints.
    fn hint(&self) -> Option<String> {
        match self {
            LoadError::Read { source, .. } => Some(read_hint(source).to_string()),
            LoadError::Invalid(_) => None,
        }
    }
}

fn read_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "check the path; pipelines usually live in pipelines/",
        std::io::ErrorKind::PermissionDenied => "check the file's permissions",
        _ => "give the path of a pipeline's YAML file (UTF-8 text, at most 16 MiB)",
    }
}

/// Pipeline files larger than this are refused before they are read (a pipeline is kilobytes).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads, validates and expands the pipeline file at `path`, with stage kinds from `registry` and
/// `overrides` as `(stage.param, value)` pairs (`--set`). Errors: the file cannot be read (missing,
/// a directory, larger than [`MAX_FILE_BYTES`], not UTF-8), or the pipeline is invalid (every error found).
pub fn load(path: &Path, registry: &Registry, overrides: &[(String, String)]) -> Result<Pipeline, LoadError> {
    let read_err = |source| LoadError::Read { path: path.display().to_string(), source };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        return Err(read_err(std::io::Error::other("it is a directory, not a pipeline file")));
    }
    if !meta.is_file() {
        // Reading a FIFO would block forever.
        return Err(read_err(std::io::Error::other("it is not a regular file (a pipe, socket or device); give the pipeline's YAML file")));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(read_err(std::io::Error::other(format!("{} bytes; a pipeline file may hold at most {MAX_FILE_BYTES}", meta.len()))));
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let src = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        read_err(std::io::Error::other(format!(
            "it is not UTF-8 text (invalid byte at offset {at}, line {line}): a binary file, or text in another encoding; save it as UTF-8"
        )))
    })?;
    parse(path, &src, registry, overrides)
}

/// [`load`] for text already read: `path` only names the file in diagnostics and gives the default
/// pipeline name. A leading UTF-8 byte-order mark is ignored. Errors list every problem found.
pub fn parse(path: &Path, src: &str, registry: &Registry, overrides: &[(String, String)]) -> Result<Pipeline, LoadError> {
    // A UTF-8 byte-order mark (some Windows editors write one) is not part of the YAML.
    let src = src.strip_prefix('\u{FEFF}').unwrap_or(src);
    let mut d = Diagnostics::new(path.to_path_buf(), src.to_string());
    let invalid = |mut d: Diagnostics| {
        d.sort();
        LoadError::Invalid(Box::new(d))
    };
    let (root, problems) = match yaml::parse(src) {
        Ok(r) => r,
        Err(e) => {
            d.error(e.pos, e.message, Some(e.hint.into()));
            return Err(invalid(d));
        }
    };
    for e in problems {
        d.error(e.pos, e.message, Some(e.hint.into()));
    }
    let default_name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pipeline");
    let mut spec = spec::parse_spec(&root, default_name, &mut d);
    grid::apply_overrides(&mut spec, overrides, &mut d);
    grid::resolve_refs(&mut spec, &mut d);
    let nodes = grid::expand(&spec, registry, &mut d);
    let report = spec.report.as_ref().and_then(|(raw, pos)| match grid::publish_dest(raw, "report.html") {
        Ok(dest) if nodes.iter().any(|n| n.publish.iter().any(|(_, p)| *p == dest)) => {
            d.error(*pos, format!("`report: {raw}`: a stage publishes that path"), Some("give the report a path of its own".into()));
            None
        }
        Ok(dest) => Some(dest),
        Err(e) => {
            d.error(
                *pos,
                format!("`report: {raw}`: {e}"),
                Some(format!(
                    "a path inside the workspace (relative, no `..`, names of at most {} bytes), e.g. `Deliverables/quick/report.html`",
                    grid::MAX_NAME_BYTES
                )),
            );
            None
        }
    });
    if let Some(c) = &spec.compare {
        check_compare(c, &nodes, &mut d);
    }
    if !d.is_empty() {
        return Err(invalid(d));
    }
    Ok(Pipeline { name: spec.name, nodes, report, compare: spec.compare })
}

/// `compare:` names grid axes: the baseline's, the replicate and `within` (a results table's
/// identifying columns are its nodes' coordinates), each in one role: the replicate is neither a
/// baseline axis nor `within`, `within` is not a baseline axis, and the metric is no axis.
fn check_compare(c: &spec::CompareSpec, nodes: &[NodeSpec], d: &mut Diagnostics) {
    let axes: std::collections::BTreeSet<&str> = nodes.iter().flat_map(|n| n.coords.iter().map(|(k, _)| k.as_str())).collect();
    let listed = || axes.iter().copied().collect::<Vec<_>>().join(", ");
    let check = |d: &mut Diagnostics, name: &str, pos: yaml::Pos, field: &str| {
        if !axes.contains(name) {
            let hint = diag::did_you_mean(name, axes.iter().copied()).unwrap_or_else(|| format!("the grid's axes: {}", listed()));
            d.error(pos, format!("`compare.{field}`: `{name}` is not an axis of the grid"), Some(hint));
        }
    };
    for (k, _, p) in &c.baseline {
        check(d, k, *p, "baseline");
    }
    match &c.replicate {
        Some((r, p)) => check(d, r, *p, "replicate"),
        None if !axes.contains("seed") => d.error(
            c.pos,
            "`compare` pairs cells on the `seed` axis unless `replicate:` names another, and the grid has no `seed` axis",
            Some(format!("add `replicate: AXIS`, the axis the runs repeat over (a seed, a fold); the grid's axes: {}", listed())),
        ),
        None => {}
    }
    if let Some((w, p)) = &c.within {
        check(d, w, *p, "within");
    }
    let replicate = c.replicate();
    let at = c.replicate.as_ref().map_or(c.pos, |(_, p)| *p);
    if let Some((_, _, p)) = c.baseline.iter().find(|(k, _, _)| k == replicate) {
        d.error(
            *p,
            format!("`compare.baseline` names `{replicate}`, the replicate axis the cells are paired on"),
            Some("leave the replicate out of the baseline: every replicate of a cell is paired with the same replicate of its baseline".into()),
        );
    }
    if let Some((w, p)) = &c.within {
        if w == replicate {
            d.error(
                *p,
                format!("`compare.within` is `{w}`, the replicate axis (`compare.replicate`, default `seed`)"),
                Some(format!(
                    "Holm's families are values of another axis, e.g. `within: dataset`; the replicate pairs the runs (at {}:{})",
                    at.line, at.col
                )),
            );
        } else if c.baseline.iter().any(|(k, _, _)| k == w) {
            d.error(
                *p,
                format!("`compare.within` is `{w}`, which `compare.baseline` names"),
                Some("a cell and its baseline differ in the baseline's axes, so a family cannot hold one value of them; name another axis".into()),
            );
        }
    }
    if axes.contains(c.metric.as_str()) {
        d.error(
            c.metric_pos,
            format!("`compare.metric` is `{}`, an axis of the grid", c.metric),
            Some("name a metric column of the results table (e.g. `auc`), not a grid parameter".into()),
        );
    }
}
