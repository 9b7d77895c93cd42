//! `pipe-worker`: runs pipe's stage kinds out of the `pipe` process (it links libtorch, `pipe`
//! does not). `pipe-worker serve` speaks the engine's worker protocol on stdin/stdout
//! (`engine::worker`); `pipe-worker data ...` is what `pipe data ...` runs.

use clap::Parser;

#[derive(Parser)]
#[command(name = "pipe-worker", version, about = "Runs pipe's stage kinds for the `pipe` binary (started by it; not meant to be run by hand)")]
enum Cmd {
    /// Answer the engine's requests on stdin/stdout (JSON lines) until stdin closes.
    Serve,
    /// Datasets: download and verify (what `pipe data` runs).
    #[command(subcommand)]
    Data(pipe_kinds::data::DataCmd),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    match Cmd::parse() {
        Cmd::Serve => {
            if let Err(e) = engine::worker::serve(&pipe_kinds::builtin()) {
                eprintln!("pipe-worker: {e}");
                std::process::exit(engine::exit::INTERNAL);
            }
        }
        Cmd::Data(action) => std::process::exit(pipe_kinds::data::run(action)),
    }
}
