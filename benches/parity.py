"""Step-for-step parity with PyTorch, the Python half: replays the steps benches/parity.rs recorded
(pipe's own training functions) in PyTorch, with the project's Python definition of the MNIST nets
(benches/train_step.py): same initial weights, same batches, same Adam settings. Prints, per model,
each step's loss in both and the largest relative difference.
Usage: python3 benches/parity.py OUT   (OUT written by `cargo bench --bench parity -- OUT`)"""
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from train_step import MnistAE  # noqa: E402

LR, WD, MU1 = 1e-3, 0.5e-6, 1.0


def replay(out, name, net, loss_fn, init, trained=lambda net: net):
    steps = load_file(f"{out}/{name}_steps.safetensors")
    idx, lens, want = steps["batch_index"], steps["batch_len"].tolist(), steps["loss"].double()
    part = trained(net)
    prefix = "" if part is net else "encoder."
    state = {k[len(prefix):]: v for k, v in init.items() if k.startswith(prefix)}
    missing, _ = part.load_state_dict(state, strict=False)
    assert not [m for m in missing if not m.endswith("num_batches_tracked")], f"{name}: weights not loaded: {missing}"
    net.train()
    # Only what pipe trains: the encoder for One-Class Deep SVDD, encoder and decoder otherwise.
    opt = torch.optim.Adam(part.parameters(), lr=LR, weight_decay=WD)
    x_all = load_file(f"{out}/data.safetensors")["train_x"]
    got, start = [], 0
    for n in lens:
        x = x_all[idx[start:start + n]]
        start += n
        opt.zero_grad()
        loss = loss_fn(net, x)
        loss.backward()
        opt.step()
        got.append(loss.item())
    got = torch.tensor(got, dtype=torch.float64)
    rel = ((got - want).abs() / want.abs()).max().item()
    print(f"{name}: {len(lens)} steps, loss step 1 pipe {want[0]:.6f} / pytorch {got[0]:.6f}, "
          f"step {len(lens)} pipe {want[-1]:.6f} / pytorch {got[-1]:.6f}; max relative difference {rel:.2e}")
    return rel


def rec_error(net, x):
    return ((net(x) - x) ** 2).flatten(1).sum(1).mean()


def main():
    out = sys.argv[1]
    torch.set_num_threads(1)
    worst = []
    init = load_file(f"{out}/ae_init.safetensors")
    worst.append(replay(out, "ae", MnistAE(), rec_error, init))
    trained = load_file(f"{out}/ae_trained.safetensors")
    for name, mu2 in [("svdd", 0.0), ("hybrid", 0.5)]:
        c = load_file(f"{out}/{name}_trained.safetensors")["svdd.c"]

        def loss_fn(net, x, mu2=mu2, c=c):
            z = net.encoder(x)
            svdd = ((z - c) ** 2).sum(1).mean()
            return MU1 * svdd + (mu2 * ((net.decoder(z) - x) ** 2).flatten(1).sum(1).mean() if mu2 > 0 else 0.0)

        worst.append(replay(out, name, MnistAE(), loss_fn, trained, (lambda net: net) if mu2 > 0 else (lambda net: net.encoder)))
    ok = max(worst) <= 1e-4
    print(f"parity: worst relative loss difference {max(worst):.2e} ({'within' if ok else 'OUTSIDE'} 1e-4)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
