#!/usr/bin/env bash
# What holding out 10% of the normal training images (to cut thresholds on) costs in AUC: the quick
# job's models (bundled data, seeds 0-2) trained with ingest's default `holdout: 0.1` and with
# `holdout: 0`; only the evaluation path runs (target `results`). Prints AUC mean and sd per
# (dataset, method, mu2) for both. Scratch workspaces under a temp folder; ~10 min on 2 cores.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cargo build -q --manifest-path "$repo/Cargo.toml" --bin pipe
pipe=${CARGO_TARGET_DIR:-$repo/target}/debug/pipe
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for h in 0.1 0.0; do
  mkdir -p "$work/$h" && cp "$repo/pipelines/quick.yaml" "$work/$h/"
  (cd "$work/$h" && /usr/bin/time -f "holdout $h: %e s wall, %U s user" "$pipe" run quick.yaml results \
     --set params.data_dir="$repo/data/bundled" --set 'pretrain.matrix.seed=[0,1,2]' --set ingest.holdout=$h >/dev/null 2>run.log || { cat run.log; exit 1; }
   tail -1 run.log
   echo "holdout $h:"
   "$pipe" query "SELECT dataset, method, mu2, count(*) AS n, round(avg(auc), 4) AS auc, round(stddev(auc), 4) AS sd FROM results GROUP BY dataset, method, mu2 ORDER BY dataset, method, mu2" --results results/quick.parquet --format csv)
done
