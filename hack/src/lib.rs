//! Holds no code: its dependencies' features make `cargo run`, `cargo build --workspace` and
//! `cargo test --workspace` resolve every shared dependency alike (see Cargo.toml).
