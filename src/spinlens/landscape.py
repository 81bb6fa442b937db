r"""The energy landscape E(W) of the spin glass: sampled energies, 2-D embeddings, eigen-direction profiles.

The paper's picture (Fig 3): draw random weights W ~ N(0, I), compute their energies, embed the W in
2-D with t-SNE and interpolate the energies over the embedding; few tasks (P=10) look rugged, many
(P=1000) show one basin. Because E is quadratic,

.. math:: E(W^* + t u) - E(W^*) = \tfrac12 t^2 (\lambda + \mu_u)

along a unit eigenvector u of SᵀS/P with eigenvalue μ_u, so the landscape is fully described by the
spectrum: the (near-)zero modes (μ ≈ 0, at least D+1 of them: W's last column never enters the
prediction, and 1 − min(P, D(D+1))/(D+1)² of all modes almost surely) are flat directions held only by
λ. `direction_profiles` computes the profiles along the softest and stiffest directions from ``H.energy``
(a check of the closed form), `landscape_dataset` gathers everything for several P.

Also here: the Marchenko–Pastur law (`marchenko_pastur_density`, `marchenko_pastur_cdf`), the
reference for the spectrum of the token covariance X Xᵀ/N (Fig S5).
"""

from __future__ import annotations

import numpy as np

from .errors import check_float, check_int
from .random import RNGLike, as_generator, seed_from


def sample_energies(H, n_samples: int, *, scale: float = 1.0, rng: RNGLike = None) -> tuple[np.ndarray, np.ndarray]:
    """Random weights W ~ N(0, scale² I) and their energies (the paper's Fig 3 samples).

    Parameters
    ----------
    H : Hamiltonian
    n_samples : int >= 1
    scale : float > 0

    Returns
    -------
    W : ndarray of shape (n_samples, n_spins)
    energy : ndarray of shape (n_samples,)
    """
    n_samples = check_int("n_samples", n_samples, low=1, owner="sample_energies")
    scale = check_float("scale", scale, low=0, low_open=True, owner="sample_energies")
    g = as_generator(rng)
    W = scale * g.standard_normal((n_samples, H.n_spins))
    E = np.concatenate([np.atleast_1d(H.energy(W[i : i + 256])) for i in range(0, n_samples, 256)])
    return W, E


