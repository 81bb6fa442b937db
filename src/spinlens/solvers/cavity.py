r"""The cavity method (message passing) of Li, Bai & Huang, exactly as published, vectorised.

Jacobi updates with damping θ:

.. math::
    m_i \leftarrow \frac{\beta (h_i + \sum_{j\ne i} J_{ij} m_j)}{\beta\lambda_i - \beta^2 \sum_{j\ne i} J_{ij}^2 v_j},
    \qquad v_i \leftarrow \frac{1}{\beta\lambda_i - \beta^2 \sum_{j\ne i} J_{ij}^2 v_j},

new = θ·old + (1−θ)·update, stopping when the mean squared change of m plus that of v (before damping)
is below ``tol``, or after ``max_iter`` steps. The initial (m, v) are standard normal draws (the
published code) or zeros.

This update has no Onsager reaction term in the numerator, so its fixed point is *not* the exact
Boltzmann mean (a ridge solution with a weaker effective λ); the result reports the relative distance
to the exact mean in ``extras["exact_distance"]`` (docs/paper-notes.md). `TapSolver` adds the reaction
term; its fixed points are the exact mean. When the variance equation has no
positive solution the iteration diverges: the result then has ``converged=False`` and the last finite
iterate, never NaN.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import InvalidParameterError, check_choice, check_float, check_int
from .base import RunOutput, Solver


class CavitySolver(Solver):
    """The paper's message passing.

    Parameters
    ----------
    damping : float in [0, 1)
        θ: new = θ old + (1−θ) update (paper: 0.9).
    max_iter : int >= 1
        Step cap (paper: 100).
    tol : float > 0
        Threshold on the mean squared change of m plus that of v (paper: 1e-6).
    init : {"random", "zeros"}
        Initial messages: standard normal (as published; drawn from ``rng``) or zeros.
    compare_exact : bool
        Also compute the exact Boltzmann mean and report the relative distance (``extras``).
    """

    method = "cavity"
    reaction = False

    def __init__(self, damping=0.9, max_iter=100, tol=1e-6, init="random", compare_exact=True):
        own = type(self).__name__
        self.damping = check_float("damping", damping, low=0.0, high=1.0, high_open=True, owner=own)
        self.max_iter = check_int("max_iter", max_iter, low=1, owner=own)
        self.tol = check_float("tol", tol, low=0.0, low_open=True, owner=own)
        self.init = check_choice("init", init, ("random", "zeros"), owner=own)
        self.compare_exact = bool(compare_exact)

    def _run(self, H, beta, rng):
        K = H.n_spins
        if self.init == "random":
            m0 = rng.standard_normal(K)
            v0 = rng.standard_normal(K)
        else:
            m0 = np.zeros(K)
            v0 = np.zeros(K)
        H.pair_gram()  # first: the diagonal and the couplings are read off it
        st = cavity_iterate(
            H, H.h, H.lam_diag, beta=beta, damping=self.damping, max_iter=self.max_iter, tol=self.tol,
            m0=m0, v0=v0, reaction=self.reaction, callback=self._progress,
        )
        m, v, n_iter, err = st.m, st.v, st.n_iter, st.err
        n_neg = int(np.sum(v <= 0))
        message = {
            "converged": f"converged: mean squared change {err:.3g} < tol={self.tol:g}",
            "diverged": f"diverged at step {n_iter + 1}: messages overflow (the variance equation has no positive solution)",
            "nonpositive": f"stopped at a fixed point with {n_neg} non-positive variances (not a valid Gaussian measure)",
            "max_iter": f"reached max_iter={self.max_iter} without meeting tol={self.tol:g}"
            + (f"; {n_neg} variances are non-positive" if n_neg else ""),
        }[st.status]
        extras: dict = {}
        if self.compare_exact:
            from .exact import ExactSolver

            m_ex = ExactSolver(n_probes=0).solve(H, beta=beta).m.reshape(-1)
            extras["exact_distance"] = float(np.linalg.norm(m - m_ex) / max(np.linalg.norm(m_ex), 1e-300))
        return RunOutput(m=m, v=v, n_iter=n_iter, residual=err, converged=st.converged, message=message, extras=extras)


class TapSolver(CavitySolver):
    r"""The paper's update plus the Onsager reaction term: the TAP equations, whose fixed points are exact.

    .. math::
        m_i \leftarrow \frac{\beta (h_i + \sum_{j\ne i} J_{ij} m_j) - \beta^2 m_i \sum_{j\ne i} J_{ij}^2 v_j}
                          {\beta\lambda_i - \beta^2 \sum_{j\ne i} J_{ij}^2 v_j},

    v as in `CavitySolver`. At a fixed point m_i(βλ_i − β²Σ_j J_ij²v_j) = β(h_i + Σ_{j≠i}J_ij m_j) − β²m_iΣ_j J_ij²v_j,
    i.e. λ_i m_i − Σ_{j≠i} J_ij m_j = h_i: (λI − J)m = h, the exact Boltzmann mean (docs/core.md). Same cost per
    step as the paper's update (the product J∘J·v is shared by numerator and denominator). Parameters as
    `CavitySolver`.
    """

    method = "tap"
    reaction = True


@dataclasses.dataclass(frozen=True)
class CavityState:
    """Output of `cavity_iterate`: messages (n_spins,), steps taken, last mean squared change, status.

    ``status`` is "converged", "max_iter", "diverged" (overflow; m, v are the last finite iterate) or
    "nonpositive" (the change fell below tol with some variances ≤ 0).
    """

    m: np.ndarray
    v: np.ndarray
    n_iter: int
    err: float
    status: str

    @property
    def converged(self) -> bool:
        return self.status == "converged"


def offdiag_couplings(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(active, J₀, J₀∘J₀) from a dense Gram matrix A = SᵀS/P: J₀ = −A off the diagonal, restricted to the
    ``active`` spins (those with a non-zero off-diagonal entry of A; the others have no coupling), and its
    square. The dense counterpart of `spinlens.hamiltonian.Hamiltonian.offdiag_couplings`."""
    off = np.array(A, dtype=float)
    np.fill_diagonal(off, 0.0)
    active = np.flatnonzero(np.any(off != 0, axis=1))
    J0 = off if active.size == off.shape[0] else off[np.ix_(active, active)]
    np.negative(J0, out=J0)
    return active, J0, J0 * J0


