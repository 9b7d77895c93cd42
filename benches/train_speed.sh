#!/usr/bin/env bash
# Same autoencoder training step in tch and PyTorch, same threads and batch, in one script;
# prints images/second and the tch/PyTorch ratio per net. Needs PyPI's torch==2.13.0 in python3.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-1}; steps=${2:-30}
python3 -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
  || { echo "needs torch 2.13.0 in python3 (python3 -m pip install torch==2.13.0)"; exit 1; }
tch=$(cargo bench -q --profile dev --bench train_step -- "$threads" "$steps" | grep "^tch")
py=$(python3 benches/train_step.py "$threads" "$steps")
echo "$tch"; echo "$py"
for net in mnist_lenet cifar_lenet; do
  a=$(echo "$tch" | grep "$net" | sed 's/.*: \([0-9]*\) img.*/\1/')
  b=$(echo "$py" | grep "$net" | sed 's/.*: \([0-9]*\) img.*/\1/')
  python3 -c "print(f'$net threads=$threads: tch/pytorch = {$a/$b:.2f}')"
done