def tsne_embedding(X, *, perplexity: float = 30.0, rng: RNGLike = None) -> np.ndarray:
    """2-D t-SNE embedding (scikit-learn) of the rows of ``X`` (n_samples, n_features) -> (n_samples, 2)."""
    from sklearn.manifold import TSNE

    X = np.asarray(X, dtype=float)
    perplexity = min(float(perplexity), max(1.0, (X.shape[0] - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed_from(rng) % (2**31 - 1))
    return tsne.fit_transform(X)


def interpolate_surface(points, values, *, n_grid: int = 100, neighbors: int = 100, smoothing: float = 50.0,
                        kernel: str = "linear"):
    """Interpolate scattered ``values`` at 2-D ``points`` on a regular grid (scipy RBFInterpolator).

    Returns
    -------
    grid_x : ndarray of shape (n_grid,)
    grid_y : ndarray of shape (n_grid,)
    surface : ndarray of shape (n_grid, n_grid), indexed [iy, ix]
    """
    from scipy.interpolate import RBFInterpolator

    pts = np.asarray(points, dtype=float)
    vals = np.asarray(values, dtype=float)
    n_grid = check_int("n_grid", n_grid, low=2, owner="interpolate_surface")
    gx = np.linspace(pts[:, 0].min(), pts[:, 0].max(), n_grid)
    gy = np.linspace(pts[:, 1].min(), pts[:, 1].max(), n_grid)
    XX, YY = np.meshgrid(gx, gy)
    f = RBFInterpolator(pts, vals, neighbors=min(neighbors, len(pts)), smoothing=smoothing, kernel=kernel)
    Z = f(np.column_stack([XX.ravel(), YY.ravel()])).reshape(n_grid, n_grid)
    return gx, gy, Z


def count_local_minima(surface) -> int:
    """Number of strict local minima of a 2-D grid (8-neighbourhood, interior points only)."""
    Z = np.asarray(surface, dtype=float)
    c = Z[1:-1, 1:-1]
    is_min = np.ones_like(c, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            nb = Z[1 + di : Z.shape[0] - 1 + di, 1 + dj : Z.shape[1] - 1 + dj]
            is_min &= c < nb
    return int(is_min.sum())


def eigen_directions(H):
    """Eigenvalues (ascending) and unit eigenvectors of SᵀS/P: shapes (n_spins,) and (n_spins, n_spins)."""
    mu, U = np.linalg.eigh(H.gram())
    return np.clip(mu, 0.0, None), U


def direction_profiles(H, W0, directions, t) -> np.ndarray:
    """E(W0 + t·u) − E(W0) for each direction u, evaluated with ``H.energy``.

    Parameters
    ----------
    W0 : ndarray of shape (n_spins,) or (d+1, d+1)
    directions : ndarray of shape (n_directions, n_spins) (unit vectors)
    t : ndarray of shape (n_t,)

    Returns
    -------
    ndarray of shape (n_directions, n_t)
    """
    w0 = np.asarray(W0, dtype=float).reshape(-1)
    U = np.atleast_2d(np.asarray(directions, dtype=float))
    t = np.asarray(t, dtype=float)
    e0 = float(H.energy(w0))
    out = np.empty((U.shape[0], t.size))
    for k, u in enumerate(U):
        out[k] = np.asarray(H.energy(w0[None, :] + t[:, None] * u[None, :])) - e0
    return out


def near_zero_modes(eigenvalues, *, rtol: float = 1e-9) -> int:
    """Number of eigenvalues at most ``rtol`` times the largest."""
    ev = np.asarray(eigenvalues, dtype=float)
    if ev.size == 0 or ev.max() <= 0:
        return int(ev.size)
    return int(np.sum(ev <= rtol * ev.max()))


def landscape_dataset(d: int, n_context: int, n_prompts_list, *, l2_strength: float = 0.01, n_samples: int = 1000,
                      n_grid: int = 100, n_directions: int = 3, t_max: float = 3.0, n_t: int = 61,
                      perplexity: float = 30.0, rng: RNGLike = None, progress: bool = False):
    """The energy landscape for several P: the paper's t-SNE picture and the eigen-direction profiles.

    For each P: prompts → Hamiltonian; ``n_samples`` random W ~ N(0, I) and their energies; a 2-D t-SNE
    of those W and the RBF-interpolated energy surface; the spectrum of SᵀS/P and its near-zero modes;
    E along the ``n_directions`` softest and stiffest eigenvectors through the exact minimiser W*.

    Returns
    -------
    xarray.Dataset with dims ``n_prompts``, ``sample``, ``xy``, ``grid``, ``mode``, ``direction``, ``t``.
    """
    import xarray as xr

    from . import PromptDistribution, build_hamiltonian
    from .random import spawn
    from .solvers import ExactSolver

    Ps = [check_int("n_prompts", p, low=1, owner="landscape_dataset") for p in n_prompts_list]
    dist = PromptDistribution(d=d, n_context=n_context)
    K = (d + 1) ** 2
    t = np.linspace(-t_max, t_max, n_t)
    emb = np.zeros((len(Ps), n_samples, 2))
    energies = np.zeros((len(Ps), n_samples))
    gxs, gys = np.zeros((len(Ps), n_grid)), np.zeros((len(Ps), n_grid))
    surf = np.zeros((len(Ps), n_grid, n_grid))
    eigs = np.zeros((len(Ps), K))
    prof = np.zeros((len(Ps), 2 * n_directions, n_t))
    prof_exact = np.zeros_like(prof)
    dir_eig = np.zeros((len(Ps), 2 * n_directions))
    e_min = np.zeros(len(Ps))
    n_zero, n_minima = np.zeros(len(Ps), int), np.zeros(len(Ps), int)
    streams = spawn(rng, 3 * len(Ps))
    it = range(len(Ps))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="landscape", leave=False, disable=None)
    for i in it:
        H = build_hamiltonian(dist.sample(Ps[i], rng=streams[3 * i]), l2_strength=l2_strength)
        W, E = sample_energies(H, n_samples, rng=streams[3 * i + 1])
        energies[i] = E
        emb[i] = tsne_embedding(W, perplexity=perplexity, rng=streams[3 * i + 2])
        gxs[i], gys[i], surf[i] = interpolate_surface(emb[i], E, n_grid=n_grid)
        n_minima[i] = count_local_minima(surf[i])
        mu, U = eigen_directions(H)
        eigs[i] = mu
        n_zero[i] = near_zero_modes(mu)
        idx = np.r_[np.arange(n_directions), np.arange(K - n_directions, K)]
        W_star = ExactSolver(n_probes=0).solve(H).W.reshape(-1)
        e_min[i] = float(H.energy(W_star))
        prof[i] = direction_profiles(H, W_star, U[:, idx].T, t)
        dir_eig[i] = mu[idx]
        prof_exact[i] = 0.5 * (l2_strength + mu[idx])[:, None] * t[None, :] ** 2
    labels = [f"soft {k + 1}" for k in range(n_directions)] + [f"stiff {n_directions - k}" for k in range(n_directions)]
    return xr.Dataset(
        {
            "energy": (("n_prompts", "sample"), energies, {"long_name": "E(W) of random W ~ N(0, I)"}),
            "embedding": (("n_prompts", "sample", "xy"), emb, {"long_name": "t-SNE coordinates"}),
            "grid_x": (("n_prompts", "grid"), gxs),
            "grid_y": (("n_prompts", "grid"), gys),
            "surface": (("n_prompts", "grid_row", "grid"), surf, {"long_name": "interpolated energy"}),
            "n_local_minima": (("n_prompts",), n_minima, {"long_name": "local minima of the interpolated surface"}),
            "eigenvalues": (("n_prompts", "mode"), eigs, {"long_name": "eigenvalues of SᵀS/P"}),
            "n_zero_modes": (("n_prompts",), n_zero, {"long_name": "near-zero modes (≤ 1e-9 × largest)"}),
            "expected_zero_modes": (("n_prompts",), np.array([K - min(p, d * (d + 1)) for p in Ps]),
                                    {"long_name": "(D+1)² − min(P, D(D+1))"}),
            "profile": (("n_prompts", "direction", "t"), prof, {"long_name": "E(W*+tu) − E(W*)"}),
            "profile_closed_form": (("n_prompts", "direction", "t"), prof_exact,
                                    {"long_name": "½ t² (λ + μ_u)"}),
            "direction_eigenvalue": (("n_prompts", "direction"), dir_eig),
            "energy_min": (("n_prompts",), e_min, {"long_name": "E(W*) at the exact minimiser"}),
        },
        coords={"n_prompts": ("n_prompts", np.asarray(Ps)), "direction": ("direction", labels), "t": ("t", t)},
        attrs={"d": d, "n_context": n_context, "l2_strength": l2_strength, "n_samples": n_samples},
    )


def marchenko_pastur_density(x, ratio: float, sigma2: float = 1.0) -> np.ndarray:
    """Marchenko–Pastur density of the eigenvalues of X Xᵀ/N, X of shape (D, N) with i.i.d. N(0, σ²) entries.

    ``ratio`` = D/N. For ratio > 1 the point mass 1 − 1/ratio at 0 is not included (the density then
    integrates to 1/ratio).
    """
    q = check_float("ratio", ratio, low=0, low_open=True, owner="marchenko_pastur_density")
    x = np.asarray(x, dtype=float)
    lo, hi = sigma2 * (1 - np.sqrt(q)) ** 2, sigma2 * (1 + np.sqrt(q)) ** 2
    out = np.zeros_like(x)
    inside = (x > lo) & (x < hi)
    xi = x[inside]
    out[inside] = np.sqrt((hi - xi) * (xi - lo)) / (2 * np.pi * sigma2 * q * xi)
    return out


def marchenko_pastur_cdf(x, ratio: float, sigma2: float = 1.0, n_grid: int = 4001) -> np.ndarray:
    """CDF of the Marchenko–Pastur law (numerical integration of the density), including the mass at 0."""
    q = float(ratio)
    lo, hi = sigma2 * (1 - np.sqrt(q)) ** 2, sigma2 * (1 + np.sqrt(q)) ** 2
    # integrate in θ with x = (lo+hi)/2 − (hi−lo)/2 cos θ: removes the square-root edges
    th = np.linspace(0.0, np.pi, n_grid)
    xg = 0.5 * (lo + hi) - 0.5 * (hi - lo) * np.cos(th)
    dens = marchenko_pastur_density(xg, q, sigma2)
    dx = 0.5 * (hi - lo) * np.sin(th)
    f = dens * dx
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(th))])
    atom = max(0.0, 1.0 - 1.0 / q)
    x = np.asarray(x, dtype=float)
    return np.where(x < 0, 0.0, atom + np.interp(x, xg, cum, left=0.0, right=cum[-1]))


