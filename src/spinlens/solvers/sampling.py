"""Sampling the Boltzmann measure p(W) ∝ exp(−βE(W)).

`GaussianSampler` draws exact samples (the measure is Gaussian, precision β(λI + SᵀS/P)).
`LangevinSampler` needs only energy gradients: unadjusted Langevin dynamics
W ← W − η β ∇E(W) + √(2η) ξ, run as ``n_chains`` parallel chains. For this quadratic E its stationary
variance along a Hessian eigenvalue a is 1/(βa(1 − ηβa/2)): the default step η = 0.05/(β a_max)
keeps that bias below 2.5 %.

Both need a proper measure: a positive-definite Hessian λI + SᵀS/P, i.e. λ > 0. At λ = 0 the Hessian has zero
modes (the D+1 weights on the hidden query label, and more when P < n_spins), the measure is improper, with
infinite variance along them, and has no samples: both refuse it with an `InvalidParameterError` (`require_proper`); ``method="exact"`` returns the minimum-norm mean
and infinite variances there.

Both report sample estimates of the mean, marginal variances, the mean energy and the overlaps
q₁₂ = W¹·W²/n_spins between independent replicas and q₁₁ = W·W/n_spins, with their exact values.

Both report mixing diagnostics over their chains (`spinlens.solvers.mixing`: rank-normalized split-R̂ and
bulk/tail effective sample size, the definitions of Vehtari et al. 2021 that ArviZ reports), worst over the
spins, in ``extras["mixing"]``; ``converged`` is true only when they pass (R̂ < 1.01, both ESS ≥ 400 by
default). The Gaussian sampler's draws are independent, so it passes whenever it has enough of them; the
Langevin chains fail where the run is short against the slowest mode's relaxation time
1/(ηβa_min) = 20·a_max/a_min steps at the default step (a tiny λ, an ill-conditioned Hessian).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..errors import InvalidParameterError, check_float, check_int
from ..random import RNGLike, as_generator
from .base import RunOutput, Solver, check_beta
from .exact import ExactSolver
from .mixing import ESS_MIN, MIN_DRAWS, RHAT_MAX, mixing_diagnostics


def _improper(H, method: str) -> InvalidParameterError:
    return InvalidParameterError(
        f"The '{method}' method needs a positive-definite Hessian, i.e. l2_strength > 0. Got "
        f"l2_strength={H.l2_strength:g} (P={H.n_prompts}, n_spins={H.n_spins}): the Hessian has zero modes, the "
        f"Boltzmann measure is improper (infinite variance along them) and cannot be sampled; use a positive "
        f"l2_strength, or method 'exact' (minimum-norm mean, infinite variances)."
    )


def require_proper(H, method: str) -> None:
    """Raise `InvalidParameterError` unless λ > 0.

    At λ = 0 the Hessian SᵀS/P is always singular: the D+1 weights that multiply the hidden query label
    (0 in every prompt) are zero modes, whatever P; with P < n_spins there are more (rank SᵀS ≤ P).
    """
    if not H.l2_strength > 0:
        raise _improper(H, method)


def _exact_reference(H, beta):
    ex = ExactSolver(n_probes=0).solve(H, beta=beta)
    m = ex.m.reshape(-1)
    K = H.n_spins
    var = ex.v.reshape(-1)
    return {
        "mean": m,
        "var": var,
        "energy": float(H.energy(m)) + K / (2 * beta),
        "q12": float(m @ m) / K,
        "q11": float(m @ m + var.sum()) / K,
    }


def _summarise(H, samples_a, samples_b, beta, n_iter, message, exact=True, *, chains=None,
               rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN) -> RunOutput:
    """samples_*: (n, K) from two independent replicas; ``chains``: the same draws as (n_chains, n_draws, K)
    for the mixing diagnostics, which decide ``converged``."""
    K = H.n_spins
    allw = np.concatenate([samples_a, samples_b])
    mean = allw.mean(0)
    var = allw.var(0, ddof=1)
    energies = H.energy(allw)
    q12 = float(np.mean(np.sum(samples_a * samples_b, axis=1)) / K)
    q11 = float(np.mean(np.sum(allw * allw, axis=1)) / K)
    extras: dict[str, object] = {
        "n_samples": int(allw.shape[0]),
        "energy_mean": float(np.mean(energies)),
        "overlap_q12": q12,
        "overlap_q11": q11,
    }
    if exact:
        ref = _exact_reference(H, beta)
        extras.update(
            energy_exact=ref["energy"],
            overlap_q12_exact=ref["q12"],
            overlap_q11_exact=ref["q11"],
            mean_distance=float(np.linalg.norm(mean - ref["mean"]) / max(float(np.linalg.norm(ref["mean"])), 1e-300)),
        )
    res = np.linalg.norm(H.hessian_matvec(mean) - H.h) / max(float(np.linalg.norm(H.h)), 1e-300)
    converged = True
    if chains is not None:
        if chains.shape[1] < MIN_DRAWS:
            converged = False
            message += (f"; not converged: {chains.shape[1]} draws per chain, too few for the mixing diagnostics "
                        f"(≥ {MIN_DRAWS})")
            extras["mixing"] = None
        else:
            diag = mixing_diagnostics(chains, rhat_threshold=rhat_max, ess_threshold=ess_min)
            extras["mixing"] = diag.to_dict()
            converged = diag.passed
            message += (f"; split-R̂ {diag.rhat_max:.4g}, bulk ESS {diag.ess_bulk_min:.4g}, tail ESS "
                        f"{diag.ess_tail_min:.4g} (worst spin)")
            if not converged:
                message += f"; not mixed: {diag.why_not()}"
    return RunOutput(m=mean, v=var, n_iter=n_iter, residual=float(res), converged=converged, message=message,
                     extras=extras)


class GaussianSampler(Solver):
    """Exact draws W = m + L⁻ᵀz/√β from the Gaussian Boltzmann measure (needs λ > 0: `require_proper`).

    Parameters
    ----------
    n_samples : int
        Samples per replica (two independent replicas are drawn).
    compare_exact : bool
        Also report the exact energy, overlaps and the distance of the sample mean to the exact mean.
    """

    method = "sample"

    def __init__(self, n_samples: int = 1000, compare_exact: bool = True):
        self.n_samples = check_int("n_samples", n_samples, low=2, owner="GaussianSampler")
        self.compare_exact = bool(compare_exact)

    def draw(self, H, *, beta: float = 100.0, n: int | None = None, rng: RNGLike = None) -> np.ndarray:
        """n samples of shape (n, n_spins)."""
        beta = check_beta(beta, owner="GaussianSampler")
        n = self.n_samples if n is None else n
        g = as_generator(rng)
        require_proper(H, self.method)
        A = H.hessian()
        try:
            L = sla.cholesky(A, lower=True, check_finite=False)
        except (np.linalg.LinAlgError, sla.LinAlgError):
            raise _improper(H, self.method) from None
        m = sla.cho_solve((L, True), H.h, check_finite=False)
        z = g.standard_normal((H.n_spins, n))
        x = sla.solve_triangular(L, z, lower=True, trans="T", check_finite=False) / np.sqrt(beta)
        return (m[:, None] + x).T

    def _run(self, H, beta, rng):
        a = self.draw(H, beta=beta, rng=rng)
        b = self.draw(H, beta=beta, rng=rng)
        return _summarise(H, a, b, beta, 2 * self.n_samples, f"exact Gaussian draws: 2 replicas x {self.n_samples}",
                          exact=self.compare_exact, chains=np.stack([a, b]), ess_min=min(ESS_MIN, self.n_samples))


class LangevinSampler(Solver):
    """Unadjusted Langevin dynamics using only ∇E.

    Parameters
    ----------
    n_steps : int
        Steps after burn-in.
    n_burn : int
        Burn-in steps (default: n_steps // 2).
    n_chains : int
        Parallel chains per replica.
    step_size : float or None
        η; default 0.05/(β a_max) with a_max from power iteration on the Hessian.
    thin : int
        Keep every ``thin``-th state.
    compare_exact : bool
        Also report the exact energy, overlaps and the distance of the sample mean to the exact mean.
    rhat_max, ess_min : float
        The mixing test: ``converged`` only if the worst spin's split-R̂ is below ``rhat_max`` and its bulk
        and tail ESS over all 2·n_chains chains are at least ``ess_min`` (`spinlens.solvers.mixing`).
    """

    method = "langevin"

    def __init__(self, n_steps=2000, n_burn=None, n_chains=16, step_size=None, thin=10, compare_exact=True,
                 rhat_max=RHAT_MAX, ess_min=ESS_MIN):
        own = "LangevinSampler"
        self.n_steps = check_int("n_steps", n_steps, low=1, owner=own)
        self.n_burn = self.n_steps // 2 if n_burn is None else check_int("n_burn", n_burn, low=0, owner=own)
        self.n_chains = check_int("n_chains", n_chains, low=1, owner=own)
        self.step_size = None if step_size is None else check_float("step_size", step_size, low=0, low_open=True, owner=own)
        self.thin = check_int("thin", thin, low=1, owner=own)
        self.compare_exact = bool(compare_exact)
        self.rhat_max = check_float("rhat_max", rhat_max, low=1.0, low_open=True, owner=own)
        self.ess_min = check_float("ess_min", ess_min, low=0.0, owner=own)

    @staticmethod
    def max_curvature(H, *, rng: RNGLike = None, n_iter: int = 50) -> float:
        g = as_generator(rng)
        x = g.standard_normal(H.n_spins)
        lam = 1.0
        for _ in range(n_iter):
            y = H.hessian_matvec(x)
            lam = float(np.linalg.norm(y))
            x = y / lam
        return lam * 1.05

    def _run(self, H, beta, rng):
        require_proper(H, self.method)
        g = rng
        eta = self.step_size or 0.05 / (beta * self.max_curvature(H, rng=g))
        K = H.n_spins
        c = 2 * self.n_chains  # two replicas
        X = g.standard_normal((K, c)) / np.sqrt(beta * np.maximum(H.lam_diag, 1e-12))[:, None]
        h = H.h[:, None]
        kept = []
        total = self.n_burn + self.n_steps
        for t in range(total):
            grad = H.gram_matvec(X) - h + H.l2_strength * X
            X = X - eta * beta * grad + np.sqrt(2 * eta) * g.standard_normal(X.shape)
            if t >= self.n_burn and (t - self.n_burn) % self.thin == 0:
                kept.append(X.T.copy())
            if self._progress is not None and t % 20 == 0:
                self._progress(t + 1, None)
        S = np.stack(kept)  # (n_kept, c, K)
        a = S[:, : self.n_chains].reshape(-1, K)
        b = S[:, self.n_chains :].reshape(-1, K)
        msg = f"unadjusted Langevin: step {eta:.3g}, {self.n_burn} burn-in + {self.n_steps} steps, 2 replicas x {self.n_chains} chains"
        return _summarise(H, a, b, beta, total, msg, exact=self.compare_exact, chains=S.transpose(1, 0, 2),
                          rhat_max=self.rhat_max, ess_min=self.ess_min)
