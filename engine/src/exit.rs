//! Exit codes of the `pipe` binary: named, documented constants (see README "Exit codes").

/// Everything asked for completed.
pub const OK: i32 = 0;
/// An unexpected internal error (a bug: please report it).
pub const INTERNAL: i32 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: i32 = 2;
/// The pipeline file is unreadable or invalid; every error was printed with its line and column.
pub const INVALID_PIPELINE: i32 = 3;
/// One or more nodes failed; their dependents were skipped; everything else completed.
pub const NODES_FAILED: i32 = 4;
/// The artifact store could not be read or written (permissions, disk full).
pub const STORE: i32 = 5;
/// `pipe status --check`: some node is not fresh; `pipe key`: a node has no key yet (its inputs
/// are not computed).
pub const STALE: i32 = 6;
/// A node or query named on the command line does not exist, or `pipe query` failed.
pub const NOT_FOUND: i32 = 7;
/// Interrupted (Ctrl-C); completed nodes are kept and the next run resumes.
pub const INTERRUPTED: i32 = 130;
