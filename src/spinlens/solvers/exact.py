r"""Exact Boltzmann mean and marginal variances of the Gaussian measure exp(−βE(W)).

The measure is Gaussian with precision β(λI + SᵀS/P) and mean (λI + SᵀS/P)⁻¹h (the ridge solution).

Backends (``backend="auto"`` picks by a cost model, `choose_backend`):

* ``dense``: the Gram matrix SᵀS/P ((D+1)⁴ numbers), Cholesky, variances from the inverse's diagonal.
  Cost ≈ 2P·K² + 4/3·K³ flops (K = (D+1)² spins), memory 3K² numbers.
* ``cg``: conjugate gradients on the matrix-free operator (`spinlens.solvers._cg.GramOperator`,
  4P·K flops a product, memory O(P·D)), preconditioned by the Kronecker product of the empirical
  second moments of c and q (`spinlens.solvers._cg.KroneckerPreconditioner`), which is the population
  Hessian: the iteration count stays about constant in D at fixed P/D². Marginal variances by a
  Hutchinson estimator around the preconditioner: diag(A⁻¹) ≈ diag(M⁻¹) + mean_z z∘(A⁻¹z − M⁻¹z) over
  ``n_probes`` Rademacher vectors z, with diag(M⁻¹) exact (O(D³)); the probe solves run as one block CG at
  relative tolerance ``probe_tol``; the error falls as 1/√n_probes (about 3 % at 32 probes, docs/core.md).
  With ``n_probes=0`` the variances are diag(M⁻¹)/β (the preconditioner's, an approximation a few per
  cent off, flagged in the message).
* ``device``: "cpu" runs numpy; any torch device ("cuda", "cuda:1", or "cpu" through torch with
  ``device="torch-cpu"``) runs the same CG in torch (float64), imported only then.

λ = 0 with zero modes: the minimum-norm mean (dense); variances along zero modes are infinite.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..errors import check_choice, check_float, check_int
from .base import RunOutput, Solver

PRECONDITIONERS = ("kronecker", "jacobi", "none")
IMPROPER = "improper measure"  # how the dense backend's message starts when λ = 0 leaves zero modes


def choose_backend(backend: str, *, n_spins: int, n_prompts: int, n_probes: int = 0, dense_max: int = 6000,
                   gram_cached: bool = False) -> str:
    """The exact backend "auto" resolves to: dense when K ≤ ``dense_max`` and its flop count is at most
    four times that of CG (about 30 iterations for the mean and 10 per probe), else cg."""
    if backend != "auto":
        return backend
    K, P = int(n_spins), int(n_prompts)
    if K > dense_max:
        return "cg"
    dense = (0 if gram_cached else 2.0 * P * K * K) + 4.0 / 3.0 * K**3
    per_mv = (2.0 * K * K) if gram_cached else 4.0 * P * K
    cg = per_mv * (30 + 10 * n_probes)
    return "dense" if dense <= 4 * cg else "cg"


class ExactSolver(Solver):
    """Exact Gaussian solution (see the module docstring for the backends).

    Parameters
    ----------
    backend : {"auto", "dense", "cg"}
    dense_max : int
        Never dense above this many spins.
    tol : float
        Relative residual ‖Am − h‖/‖h‖ at which CG stops.
    max_iter : int
        CG iteration cap.
    n_probes : int
        Probe vectors of the CG variance estimate (0: the preconditioner's diagonal).
    probe_tol : float
        Relative tolerance of the probe solves.
    preconditioner : {"kronecker", "jacobi", "none"}
    device : str
        "cpu" (numpy) or a torch device name ("cuda", "torch-cpu" for torch on the CPU).
    chunk : int
        Prompts per chunk of the matrix-free product.
    """

    method = "exact"

    def __init__(self, backend="auto", dense_max=6000, tol=1e-10, max_iter=5000, n_probes=8, probe_tol=1e-4,
                 preconditioner="kronecker", device="cpu", chunk=2048):
        own = "ExactSolver"
        self.backend = check_choice("backend", backend, ("auto", "dense", "cg"), owner=own)
        self.dense_max = check_int("dense_max", dense_max, low=1, owner=own)
        self.tol = check_float("tol", tol, low=0, low_open=True, owner=own)
        self.max_iter = check_int("max_iter", max_iter, low=1, owner=own)
        self.n_probes = check_int("n_probes", n_probes, low=0, owner=own)
        self.probe_tol = check_float("probe_tol", probe_tol, low=0, low_open=True, owner=own)
        self.preconditioner = check_choice("preconditioner", preconditioner, PRECONDITIONERS, owner=own)
        self.device = str(device)
        self.chunk = check_int("chunk", chunk, low=1, owner=own)

    def resolved_backend(self, H) -> str:
        return choose_backend(self.backend, n_spins=H.n_spins, n_prompts=H.n_prompts, n_probes=self.n_probes,
                              dense_max=self.dense_max, gram_cached="gram" in H._cache)

    def _run(self, H, beta, rng):
        backend = "cg" if self.device != "cpu" else self.resolved_backend(H)
        if backend == "dense":
            m, var_unit, msg = _dense(H)
            n_iter, ok, extras = 0, True, {}
            h = H.h
            res = np.linalg.norm(H.hessian_matvec(m) - h) / max(np.linalg.norm(h), 1e-300)
        else:
            m, var_unit, n_iter, msg, ok, extras, res = self._cg(H, rng)
        return RunOutput(m=m, v=var_unit / beta, n_iter=n_iter, residual=float(res), converged=ok, message=msg,
                         extras={"backend": backend, **extras}, zero_modes=msg.startswith(IMPROPER))

    def _cg(self, H, rng):
        from ._cg import GramOperator, block_pcg, make_preconditioner

        C, Q, h = H.features.C, H.features.Q, H.h
        torch_dev = None
        if self.device != "cpu":
            import torch

            torch_dev = torch.device("cpu" if self.device == "torch-cpu" else self.device)
            C = torch.as_tensor(C, dtype=torch.float64, device=torch_dev)
            Q = torch.as_tensor(Q, dtype=torch.float64, device=torch_dev)
            h_dev = torch.as_tensor(h, dtype=torch.float64, device=torch_dev)
        else:
            h_dev = h
        op = GramOperator(C, Q, H.l2_strength, chunk=self.chunk)
        if "gram" in H._cache and torch_dev is None:
            op.gram_matvec = lambda V, A=H._cache["gram"]: A @ V  # the dense Gram is already there: use it
        M = make_preconditioner(self.preconditioner, op)
        m, n_iter, res = block_pcg(op.matvec, M, h_dev, tol=self.tol, max_iter=self.max_iter, callback=self._progress)
        ok = bool(float(res[0]) <= self.tol * 10)
        msg = (f"preconditioned conjugate gradients ({self.preconditioner}) converged in {n_iter} iterations"
               if ok else f"conjugate gradients stopped after {n_iter} iterations at relative residual "
               f"{float(res[0]):.3g} > tol={self.tol:g}")
        extras = {"preconditioner": self.preconditioner, "device": self.device}
        K = H.n_spins
        dM = M.diagonal() if hasattr(M, "diagonal") else None
        if self.n_probes > 0:
            z = rng.choice([-1.0, 1.0], size=(K, self.n_probes))
            zd = z if torch_dev is None else torch.as_tensor(z, dtype=torch.float64, device=torch_dev)
            X, it_p, _ = block_pcg(op.matvec, M, zd, tol=self.probe_tol, max_iter=self.max_iter)
            if dM is not None:
                X = X - M(zd)  # control variate: estimate diag(A⁻¹ − M⁻¹), add diag(M⁻¹) exactly
            est = _to_numpy((zd * X).sum(1)) / self.n_probes
            var = est + (_to_numpy(dM) if dM is not None else 0.0)
            fallback = _to_numpy(dM) if dM is not None else 1.0 / np.maximum(H.lam_diag, 1e-300)
            var = np.where(var > 0, var, fallback)
            msg += f"; variances by {self.n_probes} probe vectors around diag(M^-1) ({it_p} iterations)"
            extras["probe_n_iter"] = int(it_p)
        elif dM is not None:
            var = _to_numpy(dM)
            msg += "; variances approximated by the preconditioner's diagonal diag(M^-1) (n_probes=0)"
        else:
            var = 1.0 / np.maximum(H.lam_diag, 1e-300)
            msg += "; variances from the diagonal approximation 1/(beta*lambda_i) (n_probes=0)"
        extras["matvecs"] = int(op.n_matvec)
        return _to_numpy(m), var, int(n_iter), msg, ok, extras, float(res[0])


def _to_numpy(x):
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _dense(H):
    G = H.gram()
    A = G.copy()
    A[np.diag_indices_from(A)] += H.l2_strength
    try:
        c, low = sla.cho_factor(A, lower=True, check_finite=False, overwrite_a=True)
        m = sla.cho_solve((c, low), H.h, check_finite=False)
        inv, info = sla.lapack.dpotri(c, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError
        var = np.diag(inv).copy()
        return m, var, "dense Cholesky"
    except (np.linalg.LinAlgError, sla.LinAlgError):
        # λ = 0 with zero modes: minimum-norm mean; infinite variance where zero modes have support
        A = H.hessian()
        evals, evecs = np.linalg.eigh(A)
        tol = evals.max() * A.shape[0] * np.finfo(float).eps
        pos = evals > tol
        m = evecs[:, pos] @ ((evecs[:, pos].T @ H.h) / evals[pos])
        var = (evecs[:, pos] ** 2) @ (1.0 / evals[pos])
        support = np.sum(evecs[:, ~pos] ** 2, axis=1) > 1e-12
        var = np.where(support, np.inf, var)
        n0 = int((~pos).sum())
        return m, var, f"{IMPROPER}: {n0} zero modes at lambda=0; minimum-norm mean, infinite variance along zero modes"
