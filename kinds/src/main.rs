//! `pipe-worker`: runs pipe's stage kinds out of the `pipe` process (it links libtorch, `pipe`
//! does not). `pipe-worker serve` speaks the engine's worker protocol on stdin/stdout
//! (`engine::worker`); `pipe-worker data ...` is what `pipe data ...` runs.

#[derive(clap::Parser)]
#[command(name = "pipe-worker", version, about = "Runs pipe's stage kinds for the `pipe` binary (started by it; not meant to be run by hand)")]
enum Cmd {
    /// Answer the engine's requests on stdin/stdout (JSON lines) until stdin closes.
    Serve,
    /// Download (`fetch`) or check (`verify`) a dataset: mnist, fashion-mnist or cifar10.
    #[command(subcommand)]
    Data(pipe_kinds::data::DataCmd),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    // `pipe data ...` runs this with the same arguments: its help and errors say `pipe`.
    let called_as = if std::env::args().nth(1).as_deref() == Some("data") { "pipe" } else { "pipe-worker" };
    let cmd = <Cmd as clap::FromArgMatches>::from_arg_matches(&<Cmd as clap::CommandFactory>::command().bin_name(called_as).get_matches())
        .unwrap_or_else(|e| e.exit());
    match cmd {
        Cmd::Serve => {
            if let Err(e) = engine::worker::serve(&pipe_kinds::builtin()) {
                eprintln!("pipe-worker: {e}");
                std::process::exit(engine::exit::INTERNAL);
            }
        }
        Cmd::Data(action) => std::process::exit(pipe_kinds::data::run(action)),
    }
}
