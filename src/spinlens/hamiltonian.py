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
import functools

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
        if "gdiag" not in self._cache and "pair_gram" in self._cache:  # read off G₂: entries (a,a),(b,b)
            G2s, cols_c, cols_q = self._cache["pair_gram"]
            D1 = self.d + 1
            g = np.zeros((D1, D1))
            # the pair (a, a) is at position a·D1 − a(a−1)/2 of triu_indices(D1); compact rows/columns in order
            pos = {c: i for i, c in enumerate(_pairs_within(D1, np.asarray(cols_c, dtype=np.intp)))}
            posq = {c: i for i, c in enumerate(_pairs_within(D1, np.asarray(cols_q, dtype=np.intp)))}
            rows = [pos[a * D1 - a * (a - 1) // 2] for a in cols_c]
            colsq = [posq[b * D1 - b * (b - 1) // 2] for b in cols_q]
            g[np.ix_(cols_c, cols_q)] = G2s[np.ix_(rows, colsq)]
            self._cache["gdiag"] = g.reshape(-1)
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

    def pair_gram(self, block_rows: int = 256, progress: bool = False) -> tuple[np.ndarray, tuple, tuple]:
        """(G₂, cols_c, cols_q): the compact pair Gram (see `gram`; P·K²/4 multiply-adds, cached) and the
        non-zero columns of C and of Q it is built over. Once it is there, `gram_diag` and
        `offdiag_couplings` are read off it."""
        if "pair_gram" not in self._cache:
            C, Q = self.features.C, self.features.Q
            D1 = C.shape[1]
            ia, ib = np.triu_indices(D1)
            cols_c = np.flatnonzero(np.any(C != 0, axis=0))
            cols_q = np.flatnonzero(np.any(Q != 0, axis=0))
            pc = _pairs_within(D1, cols_c)  # pair indices a <= a' with both columns non-zero
            pq = _pairs_within(D1, cols_q)
            G2s = np.zeros((pc.size, pq.size))
            starts = range(0, self.n_prompts, block_rows)
            if progress:
                from tqdm.auto import tqdm

                starts = tqdm(starts, desc=f"couplings ({D1 * D1} spins)", unit="block")
            ca, cb, qa, qb = ia[pc], ib[pc], ia[pq], ib[pq]
            for start in starts:
                Cb, Qb = C[start:start + block_rows], Q[start:start + block_rows]
                G2s += (Cb[:, ca] * Cb[:, cb]).T @ (Qb[:, qa] * Qb[:, qb])
            G2s /= self.n_prompts
            self._cache["pair_gram"] = (G2s, tuple(int(c) for c in cols_c), tuple(int(c) for c in cols_q))
        return self._cache["pair_gram"]

    def gram(self, block_rows: int = 256, *, progress: bool = False) -> np.ndarray:
        """The dense Gram matrix SᵀS/P of shape (n_spins, n_spins) (``progress``: a tqdm bar over row blocks).

        Built from the symmetric pair products: with s = c ⊗ q, (SᵀS)[(a,b),(a',b')] = Σ_μ (c_a c_a')(q_b q_b'),
        and both factors are symmetric under a ↔ a', b ↔ b'. So G₂ = XᵀY over the D₁(D₁+1)/2 pairs a ≤ a'
        (X_μ = c_a c_a') and b ≤ b' (Y_μ = q_b q_b') holds every entry: P·K²/4 multiply-adds instead of the
        P·K² of SᵀS (K = D₁² spins). Pairs with an all-zero column of C or Q (the query's label slot, q_D = 0)
        are zero and skipped; the row blocks (``block_rows`` prompts) keep X and Y in cache. The dense
        matrix is then gathered from G₂ in one indexing pass.
        """
        if "gram" not in self._cache:
            G2s, cols_c, cols_q = self.pair_gram(block_rows, progress)
            flat = np.append(G2s.ravel(), 0.0)  # the last slot: the zero of the skipped pairs
            self._cache["gram"] = flat[_pair_gather_index(self.d + 1, cols_c, cols_q, False)]
        return self._cache["gram"]

    def offdiag_couplings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(active, J₀, J₀∘J₀): the couplings J_ij (i ≠ j, diagonal 0) among the ``active`` spins, those
        (a, b) with a non-zero column a of C and b of Q (every other spin has no coupling at all), and their
        squares; each of shape (n_active, n_active). Gathered straight from the pair Gram G₂ (the dense
        Gram is not formed); the cavity iteration's two matrices (`spinlens.solvers.cavity.cavity_iterate`).
        """
        if "gram" in self._cache:
            from .solvers.cavity import offdiag_couplings

            return offdiag_couplings(self._cache["gram"])
        G2s, cols_c, cols_q = self.pair_gram()
        D1 = self.d + 1
        neg = np.append(-G2s.ravel(), 0.0)
        idx = _pair_gather_index(D1, cols_c, cols_q, True)
        J0 = neg[idx]
        J2 = np.square(neg)[idx]
        active = (np.asarray(cols_c, dtype=np.intp)[:, None] * D1 + np.asarray(cols_q, dtype=np.intp)[None, :]).ravel()
        return active, J0, J2

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
        K = self.n_spins
        W = W.reshape(-1, K)
        k, P = W.shape[0], self.n_prompts
        sq = np.zeros(k)
        # blocks of prompts: the (block, K) spin features and the (k, block) residuals stay below
        # ENERGY_CHUNK_NUMBERS numbers each, and every block is one matrix product (BLAS)
        step = max(1, ENERGY_CHUNK_NUMBERS // max(K, k))
        C, Q = self.features.C, self.features.Q
        for s in range(0, P, step):
            S = (C[s:s + step, :, None] * Q[s:s + step, None, :]).reshape(-1, K)  # s_i of each prompt
            r = self.y[None, s:s + step] - W @ S.T
            sq += np.einsum("kp,kp->k", r, r)
        return 0.5 * sq / P + 0.5 * self.l2_strength * np.sum(W * W, axis=1)

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


#: numbers in one block of a batch `Hamiltonian.energy`: (prompts, spins) features, (samples, prompts) residuals
#: (2²², 32 MiB a temporary)
ENERGY_CHUNK_NUMBERS = 1 << 22


def _pairs_within(D1: int, cols: np.ndarray) -> np.ndarray:
    """Indices (into ``np.triu_indices(D1)``) of the pairs a <= a' with both a and a' in ``cols``."""
    ia, ib = np.triu_indices(D1)
    keep = np.zeros(D1, dtype=bool)
    keep[cols] = True
    return np.flatnonzero(keep[ia] & keep[ib])


@functools.lru_cache(maxsize=16)
def _pair_gather_index(D1: int, cols_c: tuple, cols_q: tuple, active_offdiag: bool) -> np.ndarray:
    """Index of each Gram entry [(a,b),(a',b')] into the flattened compact G₂ (pairs of non-zero columns of C
    times pairs of non-zero columns of Q) followed by one zero slot: pair(a,a')·n_q + pair(b,b'), or the zero.

    ``active_offdiag``: only the spins (a, b) with a in ``cols_c`` and b in ``cols_q`` (in that order), and
    the diagonal sent to the zero slot (the off-diagonal couplings of `Hamiltonian.offdiag_couplings`).
    """
    ia, ib = np.triu_indices(D1)
    npair = ia.size
    pc, pq = _pairs_within(D1, np.asarray(cols_c, dtype=np.intp)), _pairs_within(D1, np.asarray(cols_q, dtype=np.intp))
    zero = pc.size * pq.size
    pos_c = np.full(npair, -1, dtype=np.intp)
    pos_c[pc] = np.arange(pc.size)
    pos_q = np.full(npair, -1, dtype=np.intp)
    pos_q[pq] = np.arange(pq.size)
    pair = np.empty((D1, D1), dtype=np.intp)
    pair[ia, ib] = np.arange(npair)
    pair[ib, ia] = pair[ia, ib]
    rc, rq = pos_c[pair], pos_q[pair]  # (D1, D1): compact row / column of each pair, -1 if skipped
    if active_offdiag:
        ac, aq = np.asarray(cols_c, dtype=np.intp), np.asarray(cols_q, dtype=np.intp)
        rc, rq = rc[np.ix_(ac, ac)], rq[np.ix_(aq, aq)]
    na, nb = rc.shape[0], rq.shape[0]
    # index[a, b, a', b'] = rc[a, a'] * n_q + rq[b, b']
    idx = rc[:, None, :, None] * pq.size + rq[None, :, None, :]
    idx[(rc[:, None, :, None] < 0) | (rq[None, :, None, :] < 0)] = zero
    idx = idx.reshape(na * nb, na * nb)
    if active_offdiag:
        np.fill_diagonal(idx, zero)
    idx = idx.astype(np.int32 if zero < 2**31 - 1 else np.intp)  # half the memory traffic of the gather
    idx.flags.writeable = False
    return idx


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
