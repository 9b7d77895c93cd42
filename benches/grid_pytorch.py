"""The re-experiment's MNIST normal-class-0 grid done the way the published study did it: a plain
PyTorch script, config after config (baseline, hybrid mu2 in {0.1, 0.5, 1.0, 2.0}, adaptive), each
config pretraining its own autoencoder. Same nets, preprocessing, epochs, batch and threads as
`pipe run pipelines/report.yaml` (see benches/grid_vs_pytorch.sh). Prints one line per config with
its AUC and the total wall time.
Usage: python3 benches/grid_pytorch.py DATA_DIR AE_EPOCHS SVDD_EPOCHS THREADS"""
import gzip, os, sys, time
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from train_step import MnistAE  # noqa: E402  (the same network definition)

data_dir, ae_epochs, svdd_epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)


def idx(path):
    raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    if raw[2] == 8 and raw[3] == 3:
        n, r, c = np.frombuffer(raw[4:16], ">u4")
        return np.frombuffer(raw[16:], np.uint8).reshape(n, 1, r, c)
    return np.frombuffer(raw[8:], np.uint8)


def gcn(x):
    x = x - x.mean(axis=(1, 2, 3), keepdims=True)
    return x / np.abs(x).mean(axis=(1, 2, 3), keepdims=True)


def find(name):
    for f in (name, name + ".gz"):
        if os.path.exists(os.path.join(data_dir, f)):
            return os.path.join(data_dir, f)
    raise SystemExit(f"{name} not in {data_dir}")


xtr, ytr = idx(find("train-images-idx3-ubyte")), idx(find("train-labels-idx1-ubyte"))
xte, yte = idx(find("t10k-images-idx3-ubyte")), idx(find("t10k-labels-idx1-ubyte"))
train = gcn(xtr[ytr == 0].astype(np.float32) / 255)
test = gcn(xte.astype(np.float32) / 255)
lo, hi = train.min(), train.max()
train, test = torch.tensor((train - lo) / (hi - lo)), torch.tensor((test - lo) / (hi - lo))
labels = (yte != 0).astype(np.int64)


def auc(scores, labels):
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores)); ranks[order] = np.arange(1, len(scores) + 1)
    # average ranks for ties
    s = scores[order]; i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j + 2) / 2; i = j + 1
    pos = labels == 1
    return (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())


def encode(net, x):
    return net.encoder(x)


def batches(n, bs=200):
    p = torch.randperm(n)
    return [p[i:i + bs] for i in range(0, n, bs) if len(p[i:i + bs]) > 1]


def run(mu2, mahalanobis):
    torch.manual_seed(0)
    net = MnistAE()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=0.5e-6)
    net.train()
    for _ in range(ae_epochs):
        for b in batches(len(train)):
            x = train[b]; opt.zero_grad()
            torch.sum((net(x) - x) ** 2, dim=(1, 2, 3)).mean().backward(); opt.step()
    net.eval()
    with torch.no_grad():
        c = encode(net, train).mean(0)
    c[(c.abs() < 0.1) & (c < 0)] = -0.1; c[(c.abs() < 0.1) & (c >= 0)] = 0.1
    params = list(net.parameters()) if mu2 > 0 else [p for n, p in net.named_parameters() if not n.startswith("decoder.")]
    opt = torch.optim.Adam(params, lr=1e-4, weight_decay=0.5e-6)
    net.train()
    for _ in range(svdd_epochs):
        for b in batches(len(train)):
            x = train[b]; opt.zero_grad()
            z = encode(net, x)
            loss = ((z - c) ** 2).sum(1).mean()
            if mu2 > 0:
                loss = loss + mu2 * torch.sum((net(x) - x) ** 2, dim=(1, 2, 3)).mean()
            loss.backward(); opt.step()
    net.eval()
    with torch.no_grad():
        zt, zs = encode(net, train).double(), encode(net, test).double()
    if mahalanobis:
        m = zt.mean(0); cov = torch.cov(zt.T) + 1e-3 * torch.eye(zt.shape[1], dtype=torch.float64)
        d = zs - m; scores = (d @ torch.linalg.inv(cov) * d).sum(1)
    else:
        scores = ((zs - c.double()) ** 2).sum(1)
    return auc(scores.numpy(), labels)


t0 = time.perf_counter()
for name, mu2, maha in [("baseline", 0.0, False), ("hybrid mu2=0.1", 0.1, False), ("hybrid mu2=0.5", 0.5, False),
                        ("hybrid mu2=1.0", 1.0, False), ("hybrid mu2=2.0", 2.0, False), ("adaptive", 0.0, True)]:
    t = time.perf_counter()
    print(f"pytorch {name}: AUC {run(mu2, maha):.4f} ({time.perf_counter() - t:.1f}s)", flush=True)
print(f"pytorch total wall time: {time.perf_counter() - t0:.1f}s")
