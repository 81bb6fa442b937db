r"""Matrix-free Hessian, its Kronecker preconditioner and block preconditioned conjugate gradients.

The Hessian of E is A = SᵀS/P + λI with rows s_μ = c_μ ⊗ q_μ. It is applied without forming S:
(S v)_μ = c_μᵀ V q_μ and Sᵀu = Σ_μ u_μ c_μ q_μᵀ, two matrix products of P·(D+1)² each, over row chunks.

Preconditioner. The query q is independent of the context summary c, so E[s sᵀ] = E[c cᵀ] ⊗ E[q qᵀ]:
the population Hessian is a Kronecker product. With the empirical factors C_c = CᵀC/P and C_q = QᵀQ/P
(eigendecompositions U Λ_c Uᵀ and V Λ_q Vᵀ, O(D³)),

.. math::  M = C_c \otimes C_q + \lambda I,\qquad M^{-1} = (U\otimes V)\,\mathrm{diag}\,\frac{1}{\lambda_{c,i}\lambda_{q,j}+\lambda}\,(U\otimes V)^\top,

applied to a (D+1)×(D+1) residual R as U[(UᵀRV) / (λ_c λ_qᵀ + λ)]Vᵀ in O(D³), negligible beside a matvec.
Directions with λ_cλ_q + λ = 0 (λ = 0 and the always-zero last feature of q) get 0: the iterate stays in
the range of A. ``jacobi`` (the diagonal of A) and ``none`` are kept for comparison.

Everything here works on numpy arrays or torch tensors (``xp`` is the module of the features).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


class GramOperator:
    """A = SᵀS/P + λI on factored features C, Q of shape (P, D+1) (numpy arrays or torch tensors).

    ``matvec`` takes V of shape (K,) or (K, k), K = (D+1)², and returns the same shape.
    """

    def __init__(self, C, Q, l2_strength: float, *, chunk: int = 2048):
        self.C, self.Q, self.lam = C, Q, float(l2_strength)
        self.torch = _is_torch(C)
        self.P, self.D1 = C.shape
        self.K = self.D1 * self.D1
        self.chunk = int(chunk)
        self.n_matvec = 0

    def _zeros(self, shape):
        if self.torch:
            return self.C.new_zeros(shape)
        return np.zeros(shape)

    def gram_matvec(self, V):
        one = V.ndim == 1
        k = 1 if one else V.shape[1]
        D1 = self.D1
        Vm = V.reshape(D1, D1 * k)
        out = self._zeros((D1, D1 * k))
        for s in range(0, self.P, self.chunk):
            Cc, Qc = self.C[s:s + self.chunk], self.Q[s:s + self.chunk]
            b = Cc.shape[0]
            if k == 1:
                Sv = ((Cc @ Vm) * Qc).sum(1)  # (S v)_μ = c_μᵀ V q_μ
                out += Cc.T @ (Qc * Sv[:, None])  # Σ_μ (Sv)_μ c_μ q_μᵀ
                continue
            T = (Cc @ Vm).reshape(b, D1, k)  # T[p, b, k] = Σ_a C[p, a] V[a, b, k]
            Sv = (T * Qc[:, :, None]).sum(1)  # (b, k)
            U = (Qc[:, :, None] * Sv[:, None, :]).reshape(b, D1 * k)
            out += Cc.T @ U
        self.n_matvec += k
        out = out.reshape(self.K, k) / self.P
        return out.reshape(-1) if one else out

    def matvec(self, V):
        return self.gram_matvec(V) + self.lam * V

    def diagonal(self):
        """diag(A) = mean_μ c_a² q_b² + λ, shape (K,)."""
        return ((self.C * self.C).T @ (self.Q * self.Q)).reshape(-1) / self.P + self.lam


class KroneckerPreconditioner:
    """M⁻¹ for M = (CᵀC/P) ⊗ (QᵀQ/P) + λI (see the module docstring); ``diagonal`` is diag(M⁻¹)."""

    inv: np.ndarray | torch.Tensor  # 1 / (λ_c,i λ_q,j + λ), zero below the cut-off

    def __init__(self, C, Q, l2_strength: float):
        P = C.shape[0]
        Cc, Cq = C.T @ C / P, Q.T @ Q / P
        if _is_torch(C):
            import torch

            ec, U = torch.linalg.eigh(Cc)
            eq, V = torch.linalg.eigh(Cq)
            den = ec.clamp(min=0)[:, None] * eq.clamp(min=0)[None, :] + l2_strength
            tiny = 1e-13 * float(den.max())
            self.inv = torch.where(den > tiny, 1.0 / torch.where(den > tiny, den, torch.ones_like(den)), torch.zeros_like(den))
        else:
            ec, U = np.linalg.eigh(Cc)
            eq, V = np.linalg.eigh(Cq)
            den = np.clip(ec, 0, None)[:, None] * np.clip(eq, 0, None)[None, :] + l2_strength
            tiny = 1e-13 * float(den.max())
            with np.errstate(divide="ignore"):
                self.inv = np.where(den > tiny, 1.0 / np.where(den > tiny, den, 1.0), 0.0)
        self.U, self.V, self.D1 = U, V, C.shape[1]

    def __call__(self, R):
        one = R.ndim == 1
        D1 = self.D1
        X = R.reshape(D1, D1, -1)
        U, V = self.U, self.V
        Xk = X.permute(2, 0, 1) if _is_torch(R) else X.transpose(2, 0, 1)  # (k, D1, D1)
        Y = (U.T @ Xk @ V) * self.inv  # (Uᵀ R V) / (λ_c λ_qᵀ + λ), per column
        Zk = U @ Y @ V.T
        Z = (Zk.permute(1, 2, 0) if _is_torch(R) else Zk.transpose(1, 2, 0)).reshape(D1 * D1, -1)
        return Z.reshape(-1) if one else Z

    def diagonal(self):
        """diag(M⁻¹)[(a, b)] = Σ_ij U_ai² V_bj² / (λ_c,i λ_q,j + λ), shape (K,)."""
        return ((self.U * self.U) @ self.inv @ (self.V * self.V).T).reshape(-1)


class JacobiPreconditioner:
    """M⁻¹ = diag(A)⁻¹ (zero where diag(A) = 0)."""

    inv: np.ndarray | torch.Tensor  # 1 / diag(A), zero where diag(A) = 0

    def __init__(self, op: GramOperator):
        d = op.diagonal()
        if op.torch:
            import torch

            self.inv = torch.where(d > 0, 1.0 / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d))
        else:
            self.inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)

    def __call__(self, R):
        return R * (self.inv if R.ndim == 1 else self.inv[:, None])

    def diagonal(self):
        return self.inv


class IdentityPreconditioner:
    def __call__(self, R):
        return R


def make_preconditioner(kind: str, op: GramOperator):
    if kind == "kronecker":
        return KroneckerPreconditioner(op.C, op.Q, op.lam)
    if kind == "jacobi":
        return JacobiPreconditioner(op)
    return IdentityPreconditioner()


def block_pcg(matvec, precond, B, *, tol: float, max_iter: int, callback=None):
    """Preconditioned CG on every column of B (K, k) at once (or B of shape (K,)).

    Each column runs its own CG (its own step sizes); a column stops moving once its relative residual
    ‖b − Ax‖/‖b‖ is below ``tol``. Returns ``(X, n_iter, rel_residuals)`` with the residuals recomputed
    from X (not the recursive ones). ``callback(iteration, largest relative residual)`` after each iteration.
    """
    one = B.ndim == 1
    if one:
        B = B.reshape(-1, 1)
    X = B * 0.0
    R = B.clone() if _is_torch(B) else B.copy()
    bnorm = ((B * B).sum(0)) ** 0.5
    bnorm = bnorm + (bnorm == 0) * 1.0
    Z = precond(R)
    Pd = Z * 1.0
    rz = (R * Z).sum(0)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        res = ((R * R).sum(0)) ** 0.5 / bnorm
        active = res > tol
        if not bool(active.any()):
            n_iter -= 1
            break
        if callback is not None:
            callback(n_iter - 1, float(res.max()))
        AP = matvec(Pd)
        pap = (Pd * AP).sum(0)
        ok = active & (pap > 0)
        alpha = ok * rz / (pap + (pap == 0) * 1.0)
        X = X + Pd * alpha
        R = R - AP * alpha
        Z = precond(R)
        rz_new = (R * Z).sum(0)
        beta = ok * rz_new / (rz + (rz == 0) * 1.0)
        Pd = Z + Pd * beta
        rz = rz_new
    res = (((B - matvec(X)) ** 2).sum(0)) ** 0.5 / bnorm
    if one:
        return X.reshape(-1), n_iter, res
    return X, n_iter, res
