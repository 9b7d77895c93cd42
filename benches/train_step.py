"""The same autoencoder training step as benches/train_step.rs, in PyTorch (Ruff et al.'s nets:
no bias, BatchNorm eps 1e-4 affine=False, leaky ReLU, nearest x2 upsampling).
Usage: python3 benches/train_step.py [threads] [steps]"""
import sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F



class MnistEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, bias=False, padding=2); self.bn1 = nn.BatchNorm2d(8, eps=1e-4, affine=False)
        self.conv2 = nn.Conv2d(8, 4, 5, bias=False, padding=2); self.bn2 = nn.BatchNorm2d(4, eps=1e-4, affine=False)
        self.fc1 = nn.Linear(4 * 7 * 7, 32, bias=False)

    def forward(self, x):
        x = F.max_pool2d(F.leaky_relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.leaky_relu(self.bn2(self.conv2(x))), 2)
        return self.fc1(x.flatten(1))


class MnistDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.deconv1 = nn.ConvTranspose2d(2, 4, 5, bias=False, padding=2); self.bn3 = nn.BatchNorm2d(4, eps=1e-4, affine=False)
        self.deconv2 = nn.ConvTranspose2d(4, 8, 5, bias=False, padding=3); self.bn4 = nn.BatchNorm2d(8, eps=1e-4, affine=False)
        self.deconv3 = nn.ConvTranspose2d(8, 1, 5, bias=False, padding=2)

    def forward(self, z):
        x = F.interpolate(F.leaky_relu(z.view(z.size(0), 2, 4, 4)), scale_factor=2)
        x = F.interpolate(F.leaky_relu(self.bn3(self.deconv1(x))), scale_factor=2)
        x = F.interpolate(F.leaky_relu(self.bn4(self.deconv2(x))), scale_factor=2)
        return torch.sigmoid(self.deconv3(x))


class MnistAE(nn.Module):
    """Submodule names = pipe's tensor names (encoder.conv1.weight, ...)."""
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = MnistEncoder(), MnistDecoder()

    def forward(self, x):
        return self.decoder(self.encoder(x))


class CifarAE(nn.Module):
    def __init__(self):
        super().__init__()
        bn = lambda c: nn.BatchNorm2d(c, eps=1e-4, affine=False)
        self.conv1 = nn.Conv2d(3, 32, 5, bias=False, padding=2); self.bn2d1 = bn(32)
        self.conv2 = nn.Conv2d(32, 64, 5, bias=False, padding=2); self.bn2d2 = bn(64)
        self.conv3 = nn.Conv2d(64, 128, 5, bias=False, padding=2); self.bn2d3 = bn(128)
        self.fc1 = nn.Linear(128 * 4 * 4, 128, bias=False); self.bn1d = nn.BatchNorm1d(128, eps=1e-4, affine=False)
        self.deconv1 = nn.ConvTranspose2d(8, 128, 5, bias=False, padding=2); self.bn2d4 = bn(128)
        self.deconv2 = nn.ConvTranspose2d(128, 64, 5, bias=False, padding=2); self.bn2d5 = bn(64)
        self.deconv3 = nn.ConvTranspose2d(64, 32, 5, bias=False, padding=2); self.bn2d6 = bn(32)
        self.deconv4 = nn.ConvTranspose2d(32, 3, 5, bias=False, padding=2)

    def forward(self, x):
        x = F.max_pool2d(F.leaky_relu(self.bn2d1(self.conv1(x))), 2)
        x = F.max_pool2d(F.leaky_relu(self.bn2d2(self.conv2(x))), 2)
        x = F.max_pool2d(F.leaky_relu(self.bn2d3(self.conv3(x))), 2)
        x = self.bn1d(self.fc1(x.flatten(1))).view(x.size(0), 8, 4, 4)
        x = self.deconv1(F.leaky_relu(x))
        x = self.deconv2(F.interpolate(F.leaky_relu(self.bn2d4(x)), scale_factor=2))
        x = self.deconv3(F.interpolate(F.leaky_relu(self.bn2d5(x)), scale_factor=2))
        x = self.deconv4(F.interpolate(F.leaky_relu(self.bn2d6(x)), scale_factor=2))
        return torch.sigmoid(x)


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    for name, net, shape in [("mnist_lenet", MnistAE(), (200, 1, 28, 28)), ("cifar_lenet", CifarAE(), (200, 3, 32, 32))]:
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=0.5e-6)
        x = torch.rand(shape)

        def step():
            opt.zero_grad()
            loss = torch.sum((net(x) - x) ** 2, dim=tuple(range(1, x.dim()))).mean()
            loss.backward()
            opt.step()

        for _ in range(5):
            step()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        print(f"pytorch {name} threads={threads} batch=200: {steps * 200 / (time.perf_counter() - t):.0f} img/s")
