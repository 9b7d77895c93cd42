//! The `pipe` binary: parses arguments, installs logging and Ctrl-C handling, dispatches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    // Query tables print in full, with every column.
    for (k, v) in
        [("POLARS_FMT_MAX_ROWS", "200"), ("POLARS_FMT_MAX_COLS", "40"), ("POLARS_FMT_TABLE_ROUNDED_CORNERS", "1"), ("POLARS_TABLE_WIDTH", "220")]
    {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    // First Ctrl-C (or SIGTERM, as a scheduler sends): finish cleanly (no new nodes, running ones interrupted, finished ones kept).
    // Second: leave at once; the store stays consistent because every write is atomic.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(pipe::exit::INTERRUPTED);
        }
        eprintln!("interrupt: stopping after running nodes are cancelled (Ctrl-C again to quit now)");
    });
    let cli = pipe::args::Cli::parse();
    if cli.command.prints_only() {
        // Writing to a closed pipe (`pipe status FILE | head`) ends a command that only prints
        // quietly, as it does every Unix tool, instead of panicking in `println!`.
        // SAFETY: restores the default disposition of one signal; no handler state is involved.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let registry = pipe::kinds();
    let code = pipe::commands::main(cli, &registry, cancel);
    // Saves what the stage worker said (kinds, outputs, environments) for the next command.
    drop(registry);
    std::process::exit(code);
}
