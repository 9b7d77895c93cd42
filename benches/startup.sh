#!/usr/bin/env bash
# What moving the stage kinds out of process bought, end to end, side by side: `pipe` (no
# libtorch) against `pipe_in_process` (the same command line with every kind linked in, as
# `pipe` was before the worker pool). Prints the median and minimum of each and their ratio:
#   --version; `status` of quick.yaml (fresh store); 10,000-node `status` and no-op `run` of a
#   command-kind grid; the quick job cold (worker pool vs in process).
# Usage: [QUICK=RUNS] benches/startup.sh [REPEATS] (default 10 and 1; from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pipe/target}
cargo build --quiet --workspace --bins
cargo build --quiet --example pipe_in_process
NEW=$CARGO_TARGET_DIR/debug/pipe
OLD=$CARGO_TARGET_DIR/debug/examples/pipe_in_process
W=$(mktemp -d /tmp/pipe-startup.XXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/data"; cp -r pipelines "$W/"; cp -r data/bundled "$W/data/"
cd "$W"
# Seconds of one run of "$@" (output discarded; a failure stops the bench).
t() { local s; s=$(date +%s.%N); "$@" > /dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; kill $$; }; echo "$(date +%s.%N) - $s" | bc; }
# median and min of N runs of "$@"
stats() { local xs=(); for _ in $(seq "$N"); do xs+=("$(t "$@")"); done; printf '%s\n' "${xs[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.3f %.3f", a[int((NR+1)/2)], a[1]}'; }
row() { # label, new "median min", old "median min"
  read -r nm nmin <<<"$2"; read -r om omin <<<"$3"
  printf '%-44s %8.3f s (min %.3f)   %8.3f s (min %.3f)   %6.2fx\n' "$1" "$nm" "$nmin" "$om" "$omin" "$(echo "$om / $nm" | bc -l)"
}
printf '%-44s %-25s %-25s %s\n' "" "pipe (worker pool)" "in process (before)" "speed-up"
row "pipe --version" "$(stats "$NEW" --version)" "$(stats "$OLD" --version)"

# The quick job, cold, QUICK times each (default 1), alternating, each in a fresh store; then
# `status` against the filled stores.
qn=(); qo=()
for k in $(seq "${QUICK:-1}"); do
  rm -rf s-new s-old
  qn+=("$(t "$NEW" --store s-new run pipelines/quick.yaml --overwrite)")
  qo+=("$(t "$OLD" --store s-old run pipelines/quick.yaml --overwrite)")
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.3f %.3f", a[int((NR+1)/2)], a[1]}'; }
quick_new=$(med "${qn[@]}"); quick_old=$(med "${qo[@]}")
row "pipe status pipelines/quick.yaml (56 fresh)" "$(stats "$NEW" --store s-new status pipelines/quick.yaml)" "$(stats "$OLD" --store s-old status pipelines/quick.yaml)"

# 10,000 nodes of the generic command kind (in process in both).
python3 - > grid.yaml <<'PY'
print("stages:\n  cell:\n    kind: command\n    matrix:")
print("      i: [" + ", ".join(map(str, range(100))) + "]")
print("      j: [" + ", ".join(map(str, range(100))) + "]")
print("    params:\n      cmd: echo ${matrix.i} ${matrix.j} > ${outputs.out.txt}\n      outputs: [out.txt]")
PY
cold=$(t "$NEW" --store s-grid run grid.yaml -j 2)
row "status, 10,000 fresh nodes" "$(stats "$NEW" --store s-grid status grid.yaml)" "$(stats "$OLD" --store s-grid status grid.yaml)"
row "no-op run, 10,000 fresh nodes" "$(stats "$NEW" --store s-grid run grid.yaml)" "$(stats "$OLD" --store s-grid run grid.yaml)"
row "quick job, cold (${QUICK:-1} runs each)" "$quick_new" "$quick_old"
printf 'cold run of the 10,000-node grid (each a shell command): %.1f s\n' "$cold"
