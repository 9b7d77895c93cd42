//! Pipeline files: YAML -> validated spec -> expanded nodes, with every error located in the file.

pub mod diag;
pub mod grid;
pub mod spec;
pub mod yaml;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics};
pub use grid::{InputRef, NodeSpec};
pub use spec::PipelineSpec;

use crate::stage::Registry;

/// A validated, expanded pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pub name: String,
    pub nodes: Vec<NodeSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read pipeline file {path}: {source}\n  = hint: check the path; pipelines usually live in pipelines/")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(Box<Diagnostics>),
}

/// Reads, validates and expands a pipeline file. `overrides` are `(stage.param, value)` pairs.
/// Pipeline files larger than this are refused before they are read (a pipeline is kilobytes).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

pub fn load(path: &Path, registry: &Registry, overrides: &[(String, String)]) -> Result<Pipeline, LoadError> {
    let read_err = |source| LoadError::Read { path: path.display().to_string(), source };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        return Err(read_err(std::io::Error::other("it is a directory, not a pipeline file")));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(read_err(std::io::Error::other(format!("{} bytes; a pipeline file may hold at most {MAX_FILE_BYTES}", meta.len()))));
    }
    let src = std::fs::read_to_string(path).map_err(read_err)?;
    parse(path, &src, registry, overrides)
}

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
    let nodes = grid::expand(&spec, registry, &mut d);
    if !d.is_empty() {
        return Err(invalid(d));
    }
    Ok(Pipeline { name: spec.name, nodes })
}
