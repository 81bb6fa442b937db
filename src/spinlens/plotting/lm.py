"""Figures of the language-model study and its edit experiments; each takes rows / arrays / the experiment's
Dataset and returns ``(fig, axes)``. No computing beyond the mean ± std over seeds of the numbers given.

Saving is the caller's job (`spinlens.io.save_figure`).
"""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------------------------------------ training
def plot_lm_curves(history: list[dict]):
    """Training (EMA) and held-out loss, and held-out perplexity, against step (``history``: rows with
    ``step``, ``train_loss``, ``val_loss``, ``val_ppl``)."""
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
    return fig, ax


def plot_phase_change(rows: list[dict]):
    """Induction score, repeat advantage and ICL score over training checkpoints: the induction-head phase
    change (``rows``: `spinlens.lm.study.checkpoint_curve`)."""
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
    return fig, ax


# ------------------------------------------------------------------------------------------------ analysis
def plot_head_scores(induction, prev_token):
    """Induction and previous-token score of every head (layer × head), annotated."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
    im = None
    for a, mat, t in zip(ax, (np.asarray(induction), np.asarray(prev_token)), ("induction score", "previous-token score")):
        im = a.imshow(mat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        a.set(xlabel="head", ylabel="layer", title=t, xticks=range(mat.shape[1]), yticks=range(mat.shape[0]))
        for (i, j), v in np.ndenumerate(mat):
            a.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.5 else "k", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="score (0 to 1)")
    return fig, ax


def plot_loss_by_position(loss, *, icl_score: float | None = None):
    """Held-out loss against context position."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    loss = np.asarray(loss)
    ax.plot(np.arange(len(loss)), loss)
    title = "held-out loss by position" if icl_score is None else f"icl_score {icl_score:+.3f}"
    ax.set(xlabel="context position", ylabel="held-out loss (nats)", title=title)
    return fig, ax


def plot_lm_lens(stages, prob_true_next):
    """Logit lens: probability of the true next token read out after each stage."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(list(stages), list(prob_true_next), "o-")
    ax.set(xlabel="stage", ylabel="P(true next token)", title="logit lens on held-out text")
    return fig, ax


# ------------------------------------------------------------------------------------------------ edit experiments
def _mean_std(ds, var, mask):
    from spinlens.verdict import mean_sd

    v = np.asarray(ds[var].values)[mask]
    v = v[np.isfinite(v)]
    return mean_sd(v) if len(v) else (np.nan, 0.0)


def plot_lm_steering(ds):
    """Left: P(next token in the class) against steering strength (activation / neuron level, mean ± std over
    seeds). Right: loss on the repeat with the induction heads ablated (module level)."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    level = np.asarray(ds["level"].values)
    for lv, mk in (("activation", "o-"), ("neuron", "s--"), ("neuron_random", "x:")):
        sel = level == lv
        if not sel.any():
            continue
        st = np.asarray(ds["strength"].values)[sel]
        xs = np.unique(st)
        ms = [_mean_std(ds, "class_prob", np.where(sel)[0][st == x]) for x in xs]
        mean, std = np.array([m for m, _ in ms]), np.array([s for _, s in ms])
        (line,) = ax[0].plot(xs, mean, mk, label=lv)
        # error bars without caps: a line collection, so the caps add no unkeyed marker-only lines
        ax[0].errorbar(xs, mean, yerr=std, fmt="none", ecolor=line.get_color(), capsize=0)
    ax[0].axhline(ds.attrs.get("class_base_rate", np.nan), color="0.6", lw=0.8, ls=":", label="share of vocabulary")
    ax[0].set(xlabel="strength", ylabel=f"P(next token {ds.attrs.get('token_class')})",
              title="activation / neuron steering on held-out text")
    ax[0].legend(fontsize=8)
    sel = np.where(level == "module")[0]
    names = list(dict.fromkeys(np.asarray(ds["intervention"].values)[sel]))
    ms = [_mean_std(ds, "repeat_loss", sel[np.asarray(ds["intervention"].values)[sel] == n]) for n in names]
    ax[1].bar(range(len(names)), [m for m, _ in ms], yerr=[s for _, s in ms], capsize=0, color="C1")
    ax[1].set_xticks(range(len(names)), [n.replace(" induction heads", "\ninduction heads") for n in names], fontsize=8)
    ax[1].set(xlabel="intervention", ylabel="loss on the repeat (nats)", title="module level: induction heads")
    fig.tight_layout()
    return fig, ax


