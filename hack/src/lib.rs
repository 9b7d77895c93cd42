//! Holds no code: its dependencies' features make `cargo test --workspace` resolve every shared
//! dependency as `cargo build --workspace` does (see Cargo.toml).
