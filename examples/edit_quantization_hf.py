"""Per-Linear mixed precision of a small *trained* Hugging Face GPT-2 (offline, built from a config).

A 2-layer GPT-2 is trained for a few hundred steps on a synthetic Markov language (each token has 4
likely successors), saved with ``save_pretrained``, and quantized per Linear per layer: uniform RTN vs
allocations guided by the measured KL increase or by the empirical-Fisher estimate, vs random, at the same
average bits. Then the same from the command line on the saved folder:

    spinlens quantize --model OUT/tiny-gpt2-markov --calib-tokens OUT/markov_tokens.npy --out OUT/quant-hf

Usage: python examples/edit_quantization_hf.py [OUT_DIR] [STEPS]   (≈1 min on one core)
"""

import sys
from pathlib import Path

import numpy as np
import torch

from spinlens.edit.hf_quantization import calibration_tokens, hf_quantization_experiment
from spinlens.interp.hf import tiny_hf
from spinlens.plotting.edit import plot_quantization, save_figure
from spinlens.progress import bar

out = Path(sys.argv[1] if len(sys.argv) > 1 else "edit-out")
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 600
out.mkdir(parents=True, exist_ok=True)
V, T = 64, 32
g = np.random.default_rng(0)
succ = np.stack([g.choice(V, 4, replace=False) for _ in range(V)])
prob = g.dirichlet(np.ones(4), size=V)


def markov(n):
    x = np.empty((n, T), dtype=np.int64)
    x[:, 0] = g.integers(0, V, n)
    for t in range(1, T):
        u = g.random(n)[:, None] > np.cumsum(prob[x[:, t - 1]], 1)
        x[:, t] = succ[x[:, t - 1], u.sum(1).clip(max=3)]
    return torch.as_tensor(x)


model = tiny_hf("gpt2", n_layers=2, n_heads=4, d_model=64, d_vocab=V, max_pos=T, rng=0).hf.train()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for step in bar(range(steps), desc="train", unit="step"):  # progress on a terminal
    ids = markov(32)
    loss = model(input_ids=ids, labels=ids).loss
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
entropy = float(-(prob * np.log(prob)).sum(1).mean())
print(f"trained {steps} steps: loss {float(loss.detach()):.3f} (Markov entropy ≈ {entropy:.3f}, uniform {np.log(V):.3f})")
model.save_pretrained(out / "tiny-gpt2-markov")
tokens = markov(64).numpy()
np.save(out / "markov_tokens.npy", tokens)

calib = calibration_tokens(model, 16, T, tokens=tokens[:16])
test = markov(128)
rows = {}
for imp in ("measured", "fisher"):
    ds = hf_quantization_experiment(model, calib, test, budgets=(3.0, 3.4, 4.0), uniform_bits=(2, 3, 4, 5, 8),
                                    bits=(2, 3, 4, 5, 6, 8), granularity="linear", importance=imp, n_random=3, rng=0)
    if imp == "measured":
        fig, _ = plot_quantization(ds)
        save_figure(fig, out, "quantization_hf")
        ds.drop_vars("bits_json").to_dataframe().to_csv(out / "quantization_hf.csv")
    df = ds.drop_vars("bits_json").to_dataframe()
    for _, r in df.iterrows():
        key = (r.scheme, round(r.average_bits, 2))
        rows.setdefault(key, []).append((r.kl, r.loss))
print(f"full-precision test loss {ds.attrs['fp_loss']:.4f}")
print(f"{'scheme':18s} {'avg bits':>8s} {'KL to fp':>10s} {'loss':>8s}")
for (scheme, b), vals in rows.items():
    if scheme == "fp32":
        continue
    kl, loss = np.mean(vals, 0)
    print(f"{scheme:18s} {b:8.2f} {kl:10.3e} {loss:8.4f}")