def _bars(ax, ds, var, methods, color):
    meth = np.asarray(ds["method"].values)
    ms = [_mean_std(ds, var, meth == m) for m in methods]
    ax.bar(range(len(methods)), [m for m, _ in ms], yerr=[s for _, s in ms], capsize=0, color=color)
    ax.set_xticks(range(len(methods)), [m.replace("_", "\n") for m in methods], fontsize=8)
    ax.set_xlabel("method")


def plot_lm_pinpoint(ds):
    """Pinpoint tuning: loss gain on the new domain and the side effect on the training corpus, per method."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    methods = [m for m in dict.fromkeys(np.asarray(ds["method"].values)) if m != "before"]
    _bars(ax[0], ds, "target_gain", methods, "C0")
    ax[0].set(ylabel="held-out loss gain on new domain (nats)", title="pinpoint tuning (mean ± std over seeds)")
    _bars(ax[1], ds, "general_change", methods, "C3")
    ax[1].set(ylabel="loss change on training corpus (nats)", title="side effect")
    fig.tight_layout()
    return fig, ax


def plot_lm_merging(ds):
    """Merging: held-out loss on both domains and on the training corpus, per method."""
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
    return fig, ax


def plot_lm_quantization(ds):
    """Mixed precision against uniform: held-out perplexity against average bits per weight."""
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
    return fig, ax


# ------------------------------------------------------------------------------------------------ function vectors
def plot_lm_function_vectors(ds):
    """Function vectors on a natural-language task (`spinlens.lm.icl_tasks.text_fv_experiment`). Left: head
    indirect effect, mean over seeds. Right: accuracy with the FV added before each layer (zero-shot and
    shuffled prompts, mean ± std over seeds); dotted: the same prompts without the FV; dashed: few-shot ICL."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ie = np.asarray(ds["indirect_effect"].values).mean(0)
    im = ax[0].imshow(ie, cmap="RdBu_r", vmin=-np.abs(ie).max() or -1, vmax=np.abs(ie).max() or 1, aspect="auto")
    fig.colorbar(im, ax=ax[0], label="Δ p(answer), mean over seeds")
    ax[0].set(xlabel="head", ylabel="layer", title="indirect effect (shuffled → clean head mean)",
              xticks=range(ie.shape[1]), yticks=range(ie.shape[0]))
    layers = np.asarray(ds["layer"].values)
    x = np.arange(len(layers))
    from spinlens.verdict import mean_sd

    def sd(a):
        return mean_sd(a, axis=0)[1]
    for i, c in enumerate(ds["condition"].values):
        a = np.asarray(ds["accuracy"].sel(condition=c).values)
        (line,) = ax[1].plot(x, a.mean(0), "o-", color=f"C{i}", label=f"{c} + FV")
        ax[1].errorbar(x, a.mean(0), yerr=sd(a), fmt="none", ecolor=line.get_color(), capsize=0)
        ax[1].axhline(float(ds["base_accuracy"].sel(condition=c).mean()), color=f"C{i}", ls=":", label=f"{c}, no FV")
    ax[1].axhline(float(ds["clean_accuracy"].mean()), color="k", ls="--", label="few-shot (clean)")
    if "majority_accuracy" in ds:
        ax[1].axhline(float(ds["majority_accuracy"].mean()), color="0.5", ls="-.", lw=0.8,
                      label="most frequent answer token")
    from spinlens.plotting.interp import fv_layer_ticks

    fv_layer_ticks(ax[1], layers, int(ds.attrs.get("n_layers", layers.max())))
    ax[1].set(xlabel="where the FV is added (residual stream)", ylabel="accuracy (first answer token)",
              ylim=(0, 1.02), title=f"task {ds.attrs.get('task')}: {ds.sizes['seed']} seeds")
    ax[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig, ax
