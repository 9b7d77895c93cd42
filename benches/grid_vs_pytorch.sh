#!/usr/bin/env bash
# pipe vs a plain PyTorch script on the published MNIST class-0 grid (baseline, 4 hybrids,
# adaptive): same nets, preprocessing, epochs, batch 200, lr 1e-4, 2 CPU threads in total.
# Prints wall times, their ratio, the rerun time after one mu2 edit, peak memory, and AUCs.
# Usage: benches/grid_vs_pytorch.sh [AE_EPOCHS] [SVDD_EPOCHS]   (needs torch 2.13.0 in $PYTHON)
set -euo pipefail
cd "$(dirname "$0")/.."
ae=${1:-10}; svdd=${2:-10}
py=${PYTHON:-python3}
data=${PIPE_DATA_DIR:-../shared/data}/mnist
pipe=${PIPE_BIN:-target/debug/pipe}
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
export PIPE_DATA_DIR=$(dirname "$data")

t() { /usr/bin/time -f "%e %M" -o "$store/time" "$@" > "$store/out" 2>&1; cat "$store/time"; }

read -r pipe_s pipe_kb < <(t "$pipe" run benches/grid.yaml --store "$store/a" -j 2 --threads 1 \
  --set params.ae_epochs="$ae" --set params.svdd_epochs="$svdd")
"$pipe" query "SELECT mu2, method, round(auc, 4) AS auc, round(train_seconds, 1) AS train_s FROM results ORDER BY method, mu2" \
  --results results/grid_bench.parquet
read -r edit_s _ < <(t "$pipe" run benches/grid.yaml --store "$store/a" -j 2 --threads 1 \
  --set params.ae_epochs="$ae" --set params.svdd_epochs="$svdd" --set train.matrix.mu2=[0.0,0.1,0.5,1.0,3.0])
read -r torch_s torch_kb < <(t "$py" benches/grid_pytorch.py "$data" "$ae" "$svdd" 2)
grep '^pytorch' "$store/out"
echo "epochs: AE $ae, Deep SVDD $svdd; 2 CPU threads each side"
echo "pipe cold run:              ${pipe_s}s  (peak RSS $((pipe_kb / 1024)) MiB)"
echo "pipe rerun after mu2 edit:  ${edit_s}s"
echo "PyTorch config by config:   ${torch_s}s  (peak RSS $((torch_kb / 1024)) MiB)"
python3 -c "print(f'pipe / PyTorch wall time = {$pipe_s / $torch_s:.2f};  rerun / cold = {$edit_s / $pipe_s:.2f}')"
