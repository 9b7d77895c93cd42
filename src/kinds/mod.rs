//! The built-in stage kinds: adapters from the engine's `StageKind` to plain stage functions.

pub mod command;

use crate::stage::Registry;

/// Every kind `pipe` ships with.
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    r.register(command::CommandStage);
    r
}
