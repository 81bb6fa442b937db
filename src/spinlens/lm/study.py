"""Files of the LM study: loss/perplexity curves, induction scores over the training checkpoints (phase change).

Plots only draw (no computing); every figure is written as PNG and PDF next to its CSV.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_csv(path, rows: list[dict]) -> Path:
    """Write a list of flat dicts as CSV atomically (columns: the keys of the first row)."""
    from spinlens.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [])
            w.writeheader()
            for r in rows:
                w.writerow(r)
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_dir, stem: str) -> list[str]:
    from spinlens.interp.plotting import save_figure as _save

    return _save(fig, out_dir, stem)


def plot_curves(history: list[dict], out_dir, stem: str = "curves"):
    """Training (EMA) and held-out loss, and held-out perplexity, against step."""
    plt = _plt()
    step = [h["step"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(step, [h["train_loss"] for h in history], label="train (EMA)")
    ax[0].plot(step, [h["val_loss"] for h in history], label="held-out")
    ax[0].set(xlabel="step", ylabel="loss (nats/token)", title="next-token loss")
    ax[0].legend()
    ax[1].plot(step, [h["val_ppl"] for h in history], color="C2")
    ax[1].set(xlabel="step", ylabel="perplexity", yscale="log", title="held-out perplexity")
    fig.tight_layout()
    return save_figure(fig, out_dir, stem)


def checkpoint_curve(folder, *, device: str = "cpu", n_seq: int = 32, seed: int = 0):
    """Induction / previous-token scores, repeated loss and ICL score of every checkpoint of a run folder.

    Returns ``(rows, final_report)``: one row per checkpoint (the final model last) and the final model's
    `InductionReport`.
    """
    from spinlens.lm.data import eval_windows
    from spinlens.lm.induction import induction_report
    from spinlens.lm.train import list_checkpoints, load_heldout, load_lm

    folder = Path(folder)
    heldout = load_heldout(folder)
    rows, rep = [], None
    items = list_checkpoints(folder) + [(None, folder)]
    for step, d in items:
        model, _, meta = load_lm(d, device=device)
        val = eval_windows(heldout, model.cfg.max_pos, max_windows=32) if heldout is not None else None
        rep = induction_report(model, val_windows=val, n_seq=n_seq, rng=seed)
        ind, prev = rep.induction, rep.prev_token
        L, H = np.unravel_index(np.argmax(ind), ind.shape)
        rows.append({"step": int(meta.get("step", step or 0)), "val_loss": meta.get("val_loss"),
                     "max_induction_score": float(ind.max()), "max_induction_head": f"{L}.{H}",
                     "max_prev_token_score": float(prev.max()),
                     "repeated_loss_first": rep.repeated_loss["first"], "repeated_loss_repeat": rep.repeated_loss["repeat"],
                     "icl_score": rep.icl["icl_score"] if rep.icl else float("nan")})
    if len(rows) > 1 and rows[-1]["step"] == rows[-2]["step"]:
        rows.pop(-2)  # the last checkpoint is the final model
    return rows, rep


def plot_phase_change(rows: list[dict], out_dir, stem: str = "induction_curve"):
    """Induction score, repeat advantage and ICL score over training: the induction-head phase change."""
    plt = _plt()
    s = np.array([r["step"] for r in rows], dtype=float)
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ax[0].plot(s, [r["max_induction_score"] for r in rows], "o-", label="max induction score")
    ax[0].plot(s, [r["max_prev_token_score"] for r in rows], "s--", label="max previous-token score")
    ax[0].set(xscale="log", xlabel="step", ylabel="attention score", ylim=(0, 1), title="heads")
    ax[0].legend(fontsize=8)
    ax[1].plot(s, [r["repeated_loss_first"] for r in rows], "o-", label="first occurrence")
    ax[1].plot(s, [r["repeated_loss_repeat"] for r in rows], "s-", label="repeat")
    ax[1].set(xscale="log", xlabel="step", ylabel="loss (nats)", title="repeated random tokens")
    ax[1].legend(fontsize=8)
    ax[2].plot(s, [r["icl_score"] for r in rows], "o-", color="C3")
    ax[2].axhline(0, color="0.6", lw=0.8)
    ax[2].set(xscale="log", xlabel="step", ylabel="late − early loss (nats)", title="icl_score on held-out text")
    fig.tight_layout()
    return save_figure(fig, out_dir, stem)


# ------------------------------------------------------------------------------------------------ edit experiments
def _mean_std(ds, var, mask):
    v = np.asarray(ds[var].values)[mask]
    v = v[np.isfinite(v)]
    return (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0) if len(v) else (np.nan, 0.0)


def plot_lm_steering(ds):
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    level = np.asarray(ds["level"].values)
    for lv, mk in (("activation", "o-"), ("neuron", "s--")):
        sel = level == lv
        if not sel.any():
            continue
        st = np.asarray(ds["strength"].values)[sel]
        xs = np.unique(st)
        ms = [_mean_std(ds, "class_prob", np.where(sel)[0][st == x]) for x in xs]
        ax[0].errorbar(xs, [m for m, _ in ms], yerr=[s for _, s in ms], fmt=mk, capsize=3, label=lv)
    ax[0].axhline(ds.attrs.get("class_base_rate", np.nan), color="0.6", lw=0.8, ls=":", label="share of vocabulary")
    ax[0].set(xlabel="strength", ylabel=f"P(next token {ds.attrs.get('token_class')})",
              title="activation / neuron steering on held-out text")
    ax[0].legend(fontsize=8)
    sel = np.where(level == "module")[0]
    names = list(dict.fromkeys(np.asarray(ds["intervention"].values)[sel]))
    ms = [_mean_std(ds, "repeat_loss", sel[np.asarray(ds["intervention"].values)[sel] == n]) for n in names]
    ax[1].bar(range(len(names)), [m for m, _ in ms], yerr=[s for _, s in ms], capsize=3, color="C1")
    ax[1].set_xticks(range(len(names)), [n.replace(" induction heads", "\ninduction heads") for n in names], fontsize=8)
    ax[1].set(ylabel="loss on the repeat (nats)", title="module level: induction heads")
    fig.tight_layout()
    return fig


def _bars(ax, ds, var, methods, color):
    meth = np.asarray(ds["method"].values)
    ms = [_mean_std(ds, var, meth == m) for m in methods]
    ax.bar(range(len(methods)), [m for m, _ in ms], yerr=[s for _, s in ms], capsize=3, color=color)
    ax.set_xticks(range(len(methods)), [m.replace("_", "\n") for m in methods], fontsize=8)


def plot_lm_pinpoint(ds):
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    methods = [m for m in dict.fromkeys(np.asarray(ds["method"].values)) if m != "before"]
    _bars(ax[0], ds, "target_gain", methods, "C0")
    ax[0].set(ylabel="held-out loss gain on new domain (nats)", title="pinpoint tuning (mean ± std over seeds)")
    _bars(ax[1], ds, "general_change", methods, "C3")
    ax[1].set(ylabel="loss change on training corpus (nats)", title="side effect")
    fig.tight_layout()
    return fig


def plot_lm_merging(ds):
    plt = _plt()
    a, b = ds.attrs["domains"].split(",")
    methods = list(dict.fromkeys(np.asarray(ds["method"].values)))
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    for i, (var, t) in enumerate(((f"loss_{a}", f"held-out loss, {a}"), (f"loss_{b}", f"held-out loss, {b}"),
                                  ("loss_general", "held-out loss, training corpus"))):
        _bars(ax[i], ds, var, methods, f"C{i}")
        ax[i].set(ylabel="nats/token", title=t)
        lo = np.nanmin(ds[var].values)
        ax[i].set_ylim(bottom=max(0, lo - 0.5))
    fig.tight_layout()
    return fig


def plot_lm_quantization(ds):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    sch = np.asarray(ds["scheme"].values)
    fam = np.array([s.split("_")[0] for s in sch])
    for f, mk in (("uniform", "s"), ("guided", "o"), ("random", "x")):
        sel = fam == f
        ax.scatter(ds["average_bits"].values[sel], ds["perplexity"].values[sel], marker=mk, label=f, alpha=0.8)
    ax.axhline(ds.attrs["fp_perplexity"], color="0.5", ls=":", label="full precision")
    ax.set(xlabel="average bits per weight (heads, MLPs)", ylabel="held-out perplexity", yscale="log",
           title=f"mixed precision vs uniform (group {ds.attrs['group_size']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
