//! The README's commands share one build: after `cargo build --workspace`, `cargo run` and
//! `cargo test --workspace` resolve every shared dependency with the same features, so neither
//! rebuilds polars or anything under it. `cargo run` selects the workspace's default members,
//! which must be every member; the test build's dev-dependencies are unified by hack/Cargo.toml.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Package `name version` -> its resolved features, as `cargo tree` prints them for `args`.
fn features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "--locked", "--prefix", "none", "--format", "{p} [{f}]"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo tree {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((head, feats)) = line.rsplit_once(" [") else { continue };
        let mut words = head.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else { continue };
        // Workspace members are built per command anyway; only shared dependencies matter.
        if head.contains("(/") {
            continue;
        }
        let set = map.entry(format!("{name} {version}")).or_default();
        set.extend(feats.trim_end_matches(" (*)").trim_end_matches(']').split(',').filter(|f| !f.is_empty()).map(str::to_string));
    }
    map
}

/// Every package both builds compile, with different features (each difference is a rebuild).
fn differences(a: &BTreeMap<String, BTreeSet<String>>, b: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    a.iter()
        .filter_map(|(k, fa)| {
            let fb = b.get(k)?;
            (fa != fb).then(|| format!("{k}: features {:?} in one build only", fa.symmetric_difference(fb).collect::<Vec<_>>()))
        })
        .collect()
}

/// `cargo metadata`'s list under `key` (`workspace_members`, `workspace_default_members`), sorted.
fn members(key: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--offline", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut m: Vec<String> = v[key].as_array().unwrap_or_else(|| panic!("no {key}")).iter().map(|x| x.as_str().unwrap().to_string()).collect();
    m.sort();
    m
}

#[test]
fn run_build_and_test_resolve_every_shared_dependency_alike() {
    // `cargo run` / `cargo build` select the default members: every member, as --workspace does.
    let all = members("workspace_members");
    assert!(all.len() >= 4, "{all:?}");
    assert_eq!(members("workspace_default_members"), all, "add every member to `default-members` in Cargo.toml");
    let workspace = features(&["--workspace", "-e", "normal,build"]);
    let run = features(&["-e", "normal,build"]);
    let test = features(&["--workspace", "-e", "normal,build,dev"]);
    assert!(workspace.keys().any(|k| k.starts_with("polars v")), "cargo tree listed no polars: {:?}", workspace.keys().take(5).collect::<Vec<_>>());
    assert_eq!(run, workspace, "`cargo run` would resolve other features than `cargo build --workspace`");
    let d = differences(&workspace, &test);
    assert!(d.is_empty(), "`cargo test --workspace` would rebuild these (add their features to hack/Cargo.toml):\n{}", d.join("\n"));
}
