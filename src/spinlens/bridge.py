r"""The mechanistic bridge: trained linear attention ↔ the spin-glass solution W* ↔ one step of gradient descent.

von Oswald et al. (ICML 2023) showed that linear self-attention trained on in-context regression implements
one step of gradient descent on the in-context least-squares loss. This module makes the statement
quantitative for the zoo's linear models (``sla``, ``sla-separate``, ``fla``, ``mhla``).

**Effective weights.** With tokens ``z_t`` (the columns of Z, ``q = z_N`` the query) every linear model of
the zoo predicts (`spinlens.models.zoo`, heads ``h``)

.. math::

    \hat y = \frac{1}{N+1} \sum_h u_h^\top Z Z^\top B_h\, q,
    \qquad u_h = W_V^h W_O^h e_D,\quad B_h = W_K^h W_Q^{h\top},

i.e. the trilinear form :math:`\hat y = \frac{1}{N+1}\sum_{abc} T_{abc}(ZZ^\top)_{ab} q_c` with
:math:`T = \sum_h u_h \otimes B_h` (`EffectiveForm`). Only the part of T symmetric in (a, b) matters
(ZZᵀ is symmetric). The paper's merged model uses the features :math:`(ZZ^\top)_{Db} q_c`; they appear in
T both at ``a = D`` and at ``b = D``, so the effective merged matrix is

.. math::  W_\text{eff}[b, c] = T_{Dbc} + T_{bDc}\ (b < D), \qquad W_\text{eff}[D, c] = T_{DDc},

and :math:`\hat y = [ZZ^\top W_\text{eff} Z/(N+1)]_{D,N} + r`, where the remainder r comes from the
x-x block :math:`T_{abc}, a, b < D`, multiplying :math:`\sum_t x_{ta}x_{tb}\, q_c`. Those features are odd in
the task and uncorrelated with the target, so on fresh prompts they only add variance and online training
drives the block to 0 (on a fixed training set they can fit noise); `EffectiveForm.leak` reports its
relative size and the merged W is exact when it vanishes. For ``sla``, ``W_eff = W``; for
``sla-separate``, ``W_qᵀW_k``. (A model can also use the ``b = D`` route, the y row of the key-query
form with the x part of the value row: a rank-one W_eff, the stall seen when an FLA is trained from an
unlucky initialisation at small D.)

**One step of in-context gradient descent.** From w₀ = 0 on :math:`L(w) = \frac{1}{2N}\sum_i (y_i - w\cdot x_i)^2`
one step of size η gives :math:`\hat y_\text{GD} = \frac{\eta}{N}\sum_i y_i\, x_i\cdot x_q`, which is the
merged model with :math:`W_\text{GD} = \gamma E_{xx}`, :math:`\gamma = \eta (N+1)/N` (``E_xx`` = the identity
on the upper-left D×D block, zeros elsewhere). The η minimising the expected test error on fresh
prompts is, in closed form for isotropic Gaussian prompts (Wishart moment :math:`E[S^2] = N(N+D+1)\sigma_x^4 I`),

.. math::  \eta^* = \frac{N \sigma_x^2\sigma_w^2}{\sigma_x^4\sigma_w^2 (N+D+1) + D\sigma_x^2\sigma_\varepsilon^2},

so :math:`\gamma^* = (N+1)/(N+D+1)` and the test error is :math:`(D+1)/(N+D+1)` at σ_x = σ_w = 1, σ_ε = 0;
`fit_gd_eta` gives η by least squares on prompts instead (any distribution). At λ = 0 the optimal GD step
*is* W* (`spinlens.limit.infinite_diversity_solution`): by rotation symmetry the minimiser of the expected
error is a multiple of ``E_xx``, and its coefficient is γ*.

**Comparisons** (`bridge_report`): cosine similarity of weights over the live columns ``W[:, :D]`` (the last
column multiplies the hidden query label and never matters), and agreement of predictions on fresh prompts:
``r2 = 1 − Σ(a−b)²/Σ(b−b̄)²`` and ``rel_mse = mean((a−b)²)/mean(b²)`` of predictions ``a`` against a reference ``b``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spinlens import conventions
from spinlens.errors import InvalidParameterError, check_float, check_int
from spinlens.random import RNGLike

LINEAR_ARCHS = ("sla", "sla-separate", "fla", "mhla")


@dataclasses.dataclass(frozen=True)
class EffectiveForm:
    """The trilinear form of a linear-attention model: ``ŷ = Σ_abc T_abc (Z Zᵀ)_ab q_c / (N+1)``.

    Attributes
    ----------
    T : ndarray of shape (D+1, D+1, D+1), float64
        ``Σ_h u_h ⊗ B_h`` (only its part symmetric in the first two indices affects predictions).
    u : ndarray of shape (n_heads, D+1)
        Value rows read by the label coordinate, ``W_V^h W_O^h e_D``.
    B : ndarray of shape (n_heads, D+1, D+1)
        Bilinear key-query forms ``W_K^h W_Q^hᵀ``.
    arch : str
    """

    T: np.ndarray
    u: np.ndarray
    B: np.ndarray
    arch: str

    @property
    def d(self) -> int:
        return self.T.shape[0] - 1

    @property
    def T_sym(self) -> np.ndarray:
        """``(T + T.transpose(1, 0, 2))/2``: the part of T that the predictions see."""
        return 0.5 * (self.T + self.T.transpose(1, 0, 2))

    @property
    def W(self) -> np.ndarray:
        """Effective merged matrix (D+1, D+1): ``W[b] = T[D, b] + T[b, D]`` for b < D, ``W[D] = T[D, D]``."""
        d = self.d
        W = self.T[d] + self.T[:, d]
        W[d] = self.T[d, d]
        return W

    @property
    def leak(self) -> float:
        """‖T_sym[:D, :D, :D]‖ / ‖T_sym[:, :, :D]‖: the live form outside the merged family (0: W exact)."""
        d = self.d
        live = self.T_sym[:, :, :d]
        n = np.linalg.norm(live)
        return 0.0 if n == 0 else float(np.linalg.norm(live[:d, :d]) / n)

    def predict(self, Z) -> np.ndarray:
        """Predictions ``(n_prompts,)`` of the full trilinear form on Z ``(n_prompts, D+1, N+1)``."""
        Z = np.asarray(getattr(Z, "Z", Z), dtype=float)
        G = np.einsum("pat,pbt->pab", Z, Z)
        q = Z[:, :, -1]
        return np.einsum("pab,abc,pc->p", G, self.T, q) * conventions.token_average(Z.shape[2] - 1)


def effective_form(model) -> EffectiveForm:
    """Read the trilinear form (and the effective merged W) off a linear zoo model.

    Parameters
    ----------
    model : zoo model with ``config.arch`` in {"sla", "sla-separate", "fla", "mhla"}

    Raises
    ------
    InvalidParameterError
        For softmax attention or the transformer (not linear in the prompt's second moments).
    """
    import torch

    arch = getattr(getattr(model, "config", None), "arch", None)
    if arch not in LINEAR_ARCHS:
        raise InvalidParameterError(
            f"effective_form needs a linear zoo model (arch in {LINEAR_ARCHS}); got arch {arch!r}."
        )
    with torch.no_grad():
        d = model.config.d
        if arch in ("sla", "sla-separate"):
            W = model.merged_weights().double().cpu().numpy()
            u = np.zeros((1, d + 1))
            u[0, d] = 1.0
            B = W[None]
        else:
            a = model.blocks[0].attn
            WQ, WK, WV, WO = (t.double().cpu().numpy() for t in (a.W_Q, a.W_K, a.W_V, a.W_O))
            u = np.einsum("hde,he->hd", WV, WO[:, :, d])
            B = np.einsum("hae,hbe->hab", WK, WQ)
    T = np.einsum("ha,hbc->abc", u, B)
    return EffectiveForm(T=T, u=u, B=B, arch=arch)


def effective_weights(model) -> np.ndarray:
    """Effective merged matrix ``W_eff`` (D+1, D+1) of a linear zoo model (see `effective_form`)."""
    return effective_form(model).W


# --------------------------------------------------------------------------------------------- GD step
def gd_optimal_eta(dist) -> float:
    """Closed-form η* of one in-context GD step for isotropic Gaussian prompts (``corr == 0``)."""
    if not dist.isotropic:
        raise InvalidParameterError(
            f"gd_optimal_eta needs independent positions (corr = 0); got corr = {dist.corr}. Use fit_gd_eta."
        )
    D, N = dist.d, dist.n_context
    sx2, sw2, se2 = dist.sigma_x**2, dist.sigma_w**2, dist.sigma_eps**2
    return float(N * sx2 * sw2 / (sx2 * sx2 * sw2 * (N + D + 1) + D * sx2 * se2))


def gd_step_predict(prompts, eta: float) -> np.ndarray:
    """``ŷ = (η/N) Σ_i y_i x_i·x_q`` for each prompt, shape (n_prompts,)."""
    Z = np.asarray(getattr(prompts, "Z", prompts), dtype=float)
    d, N = Z.shape[1] - 1, Z.shape[2] - 1
    s = np.einsum("pdi,pi,pd->p", Z[:, :d, :N], Z[:, d, :N], Z[:, :d, N])
    return eta / N * s


def fit_gd_eta(prompts) -> float:
    """Least-squares η on `Prompts`: minimises Σ (y − ŷ_GD(η))², i.e. η = Σ g y / Σ g² with g = ŷ_GD(1)."""
    g = gd_step_predict(prompts, 1.0)
    den = float(g @ g)
    if den == 0:
        raise InvalidParameterError("fit_gd_eta: the GD-step feature is identically 0 on these prompts.")
    return float(g @ np.asarray(prompts.y, float) / den)


def gd_step_weights(dist, eta: float | None = None) -> np.ndarray:
    """Merged matrix ``W_GD = η (N+1)/N · E_xx`` of one GD step (η None: the closed-form optimum `gd_optimal_eta`)."""
    if eta is None:
        eta = gd_optimal_eta(dist)
    eta = check_float("eta", eta, owner="gd_step_weights")
    D, N = dist.d, dist.n_context
    W = np.zeros((D + 1, D + 1))
    W[np.arange(D), np.arange(D)] = eta * (N + 1) / N
    return W


# ------------------------------------------------------------------------------------------ comparisons
def live_cosine(A, B) -> float:
    """Cosine similarity of two (D+1)×(D+1) matrices over their live columns ``[:, :D]``."""
    A, B = np.asarray(A, float)[:, :-1].ravel(), np.asarray(B, float)[:, :-1].ravel()
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    return 0.0 if na == 0 or nb == 0 else float(A @ B / (na * nb))


def agreement(pred, ref) -> dict:
    """``{"r2": 1 − Σ(a−b)²/Σ(b−b̄)², "rel_mse": mean((a−b)²)/mean(b²)}`` of predictions a against b."""
    a, b = np.asarray(pred, float), np.asarray(ref, float)
    if a.shape != b.shape:
        raise InvalidParameterError(f"agreement: pred has shape {a.shape}, ref has shape {b.shape}.")
    res = float(np.sum((a - b) ** 2))
    var = float(np.sum((b - b.mean()) ** 2))
    return {"r2": 1.0 - res / var if var > 0 else float("nan"), "rel_mse": res / max(float(np.sum(b * b)), 1e-300)}


@dataclasses.dataclass(frozen=True)
class BridgeReport:
    """Comparison of a trained linear model with W*(N, D, λ) and with one optimal GD step.

    Weight cosines are over the live columns (for isotropic prompts W* and W_GD are both multiples of
    ``E_xx``, so the two cosines coincide and the references differ only in scale: ``scale_vs_*`` is the
    least-squares coefficient c in W_eff ≈ c·W_ref); prediction agreements (``r2``, ``rel_mse``) are on
    ``n_prompts`` fresh prompts with fresh tasks; test errors are exact expectations for the merged
    matrices (`spinlens.observables.test_error`) and Monte-Carlo for the model itself.
    """

    arch: str
    n_context: int
    d: int
    l2_strength: float
    eta_gd: float
    eta_gd_fit: float
    leak: float
    cos_w_star: float
    cos_gd: float
    scale_vs_w_star: float
    scale_vs_gd: float
    r2_vs_w_star: float
    rel_mse_vs_w_star: float
    r2_vs_gd: float
    rel_mse_vs_gd: float
    r2_eff_vs_model: float
    test_error_model: float
    test_error_w_eff: float
    test_error_w_star: float
    test_error_gd: float
    n_test_prompts: int  # fresh test prompts (not the training P: the JSON key must not read as "P")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def bridge_report(model, dist, *, l2_strength: float, n_prompts: int = 4096, rng: RNGLike = None) -> BridgeReport:
    """Compare a trained linear zoo model with W*(N, D, λ) and with the optimal one-step GD predictor.

    Parameters
    ----------
    model : linear zoo model (sla, sla-separate, fla, mhla)
    dist : PromptDistribution
        The distribution the model was trained on (its fresh-task version is used for testing).
    l2_strength : float >= 0
        λ of W*; for the merged model trained with coupled weight decay λ₀, λ = λ₀/2.
    n_prompts : int
        Fresh prompts for the prediction comparisons and the model's Monte-Carlo test error.
    rng : seed of the fresh prompts.

    Returns
    -------
    BridgeReport
    """
    from spinlens import limit
    from spinlens.features import spin_features
    from spinlens.observables import test_error
    from spinlens.training_online import predict

    lam = check_float("l2_strength", l2_strength, low=0, owner="bridge_report")
    n_prompts = check_int("n_prompts", n_prompts, low=10, owner="bridge_report")
    form = effective_form(model)
    if form.d != dist.d:
        raise InvalidParameterError(f"bridge_report: the model has d={form.d}, the distribution d={dist.d}.")
    test_dist = dist.replace(n_tasks=None)
    prompts = test_dist.sample(n_prompts, rng=rng)
    W_eff = form.W
    W_star = limit.infinite_diversity_solution(test_dist, lam)
    eta = gd_optimal_eta(test_dist) if test_dist.isotropic else fit_gd_eta(prompts)
    W_gd = gd_step_weights(test_dist, eta)
    feats = spin_features(prompts)
    y_model = predict(model, prompts)
    y_eff = feats.predict(W_eff)
    y_star = feats.predict(W_star)
    y_gd = gd_step_predict(prompts, eta)
    a_star, a_gd, a_eff = agreement(y_model, y_star), agreement(y_model, y_gd), agreement(y_eff, y_model)
    live_star = W_star[:, :-1].ravel()
    return BridgeReport(
        arch=form.arch,
        n_context=dist.n_context,
        d=dist.d,
        l2_strength=lam,
        eta_gd=eta,
        eta_gd_fit=fit_gd_eta(prompts),
        leak=form.leak,
        cos_w_star=live_cosine(W_eff, W_star),
        cos_gd=live_cosine(W_eff, W_gd),
        scale_vs_w_star=float(W_eff[:, :-1].ravel() @ live_star / (live_star @ live_star)),
        scale_vs_gd=float(W_eff[:, :-1].ravel() @ W_gd[:, :-1].ravel() / np.sum(W_gd[:, :-1] ** 2)),
        r2_vs_w_star=a_star["r2"],
        rel_mse_vs_w_star=a_star["rel_mse"],
        r2_vs_gd=a_gd["r2"],
        rel_mse_vs_gd=a_gd["rel_mse"],
        r2_eff_vs_model=a_eff["r2"],
        test_error_model=float(np.mean((y_model - prompts.y) ** 2)),
        test_error_w_eff=test_error(W_eff, test_dist, rng=rng),
        test_error_w_star=test_error(W_star, test_dist, rng=rng),
        test_error_gd=test_error(W_gd, test_dist, rng=rng),
        n_test_prompts=n_prompts,
    )


def bridge_checkpoint(path, *, n_context: int | None = None, l2_strength: float | None = None, n_prompts: int = 4096,
                      rng: RNGLike = 0, deprecated: str | None = None) -> BridgeReport:
    """`bridge_report` of the linear model in the spinlens model folder ``path`` (``spinlens zoo train`` or
    ``spinlens train``), on its stored prompt distribution with fresh tasks.

    ``n_context``: default the context length stored in the folder; ``l2_strength``: the λ of W*, default the
    model's weight decay / 2 (0 for adamw, whose decay is decoupled). ``deprecated``: a line printed once the
    model has loaded (an old spelling of the folder argument).
    """
    from spinlens.models.source import ModelSource, load_spinlens_model
    from spinlens.prompts import PromptDistribution

    model, ck = load_spinlens_model(ModelSource("regression", str(path), "checkpoint", deprecated), transformer=False)
    meta = ck.metadata
    dist_info = dict(meta.get("distribution") or {})
    N = n_context if n_context is not None else dist_info.get("n_context")
    if N is None:
        raise InvalidParameterError("The '--N' parameter is required: the checkpoint does not store its context length.")
    dist_info.update(d=model.config.d, n_context=check_int("--N", N, low=1))
    dist_info["n_tasks"] = None
    dist = PromptDistribution(**dist_info)
    if l2_strength is None:
        wd = float(meta.get("weight_decay", 0.0) or 0.0)
        lam = wd / 2 if meta.get("optimizer", "adam") != "adamw" else 0.0
    else:
        lam = check_float("--lam", l2_strength, low=0)
    return bridge_report(model, dist, l2_strength=lam, n_prompts=check_int("--prompts", n_prompts, low=10),
                         rng=check_int("--seed", rng, low=0))
