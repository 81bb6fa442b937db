r"""Mixing diagnostics of Markov chains: split-R̂ and effective sample size, rank-normalized.

The definitions are those of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization,
folding, and localization: an improved R̂ for assessing convergence of MCMC", Bayesian Analysis 16(2),
the ones ArviZ and Stan report:

* **split chains**: each of the M chains of N draws is cut into its first and last ⌊N/2⌋ draws (the middle
  draw of an odd chain is dropped), giving 2M chains;
* **rank normalization**: every draw is replaced by Φ⁻¹((r − 3/8)/(S + 1/4)), r its rank among all S draws
  (ties: average rank);
* **R̂** of chains with within-chain variance W (mean of the chains' ddof = 1 variances) and between-chain
  variance B = N·var(chain means, ddof = 1): √(var̂⁺/W) with var̂⁺ = (N − 1)/N·W + B/N. The reported R̂
  is the larger of the bulk value (rank-normalized split chains) and the tail value (the same on the
  folded draws |θ − median θ|);
* **ESS** = M·N/τ̂, τ̂ = −1 + 2·Σ_{k<k*} P̂_k + max(ρ̂_{2k*}, 0), where ρ̂_t = 1 − (W − mean_m s²_m ρ̂_{t,m})/var̂⁺
  combines the chains' autocorrelations (FFT, biased autocovariance), P̂_k = ρ̂_{2k} + ρ̂_{2k+1} are
  summed up to the first non-positive pair k* (Geyer's initial positive sequence), made non-increasing
  (Geyer's initial monotone sequence), and τ̂ ≥ 1/log₁₀(M·N). **Bulk ESS**: of the rank-normalized split
  chains; **tail ESS**: the smaller of the ESS of the indicators 1{θ ≤ q₀.₀₅} and 1{θ ≤ q₀.₉₅} (split).

Everything is vectorised over parameters: ``draws`` has shape (n_chains, n_draws) or
(n_chains, n_draws, n_params).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special, stats

from ..errors import InvalidParameterError

__all__ = ["MixingDiagnostics", "ess_bulk", "ess_tail", "mixing_diagnostics", "split_rhat", "RHAT_MAX", "ESS_MIN", "MIN_DRAWS"]

RHAT_MAX = 1.01
"""Largest split-R̂ accepted as mixed (Vehtari et al. 2021)."""

ESS_MIN = 400.0
"""Smallest bulk and tail ESS accepted (Vehtari et al. 2021: 100 per chain for four chains)."""


MIN_DRAWS = 8
"""Fewest draws per chain the diagnostics accept (each split half then has 4)."""


def _as_draws(draws) -> np.ndarray:
    """(n_chains, n_draws, n_params) float array from (M, N) or (M, N, K)."""
    x = np.asarray(draws, dtype=float)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise InvalidParameterError(
            f"The 'draws' parameter must have shape (n_chains, n_draws) or (n_chains, n_draws, n_params). Got {x.shape} instead."
        )
    if x.shape[1] < MIN_DRAWS:
        raise InvalidParameterError(
            f"The 'draws' parameter needs at least {MIN_DRAWS} draws per chain (4 per split chain). Got {x.shape[1]} instead."
        )
    return x


def _split(x: np.ndarray) -> np.ndarray:
    """Split chains: (M, N, K) -> (2M, ⌊N/2⌋, K), first and last halves (an odd chain loses its middle draw)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _rank_normalize(x: np.ndarray) -> np.ndarray:
    """Φ⁻¹((r − 3/8)/(S + 1/4)) with r the average rank of each draw among all S = M·N draws of its parameter."""
    M, N, K = x.shape
    flat = x.reshape(M * N, K)
    r = stats.rankdata(flat, axis=0, method="average")
    return special.ndtri((r - 0.375) / (M * N + 0.25)).reshape(M, N, K)


def _rhat(x: np.ndarray) -> np.ndarray:
    """√(var̂⁺/W) per parameter of chains x (M, N, K); NaN where W = 0 and the chains differ, 1 where all equal."""
    N = x.shape[1]
    W = x.var(axis=1, ddof=1).mean(axis=0)
    B_over_N = x.mean(axis=1).var(axis=0, ddof=1)
    var_plus = (N - 1) / N * W + B_over_N
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / W)
    return np.where((W == 0) & (B_over_N == 0), 1.0, r)


