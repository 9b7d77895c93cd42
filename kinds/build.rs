//! Links with an rpath to libtorch, so the worker, tests and benches run without LD_LIBRARY_PATH,
//! and records the linked libtorch's version (its `build-version` file) for cache keys.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let mut version = String::from("unknown");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.into());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}/lib", dir.display());
        let file = dir.join("build-version");
        println!("cargo:rerun-if-changed={}", file.display());
        if let Ok(v) = std::fs::read_to_string(&file) {
            // e.g. `2.13.0` or `2.13.0+cpu`: the release is what changes results.
            version = v.trim().split('+').next().unwrap_or("unknown").to_string();
        }
    }
    println!("cargo:rustc-env=PIPE_LIBTORCH_VERSION={version}");
}
