"""Figures of the interpretability methods (computing lives in the method modules; this only draws).

Every function takes a result object and an optional ``ax`` and returns the figure. `save_figure` writes
PNG + PDF, `save_data` writes the DataArray/Dataset behind it as NetCDF.
"""

from __future__ import annotations

import numpy as np


def _fig(ax=None, **kw):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    return plt.subplots(**kw)


def save_figure(fig, out_dir, stem: str) -> list[str]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` under ``out_dir``; close the figure; return the paths."""
    from spinlens.io import save_figure as _save

    return _save(fig, out_dir, stem, bbox_inches="tight", dpi=150)


def save_data(obj, out_dir, stem: str) -> str:
    """Write an xarray DataArray/Dataset as ``<stem>.nc`` (NetCDF, through `spinlens.io.save_dataset`)."""
    from spinlens.io import save_dataset

    return save_dataset(obj, out_dir, stem)


_DIM_LABELS = {"layer": "layer", "head": "head", "pos": "position", "key_pos": "key position (token)",
               "query_pos": "query position (token)", "component": "component", "unit": "unit",
               "quantity": "task quantity", "stage": "stage (residual stream)", "neuron": "neuron"}


def _dim_label(dim: str) -> str:
    return _DIM_LABELS.get(dim, dim.replace("_", " "))


def plot_heatmap(da, *, ax=None, title: str = "", cmap: str = "RdBu_r", symmetric: bool = True, annotate: bool = True,
                 xlabel: str | None = None, ylabel: str | None = None, cbar_label: str | None = None):
    """Heatmap of a 2-D DataArray (first dim on the y axis).

    Axis labels default to readable names of the dims, the colourbar label to the DataArray's ``long_name``
    (and ``units``) attribute, else its name.
    """
    fig, ax = _fig(ax, figsize=(max(3.0, 0.45 * da.shape[1] + 1.5), max(2.2, 0.45 * da.shape[0] + 1.0)))
    v = np.asarray(da.values, dtype=float)
    vmax = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(v, cmap=cmap, vmin=-vmax if symmetric else None, vmax=vmax if symmetric else None, aspect="auto")
    ax.set_ylabel(ylabel or _dim_label(da.dims[0]))
    ax.set_xlabel(xlabel or _dim_label(da.dims[1]))
    ax.set_yticks(range(v.shape[0]), [str(c) for c in da.coords[da.dims[0]].values])
    if v.shape[1] <= 32:
        ax.set_xticks(range(v.shape[1]), [str(c) for c in da.coords[da.dims[1]].values])
    if annotate and v.size <= 64:
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                if np.isfinite(v[i, j]):
                    ax.text(j, i, f"{v[i, j]:.2f}", ha="center", va="center", fontsize=7)
    if cbar_label is None:
        cbar_label = da.attrs.get("long_name") or (da.name or "value").replace("_", " ")
        if da.attrs.get("units"):
            cbar_label += f" ({da.attrs['units']})"
    fig.colorbar(im, ax=ax, label=cbar_label)
    ax.set_title(title)
    return fig


def plot_patching(result, *, ax=None, head: int | None = None, title: str | None = None):
    """Heatmap of a `PatchingResult`: layer × head, layer × pos (layer components or one ``head``)."""
    da = result.scores
    if "pos" in da.dims and "head" in da.dims:
        da = da.sel(head=head) if head is not None else da.max("head")
    if da.ndim == 1:
        da = da.expand_dims(component=[result.component]).transpose("layer", "component")
    t = title or f"{result.component} patching ({result.direction}), {result.n_prompts} prompts"
    return plot_heatmap(da, ax=ax, title=t)


def plot_lens(result, *, ax=None, title: str = "read-out lens"):
    """Per-stage curve of the lens summary (regression: MSE to target/final; tokens: probability and rank)."""
    fig, ax = _fig(ax, figsize=(4.8, 3.2))
    s = result.summary
    x = np.arange(s.sizes["stage"])
    if result.kind == "regression":
        if "mse" in s:
            ax.plot(x, s["mse"], "o-", label="MSE to target")
        ax.plot(x, s["mse_to_final"], "s--", label="MSE to final output")
        ax.set_ylabel("mean squared error")
        ax.set_yscale("symlog", linthresh=1e-3)
    else:
        ax.plot(x, s["prob"], "o-", label="p(target)")
        ax2 = ax.twinx()
        ax2.plot(x, s["rank"], "s--", color="gray", label="rank of target")
        ax2.set_ylabel("mean rank")
        ax.set_ylabel("probability")
    ax.set_xticks(x, [str(v) for v in s.coords["stage"].values], rotation=45)
    ax.set_xlabel("stage (residual stream)")
    ax.legend(loc="best")
    ax.set_title(title)
    return fig


ROLE_COLORS = {"name_mover": "#D55E00", "negative_name_mover": "#56B4E9", "s_inhibition": "#009E73",
               "induction": "#E69F00", "duplicate_token": "#F0E442", "previous_token": "#999999"}


def plot_circuit(circuit, *, ax=None, title: str = "circuit", roles: dict | None = None):
    """Draw a `Circuit`: heads as nodes at (head, layer), the read-out on top, edges coloured by input.

    ``roles`` (``{role: [(layer, head), ...]}``, e.g. `spinlens.llm.ioi.IOIResult.roles`) colours each node by
    its first role (`ROLE_COLORS`) and adds the roles to the legend."""
    fig, ax = _fig(ax, figsize=(max(3.5, 0.7 * max(circuit.n_heads, 2) + 1.5), 1.0 + 1.0 * (circuit.n_layers + 1)))
    colors = {"out": "black", "q": "#0072B2", "k": "#E69F00", "v": "#009E73"}
    nL, nH = circuit.n_layers, circuit.n_heads
    for L in range(nL):
        for h in range(nH):
            on = (L, h) in circuit.nodes
            col = "#CC79A7"
            for role, hs in (roles or {}).items():
                if (L, h) in hs:
                    col = ROLE_COLORS.get(role, col)
                    break
            ax.scatter(h, L, s=260 if on else 60, c=col if on else "lightgray", zorder=3, edgecolors="k" if on else "none")
            if on:
                ax.text(h, L, f"{L}.{h}", ha="center", va="center", fontsize=7, zorder=4)
    out_xy = ((nH - 1) / 2, nL)
    ax.scatter(*out_xy, s=400, marker="s", c="white", edgecolors="k", zorder=3)
    ax.text(*out_xy, "out", ha="center", va="center", fontsize=8, zorder=4)
    wmax = max([abs(e[3]) for e in circuit.edges] + [1e-9])
    for s, r, inp, v in circuit.edges:
        xy_s = (s[1], s[0])
        xy_r = out_xy if r == "output" else (r[1], r[0])
        off = {"q": -0.12, "k": 0.0, "v": 0.12, "out": 0.0}[inp]
        ax.annotate("", xy=(xy_r[0] + off, xy_r[1] - 0.15), xytext=xy_s,
                    arrowprops=dict(arrowstyle="->", color=colors[inp], lw=0.8 + 3 * abs(v) / wmax), zorder=2)
    for k, c in colors.items():
        ax.plot([], [], color=c, label=k)
    for role, heads in (roles or {}).items():
        if any(hd in circuit.nodes for hd in heads):
            ax.scatter([], [], c=ROLE_COLORS.get(role, "#CC79A7"), edgecolors="k", label=role.replace("_", " "))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax.set_xlim(-0.7, nH - 0.3)
    ax.set_ylim(-0.6, nL + 0.6)
    ax.set_xticks(range(nH))
    ax.set_yticks(range(nL))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    return fig


def plot_flow(result, *, ax=None, title: str = "attention rollout to the query"):
    """Heatmap layer × key position of the rollout at the query."""
    return plot_heatmap(result.query_flow, ax=ax, title=title, cmap="viridis", symmetric=False, annotate=False,
                        xlabel="key position (token the query reads from)", ylabel="layer",
                        cbar_label="attention rollout weight to the query")


def plot_units(report, *, k: int = 12, ax=None, title: str = "unit descriptions"):
    """Correlation heatmap (unit × quantity) of the ``k`` units with the strongest best correlation."""
    order = np.argsort(-np.abs(report.best_r))[:k]
    da = report.corr.isel(unit=order)
    return plot_heatmap(da, ax=ax, title=title)


def plot_attribution_vs_exact(attr: np.ndarray, exact: np.ndarray, *, ax=None, title: str = "attribution vs exact path patching"):
    """Scatter of attribution-patching edge scores against exact path-patching scores."""
    fig, ax = _fig(ax, figsize=(3.6, 3.4))
    a, e = np.asarray(attr, float), np.asarray(exact, float)
    ok = np.isfinite(a) & np.isfinite(e)
    ax.scatter(e[ok], a[ok], s=12)
    lim = [min(e[ok].min(initial=0), a[ok].min(initial=0)), max(e[ok].max(initial=1), a[ok].max(initial=1))]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("exact path patching")
    ax.set_ylabel("attribution patching")
    ax.set_title(title)
    return fig


def fv_layer_ticks(ax, layers, n_layers: int) -> None:
    """x ticks of a function-vector plot whose points are the insertion layers ``layers`` (at 0, 1, ...):
    "before L", or "after last" for ``n_layers``; with many layers every few are labelled, so they stay legible."""
    import numpy as np

    layers = list(layers)
    step = max(1, int(np.ceil(len(layers) / 8)))
    show = list(range(0, len(layers), step))
    if show[-1] != len(layers) - 1:  # the last point always labelled, never crowding its neighbour
        show[-1 if len(layers) - 1 - show[-1] < step else len(show):] = [len(layers) - 1]
    ax.set_xticks(show, [f"before {layers[i]}" if layers[i] < n_layers else "after last" for i in show],
                  **({"fontsize": 7} if step > 1 else {}))


def plot_function_vectors(result, *, title: str = "function vectors"):
    """Two panels for a `FunctionVectorResult`: head indirect effects (layer × head) and accuracy with / without
    the FV added before each layer (zero-shot and shuffled prompts; dashed: clean in-context accuracy)."""
    fig, (a1, a2) = _fig(ncols=2, figsize=(9.5, 3.4))
    plot_heatmap(result.indirect_effect, ax=a1, title="indirect effect (Δ p(answer))")
    ev = result.evaluation
    layers = ev.coords["layer"].values
    x = np.arange(len(layers))
    for i, c in enumerate(ev.coords["condition"].values):
        e = ev.sel(condition=c)
        a2.plot(x, e["accuracy"], "o-", color=f"C{i}", label=f"{c} + FV")
        a2.axhline(float(e["base_accuracy"]), color=f"C{i}", ls=":", label=f"{c}, no FV")
    a2.axhline(ev.attrs["clean_accuracy"], color="k", ls="--", label="in-context (clean)")
    fv_layer_ticks(a2, layers, int(ev.attrs.get("n_layers", max(layers))))
    a2.set_xlabel("where the FV is added (residual stream)")
    a2.set_ylabel("accuracy")
    a2.set_ylim(0, 1.02)
    a2.legend(fontsize=7, loc="best")
    a2.set_title(f"{title}: heads {', '.join(f'({L},{h})' for L, h in result.heads)}")
    fig.tight_layout()
    return fig


def plot_ioi_heads(result, *, title: str = "IOI: evidence per head"):
    """Four heatmaps ``(layer, head)`` of an `spinlens.llm.ioi.IOIResult`: direct path score to the logits, path
    score through the name movers' queries, attention end → IO minus end → S2, duplicate-token + induction score."""
    import matplotlib.pyplot as plt

    att = result.attention
    panels = [(result.direct, "direct path → logits (name movers)", True),
              (result.to_name_movers_q, "path → name movers' q (S-inhibition)", True),
              (att.sel(target="io") - att.sel(target="s2"), "attention end→IO − end→S2", True),
              (result.head_scores.sel(kind="duplicate") + result.head_scores.sel(kind="induction"),
               "duplicate-token + induction score", False)]
    search = getattr(result, "search", None)
    n = 5 if search is not None else 4
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 0.22 * result.n_layers + 2), layout="constrained")
    for ax, (da, t, sym) in zip(axes, panels):
        plot_heatmap(da, ax=ax, title=t, symmetric=sym, annotate=False, cmap="RdBu_r" if sym else "viridis")
    if search is not None:  # faithfulness against circuit size: by effect, random sets, the circuit by role
        import numpy as np

        ax = axes[4]
        r = [np.asarray(x, dtype=float) for x in search.faithfulness_random]
        ax.plot(search.sizes, search.faithfulness, "o-", color="C0", label="circuit by effect")
        ax.errorbar(search.sizes, [x.mean() for x in r], yerr=[x.std(ddof=1) if len(x) > 1 else 0 for x in r],
                    fmt="s--", color="gray", capsize=2, label="random heads")
        if len(result.circuit):
            ax.plot([len(result.circuit)], [result.faithfulness], "D", color="C3", label="circuit by role")
        ax.axhline(1, color="k", lw=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("heads kept (others mean-ablated)")
        ax.set_ylabel("F(circuit) / F(model)")
        ax.set_title("faithfulness", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return fig


def plot_arithmetic(result, *, title: str = "arithmetic"):
    """Accuracy by setting (mean ± sd over seeds) and the head / MLP scores of the first seed of an
    `spinlens.llm.arithmetic.ArithmeticResult`."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    keys = list(result.accuracy)
    from spinlens.verdict import mean_sd

    m, e = zip(*(mean_sd(result.accuracy[k]) for k in keys)) if keys else ((), ())
    axes[0].barh(range(len(keys)), m, xerr=e, color="#0072B2")
    axes[0].set_yticks(range(len(keys)))
    axes[0].set_yticklabels(keys, fontsize=7)
    axes[0].set_xlabel(f"accuracy (mean ± sd over {len(result.seeds)} seeds)")
    axes[0].set_xlim(0, 1)
    lc = result.located[result.seeds[0]]
    plot_heatmap(lc.head_scores, ax=axes[1], title=f"direct path score (seed {result.seeds[0]})", annotate=False)
    for L, h in lc.heads:
        axes[1].scatter(h, L, marker="o", facecolors="none", edgecolors="k", s=40)
    axes[2].bar(lc.mlp_scores.coords["layer"].values, lc.mlp_scores.values, color="#009E73")
    axes[2].axhline(lc.mlp_threshold, color="k", lw=0.8, ls="--")
    axes[2].set_xlabel("layer")
    axes[2].set_ylabel("MLP activation-patching score")
    fig.suptitle(title)
    return fig


def plot_causal_trace(ds, *, title: str = "causal tracing"):
    """Three heatmaps (category × layer) of a `spinlens.llm.recall.RecallResult.indirect_effect` dataset —
    restored residual state, MLP window, attention window — and the curves at the last subject token (MLP,
    residual) and the last token (attention), mean ± sd over noise seeds."""
    fig, axes = _fig(ncols=4, figsize=(17, 3.6))
    names = {"resid": "single restored state", "mlp": "MLP window", "attn": "attention window"}
    cmaps = {"resid": "Purples", "mlp": "Greens", "attn": "Reds"}
    w = ds.attrs.get("window")
    cats = [str(c) for c in ds.category.values]
    for ax, k in zip(axes[:3], ds.kind.values):
        k = str(k)
        v = ds["mean"].sel(kind=k).transpose("category", "layer").values
        im = ax.imshow(v, aspect="auto", cmap=cmaps.get(k, "viridis"), vmin=0)
        ax.set_yticks(range(len(cats)), [f"{c} ({int(n)})" for c, n in zip(cats, ds["n_facts"].values)], fontsize=7)
        ax.set_xlabel("layer" + ("" if k == "resid" else f" (centre of a window of {w})"))
        ax.set_title(names.get(k, k), fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, label="indirect effect")
    ax = axes[3]
    for i, k in enumerate(ds.kind.values):
        cat = "last token" if str(k) == "attn" else "last subject token"
        if cat not in cats:
            continue
        m, s = ds["mean"].sel(kind=k, category=cat).values, ds["sd"].sel(kind=k, category=cat).values
        x = ds.layer.values
        ax.plot(x, m, "-", color=f"C{i}", label=f"{k} @ {cat}")
        ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.25)
    ax.set_xlabel("layer")
    ax.set_ylabel("indirect effect (Δ p(answer))")
    ax.legend(fontsize=7)
    ax.set_title(f"{title}: mean ± sd over {ds.attrs.get('n_seeds', '?')} noise seeds", fontsize=9)
    fig.tight_layout()
    return fig