def split_rhat(draws) -> np.ndarray:
    """Rank-normalized split-R̂, the larger of bulk and tail (module docstring); shape (n_params,)."""
    x = _as_draws(draws)
    bulk = _rhat(_rank_normalize(_split(x)))
    folded = np.abs(x - np.median(x.reshape(-1, x.shape[2]), axis=0))
    tail = _rhat(_rank_normalize(_split(folded)))
    return np.maximum(bulk, tail)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance along axis 1 of (M, N, K) via FFT: (1/N)·Σ_i (x_i − x̄)(x_{i+t} − x̄), t = 0..N−1."""
    N = x.shape[1]
    d = x - x.mean(axis=1, keepdims=True)
    n_fft = 1 << int(2 * N - 1).bit_length()
    f = np.fft.rfft(d, n=n_fft, axis=1)
    return np.fft.irfft(f * np.conj(f), n=n_fft, axis=1)[:, :N] / N


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS per parameter of chains x (M, N, K) (module docstring); M·N where a parameter is constant."""
    M, N, K = x.shape
    total = M * N
    acov = _autocov(x)  # (M, N, K)
    W = acov[:, 0].mean(axis=0) * N / (N - 1.0)  # within-chain variance, ddof = 1
    var_plus = W * (N - 1.0) / N
    if M > 1:
        var_plus = var_plus + x.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (W[None, :] - acov.mean(axis=0)) / var_plus[None, :]  # (N, K), ρ̂_0 = 1
    rho[0] = 1.0
    # pairs P_k = ρ_2k + ρ_2k+1 for the lags the sequence may use (up to N − 3, as in the reference estimators)
    n_pairs = (N - 1) // 2
    P = rho[0:2 * n_pairs:2] + rho[1:2 * n_pairs:2]  # (n_pairs, K)
    nonpos = P <= 0
    nonpos[0] = False
    any_stop = nonpos.any(axis=0)
    k_star = np.where(any_stop, np.argmax(nonpos, axis=0), n_pairs - 1)  # first non-positive pair (k ≥ 1)
    idx = np.arange(n_pairs)[:, None]
    Pm = np.minimum.accumulate(np.where(idx < k_star[None, :], P, np.inf), axis=0)  # initial monotone sequence
    Pm = np.where(idx < k_star[None, :], Pm, 0.0)
    extra = np.maximum(np.take_along_axis(rho, (2 * k_star)[None, :], axis=0)[0], 0.0)
    tau = -1.0 + 2.0 * Pm.sum(axis=0) + extra
    tau = np.maximum(tau, 1.0 / np.log10(total))
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = total / tau
    const = np.ptp(x.reshape(total, K), axis=0) < np.finfo(float).resolution
    return np.where(const, float(total), np.where(np.isfinite(ess), ess, np.nan))


def ess_bulk(draws) -> np.ndarray:
    """Bulk effective sample size (rank-normalized split chains); shape (n_params,)."""
    return _ess(_rank_normalize(_split(_as_draws(draws))))


def ess_tail(draws) -> np.ndarray:
    """Tail effective sample size: the smaller ESS of 1{θ ≤ q₀.₀₅} and 1{θ ≤ q₀.₉₅} (split chains); (n_params,)."""
    x = _as_draws(draws)
    flat = x.reshape(-1, x.shape[2])
    out = None
    for q in (0.05, 0.95):
        ind = (x <= np.quantile(flat, q, axis=0)).astype(float)
        e = _ess(_split(ind))
        out = e if out is None else np.minimum(out, e)
    assert out is not None
    return out


@dataclasses.dataclass(frozen=True)
class MixingDiagnostics:
    """The worst parameter's diagnostics of a set of chains, and whether they pass.

    Attributes
    ----------
    rhat_max : float
        Largest split-R̂ over the parameters (`split_rhat`).
    ess_bulk_min, ess_tail_min : float
        Smallest bulk and tail ESS over the parameters.
    n_chains, n_draws : int
        Chains (before splitting) and draws per chain.
    rhat_threshold, ess_threshold : float
        The thresholds applied (`RHAT_MAX`, `ESS_MIN` by default).
    """

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    n_chains: int
    n_draws: int
    rhat_threshold: float = RHAT_MAX
    ess_threshold: float = ESS_MIN

    @property
    def passed(self) -> bool:
        """R̂ below its threshold and both ESS at least theirs (NaN never passes)."""
        return bool(self.rhat_max < self.rhat_threshold and self.ess_bulk_min >= self.ess_threshold
                    and self.ess_tail_min >= self.ess_threshold)

    def why_not(self) -> str:
        """'' when `passed`, else which diagnostic failed and by how much."""
        bad = []
        if not self.rhat_max < self.rhat_threshold:
            bad.append(f"split-R̂ {self.rhat_max:.4g} ≥ {self.rhat_threshold:g}")
        for name, v in (("bulk", self.ess_bulk_min), ("tail", self.ess_tail_min)):
            if not v >= self.ess_threshold:
                bad.append(f"{name} ESS {v:.4g} < {self.ess_threshold:g}")
        return "; ".join(bad)

    def to_dict(self) -> dict:
        return {"rhat_max": self.rhat_max, "ess_bulk_min": self.ess_bulk_min, "ess_tail_min": self.ess_tail_min,
                "n_chains": self.n_chains, "n_draws": self.n_draws, "rhat_threshold": self.rhat_threshold,
                "ess_threshold": self.ess_threshold, "mixed": self.passed}


def mixing_diagnostics(draws, *, rhat_threshold: float = RHAT_MAX, ess_threshold: float = ESS_MIN) -> MixingDiagnostics:
    """Split-R̂ and bulk/tail ESS of ``draws`` (n_chains, n_draws[, n_params]), worst over the parameters.

    Examples
    --------
    >>> import numpy as np
    >>> d = mixing_diagnostics(np.random.default_rng(0).standard_normal((4, 500, 3)))
    >>> d.passed, d.rhat_max < 1.01
    (True, True)
    """
    x = _as_draws(draws)
    rh, eb, et = split_rhat(x), ess_bulk(x), ess_tail(x)

    def worst(a, fn):
        return float("nan") if np.isnan(a).any() else float(fn(a))

    return MixingDiagnostics(rhat_max=worst(rh, np.max), ess_bulk_min=worst(eb, np.min), ess_tail_min=worst(et, np.min),
                             n_chains=int(x.shape[0]), n_draws=int(x.shape[1]), rhat_threshold=float(rhat_threshold),
                             ess_threshold=float(ess_threshold))
