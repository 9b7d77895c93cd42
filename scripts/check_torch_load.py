#!/usr/bin/env python3
"""Loads a pipe autoencoder (ae.safetensors from a pretrain_ae node, `pipe show`) into the same
architecture written in PyTorch with load_state_dict(strict=True), and checks a forward pass.
Usage: python3 scripts/check_torch_load.py PATH/TO/ae.safetensors"""
import sys
import torch
import torch.nn as nn
from safetensors.torch import load_file


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, bias=False, padding=2); self.bn1 = nn.BatchNorm2d(8, eps=1e-4, affine=False)
        self.conv2 = nn.Conv2d(8, 4, 5, bias=False, padding=2); self.bn2 = nn.BatchNorm2d(4, eps=1e-4, affine=False)
        self.fc1 = nn.Linear(4 * 7 * 7, 32, bias=False)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.deconv1 = nn.ConvTranspose2d(2, 4, 5, bias=False, padding=2); self.bn3 = nn.BatchNorm2d(4, eps=1e-4, affine=False)
        self.deconv2 = nn.ConvTranspose2d(4, 8, 5, bias=False, padding=3); self.bn4 = nn.BatchNorm2d(8, eps=1e-4, affine=False)
        self.deconv3 = nn.ConvTranspose2d(8, 1, 5, bias=False, padding=2)


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = Encoder(), Decoder()


state = load_file(sys.argv[1])
model = Autoencoder()
missing, unexpected = model.load_state_dict(state, strict=False)
missing = [k for k in missing if not k.endswith("num_batches_tracked")]
assert not missing and not unexpected, (missing, unexpected)
for k, v in state.items():
    assert torch.equal(model.state_dict()[k], v), k
print(f"loaded {len(state)} tensors into the PyTorch architecture: {', '.join(sorted(state)[:4])}, ...")
