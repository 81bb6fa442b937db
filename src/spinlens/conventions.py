r"""All normalisations, scalings and signs of spinlens, in one place.

Symbol ↔ name glossary (paper: Li, Bai, Huang, arXiv 2408.02288)

=========  ======================  ===========================================================
symbol     name in the code        meaning
=========  ======================  ===========================================================
D          ``d``                   token (input) dimension
N          ``n_context``           number of context pairs in a prompt
P          ``n_prompts``           number of pretraining prompts
K          ``n_tasks``             size of a finite task pool (None: a fresh task per prompt)
λ          ``l2_strength``         ridge strength of the Hamiltonian E(W)
λ₀         ``weight_decay``        coupled weight decay of torch Adam/SGD (optimizer only)
β          ``beta``                inverse temperature of the Boltzmann measure exp(−βE)
θ          ``damping``             damping of the cavity iteration: new = θ old + (1−θ) update
σ_x, σ_w   ``sigma_x, sigma_w``    std of input coordinates and of task coordinates
σ_ε        ``sigma_eps``           std of the label noise
c          ``corr``                correlation between positions, corr(x_i, x_j) = c, i ≠ j
=========  ======================  ===========================================================

Conventions

* labels: :math:`y = w\cdot x/\sqrt{D} + \varepsilon` (`label_scale`).
* attention average: :math:`f(Z) = Z Z^\top W Z / (N+1)`, the number of columns (`token_average`).
* spins: :math:`W_i`, ``i = a (D+1) + b`` (row-major flattening, ``W.reshape(-1)``).
* features: :math:`s = c \otimes q`, :math:`c = Z Z^\top[D,:]/(N+1)`, :math:`q = Z[:, N]` (the query).
* Hamiltonian: :math:`E(W) = \tfrac12\,\mathrm{mean}_\mu (y^\mu - s^\mu\cdot W)^2 + \tfrac{\lambda}{2}\|W\|^2`
  :math:`= -\tfrac12\sum_{i\ne j} J_{ij}W_iW_j - \sum_i h_i W_i + \tfrac12\sum_i \lambda_i W_i^2 + \mathrm{const}`
  with :math:`J_{ij} = -\mathrm{mean}_\mu s_i s_j`, :math:`h_i = \mathrm{mean}_\mu y s_i`,
  :math:`\lambda_i = \lambda - J_{ii}` (`self_coupling`), const = ½ mean y².
* Boltzmann measure :math:`p(W)\propto e^{-\beta E(W)}`; β is an inverse temperature.
* Training: torch ``MSELoss`` has no ½ and coupled weight decay λ₀ adds λ₀W to the gradient of the
  mean squared error, so a stationary point of training minimises E with λ = λ₀/2
  (`l2_strength_from_weight_decay`).
* Asymptotic theory (Lu et al., arXiv 2405.11751): α = N/D, τ = P/D², κ = K/D, ρ = σ_ε²/(σ_xσ_w)²,
  λ_LU = D·λ·(1+1/N)² for σ_x = σ_w = 1 (docs/theory.md, 'Map from the spin glass'); see `to_lu`.
"""

from __future__ import annotations

import math

import numpy as np


def label_scale(d: int) -> float:
    """Scale of the labels, y = label_scale(D) · w·x: 1/√D."""
    return 1.0 / math.sqrt(d)


def token_average(n_context: int) -> float:
    """The attention's average over tokens, 1/(N+1) (the number of columns of Z, query included)."""
    return 1.0 / (n_context + 1)


def self_coupling(l2_strength: float, J_diag: np.ndarray) -> np.ndarray:
    """The diagonal λ_i = λ − J_ii of the Hamiltonian."""
    return l2_strength - np.asarray(J_diag)


def l2_strength_from_weight_decay(weight_decay: float) -> float:
    """λ of E(W) minimised at a stationary point of torch MSE + coupled weight decay λ₀: λ = λ₀/2."""
    return weight_decay / 2.0


