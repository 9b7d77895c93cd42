//! `pipe data`: download (`fetch`) or check (`verify`) a dataset. Runs in `pipe-worker`, where the
//! dataset readers live; `pipe data ...` passes its arguments here.

use std::path::PathBuf;

use clap::Subcommand;
use engine::exit;

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Download from the official mirror (resumable; md5 and sha256 verified).
    Fetch {
        /// mnist, fashion-mnist or cifar10.
        dataset: String,
        /// Destination (default ~/.cache/pipe/data/DATASET, where `ingest` looks).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Base URL (https:// or http://) of another mirror holding the same files.
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Decode every file and check its checksum.
    Verify {
        /// mnist, fashion-mnist or cifar10.
        dataset: String,
        /// The folder to check (default: where `ingest` looks).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Runs one `data` command; returns the exit code.
pub fn run(action: DataCmd) -> i32 {
    match data(action) {
        Ok(c) | Err(c) => c,
    }
}

fn data(action: DataCmd) -> Result<i32, i32> {
    use stages::data::{self as d, DatasetKind};
    let fail = |e: stages::Error| {
        eprintln!("error: {e}");
        exit::NOT_FOUND
    };
    match action {
        DataCmd::Fetch { dataset, dir, mirror } => {
            let kind = DatasetKind::parse(&dataset).map_err(fail)?;
            let dest = dir.unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/pipe/data").join(kind.name()));
            let mut source = d::fetch::official(kind);
            if let Some(m) = mirror {
                source.base = if m.ends_with('/') { m } else { format!("{m}/") };
            }
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").expect("valid template"),
            );
            let progress = |name: &str, done: u64, total: Option<u64>| {
                bar.set_message(name.to_string());
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            };
            let folder = d::fetch::fetch(&source, &dest, &progress).map_err(fail)?;
            bar.finish_and_clear();
            let found = d::locate(kind, Some(&folder)).map_err(fail)?;
            let raw = d::load_raw(kind, &found).map_err(fail)?;
            println!("{}: {} train + {} test images in {} (checksums verified)", kind.title(), raw.train.n, raw.test.n, found.display());
            Ok(exit::OK)
        }
        DataCmd::Verify { dataset, dir } => {
            let kind = DatasetKind::parse(&dataset).map_err(fail)?;
            let found = d::locate(kind, dir.as_deref()).map_err(fail)?;
            let raw = d::load_raw(kind, &found).map_err(fail)?;
            let note = if raw.unverified.is_empty() {
                "all checksums verified".to_string()
            } else {
                format!("no checksum known for {}", raw.unverified.join(", "))
            };
            println!("{}: {} train + {} test images in {} ({note})", kind.title(), raw.train.n, raw.test.n, found.display());
            Ok(exit::OK)
        }
    }
}
