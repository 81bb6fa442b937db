"""Figures of the edit experiments; each takes the experiment's Dataset and returns (fig, axes). No computing."""

from __future__ import annotations

import json

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_steering(ds):
    """Left: recovery of the ICL prediction vs strength, one line per layer (solid: function vector,
    dashed: mean-difference vector, dotted: random vector of the FV's norm; ×: task-vector patch).
    Right: head indirect effects."""
    plt = _plt()
    fig, (ax0, ax, ax2) = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1.2, 1.4, 1]})
    s = ds["strength"].values
    colors0 = plt.cm.viridis(np.linspace(0, 0.9, ds.sizes["layer"]))
    for i, hk in enumerate(ds["layer"].values):
        ax0.plot(s, ds["abs_shift"].values[i], "-o", ms=3, color=colors0[i], label=str(hk))
    ax0.set_xlabel("strength α")
    ax0.set_ylabel("mean |ŷ_steered − ŷ|")
    ax0.set_title("effect size of the function vector", fontsize=9)
    ax0.legend(fontsize=7)
    colors = plt.cm.viridis(np.linspace(0, 0.9, ds.sizes["layer"]))
    for i, hk in enumerate(ds["layer"].values):
        ax.plot(s, ds["recovery"].values[i], "-o", ms=3, color=colors[i], label=str(hk))
        ax.plot(s, ds["recovery_random"].values[i], ":", color=colors[i])
        if "recovery_mean_diff" in ds:
            ax.plot(s, ds["recovery_mean_diff"].values[i], "--", color=colors[i])
        ax.plot([s[-1] * 1.04], [ds["recovery_task_vector"].values[i]], "x", color=colors[i], ms=7)
    ax.axhline(ds.attrs["recovery_icl"], color="k", lw=1.2, ls="-.", label="full ICL prompt")
    ax.axhline(0, color="gray", lw=0.5)
    # a key for the line styles (the colours say which layer)
    ax.plot([], [], "-o", ms=3, color="0.3", label="function vector")
    if "recovery_mean_diff" in ds:
        ax.plot([], [], "--", color="0.3", label="mean difference (CAA)")
    ax.plot([], [], ":", color="0.3", label="random vector, same norm")
    ax.plot([], [], "x", ms=7, color="0.3", label="task-vector patch")
    ax.set_xlabel("strength α (vector added at the query)")
    ax.set_ylabel("1 − MSE / MSE(zero-shot)")
    ax.set_title("steering zero-shot prompts towards task w_A", fontsize=9)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ie = ds["indirect_effect"].values
    im = ax2.imshow(ie, cmap="RdBu_r", aspect="auto", extent=(-0.5, ie.shape[1] - 0.5, ie.shape[0] - 0.5, -0.5),
                    vmax=np.abs(ds["indirect_effect"].values).max(), vmin=-np.abs(ds["indirect_effect"].values).max())
    ax2.set_xticks(range(ie.shape[1]))
    ax2.set_yticks(range(ie.shape[0]))
    ax2.set_xlabel("head")
    ax2.set_ylabel("layer")
    ax2.set_title("causal indirect effect (FV heads: " + ", ".join(f"L{a}H{b}" for a, b in json.loads(ds.attrs["fv_heads"])) + ")",
                  fontsize=8)
    fig.colorbar(im, ax=ax2, label="indirect effect (Δ MSE)")
    fig.tight_layout()
    return fig, (ax0, ax, ax2)


