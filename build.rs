//! Links the tests, benches and the in-process example (which link libtorch through `pipe-kinds`)
//! with an rpath to it, so they run without LD_LIBRARY_PATH. The `pipe` binary does not link libtorch.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.into());
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}/lib", dir.display());
        println!("cargo:rustc-link-arg-benches=-Wl,-rpath,{}/lib", dir.display());
        println!("cargo:rustc-link-arg-examples=-Wl,-rpath,{}/lib", dir.display());
    }
}
