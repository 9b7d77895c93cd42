//! The `pipe` command line with every stage kind in this process (libtorch linked), as `pipe` ran
//! before stage kinds moved to the `pipe-worker` pool. For benches that compare the two
//! (`benches/startup.sh`); not installed.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

fn main() {
    let cli = pipe::args::Cli::parse();
    std::process::exit(pipe::commands::main(cli, &pipe_kinds::builtin(), Arc::new(AtomicBool::new(false))));
}
