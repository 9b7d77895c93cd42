#!/usr/bin/env bash
# Fuzzing budget run: every property of tests/fuzz.rs (pipeline loader on random bytes, on random
# edits of the shipped and malformed pipelines, on random --set overrides; IDX and CIFAR-10 readers)
# for CASES cases each (default 50,000; `cargo test` runs 256). Prints the wall time and the case
# rate. A failure is saved under proptest-regressions/ and replayed first by every later run:
# commit that file and it is a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${CASES:-50000}
cargo build --quiet --tests --test fuzz
start=$(date +%s.%N)
PROPTEST_CASES=$cases cargo test --quiet --test fuzz -- --test-threads 2
end=$(date +%s.%N)
python3 - "$start" "$end" "$cases" <<'PY'
import sys
s, e, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"fuzz: 6 properties x {n} cases in {e - s:.1f} s ({6 * n / (e - s):,.0f} cases/s), zero panics")
PY
