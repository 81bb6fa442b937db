"""Plots of the asymptotic theory (take computed xarray results, return ``(fig, ax)``; never compute)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_learning_curve", "plot_task_diversity", "plot_phase_diagram"]

_LABELS = {"icl_error": "ICL", "idg_error": "IDG", "g_task": "g_task"}


def plot_learning_curve(ds, x: str, variables=("icl_error", "idg_error"), *, ax=None, logx=False, logy=None):
    """Plot theory curves from `spinlens.theory.learning_curve` against the dimension ``x``.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of `learning_curve` with ``x`` among its dims; every other dim gives one line per value.
    x : str
        The swept parameter (``alpha``, ``tau``, ``kappa``, ``rho`` or ``lam_lu``).
    variables : sequence of str
        Variables to draw (``icl_error``, ``idg_error``, ``g_task``).
    ax : matplotlib Axes, optional
    logx, logy : bool
        Logarithmic axes. ``logy=None`` (default): logarithmic when the drawn values are positive and span more
        than a factor of 30 (e.g. the spike at λ = 0 that would flatten every other curve on a linear axis).

    Returns
    -------
    (fig, ax)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
    else:
        fig = ax.figure
    others = [d for d in ds.dims if d != x]
    stacked = ds.stack(_series=others) if others else ds.expand_dims("_series")
    linestyles = ["-", "--", ":", "-."]
    xs = ds[x].values
    drawn = []
    for j in range(stacked.sizes["_series"]):
        sub = stacked.isel(_series=j)
        tag = ", ".join(f"{o}={sub[o].item():g}" for o in others)
        color = None
        for i, var in enumerate(variables):
            yv = np.asarray(sub[var].transpose(x).values, dtype=float)
            yv = np.where(np.isfinite(yv), yv, np.nan)
            drawn.append(yv[np.isfinite(yv)])
            (line,) = ax.plot(xs, yv, linestyle=linestyles[i % 4], color=color,
                              label=f"{_LABELS.get(var, var)}" + (f" ({tag})" if tag else ""))
            color = line.get_color()
    fixed = [f"{n}={ds[n].item():g}" for n in ("alpha", "tau", "kappa", "rho", "lam_lu") if n in ds.coords and ds[n].ndim == 0]
    ax.set_xlabel(ds[x].attrs.get("long_name", x))
    ax.set_ylabel("test error")
    if fixed:
        ax.set_title(", ".join(fixed), fontsize=9)
    if logx:
        ax.set_xscale("log")
    if logy is None:
        allv = np.concatenate(drawn) if drawn else np.array([])
        logy = bool(allv.size and allv.min() > 0 and allv.max() / allv.min() > 30)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, ax


