#!/usr/bin/env bash
# Installs what the Slurm and S3 tests run against: Debian's slurm-wlm and munge, and the s3s-fs
# S3 server (built once with cargo, then reused from ~/.cache/pipe/tools).
set -euo pipefail
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q slurm-wlm munge >/dev/null || { $SUDO apt-get update -q && $SUDO apt-get install -y -q slurm-wlm munge >/dev/null; }
fi
TOOLS=$HOME/.cache/pipe/tools
if [ ! -x "$TOOLS/bin/s3s-fs" ]; then
  echo "install-cluster-tools: building s3s-fs 0.14.1 (about 3 minutes, once)"
  # Its own target directory: it must not evict or lock the project's build.
  CARGO_TARGET_DIR=$TOOLS/target cargo install s3s-fs@0.14.1 --locked --features binary --root "$TOOLS" --quiet
  rm -rf "$TOOLS/target"
fi
echo "install-cluster-tools: $(slurmctld -V), munge $(munged --version 2>&1 | awk '{print $1}'), $("$TOOLS/bin/s3s-fs" --version 2>/dev/null || echo s3s-fs)"
