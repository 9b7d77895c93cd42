#!/usr/bin/env bash
# Many runs on one store (node claims), end to end:
#  1. two overlapping variants of the quick job (mu2 {0.0, 0.5} and {0.5, 2.0}: the 0.5 cells,
#     ingest and pretraining shared) started together against one after the other, each pair in a
#     fresh store: wall time, and the nodes computed (from the run records: `ran` states);
#  2. what claims cost where nothing is computed and where everything is: 10,000-node `status`,
#     no-op `run` and cold `run` of a command-kind grid, against REF (the `pipe` of a commit
#     before claims, built here from REF_REV; default aab5325), alternating, median and min.
# Usage: [REF_REV=rev] benches/claims.sh [REPEATS] (default 5; from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pipe/target}
ROOT=$PWD
W=$(mktemp -d /tmp/pipe-claims.XXXX)
trap 'git -C "$ROOT" worktree remove --force "$W/ref-src" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
# The reference binary: same target folder (its dependencies are shared), its own workspace path.
git worktree add --detach "$W/ref-src" "${REF_REV:-aab5325}" >/dev/null 2>&1
ln -s "$ROOT/.libtorch" "$W/ref-src/.libtorch"
(cd "$W/ref-src" && cargo build --quiet --bin pipe) && cp "$CARGO_TARGET_DIR/debug/pipe" "$W/pipe-ref"
cargo build --quiet --workspace --bins
NEW=$CARGO_TARGET_DIR/debug/pipe
REF=$W/pipe-ref
mkdir -p "$W/data"; cp -r pipelines "$W/"; cp -r data/bundled "$W/data/"
cd "$W"
now() { date +%s.%N; }
ran() { python3 -c "import json,sys; print(sum(n['state']=='ran' for n in json.load(open(sys.argv[1]))['nodes']))" "$1"; }
A=(--set 'train.matrix.mu2=[0.0,0.5]'); B=(--set 'train.matrix.mu2=[0.5,2.0]')

rm -rf s-seq; t0=$(now)
"$NEW" --store s-seq run pipelines/quick.yaml "${A[@]}" --overwrite --json > a.json 2>/dev/null
"$NEW" --store s-seq run pipelines/quick.yaml "${B[@]}" --overwrite --json > b.json 2>/dev/null
seq_wall=$(echo "$(now) - $t0" | bc); seq_ran=$(( $(ran a.json) + $(ran b.json) ))
rm -rf s-par; t0=$(now)
"$NEW" --store s-par run pipelines/quick.yaml "${A[@]}" --overwrite --json > a.json 2>/dev/null &
"$NEW" --store s-par run pipelines/quick.yaml "${B[@]}" --overwrite --json > b.json 2>/dev/null &
wait
par_wall=$(echo "$(now) - $t0" | bc); par_ran=$(( $(ran a.json) + $(ran b.json) ))
printf 'two overlapping quick-job variants  one after the other: %6.1f s, %d nodes computed\n' "$seq_wall" "$seq_ran"
printf '                                     started together:    %6.1f s, %d nodes computed (%.2fx the wall time)\n' "$par_wall" "$par_ran" "$(echo "$par_wall / $seq_wall" | bc -l)"

python3 - > grid.yaml <<'PY'
print("stages:\n  cell:\n    kind: command\n    matrix:")
print("      i: [" + ", ".join(map(str, range(100))) + "]")
print("      j: [" + ", ".join(map(str, range(100))) + "]")
print("    params:\n      cmd: echo ${matrix.i} ${matrix.j} > ${outputs.out.txt}\n      outputs: [out.txt]")
PY
t() { local s; s=$(now); "$@" > /dev/null 2>"$W/last.err" || { cat "$W/last.err" >&2; kill $$; }; echo "$(now) - $s" | bc; }
# Alternating new/ref N times: "median min" of each.
pair() {
  local xs=() ys=()
  for _ in $(seq "$N"); do xs+=("$(t "$NEW" "$@")"); ys+=("$(t "$REF" "$@")"); done
  med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.3f %.3f", a[int((NR+1)/2)], a[1]}'; }
  echo "$(med "${xs[@]}") $(med "${ys[@]}")"
}
row() { read -r nm nmin om omin <<<"$2"; printf '%-36s %7.3f s (min %.3f)  %7.3f s (min %.3f)  %5.2fx\n' "$1" "$nm" "$nmin" "$om" "$omin" "$(echo "$nm / $om" | bc -l)"; }
printf '%-36s %-24s %-24s %s\n' "" "claims" "before (REF)" "ratio"
"$NEW" --store s-grid run grid.yaml -j 2 > /dev/null 2>&1
row "status, 10,000 fresh nodes" "$(pair --store s-grid status grid.yaml)"
row "no-op run, 10,000 fresh nodes" "$(pair --store s-grid run grid.yaml)"
# Cold: every node computed (and claimed), a fresh store each time.
cold() { rm -rf s-cold; t "$1" --store s-cold run grid.yaml -j 2; }
xs=(); ys=(); for _ in $(seq 2); do xs+=("$(cold "$NEW")"); ys+=("$(cold "$REF")"); done
printf '%-36s %7.3f s               %7.3f s               %5.2fx\n' "cold run, 10,000 nodes (best of 2)" \
  "$(printf '%s\n' "${xs[@]}" | sort -g | head -1)" "$(printf '%s\n' "${ys[@]}" | sort -g | head -1)" \
  "$(echo "$(printf '%s\n' "${xs[@]}" | sort -g | head -1) / $(printf '%s\n' "${ys[@]}" | sort -g | head -1)" | bc -l)"
