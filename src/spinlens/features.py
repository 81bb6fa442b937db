"""Spin features s = c ⊗ q of the simplified linear attention, computed in O(P·N·D).

The merged model predicts ŷ = [Z Zᵀ W Z]_{D,N}/(N+1) = cᵀ W q with
c = Z Zᵀ[D, :]/(N+1) = Σ_{i<N} y_i [x_i; y_i]/(N+1) (shape D+1) and q = Z[:, N] = [x_query; 0],
so ŷ = Σ_ab W_ab c_a q_b = s · W.reshape(-1) with s = (c ⊗ q).reshape(-1) (`conventions.flat_index`).
Z Zᵀ is never formed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import conventions


@dataclasses.dataclass(frozen=True)
class SpinFeatures:
    """Factored spin features. ``C`` (P, D+1) and ``Q`` (P, D+1); s_μ = C_μ ⊗ Q_μ (never stored)."""

    C: np.ndarray
    Q: np.ndarray

    @property
    def n_prompts(self) -> int:
        return self.C.shape[0]

    @property
    def d(self) -> int:
        return self.C.shape[1] - 1

    @property
    def n_spins(self) -> int:
        return self.C.shape[1] ** 2

    def dense(self, rows=slice(None)) -> np.ndarray:
        """The feature matrix S of shape (P, (D+1)²) (or a row block of it)."""
        C, Q = self.C[rows], self.Q[rows]
        return (C[:, :, None] * Q[:, None, :]).reshape(C.shape[0], -1)

    def predict(self, W: np.ndarray) -> np.ndarray:
        """ŷ_μ = C_μᵀ W Q_μ for W of shape (D+1, D+1) (or flattened), shape (P,)."""
        W = np.asarray(W).reshape(self.C.shape[1], self.C.shape[1])
        return np.einsum("pa,ab,pb->p", self.C, W, self.Q, optimize=True)

    def rmatvec(self, u: np.ndarray) -> np.ndarray:
        """Sᵀ u as a (D+1, D+1) matrix: Σ_μ u_μ C_μ Q_μᵀ."""
        return (self.C * u[:, None]).T @ self.Q


def spin_features(prompts_or_Z) -> SpinFeatures:
    """Factored features of prompts (a `Prompts` or an array Z of shape (P, D+1, N+1))."""
    Z = getattr(prompts_or_Z, "Z", prompts_or_Z)
    Z = np.asarray(Z)
    D = Z.shape[1] - 1
    N = Z.shape[2] - 1
    ctx = Z[:, :, :N]  # the query column has label 0, so it does not contribute to Z Zᵀ[D, :]
    C = np.einsum("pn,pan->pa", ctx[:, D, :], ctx, optimize=True) * conventions.token_average(N)
    Q = np.array(Z[:, :, N])
    return SpinFeatures(C, Q)
