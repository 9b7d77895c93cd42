//! One file per command that has outgrown `cli.rs`: each takes its clap arguments and the shared
//! [`crate::cli::Ctx`], and returns the exit code.

pub mod key;
