"""Energy-landscape pictures: interpolated t-SNE surfaces and profiles along Hessian eigen-directions."""

from __future__ import annotations

import numpy as np

from spinlens.plotting.style import PALETTE, new_figure


def plot_energy_surface(grid_x, grid_y, energy, *, points=None, title: str = "", levels: int = 30, ax=None):
    """Filled contours of an interpolated energy surface over a 2-D embedding.

    Parameters
    ----------
    grid_x, grid_y : arrays of shape (n_grid,)
    energy : array of shape (n_grid, n_grid), indexed [iy, ix]
    points : array of shape (n_samples, 2), optional
        Embedded samples, drawn as small dots.

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_figure(ax)
    cs = ax.contourf(np.asarray(grid_x), np.asarray(grid_y), np.asarray(energy), levels=levels, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="energy E(W)")
    if points is not None:
        p = np.asarray(points)
        ax.plot(p[:, 0], p[:, 1], ".", color="white", markersize=1.5, alpha=0.6)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    if title:
        ax.set_title(title)
    return fig, ax


def plot_direction_profiles(t, profiles, labels, *, title: str = "", logy: bool = False, ax=None):
    """Energy change E(W* + t·u) − E(W*) along unit eigen-directions u.

    Parameters
    ----------
    t : array of shape (n_t,)
    profiles : array of shape (n_directions, n_t)
    labels : sequence of n_directions strings

    Returns
    -------
    (fig, ax)
    """
    from spinlens.plotting.style import LINESTYLES, MARKERS

    fig, ax = new_figure(ax)
    colours = [c for k, c in PALETTE.items() if k != "black"]
    prof = np.asarray(profiles, float)
    tt = np.asarray(t, float)
    n = prof.shape[0]
    for k in range(n):
        # profiles can coincide (equal eigenvalues): distinct dashes and staggered markers keep each visible
        ax.plot(tt, prof[k], color=colours[k % len(colours)], linestyle=LINESTYLES[k % len(LINESTYLES)],
                marker=MARKERS[k % len(MARKERS)], markevery=(k * max(1, len(tt) // (4 * n)), max(1, len(tt) // 4)),
                markersize=4, mfc="none", zorder=2 + n - k, label=labels[k])
    if logy:
        ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_xlabel("distance t along the eigen-direction")
    ax.set_ylabel("E(W* + t u) − E(W*)")
    if title:
        ax.set_title(title)
    ax.legend()
    return fig, ax


def plot_landscape_grid(ds, *, surface_title, suptitle: str = ""):
    """Two rows per P of a landscape Dataset (`spinlens.landscape.landscape_dataset`): the interpolated
    t-SNE energy surface (top) and the energy along the Hessian's eigen-directions (bottom).

    ``surface_title(P, sub)`` gives each surface panel's title. Returns ``(fig, axes)``.
    """
    import matplotlib.pyplot as plt

    Ps = list(ds["n_prompts"].values)
    fig, axes = plt.subplots(2, len(Ps), figsize=(5.0 * len(Ps), 7.2), squeeze=False)
    for k, P in enumerate(Ps):
        sub = ds.isel(n_prompts=k)
        plot_energy_surface(sub["grid_x"].values, sub["grid_y"].values, sub["surface"].values,
                            points=sub["embedding"].values, title=surface_title(P, sub), ax=axes[0, k])
        plot_direction_profiles(sub["t"].values, sub["profile"].values, list(sub["direction"].values),
                                title=f"P={P}: {int(sub['n_zero_modes'])} zero modes of {sub.sizes['mode']}",
                                logy=True, ax=axes[1, k])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig, axes
