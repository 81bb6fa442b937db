"""Exact Boltzmann mean and marginal variances of the Gaussian measure exp(−βE(W)).

The measure is Gaussian with precision β(λI + SᵀS/P) and mean (λI + SᵀS/P)⁻¹h (the ridge solution).
Small systems: dense Cholesky (variances from the inverse's diagonal). Large systems: conjugate
gradients on the matrix-free operator, variances estimated by probing (``n_probes`` CG solves).
λ = 0 with zero modes: the minimum-norm mean; variances along zero modes are infinite.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg as sla
import scipy.sparse.linalg as spla

from ..errors import check_choice, check_float, check_int
from ..random import RNGLike, as_generator
from .result import SolverResult


class ExactSolver:
    """Exact Gaussian solution.

    Parameters
    ----------
    backend : {"auto", "dense", "cg"}
        "auto" uses dense Cholesky up to ``dense_max`` spins, CG above.
    dense_max : int
    tol : float
        Relative tolerance of CG.
    max_iter : int
        CG iteration cap.
    n_probes : int
        Probe vectors for the variance estimate in CG mode (0: variances from the Jacobi approximation
        1/(βλ_i), flagged in the message).
    """

    def __init__(self, backend="auto", dense_max=6000, tol=1e-10, max_iter=5000, n_probes=8):
        self.backend = check_choice("backend", backend, ("auto", "dense", "cg"), owner="ExactSolver")
        self.dense_max = check_int("dense_max", dense_max, low=1, owner="ExactSolver")
        self.tol = check_float("tol", tol, low=0, low_open=True, owner="ExactSolver")
        self.max_iter = check_int("max_iter", max_iter, low=1, owner="ExactSolver")
        self.n_probes = check_int("n_probes", n_probes, low=0, owner="ExactSolver")

    def solve(self, H, *, beta: float = 100.0, rng: RNGLike = None) -> SolverResult:
        beta = check_float("beta", beta, low=0, low_open=True, owner="ExactSolver")
        t0 = time.perf_counter()
        backend = self.backend
        if backend == "auto":
            backend = "dense" if H.n_spins <= self.dense_max else "cg"
        if backend == "dense":
            m, var_unit, n_iter, msg, ok = _dense(H)
        else:
            m, var_unit, n_iter, msg, ok = self._cg(H, rng)
        D1 = H.d + 1
        h = H.h
        res = np.linalg.norm(H.hessian_matvec(m) - h) / max(np.linalg.norm(h), 1e-300)
        return SolverResult(
            W=m.reshape(D1, D1),
            m=m.reshape(D1, D1).copy(),
            v=(var_unit / beta).reshape(D1, D1),
            n_iter=n_iter,
            residual=float(res),
            converged=ok,
            message=msg,
            seconds=time.perf_counter() - t0,
            method="exact",
            beta=beta,
            extras={"backend": backend},
        )

    def _cg(self, H, rng):
        K = H.n_spins
        diag = H.lam_diag
        pre = np.where(diag > 0, 1.0 / np.where(diag > 0, diag, 1.0), 1.0)
        A = spla.LinearOperator((K, K), matvec=H.hessian_matvec, dtype=float)
        M = spla.LinearOperator((K, K), matvec=lambda x: pre * x, dtype=float)
        its = [0]

        def count(_):
            its[0] += 1

        m, info = spla.cg(A, H.h, rtol=self.tol, maxiter=self.max_iter, M=M, callback=count)
        ok = info == 0
        msg = "conjugate gradients converged" if ok else f"conjugate gradients stopped after {its[0]} iterations without reaching rtol={self.tol:g}"
        if self.n_probes > 0:
            g = as_generator(rng)
            num = np.zeros(K)
            den = np.zeros(K)
            for _ in range(self.n_probes):
                z = g.choice([-1.0, 1.0], size=K)
                x, _ = spla.cg(A, z, rtol=1e-6, maxiter=self.max_iter, M=M)
                num += z * x
                den += z * z
            var = np.maximum(num / den, 0.0)
            var = np.where(var > 0, var, pre)
            msg += f"; variances estimated with {self.n_probes} probe vectors"
        else:
            var = pre
            msg += "; variances from the diagonal (Jacobi) approximation 1/(beta*lambda_i)"
        return m, var, its[0], msg, ok


def _dense(H):
    A = H.hessian()
    try:
        c, low = sla.cho_factor(A, lower=True, check_finite=False)
        m = sla.cho_solve((c, low), H.h, check_finite=False)
        inv, info = sla.lapack.dpotri(c, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError
        var = np.diag(inv).copy()
        return m, var, 0, "dense Cholesky", True
    except (np.linalg.LinAlgError, sla.LinAlgError):
        # λ = 0 with zero modes: minimum-norm mean; infinite variance where zero modes have support
        evals, evecs = np.linalg.eigh(A)
        tol = evals.max() * A.shape[0] * np.finfo(float).eps
        pos = evals > tol
        m = evecs[:, pos] @ ((evecs[:, pos].T @ H.h) / evals[pos])
        var = (evecs[:, pos] ** 2) @ (1.0 / evals[pos])
        support = np.sum(evecs[:, ~pos] ** 2, axis=1) > 1e-12
        var = np.where(support, np.inf, var)
        n0 = int((~pos).sum())
        return m, var, 0, f"improper measure: {n0} zero modes at lambda=0; minimum-norm mean, infinite variance along zero modes", True