def plot_pinpoint(ds):
    """Target-task gain vs change on the general task, one point per run, labelled by method."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6), gridspec_kw={"width_ratios": [1.5, 1]})
    marks = {"importance": ("o", "C0"), "bottom": ("v", "C3"), "random": ("s", "C1"), "full": ("*", "C2"),
             "before": ("x", "k")}
    seen = set()
    for i in range(ds.sizes["run"]):
        meth = str(ds["method"].values[i])
        mk, col = marks.get(meth, ("o", "gray"))
        lab = None if meth in seen else f"{meth} ({int(ds['n_trainable'].values[i])} params)"
        seen.add(meth)
        ax.plot(ds["target_gain"].values[i], ds["general_change"].values[i], mk, color=col, ms=8, label=lab)
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_xlabel("target-task MSE decrease (gain)")
    ax.set_ylabel("general-task MSE change")
    ax.set_title(f"pinpoint tuning, k={ds.attrs.get('k')} heads, target={ds.attrs.get('target')}", fontsize=9)
    ax.legend(fontsize=7)
    imp = ds["importance"].values
    im = ax2.imshow(imp, cmap="viridis", aspect="auto", extent=(-0.5, imp.shape[1] - 0.5, imp.shape[0] - 0.5, -0.5))
    ax2.set_xticks(range(imp.shape[1]))
    ax2.set_yticks(range(imp.shape[0]))
    ax2.set_xlabel("head")
    ax2.set_ylabel("layer")
    ax2.set_title(f"head importance ({ds.attrs.get('importance')})", fontsize=9)
    fig.colorbar(im, ax=ax2, label=ds["importance"].attrs.get("long_name", "importance score"))
    fig.tight_layout()
    return fig, (ax, ax2)


def plot_merging(ds):
    """Grouped bars: test MSE of every model (base, experts, merges) on task A, task B and the base task."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    models, tasks = list(ds["model"].values), list(ds["task"].values)
    w = 0.8 / len(tasks)
    x = np.arange(len(models))
    for j, t in enumerate(tasks):
        ax.bar(x + (j - (len(tasks) - 1) / 2) * w, ds["mse"].values[:, j], w, label=str(t))
    ax.set_xticks(x)
    ax.set_xticklabels(models, rotation=20, fontsize=8)
    ax.set_xlabel("model (base, fine-tuned experts, merges)")
    ax.set_ylabel("test MSE (squared label units)")
    ax.set_yscale("log")
    ax.set_title("merging two fine-tunes of one ICL base", fontsize=9)
    ax.legend(fontsize=8, title="evaluated on", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig, ax


def plot_quantization(ds):
    """Error vs average bits: uniform RTN (line), importance-guided and measured-guided allocations, random.

    The error is ``ds[ds.attrs["metric"]]`` where that variable exists (``kl`` or ``loss`` for an LM), else ``mse``.
    """
    plt = _plt()
    y = ds.attrs.get("metric", "mse")
    y = y if y in ds else "mse"
    fig, ax = plt.subplots(figsize=(6, 4))
    sch = ds["scheme"].values
    style = {"uniform": ("-o", "k"), "guided_attribution": ("-s", "C0"), "guided_ablation": ("-d", "C4"), "guided_measured": ("-^", "C2"),
             "guided_fisher": ("-v", "C1"), "random": ("x", "C3")}
    for name, (mk, col) in style.items():
        sel = sch == name
        if not sel.any():
            continue
        b, e = ds["average_bits"].values[sel], ds[y].values[sel]
        if name != "random":
            o = np.argsort(b)
            b, e = b[o], e[o]
        ax.plot(b, e, mk, color=col, label=name.replace("_", " "), ms=5)
    if ds.attrs.get(f"fp_{y}", 0) > 0:
        ax.axhline(ds.attrs[f"fp_{y}"], color="gray", ls="--", lw=0.8, label="full precision")
    ax.axvline(3.4, color="gray", ls=":", lw=0.8, label="3.4 bits (reference budget)")
    ax.set_xlabel(f"average bits per weight (group size {ds.attrs['group_size']}, overhead not counted)")
    ax.set_ylabel(ds[y].attrs.get("long_name", "test MSE"))
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    what = {"head": "heads + MLPs", "module": "attention + MLP per layer", "layer": "one width per layer",
            "linear": "each Linear per layer"}.get(ds.attrs.get("granularity"), ds.attrs.get("granularity", ""))
    ax.set_title(f"mixed-precision fake quantization ({what})", fontsize=9)
    fig.tight_layout()
    return fig, ax


def save_figure(fig, out_dir, stem: str):
    """Save ``fig`` as PNG and PDF in ``out_dir`` (through `spinlens.io.save_figure`); returns the two paths."""
    from pathlib import Path

    from spinlens.io import save_figure as _save

    return [Path(p) for p in _save(fig, out_dir, stem, close=False, dpi=150)]


def plot_steering_sweep(ds, variable: str = "abs_shift", ax=None):
    """Plot ``ds[variable]`` vs strength, one line per hook; returns (fig, ax). Computes nothing."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    for hk in ds["hook"].values:
        ax.plot(ds["strength"].values, ds[variable].sel(hook=hk).values, marker="o", ms=3, label=str(hk))
    ax.set_xlabel("steering strength α")
    ax.set_ylabel(ds[variable].attrs.get("long_name", variable))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, ax


def plot_precise_tuning(curves, *, gain_key: str, cost_keys=("d_heldout_loss", "d_ioi_logit_diff"), matched=None):
    """Cost against gain along training, one line per (method, seed) (`spinlens.llm.tuning.precise_tuning`
    curves: dicts with ``method``, ``seed``, ``step``, ``gain_key`` and the cost keys); with ``matched``
    (`spinlens.llm.matched.matched_costs`), the mean ± sd cost at each matched gain as error bars."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(cost_keys), figsize=(4.6 * len(cost_keys), 3.6), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in curves))
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for ax, ck in zip(axes[0], cost_keys):
        runs: dict = {}
        for r in curves:
            runs.setdefault((r["method"], r["seed"]), []).append(r)
        seen = set()
        for (m, _), rows in runs.items():
            rows = sorted(rows, key=lambda x: x["step"])
            ax.plot([x[gain_key] for x in rows], [x[ck] for x in rows], "-o", ms=2.5, lw=0.8, alpha=0.5,
                    color=colors[m], label=None if m in seen else m)
            seen.add(m)
        if matched is not None and matched.get("levels"):
            for i, m in enumerate(methods):
                vals = matched["costs"].get(m, {}).get(ck)
                if not vals:
                    continue
                lv = np.asarray(matched["levels"]) + (i - len(methods) / 2) * 0.004
                ax.errorbar(lv, [v[0] for v in vals], yerr=[v[1] for v in vals], fmt="s", ms=5, color=colors[m],
                            capsize=2)
        ax.axhline(0, color="gray", lw=0.5)
        ax.set_xlabel(gain_key.replace("_", " ") + " (accuracy gain)")
        ax.set_ylabel(ck.replace("d_", "change of ").replace("_", " "))
        ax.legend(fontsize=7)
    axes[0][0].set_title("cost vs gain along training (squares: matched gains, mean ± sd)", fontsize=8)
    fig.tight_layout()
    return fig, axes[0]

def plot_llm_quantization(result):
    """Held-out perplexity vs effective bits of a `spinlens.llm.quantization.QuantizationStudy`: the uniform
    3–4 bit line, guided, random allocations, library anchors and the aligned groupings."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = [r for r in result.rows if "skipped" not in r and r["method"] != "fp32"]
    u = sorted((r for r in rows if r["method"] in ("uniform3", "uniform4")), key=lambda r: r["effective_bits"])
    ax.plot([r["effective_bits"] for r in u], [r["perplexity"] for r in u], "-o", color="k",
            label=f"uniform 3 → 4 bits (group {result.group_size})")
    styles = {"guided": ("*", "C0", 12), "random": ("x", "C3", 7), "hqq4": ("D", "C2", 6), "torchao4": ("^", "C1", 6)}
    for method, (mk, col, ms) in styles.items():
        rs = [r for r in rows if r["method"] == method]
        if rs:
            ax.plot([r["effective_bits"] for r in rs], [r["perplexity"] for r in rs], mk, color=col, ms=ms, ls="none",
                    label=f"{method} ({len(rs)})" if method == "random" else method)
    al = [r for r in rows if r["method"].startswith("uniform") and "_g" in r["method"]]
    for g in sorted({r["group_size"] for r in al}):
        rs = sorted((r for r in al if r["group_size"] == g), key=lambda r: r["effective_bits"])
        ax.plot([r["effective_bits"] for r in rs], [r["perplexity"] for r in rs], "--s", ms=4, alpha=0.7,
                label=f"uniform 3 → 4, group {g} (aligned with Q4_1)")
    fp = next(r for r in result.rows if r["method"] == "fp32")
    ax.axhline(fp["perplexity"], color="gray", ls=":", lw=0.8, label="published weights")
    ax.set_xlabel("effective bits per quantized weight (with 16-bit scale + zero per group)")
    ax.set_ylabel("held-out perplexity")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title(f"{result.model}: guided {result.budget:g} bits ({result.importance}), "
                 f"{result.accounting['quantized_share']:.1%} of parameters quantized", fontsize=9)
    fig.tight_layout()
    return fig, ax


def plot_sycophancy(result):
    """Left: drop of the flip score per patched head (layers × heads). Right: flip rate and held-out
    perplexity change per tuning method (mean ± sd over seeds) of a `SycophancyResult`."""
    plt = _plt()
    matched = getattr(result, "matched", None) or {}
    n_ax = 4 if matched.get("levels") else 3
    fig, axes = plt.subplots(1, n_ax, figsize=(4.3 * n_ax, 3.8), gridspec_kw={"width_ratios": [1.3] + [1] * (n_ax - 1)})
    ax0, ax1, ax2 = axes[:3]
    eff = np.asarray(result.head_effects)
    v = float(np.abs(eff).max()) or 1.0
    im = ax0.imshow(eff.T, aspect="auto", cmap="RdBu_r", vmin=-v, vmax=v, origin="lower")
    ax0.set_xlabel("layer")
    ax0.set_ylabel("head")
    ax0.set_title("flip-score drop when patched from the plain prompt", fontsize=9)
    fig.colorbar(im, ax=ax0)
    for layer, h in result.heads:
        ax0.plot(layer, h, "o", mfc="none", mec="k", ms=7)
    names = list(result.summary)
    x = np.arange(len(names) + 1)
    fr = [result.before["flip_rate"]] + [result.summary[n]["flip_rate"] for n in names]
    fr_sd = [0.0] + [result.summary[n].get("flip_rate_sd", 0.0) for n in names]
    ax1.bar(x, fr, yerr=fr_sd, color=["gray"] + [f"C{i}" for i in range(len(names))])
    ax1.set_xticks(x, ["before", *names], fontsize=8)
    ax1.set_ylabel("flip rate (held-out questions)")
    dp = [result.summary[n]["d_perplexity"] for n in names]
    dp_sd = [result.summary[n].get("perplexity_sd", 0.0) for n in names]
    ax2.bar(x[1:], dp, yerr=dp_sd, color=[f"C{i}" for i in range(len(names))])
    ax2.set_xticks(x[1:], names, fontsize=8)
    ax2.set_ylabel("Δ held-out perplexity")
    ax2.axhline(0, color="k", lw=0.6)
    if n_ax == 4:  # cost at matched effect: Δ perplexity where each run's flip rate first fell by each level
        ax3 = axes[3]
        lv = np.asarray(matched["levels"])
        for i, n in enumerate(names):
            c = np.array([(m, sd) for m, sd, _ in matched["costs"][n]["d_perplexity"]], dtype=float)
            ax3.errorbar(lv, c[:, 0], yerr=c[:, 1], marker="o", color=f"C{i}", label=n, capsize=2)
        ax3.set_xlabel("fall of the flip rate (matched)")
        ax3.set_ylabel("Δ held-out perplexity at that fall")
        ax3.axhline(0, color="k", lw=0.6)
        ax3.legend(fontsize=7)
    fig.suptitle(f"{result.model}: sycophancy under pushback, {result.k} located heads vs random heads vs full "
                 f"fine-tuning ({result.steps} steps, lr {result.lr:g})", fontsize=9)
    fig.tight_layout()
    return fig, tuple(axes)
