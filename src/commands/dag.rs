//! `pipe dag`: the node graph (or the stage graph) as text, Graphviz, Mermaid or JSON.

use crate::args::PipelineArgs;
use crate::commands::common::load;
use crate::commands::{CliError, Ctx, ExitStatus};
use crate::graph::RenderFormat;

/// `pipe dag`.
pub(crate) fn dag(g: &Ctx<'_>, p: PipelineArgs, format: RenderFormat, stages: bool) -> Result<ExitStatus, CliError> {
    let (_, graph) = load(&p, g.registry)?;
    print!("{}", if stages { graph.render_stages(format) } else { graph.render(format) });
    Ok(ExitStatus::Success)
}
