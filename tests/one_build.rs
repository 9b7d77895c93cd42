//! The README's commands share one build: `cargo build --workspace`, then `cargo run` (the `pipe`
//! package alone) and `cargo test --workspace` resolve every shared dependency with the same
//! features, so neither rebuilds polars or anything under it (hack/Cargo.toml says why and how).

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

#[test]
fn run_build_and_test_resolve_every_shared_dependency_alike() {
    let workspace = features(&["--workspace", "-e", "normal,build"]);
    let run = features(&["-p", "pipe", "-e", "normal,build"]);
    let test = features(&["--workspace", "-e", "normal,build,dev"]);
    assert!(workspace.keys().any(|k| k.starts_with("polars v")), "cargo tree listed no polars: {:?}", workspace.keys().take(5).collect::<Vec<_>>());
    let d = differences(&run, &workspace);
    assert!(d.is_empty(), "`cargo run` would rebuild these (add their features to hack/Cargo.toml):\n{}", d.join("\n"));
    let d = differences(&workspace, &test);
    assert!(d.is_empty(), "`cargo test --workspace` would rebuild these (add their features to hack/Cargo.toml):\n{}", d.join("\n"));
}
