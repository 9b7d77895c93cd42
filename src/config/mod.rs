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
pub fn load(path: &Path, registry: &Registry, overrides: &[(String, String)]) -> Result<Pipeline, LoadError> {
    let src = std::fs::read_to_string(path)
        .map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
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
    let (root, duplicates) = match yaml::parse(src) {
        Ok(r) => r,
        Err(e) => {
            d.error(e.pos, format!("YAML syntax error: {}", e.message), Some("check indentation and quoting around this spot".into()));
            return Err(invalid(d));
        }
    };
    for e in duplicates {
        d.error(e.pos, e.message, None);
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
