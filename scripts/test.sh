#!/usr/bin/env bash
# The test command: installs what the tests need (libtorch, Python's safetensors, Slurm, munge,
# s3s-fs, Chromium), starts the loopback Slurm cluster and S3 server, runs the whole test suite, and stops
# every daemon it started. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-libtorch.sh
# The Python round trip of the weights files uses PyPI's safetensors (reads with numpy).
python3 -m pip install --quiet --disable-pip-version-check safetensors numpy
scripts/install-cluster-tools.sh
# The HTML report's test renders it in a headless Chromium (Debian's package).
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null || { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; }
fi
export PIPE_CLUSTER_DIR=${PIPE_CLUSTER_DIR:-/tmp/pipe-cluster-$$}
trap 'scripts/cluster-down.sh' EXIT
scripts/cluster-up.sh
# shellcheck disable=SC1091
. "$PIPE_CLUSTER_DIR/env"
PIPE_REQUIRE_CLUSTER=1 PIPE_REQUIRE_BROWSER=1 cargo test --workspace "$@"