def weight_decay_from_l2_strength(l2_strength: float) -> float:
    """Inverse of `l2_strength_from_weight_decay`: λ₀ = 2λ."""
    return 2.0 * l2_strength


def flat_index(a: int, b: int, d: int) -> int:
    """Spin index of W[a, b] in the row-major flattening of a (D+1)×(D+1) matrix."""
    return a * (d + 1) + b


def lam_lu_from_lam(l2_strength: float, d: int, n_context: int, sigma_x: float = 1.0, sigma_w: float = 1.0) -> float:
    """Lu et al.'s ridge λ_LU of the Hamiltonian's λ (``lam``, the λ of E(W)): λ_LU = D·λ·(1 + 1/N)²/(σ_x⁶σ_w²)
    (`to_lu`). The inverse is `lam_from_lam_lu`; the two are the only place the conversion is written.

    >>> lam_lu_from_lam(0.01, d=20, n_context=100)  # doctest: +ELLIPSIS
    0.20402...
    """
    return d * l2_strength * (1.0 + 1.0 / n_context) ** 2 / (sigma_x**6 * sigma_w**2)


def lam_from_lam_lu(lam_lu: float, d: int, n_context: int, sigma_x: float = 1.0, sigma_w: float = 1.0) -> float:
    """The Hamiltonian's λ (the λ of E(W)) of Lu et al.'s ridge λ_LU: the inverse of `lam_lu_from_lam`.

    >>> lam_from_lam_lu(lam_lu_from_lam(0.01, d=20, n_context=100), d=20, n_context=100)  # doctest: +ELLIPSIS
    0.01...
    """
    return lam_lu * sigma_x**6 * sigma_w**2 / (d * (1.0 + 1.0 / n_context) ** 2)


def to_lu(
    d: int,
    n_context: int,
    n_prompts: int,
    l2_strength: float,
    n_tasks: int | None = None,
    sigma_eps: float = 0.0,
    sigma_x: float = 1.0,
    sigma_w: float = 1.0,
) -> dict:
    """Map spin-glass parameters (D, N, P, λ, K, σ_ε) onto the asymptotic theory's (α, τ, κ, ρ, λ_LU): a dict with
    the keys ``alpha``, ``tau``, ``kappa``, ``rho`` and ``lam_lu`` (never ``lam``: that is the λ of E(W)).

    With x = σ_x√D·x̃ and y = σ_xσ_w·ỹ the spin-glass prompt becomes Lu et al.'s (x̃ ~ N(0, I/d),
    ỹ = x̃·w̃ with w̃ ~ N(0, I)); the noise variance becomes ρ = σ_ε²/(σ_xσ_w)². The prediction is
    ŷ/(σ_xσ_w) = x̃_qᵀ Γ h̃ with Γ[:, :D] = (N/(N+1))·σ_x²·W[:D, :D]ᵀ, so the SG objective
    mean(…)²/2 + λ/2 |W|² equals, in LU units and up to a factor 2, (1/n)Σ(…)² + (λ_LU/d)|Γ|² with

        λ_LU = D · λ · (1 + 1/N)² / (σ_x⁶ σ_w²)      (= D λ (1+1/N)² for σ_x = σ_w = 1; docs/theory.md).

    The last column of Γ (the Σy² feature) is penalised differently; that is O(1/D). κ = ∞ when every
    prompt has its own task (``n_tasks=None``).
    """
    alpha = n_context / d
    tau = n_prompts / d**2
    kappa = math.inf if n_tasks is None else n_tasks / d
    rho = sigma_eps**2 / (sigma_x * sigma_w) ** 2
    lam_lu = lam_lu_from_lam(l2_strength, d, n_context, sigma_x, sigma_w)
    return {"alpha": alpha, "tau": tau, "kappa": kappa, "rho": rho, "lam_lu": lam_lu}
