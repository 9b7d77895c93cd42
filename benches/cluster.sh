#!/usr/bin/env bash
# What Slurm and S3 cost: the same pipeline run locally, then on the loopback one-node Slurm
# cluster with the s3s-fs store (scripts/cluster-up.sh), then restored by a fresh cache from S3.
# Prints wall times, their ratios to the local run, and whether keys and bytes are identical.
# Usage: benches/cluster.sh [PIPELINE] (default pipelines/quick.yaml; run from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PIPELINE=${1:-pipelines/quick.yaml}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pipe/target}
cargo build --quiet --bin pipe
PIPE=$CARGO_TARGET_DIR/debug/pipe
export PIPE_CLUSTER_DIR=${PIPE_CLUSTER_DIR:-/tmp/pipe-cluster-bench}
scripts/cluster-up.sh >/dev/null
trap '"$REPO/scripts/cluster-down.sh"' EXIT
# shellcheck disable=SC1091
. "$PIPE_CLUSTER_DIR/env"
CPUS=$(nproc)
W=$(mktemp -d /tmp/pipe-cluster-bench-ws.XXXX)
mkdir -p "$W/data"; cp -r pipelines "$W/"; cp -r data/bundled "$W/data/"
cd "$W"
t() { local s; s=$(date +%s.%N); "$@" > /dev/null 2>"$W/last.err" || { cat "$W/last.err"; exit 1; }; echo "$(date +%s.%N) - $s" | bc; }
URL=s3://$PIPE_TEST_S3_BUCKET/bench-$$
local_s=$(t "$PIPE" --store local run "$PIPELINE" -j "$CPUS" --threads 1)
slurm_s=$(t "$PIPE" --store "$URL" --cache cache-a run "$PIPELINE" --executor slurm -j "$CPUS" --threads 1)
restore_s=$(t "$PIPE" --store "$URL" --cache cache-b run "$PIPELINE")
PIPELINE=$PIPELINE python3 - "$local_s" "$slurm_s" "$restore_s" <<'PY'
import json, sys, os, hashlib
l, s, r = map(float, sys.argv[1:])
runs = {d: json.load(open(f"{d}/runs/latest.json")) for d in ["local", "cache-a", "cache-b"]}
keys = {d: [(n["node"], n["key"]) for n in v["nodes"]] for d, v in runs.items()}
def objs(d):
    out = {}
    for root, _, files in os.walk(f"{d}/objects"):
        for f in files:
            out[f] = hashlib.sha256(open(os.path.join(root, f), "rb").read()).hexdigest()
    return out
n = len(keys["local"])
print(f"pipeline {os.environ.get('PIPELINE', '')}: {n} nodes, {os.cpu_count()} CPUs, jobs = CPUs, 1 thread per node")
print(f"local run                      {l:7.1f} s   1.00")
print(f"slurm + s3 run                 {s:7.1f} s   {s / l:.2f}   ({(s - l) / n:+.2f} s per node)")
print(f"fresh cache restored from s3   {r:7.1f} s   {r / l:.2f}   (ran {sum(x['state'] == 'ran' for x in runs['cache-b']['nodes'])} nodes)")
same = keys["local"] == keys["cache-a"] == keys["cache-b"] and objs("local") == objs("cache-a") == objs("cache-b")
print("same keys and bytes in all three:", same)
for (n, k), (_, k2) in zip(keys["local"], keys["cache-a"]):
    if k != k2:
        print("  first differing node:", n, "(workspace kept)")
        sys.exit(1)
PY
cd "$REPO" && rm -rf "$W"
