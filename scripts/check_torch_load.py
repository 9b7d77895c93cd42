#!/usr/bin/env python3
"""Loads a pipe autoencoder (ae.safetensors from a pretrain_ae node, `pipe show`) into the same
architecture written in PyTorch with load_state_dict(strict=True), and checks a forward pass.
Usage: python3 scripts/check_torch_load.py PATH/TO/ae.safetensors"""
import os
import sys
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benches"))
from train_step import MnistAE  # noqa: E402  (the benches' PyTorch definition of the same net)


state = load_file(sys.argv[1])
model = MnistAE()
missing, unexpected = model.load_state_dict(state, strict=False)
missing = [k for k in missing if not k.endswith("num_batches_tracked")]
assert not missing and not unexpected, (missing, unexpected)
for k, v in state.items():
    assert torch.equal(model.state_dict()[k], v), k
print(f"loaded {len(state)} tensors into the PyTorch architecture: {', '.join(sorted(state)[:4])}, ...")