def plot_task_diversity(ds, *, theory=None, ax=None, show_idg: bool = True):
    """ICL (and IDG) error vs task-pool size K from `spinlens.theory.comparison.task_diversity_sweep`.

    Markers: linear attention (exact ridge solution of the spin glass), Bayes ridge, dMMSE; black lines: the
    asymptotic theory (``theory``, e.g. `spinlens.theory.comparison.diversity_theory_curve` on a fine grid;
    default: the theory values stored in ``ds`` at the swept K); dotted horizontal line: linear attention
    with a fresh task per prompt (K = ∞). Computes nothing.

    Returns
    -------
    (fig, ax)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7.4, 3.8))
    else:
        fig = ax.figure
    K = ds["n_tasks"].values
    fin = np.isfinite(K)
    if theory is not None:
        tk, t_icl, t_idg = theory["n_tasks"].values, theory["icl_error"].values, theory["idg_error"].values
    else:
        tk, t_icl, t_idg = K[fin], ds["theory_icl"].values[fin], ds["theory_idg"].values[fin]
    ax.plot(tk, t_icl, "k-", lw=1.2, label="theory ICL (Lu et al.)")
    if show_idg:
        ax.plot(tk, t_idg, "k--", lw=1.0, label="theory IDG")
    styles = [("attention", "o", "C0", "linear attention"), ("ridge", "s", "C2", "ridge (Bayes, fresh tasks)"),
              ("dmmse", "^", "C3", "dMMSE (Bayes, pool)")]
    for key, marker, color, label in styles:
        ax.plot(K[fin], ds[f"{key}_icl"].values[fin], marker=marker, color=color, ls="-", lw=0.8, label=f"{label} ICL")
        if show_idg:
            ax.plot(K[fin], ds[f"{key}_idg"].values[fin], marker=marker, color=color, ls=":", lw=0.8,
                    mfc="none", label=f"{label} IDG")
    if (~fin).any():
        ax.axhline(float(ds["attention_icl"].values[~fin][0]), color="C0", ls=":", lw=1.0,
                   label="linear attention, K = ∞")
    ax.set_xscale("log")
    ax.set_xlabel("task-pool size K")
    ax.set_ylabel("test error")
    a = ds.attrs
    ax.set_title(f"D={a['d']}, N={a['n_context']}, P={a['n_prompts']}, λ={a['l2_strength']:g}, "
                 f"σ_ε={a['sigma_eps']:g}", fontsize=9)
    # outside the axes, on the right: inside, the legend of up to 7 entries covered the curves at small K
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig, ax


_PHASE_PANELS = ("icl_error", "g_task", "contrast_ratio", "converged_fraction", "diverged_fraction",
                 "exact_icl_error", "exact_g_task", "exact_contrast_ratio", "theory_icl_error", "theory_g_task")
_PHASE_TITLES = {
    "icl_error": "cavity: ICL error", "pool_error": "cavity: pool error", "g_task": "cavity: g_task = ICL − pool",
    "contrast_ratio": "cavity: contrast ratio", "converged_fraction": "cavity: converged fraction",
    "diverged_fraction": "cavity: diverged fraction (v ≤ 0)",
    "exact_icl_error": "exact ridge: ICL error", "exact_pool_error": "exact ridge: pool error",
    "exact_g_task": "exact ridge: g_task", "exact_contrast_ratio": "exact ridge: contrast ratio",
    "theory_icl_error": "theory (Lu et al.): ICL error", "theory_idg_error": "theory: IDG error",
    "theory_g_task": "theory: g_task",
}


_PHASE_UNITS = {"err": "test error (squared label units)", "g": "g_task (squared label units)",
                "cr": "contrast ratio"}


def _edges(v, log: bool) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    t = np.log(v) if log else v
    if len(t) == 1:
        e = np.array([t[0] - 0.5, t[0] + 0.5]) if not log else np.array([t[0] - 0.35, t[0] + 0.35])
    else:
        mid = 0.5 * (t[1:] + t[:-1])
        e = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return np.exp(e) if log else e


def plot_phase_diagram(ds, panels=_PHASE_PANELS, *, ncols: int = 5, figsize=None):
    """Heatmaps over task-pool size K (log x axis) and context length N from `task_pool_phase_diagram`.

    Cells whose cavity runs all failed to converge are blank (NaN); cells where only some repeats
    converged carry a small dot. The dashed vertical line is κ = K/D = 1. ICL-error panels share one
    colour scale, g_task panels another, so cavity, exact ridge and theory can be compared by eye.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of `spinlens.theory.phase.task_pool_phase_diagram` (dims ``n_tasks``, ``n_context``).
    panels : sequence of str
        Variables to draw; missing ones (e.g. ``exact_*`` when computed with ``exact=False``) are skipped.
    ncols : int
        Panels per row.

    Returns
    -------
    (fig, axes)
        ``axes`` is the flat array of used Axes.
    """
    import matplotlib.pyplot as plt

    data = {}
    for name in panels:
        if name in ds:
            data[name] = ds[name].transpose("n_context", "n_tasks").values.astype(float)
    names = list(data)
    if not names:
        raise ValueError("plot_phase_diagram: none of the requested panels is in the dataset.")
    nrows = -(-len(names) // ncols)
    nc = min(ncols, len(names))
    fig, axes = plt.subplots(nrows, nc, figsize=figsize or (3.3 * nc, 2.9 * nrows), squeeze=False,
                             constrained_layout=True)
    K = ds["n_tasks"].values.astype(float)
    N = ds["n_context"].values.astype(float)
    xe, ye = _edges(K, True), _edges(N, False)

    def _group(n):
        if n.endswith("g_task"):
            return "g"
        if n.endswith("contrast_ratio"):
            return "cr"
        if n.endswith("icl_error") or n.endswith("pool_error") or n.endswith("idg_error"):
            return "err"
        return n

    lims: dict[str, tuple[float, float]] = {}
    for n in names:
        finite = data[n][np.isfinite(data[n])]
        if finite.size:
            lo, hi = lims.get(_group(n), (np.inf, -np.inf))
            lims[_group(n)] = (min(lo, finite.min()), max(hi, finite.max()))
    frac = ds["converged_fraction"].transpose("n_context", "n_tasks").values if "converged_fraction" in ds else None
    d = ds.attrs.get("d")
    for ax, n in zip(axes.flat, names):
        vmin, vmax = lims.get(_group(n), (0.0, 1.0))
        if n in ("converged_fraction", "diverged_fraction"):
            vmin, vmax = 0.0, 1.0
        cmap = plt.get_cmap("magma" if _group(n) == "g" else "viridis").with_extremes(bad="white")
        z = np.ma.masked_invalid(data[n])
        mesh = ax.pcolormesh(xe, ye, z, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat",
                             edgecolors="0.85", linewidth=0.2)
        fig.colorbar(mesh, ax=ax, shrink=0.85, label=_PHASE_UNITS.get(_group(n), "fraction of runs"))
        if frac is not None and n.split("_")[0] not in ("exact", "theory") and not n.endswith("_fraction"):
            kk, nn = np.meshgrid(K, N)
            part = (frac > 0) & (frac < 1)
            ax.plot(kk[part], nn[part], ".", color="white", ms=2.5, mec="k", mew=0.3)
        if d:
            ax.axvline(d, color="red", ls="--", lw=1.0)
        ax.set_xscale("log")
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        ax.set_xlabel("task-pool size K")
        ax.set_ylabel("context length N")
        ax.set_title(_PHASE_TITLES.get(n, n), fontsize=9)
    for ax in list(axes.flat)[len(names):]:
        ax.remove()
    a = ds.attrs
    fig.suptitle(f"D={a.get('d')}, P={a.get('n_prompts')}, λ={a.get('l2_strength', float('nan')):g}, "
                 f"σ_ε={a.get('sigma_eps', 0):g}, β={a.get('beta', float('nan')):g}, θ={a.get('damping', float('nan')):g}, "
                 f"{a.get('n_repeats', 1)} repeat(s); blank: cavity not converged; dashed: κ = K/D = 1",
                 fontsize=9)
    return fig, np.array(list(axes.flat)[: len(names)])
