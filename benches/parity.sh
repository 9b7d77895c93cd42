#!/usr/bin/env bash
# Step-for-step parity of pipe's training with PyTorch: pipe's autoencoder, One-Class Deep SVDD and
# hybrid (mu2 = 0.5) trainings record every step's batch and loss (benches/parity.rs, the library's
# own training functions); PyTorch replays the same steps from the same initial weights and centre
# (benches/parity.py). Passes when every step's loss agrees to 1e-4 relative.
# Needs PyPI's torch==2.13.0 and safetensors in python3. Usage: benches/parity.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
  || { echo "needs torch 2.13.0 in python3 (python3 -m pip install torch==2.13.0)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo bench -q --profile dev --bench parity -- "$out" "${1:-20}"
python3 benches/parity.py "$out"
