//! Property-based fuzzing of the inputs a user or a download hands pipe: the pipeline loader (random
//! bytes, and random edits of real pipelines) and the IDX / CIFAR-10 readers. The property: an
//! input is accepted or gets an error; never a panic (a hang would stop the test). `cargo test`
//! runs 256 cases per property; `benches/fuzz.sh` runs a fixed, larger budget. A failing input is
//! saved under `proptest-regressions/` and replayed first on every later run: commit it, and it is
//! a regression test.

use std::path::Path;

use proptest::prelude::*;

fn registry() -> pipe::Registry {
    pipe_kinds::builtin()
}

/// Real pipelines: the shipped ones and the malformed corpus (read once for every case).
fn seeds() -> &'static [String] {
    static SEEDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        for dir in ["pipelines", "tests/malformed"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            out.extend(files.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
        }
        out
    })
}

/// Bytes that matter to YAML and to pipe's references.
const YAML_BYTES: &[u8] = b" \n\t:-[]{},&*!|>'\"%@`#?$.0123456789abcxyz\\";

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, u8),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop::sample::select(YAML_BYTES);
    prop_oneof![
        (any::<usize>(), prop::collection::vec(byte.clone(), 1..6)).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), 1usize..80).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(src: &str, edits: &[Edit]) -> String {
    let mut b = src.as_bytes().to_vec();
    for e in edits {
        let len = b.len().max(1);
        match e {
            Edit::Insert(i, x) => {
                let i = i % len;
                b.splice(i..i, x.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = i % len;
                let end = (i + n).min(b.len());
                b.drain(i.min(end)..end);
            }
            Edit::Replace(i, x) => {
                if !b.is_empty() {
                    let i = i % b.len();
                    b[i] = *x;
                }
            }
            Edit::Duplicate(i, n) => {
                let i = i % len;
                let end = (i + n).min(b.len());
                let piece: Vec<u8> = b[i.min(end)..end].to_vec();
                b.splice(end..end, piece);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn parse(src: &str) {
    let _ = pipe::config::parse(Path::new("fuzz.yaml"), src, &registry(), &[]);
}

proptest! {
    #[test]
    fn loader_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn loader_never_panics_on_edited_pipelines(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..12)) {
        let seeds = seeds();
        parse(&apply(&seeds[seed.index(seeds.len())], &edits));
    }

    #[test]
    fn loader_never_panics_on_overrides(seed in any::<prop::sample::Index>(), key in "[a-z_.]{0,24}", value in "[ -~]{0,24}") {
        let seeds = seeds();
        let _ = pipe::config::parse(Path::new("fuzz.yaml"), &seeds[seed.index(seeds.len())], &registry(), &[(key, value)]);
    }

    #[test]
    fn idx_readers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = stages::data::idx::read_images(Path::new("x"), &bytes);
        let _ = stages::data::idx::read_labels(Path::new("x"), &bytes);
    }

    #[test]
    fn idx_readers_never_panic_on_plausible_headers(n in any::<u32>(), rows in prop_oneof![Just(28u32), any::<u32>()], cols in prop_oneof![Just(28u32), any::<u32>()], body in 0usize..6000, labels_magic in any::<bool>()) {
        let mut b: Vec<u8> = vec![0, 0, 8, if labels_magic { 1 } else { 3 }];
        for x in [n, rows, cols] {
            b.extend(x.to_be_bytes());
        }
        b.extend(std::iter::repeat_n(7u8, body));
        let _ = stages::data::idx::read_images(Path::new("x"), &b);
        let _ = stages::data::idx::read_labels(Path::new("x"), &b);
    }

    #[test]
    fn cifar_reader_never_panics(records in 0usize..3, extra in 0usize..40, label in any::<u8>()) {
        let rec = stages::data::cifar::RECORD;
        let mut b = vec![100u8; records * rec + extra];
        if !b.is_empty() {
            b[0] = label;
        }
        let _ = stages::data::cifar::read_batch(Path::new("x"), &b);
    }
}
