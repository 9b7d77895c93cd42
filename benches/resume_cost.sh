#!/usr/bin/env bash
# What resuming training saves, and what checkpointing costs, on the quick job (bundled data), in
# one script with its references:
#   1. a cold quick job (Deep SVDD 60 epochs), then the same with `params.svdd_epochs=120`: the six
#      Deep SVDD nodes resume at 60; against a cold run of 120 in another store, and against the
#      cost of the added epochs (cold 120 - cold 60);
#   2. the cold quick job saving a checkpoint every epoch (PIPE_CHECKPOINT_EVERY_S=0) against one
#      saving only at the last epoch (PIPE_CHECKPOINT_EVERY_S=1e9): the overhead of checkpointing.
# Wall and CPU (user + sys) seconds of the whole job from /usr/bin/time, and the summed durations
# of its six Deep SVDD nodes (`train[...]`, from the run record): a resumed job also reruns what
# depends on the longer training (thresholds, evaluation, Grad-CAM, t-SNE), so the training
# nodes' own time is what resuming is about. Stores in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pipe/target}
cargo build -q --bin pipe
pipe=$CARGO_TARGET_DIR/debug/pipe
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# run NAME STORE [ARGS...]: one quick job; prints "NAME wall cpu" and keeps them in $tmp/NAME.
run() {
  local name=$1 store=$2; shift 2
  /usr/bin/time -f "%e %U %S" -o "$tmp/$name.time" "$pipe" --store "$tmp/$store" run pipelines/quick.yaml "$@" \
    >/dev/null 2>"$tmp/$name.err" || { cat "$tmp/$name.err"; exit 1; }
  read -r wall user sys <"$tmp/$name.time"
  cpu=$(python3 -c "print(f'{$user + $sys:.1f}')")
  train=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{sum(n.get('duration_s') or 0 for n in r['nodes'] if n['node'].startswith('train[') and n['state'] == 'ran'):.1f}\")" "$tmp/$store/runs/latest.json")
  echo "$wall $cpu $train" >"$tmp/$name"
  printf '%-34s wall %7.1f s  cpu %7.1f s  Deep SVDD nodes %6.1f s\n' "$name" "$wall" "$cpu" "$train"
}
# Published files go to a scratch copy of the workspace, never over the user's.
ws=$tmp/ws; mkdir -p "$ws"; cp -r pipelines data "$ws/"; cd "$ws"
PIPE_CHECKPOINT_EVERY_S=1e9 run "cold 60 (save at the end only)" a
run "resume 60 -> 120" a --set params.svdd_epochs=120
run "cold 120" b --set params.svdd_epochs=120
PIPE_CHECKPOINT_EVERY_S=0 run "cold 60 (save every epoch)" c
python3 - "$tmp" <<'PY'
import sys, os
t = sys.argv[1]
r = lambda n: [float(x) for x in open(os.path.join(t, n)).read().split()]
c60, res, c120, every = r("cold 60 (save at the end only)"), r("resume 60 -> 120"), r("cold 120"), r("cold 60 (save every epoch)")
for i, what in enumerate(["wall", "cpu", "Deep SVDD nodes"]):
    added = c120[i] - c60[i]
    print(f"{what}: resume 60->120 / cold 120 = {res[i]/c120[i]:.2f}; resume / added epochs (cold 120 - cold 60 = {added:.1f} s) = {res[i]/added:.2f}; "
          f"checkpoint every epoch / at the end only = {every[i]/c60[i]:.3f}")
PY
