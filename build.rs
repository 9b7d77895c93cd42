//! Links with an rpath to libtorch, so the tests and benches that link it (through `pipe-kinds`)
//! run without LD_LIBRARY_PATH. The `pipe` binary itself does not link libtorch.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.into());
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}/lib", dir.display());
        println!("cargo:rustc-link-arg-benches=-Wl,-rpath,{}/lib", dir.display());
    }
}