def cavity_iterate(A, h, lam_diag, *, beta: float, damping: float, max_iter: int, tol: float,
                   m0: np.ndarray, v0: np.ndarray, kernel: str = "symv", reaction: bool = False,
                   callback=None) -> CavityState:
    """The damped cavity iteration (the loop of `CavitySolver`), on plain arrays.

    Parameters
    ----------
    A : ndarray of shape (n_spins, n_spins), or a `~spinlens.hamiltonian.Hamiltonian`
        The Gram matrix SᵀS/P (= −J); from a Hamiltonian, the couplings are gathered from its pair Gram
        (`Hamiltonian.offdiag_couplings`) without forming the dense matrix.
    h, lam_diag : ndarray of shape (n_spins,)
        Fields and self-couplings λ_i = λ − J_ii.
    beta, damping, max_iter, tol : as in `CavitySolver`.
    m0, v0 : initial messages, shape (n_spins,).
    kernel : {"symv", "gemv"}
        "symv" (default) uses BLAS ``dsymv``, which reads one triangle of the symmetric J₀ and J₀∘J₀:
        about 3x faster per step than "gemv" (plain ``@``), the loop being memory-bound. The two differ
        by rounding only; where the paper's loose stopping rule fires the iterate still carries slowly
        growing modes that amplify it, to ~1e-6 relative in W at D = 20.
    reaction : bool
        Add the Onsager reaction term −β² m_i Σ_j J_ij² v_j to the numerator (`TapSolver`).
    callback : callable, optional
        ``callback(step, change)`` after every step (e.g. a `spinlens.progress.ProgressLine`).

    Notes
    -----
    Spins without any coupling (e.g. (a, D), the query's label slot, whose feature is always 0) are left
    out of the two products, which are exactly 0 there; the products over the others are the same sums,
    so this changes nothing beyond rounding order.
    """
    if isinstance(A, np.ndarray) or not hasattr(A, "offdiag_couplings"):
        act, J0, J2 = offdiag_couplings(np.asarray(A, dtype=float))
    else:
        act, J0, J2 = A.offdiag_couplings()
    K = np.asarray(h).shape[0]
    na = act.size
    if kernel == "symv":
        from scipy.linalg.blas import dsymv

        J0f, J2f = J0.T, J2.T  # symmetric: the transposes are the same matrices in Fortran order

        def mv0(x):
            return dsymv(1.0, J0f, x)

        def mv2(x):
            return dsymv(1.0, J2f, x)
    elif kernel == "gemv":
        def mv0(x):
            return J0 @ x

        def mv2(x):
            return J2 @ x
    else:
        raise InvalidParameterError(f"The 'kernel' parameter of cavity_iterate must be one of {{'symv', 'gemv'}}. Got {kernel!r} instead.")
    # work in the order (active spins, then the uncoupled ones), so that the products fill a leading slice
    perm = act
    if na < K:
        rest = np.ones(K, dtype=bool)
        rest[act] = False
        perm = np.concatenate([act, np.flatnonzero(rest)])
    m, v = np.asarray(m0, dtype=float)[perm], np.asarray(v0, dtype=float)[perm]
    theta, one_m = damping, 1.0 - damping
    bl, bb = beta * np.asarray(lam_diag, dtype=float)[perm], beta * beta
    bh = beta * np.asarray(h, dtype=float)[perm]
    j0m, j2v = np.zeros(K), np.zeros(K)  # the products; 0 at the uncoupled spins
    denom, m_new, v_new, dm, dv = (np.empty(K) for _ in range(5))
    ma, va = m[:na], v[:na]
    err, n_iter, status = math.inf, 0, "max_iter"
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for n_iter in range(1, max_iter + 1):
            j2v[:na] = mv2(va)
            j0m[:na] = mv0(ma)
            j2v *= bb
            np.subtract(bl, j2v, out=denom)
            j0m *= beta
            j0m += bh  # β(h + J₀m)
            if reaction:
                j0m -= j2v * m
            np.divide(j0m, denom, out=m_new)
            np.divide(1.0, denom, out=v_new)
            np.subtract(m_new, m, out=dm)
            np.subtract(v_new, v, out=dv)
            e = float((dm @ dm + dv @ dv) / K)
            if not e <= 1e300:  # non-finite or overflowing messages: keep the last finite iterate
                n_iter -= 1
                status = "diverged"
                break
            err = e
            if callback is not None:
                callback(n_iter, e)
            m *= theta
            m_new *= one_m
            m += m_new
            v *= theta
            v_new *= one_m
            v += v_new
            if err < tol:
                status = "converged" if bool(np.all(v > 0)) else "nonpositive"
                break
    inv = np.empty(K, dtype=np.intp)
    inv[perm] = np.arange(K)
    m, v = m[inv], v[inv]
    return CavityState(m=m, v=v, n_iter=int(n_iter), err=float(err), status=status)