def spectrum_dataset(d: int, n_context: int, n_prompts_list, *, rng: RNGLike = None):
    """Eigenvalues of SᵀS/P for several P and their zero-mode fractions (measured and the rank formula).

    Returns
    -------
    xarray.Dataset with ``eigenvalues`` (n_prompts, mode), ``zero_mode_fraction`` and
    ``zero_mode_fraction_expected`` (n_prompts,).
    """
    import xarray as xr

    from . import PromptDistribution, build_hamiltonian
    from .observables import expected_zero_mode_fraction, hessian_spectrum, zero_mode_fraction
    from .random import spawn

    Ps = [check_int("n_prompts", p, low=1, owner="spectrum_dataset") for p in n_prompts_list]
    dist = PromptDistribution(d=d, n_context=n_context)
    streams = spawn(rng, len(Ps))
    eigs = np.zeros((len(Ps), (d + 1) ** 2))
    for i, P in enumerate(Ps):
        eigs[i] = hessian_spectrum(build_hamiltonian(dist.sample(P, rng=streams[i]), l2_strength=0.0))
    return xr.Dataset(
        {
            "eigenvalues": (("n_prompts", "mode"), eigs, {"long_name": "eigenvalues of SᵀS/P"}),
            "zero_mode_fraction": (("n_prompts",), np.array([zero_mode_fraction(e) for e in eigs])),
            "zero_mode_fraction_expected": (("n_prompts",), np.array([expected_zero_mode_fraction(d, P) for P in Ps])),
        },
        coords={"n_prompts": ("n_prompts", np.asarray(Ps), {"long_name": "number of prompts P"})},
        attrs={"d": d, "n_context": n_context},
    )


