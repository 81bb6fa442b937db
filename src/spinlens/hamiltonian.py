r"""The spin glass Hamiltonian of the trained simplified linear attention.

.. math::
    E(W) = \tfrac12\,\mathrm{mean}_\mu (y^\mu - s^\mu\cdot W)^2 + \tfrac{\lambda}{2}\|W\|^2
         = -\tfrac12\sum_{i\ne j} J_{ij} W_i W_j - \sum_i h_i W_i + \tfrac12 \sum_i \lambda_i W_i^2
           + \tfrac12\,\mathrm{mean}_\mu (y^\mu)^2,

with :math:`J_{ij} = -\mathrm{mean}_\mu s_i^\mu s_j^\mu`, :math:`h_i = \mathrm{mean}_\mu y^\mu s_i^\mu`,
:math:`\lambda_i = \lambda - J_{ii}` and spins :math:`W_i`, ``i = a(D+1)+b`` (``W.reshape(-1)``).

The object is matrix-free: it keeps the factored features (C, Q) of size O(P·D), and applies the
Hessian A = SᵀS/P + λI as ``A v = Sᵀ(S v)/P + λ v`` in O(P·D²) without building J. The dense
Gram matrix SᵀS/P ((D+1)⁴ entries) is built, in row blocks, only when asked for (`gram`, `J`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import InvalidParameterError, check_float
from .features import SpinFeatures, spin_features


@dataclasses.dataclass(frozen=True, eq=False)
class Hamiltonian:
    """Quadratic spin glass Hamiltonian built from prompts (see module docstring for E).

    Attributes
    ----------
    features : SpinFeatures
        Factored features, C and Q of shape (n_prompts, d+1).
    y : ndarray of shape (n_prompts,)
        Targets.
    l2_strength : float
        λ >= 0.
    """

    features: SpinFeatures
    y: np.ndarray
    l2_strength: float
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    # ---- sizes
    @property
    def d(self) -> int:
        return self.features.d

    @property
    def n_spins(self) -> int:
        return self.features.n_spins

    @property
    def n_prompts(self) -> int:
        return self.features.n_prompts

    # ---- fields and couplings
    @property
    def h(self) -> np.ndarray:
        """Fields h_i = mean_μ y^μ s_i^μ, shape (n_spins,)."""
        if "h" not in self._cache:
            self._cache["h"] = (self.features.rmatvec(self.y) / self.n_prompts).reshape(-1)
        return self._cache["h"]

    @property
    def gram_diag(self) -> np.ndarray:
        """Diagonal of SᵀS/P (= −J_ii), shape (n_spins,)."""
        if "gdiag" not in self._cache:
            C, Q = self.features.C, self.features.Q
            D1, b = C.shape[1], 8192
            g = np.zeros((D1, D1))
            for s in range(0, self.n_prompts, b):
                g += (C[s:s + b] ** 2).T @ (Q[s:s + b] ** 2)
            self._cache["gdiag"] = (g / self.n_prompts).reshape(-1)
        return self._cache["gdiag"]

    @property
    def lam_diag(self) -> np.ndarray:
        """The diagonal λ_i = λ − J_ii, shape (n_spins,)."""
        return self.l2_strength + self.gram_diag

    def gram(self, block_rows: int = 2048, *, progress: bool = False) -> np.ndarray:
        """The dense Gram matrix SᵀS/P of shape (n_spins, n_spins) (``progress``: a tqdm bar over row blocks).

        Built from the symmetric pair products: with s = c ⊗ q, (SᵀS)[(a,b),(a',b')] = Σ_μ (c_a c_a')(q_b q_b'),
        and both factors are symmetric under a ↔ a', b ↔ b'. So G₂ = XᵀY over the D₁(D₁+1)/2 pairs a ≤ a'
        (X_μ = c_a c_a') and b ≤ b' (Y_μ = q_b q_b') holds every entry: P·K²/4 multiply-adds instead of the
        P·K² of SᵀS (K = D₁² spins), then scattered block by block.
        """
        if "gram" not in self._cache:
            C, Q = self.features.C, self.features.Q
            D1 = C.shape[1]
            ia, ib = np.triu_indices(D1)
            npair = ia.size
            G2 = np.zeros((npair, npair))
            starts = range(0, self.n_prompts, block_rows)
            if progress:
                from tqdm.auto import tqdm

                starts = tqdm(starts, desc=f"couplings ({D1 * D1} spins)", unit="block")
            for start in starts:
                Cb, Qb = C[start:start + block_rows], Q[start:start + block_rows]
                G2 += (Cb[:, ia] * Cb[:, ib]).T @ (Qb[:, ia] * Qb[:, ib])
            G2 /= self.n_prompts
            pair = np.empty((D1, D1), dtype=np.intp)
            pair[ia, ib] = np.arange(npair)
            pair[ib, ia] = pair[ia, ib]
            A = np.empty((D1 * D1, D1 * D1))
            A4 = A.reshape(D1, D1, D1, D1)  # [a, b, a', b']
            for a in range(D1):
                # A[a, :, a', :] = G2[pair(a, a'), pair(b, b')] for every a'
                A4[a] = G2[pair[a]][:, pair].transpose(1, 0, 2)
            self._cache["gram"] = A
        return self._cache["gram"]

    @property
    def J(self) -> np.ndarray:
        """Dense couplings J = −SᵀS/P (diagonal included; the energy uses only i ≠ j), (n_spins, n_spins)."""
        return -self.gram()

    # ---- operators
    def gram_matvec(self, v: np.ndarray) -> np.ndarray:
        """SᵀS v / P without forming S or J; v of shape (n_spins,) or (n_spins, k)."""
        v = np.asarray(v)
        if "gram" in self._cache:
            return self._cache["gram"] @ v
        from .solvers._cg import GramOperator

        return GramOperator(self.features.C, self.features.Q, 0.0).gram_matvec(v)

    def hessian_matvec(self, v: np.ndarray) -> np.ndarray:
        """(SᵀS/P + λ I) v: the Hessian of E (β = 1) applied to v."""
        return self.gram_matvec(v) + self.l2_strength * np.asarray(v)

    def hessian(self) -> np.ndarray:
        """Dense Hessian SᵀS/P + λ I."""
        A = self.gram().copy()
        A[np.diag_indices_from(A)] += self.l2_strength
        return A

    # ---- energy
    def energy(self, W: np.ndarray) -> np.ndarray | float:
        """E(W) for W of shape (d+1, d+1), (n_spins,), or a batch (k, n_spins)."""
        W = np.asarray(W, dtype=float)
        if W.ndim == 2 and W.shape == (self.d + 1, self.d + 1):
            W = W.reshape(-1)
        if W.ndim == 1:
            r = self.y - self.features.predict(W)
            return 0.5 * float(np.mean(r * r)) + 0.5 * self.l2_strength * float(W @ W)
        D1 = self.d + 1
        W = W.reshape(-1, D1, D1)
        out = np.empty(W.shape[0])
        step = max(1, ENERGY_CHUNK_NUMBERS // max(self.n_prompts, 1))  # (step, P) temporaries: bounded memory
        for i in range(0, W.shape[0], step):
            Sv = np.einsum("pa,kab,pb->kp", self.features.C, W[i:i + step], self.features.Q, optimize=True)
            r = self.y[None, :] - Sv
            out[i:i + step] = 0.5 * np.mean(r * r, axis=1)
        return out + 0.5 * self.l2_strength * np.sum(W.reshape(W.shape[0], -1) ** 2, axis=1)

    def energy_from_couplings(self, W: np.ndarray) -> float:
        """E(W) from the spin glass form −½Σ_{i≠j}J_ij W_iW_j − Σh_iW_i + ½Σλ_iW_i² + ½ mean y² (dense J)."""
        w = np.asarray(W, dtype=float).reshape(-1)
        J = self.J
        off = w @ J @ w - np.sum(np.diag(J) * w * w)
        return float(-0.5 * off - self.h @ w + 0.5 * np.sum(self.lam_diag * w * w) + 0.5 * np.mean(self.y**2))

    def grad(self, W: np.ndarray) -> np.ndarray:
        """∇E(W), same shape as W."""
        W = np.asarray(W, dtype=float)
        shape = W.shape
        w = W.reshape(-1)
        g = self.gram_matvec(w) - self.h + self.l2_strength * w
        return g.reshape(shape)


#: numbers in one (samples, prompts) block of a batch `Hamiltonian.energy` (2²², 32 MiB a temporary)
ENERGY_CHUNK_NUMBERS = 1 << 22


def build_hamiltonian(prompts_or_features, y=None, *, l2_strength: float) -> Hamiltonian:
    """Build the Hamiltonian from prompts (a `Prompts`) or from `SpinFeatures` and targets ``y``.

    Parameters
    ----------
    prompts_or_features : Prompts or SpinFeatures
    y : ndarray of shape (n_prompts,), required with SpinFeatures
    l2_strength : float >= 0
        λ of E(W) (see `spinlens.conventions.l2_strength_from_weight_decay` for optimizer weight decay).
    """
    lam = check_float("l2_strength", l2_strength, low=0.0, owner="build_hamiltonian")
    if isinstance(prompts_or_features, SpinFeatures):
        if y is None:
            raise InvalidParameterError("build_hamiltonian: 'y' is required when passing SpinFeatures.")
        feats = prompts_or_features
    else:
        feats = spin_features(prompts_or_features)
        if y is None:
            y = prompts_or_features.y
    y = np.asarray(y, dtype=float)
    if y.shape != (feats.n_prompts,):
        raise InvalidParameterError(f"y has shape {y.shape}; expected (n_prompts,) = ({feats.n_prompts},).")
    return Hamiltonian(feats, y, lam)
