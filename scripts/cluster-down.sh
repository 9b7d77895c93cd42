#!/usr/bin/env bash
# Stops the daemons scripts/cluster-up.sh started, by PID (last started, first stopped).
DIR=${PIPE_CLUSTER_DIR:-/tmp/pipe-cluster}
[ -f "$DIR/pids" ] || exit 0
for pid in $(tac "$DIR/pids"); do kill "$pid" 2>/dev/null || true; done
for pid in $(tac "$DIR/pids"); do
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
rm -f "$DIR/pids"
# The daemons' state (configs, spool, logs, the S3 root) goes with them.
case "$DIR" in /tmp/pipe-cluster*) rm -rf "$DIR" ;; esac