def landscape_run(d: int = 10, n_context: int = 50, n_prompts_list=(10, 1000), *, l2_strength: float = 0.01,
                  n_samples: int = 300, n_grid: int = 60, n_directions: int = 3, spectrum_d=(5, 10, 15),
                  spectrum: bool = True, out="landscape-out", seed: int = 0, progress: bool = True) -> dict:
    """What ``spinlens landscape`` does: `landscape_dataset` for each P side by side (``landscape.nc``,
    ``landscape.png/.pdf``) and, with ``spectrum``, the spectra of SᵀS/P (`spectrum_dataset`), the zero-mode
    fraction vs P for each D of ``spectrum_d`` (`spinlens.reproduce.figS7.compute`) and the token covariance of
    one prompt against Marchenko–Pastur (``spectrum.nc``, ``zero_modes.nc``, ``marchenko_pastur.csv``,
    ``spectrum.png/.pdf``), then run.json, all under ``out``.

    Returns the summary: for each P (key ``"P=<P>"``) ``zero_modes``, ``expected_zero_modes``,
    ``local_minima_surface``, ``softest_nonzero_eigenvalue``, ``stiffest_eigenvalue``; with ``spectrum`` also
    ``zero_mode_fraction_max_abs_difference_from_rank_formula``.
    """
    import time
    from pathlib import Path
    from typing import Any

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spinlens.io import check_out_dir
    from spinlens.plotting.landscape import plot_landscape_grid
    from spinlens.plotting.spectrum import plot_eigen_density, plot_mp_comparison, plot_zero_mode_fraction
    from spinlens.plotting.style import paper_style
    from spinlens.random import spawn
    from spinlens.reproduce import _framework as fw

    check_int("--D", d, low=1, high=60)
    check_int("--N", n_context, low=1, high=100_000)
    for P in n_prompts_list:
        check_int("--P", P, low=1, high=200000)
    check_float("--lam", l2_strength, low=0.0)
    check_int("samples", n_samples, low=10, high=20000)
    check_int("grid", n_grid, low=4, high=1000)
    check_int("directions", n_directions, low=1, high=(d + 1) ** 2 // 2)
    for ds_d in spectrum_d:
        check_int("spectrum_d", ds_d, low=1, high=60)
    check_int("seed", seed, low=0)
    check_out_dir("--out", out)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g_land, g_spec, g_zero, g_mp = spawn(seed, 4)
    ds = landscape_dataset(d, n_context, n_prompts_list, l2_strength=l2_strength, n_samples=n_samples,
                           n_grid=n_grid, n_directions=n_directions, rng=g_land, progress=progress)
    fw.save_dataset(ds, out, "landscape")
    Ps = list(ds["n_prompts"].values)
    with paper_style():
        fig, _ = plot_landscape_grid(
            ds, surface_title=lambda P, sub: f"P={P}: t-SNE of {n_samples} random W",
            suptitle=f"energy landscape: D={d}, N={n_context}, λ={l2_strength}")
        fw.save_figure(fig, out, "landscape")

    summary: dict[str, Any] = {}
    for k, P in enumerate(Ps):
        sub = ds.isel(n_prompts=k)
        mu = sub["eigenvalues"].values
        summary[f"P={P}"] = {
            "zero_modes": int(sub["n_zero_modes"]), "expected_zero_modes": int(sub["expected_zero_modes"]),
            "local_minima_surface": int(sub["n_local_minima"]),
            "softest_nonzero_eigenvalue": float(mu[mu > 1e-9 * mu.max()].min()), "stiffest_eigenvalue": float(mu.max()),
        }
    if spectrum:
        from spinlens.reproduce.figS7 import compute as zero_compute

        k = d * (d + 1)
        spec_P = sorted({max(1, k // 4), k // 2, k, 2 * k, *Ps})
        spec = spectrum_dataset(d, n_context, spec_P, rng=g_spec)
        zero = zero_compute(tuple(spectrum_d), n_context=n_context, n_points=10, rng=g_zero)
        fw.save_dataset(spec, out, "spectrum")
        fw.save_dataset(zero, out, "zero_modes")
        # token covariance X Xᵀ/N of one prompt's inputs against Marchenko–Pastur (ratio D/N)
        from spinlens.prompts import PromptDistribution

        n_tok = max(n_context, 2)
        X = PromptDistribution(d=d, n_context=n_tok).sample_inputs(max(20, 4000 // d), n_tok, rng=g_mp)
        ev = np.linalg.eigvalsh(X @ X.transpose(0, 2, 1) / n_tok).ravel()
        q = d / n_tok
        mp_x = np.linspace(0, 1.1 * (1 + np.sqrt(q)) ** 2, 400)
        fw.save_columns({"x": mp_x, "mp_density": marchenko_pastur_density(mp_x, q)}, out, "marchenko_pastur")
        with paper_style():
            fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
            plot_eigen_density({f"P={P}": spec["eigenvalues"].sel(n_prompts=P).values for P in spec_P},
                               title=f"spectrum of SᵀS/P, D={d}", ax=axes[0])
            plot_zero_mode_fraction(zero["zero_mode_fraction"], x="n_prompts", hue="d",
                                    floors={x: 1 / (x + 1) for x in spectrum_d},
                                    thresholds={x: x * (x + 1) for x in spectrum_d},
                                    title="zero-mode fraction vs P and D", ax=axes[1])
            plot_mp_comparison(ev, mp_x, marchenko_pastur_density(mp_x, q), label=f"X Xᵀ/N, D/N={q:.3g}",
                               title="token covariance vs Marchenko–Pastur", ax=axes[2])
            fig.tight_layout()
            fw.save_figure(fig, out, "spectrum")
        summary["zero_mode_fraction_max_abs_difference_from_rank_formula"] = float(
            np.nanmax(np.abs(zero["zero_mode_fraction"].values - zero["zero_mode_fraction_expected"].values)))
    record = {
        "command": "landscape", "description": "energy landscape and spectra of S^T S/P", "mode": "custom",
        "seed": seed,
        "parameters": {"D": d, "N": n_context, "P": Ps, "lam": l2_strength, "samples": n_samples, "grid": n_grid,
                       "directions": n_directions, "spectrum_d": list(spectrum_d)},
        "summary": summary, "elapsed_s": round(time.perf_counter() - t0, 3),
        "files": sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")),
        "versions": fw.package_versions(), "git_sha": fw.git_sha(),
    }
    fw.write_run_json(out, record)
    return summary
