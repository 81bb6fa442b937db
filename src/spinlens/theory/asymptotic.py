r"""Exact asymptotics of in-context learning by linear attention (Lu et al., arXiv 2405.11751).

The reduced linear-attention model :math:`\hat y = x_{\ell+1}^\top \Gamma h` is pretrained by ridge
regression on ``n`` contexts of length ``ℓ`` drawn from a pool of ``k`` tasks in dimension ``d``. In the
limit ``d → ∞`` with

* ``alpha = ℓ/d`` (context length), ``tau = n/d²`` (pretraining sample size),
* ``kappa = k/d`` (task diversity, ``inf`` for a fresh task per context),
* ``rho`` (label-noise *variance*) and ``lam_lu`` (ridge, objective ``(1/n)Σ(…)² + (λ/d)‖Γ‖²``)

fixed, the test errors on fresh tasks (ICL) and on the pretraining pool (IDG) are deterministic. This
module implements them (conventions and formulas: ``docs/theory.md``):

* :math:`M_\kappa(z)`, the Stieltjes-type transform of the Marchenko–Pastur law of the task covariance,
  and its derivative (`M_kappa`, `M_kappa_derivative`);
* the effective regularisation ε, root of :math:`1-\tau+\tau\lambda/\varepsilon-\varepsilon
  M_\kappa(x^*+\varepsilon)=0` with :math:`x^*=(1+\rho)/\alpha` (`solve_epsilon`);
* the errors for general λ ≥ 0 (`learning_curve_point`, `learning_curve`);
* two independent cross-checks: the authors' ridgeless closed forms (`ridgeless_closed_form`) and the
  fully explicit κ = ∞ forms (`infinite_diversity_closed_form`).

Everything is float64 and scalar-exact; a curve of a few hundred points takes milliseconds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import brentq

from spinlens.errors import InvalidParameterError, SolverDidNotConvergeWarning, check_float

if TYPE_CHECKING:
    from spinlens.theory.results import TheoryRun

__all__ = [
    "TheoryResult",
    "M_kappa",
    "M_kappa_derivative",
    "solve_epsilon",
    "learning_curve_point",
    "learning_curve",
    "ridgeless_closed_form",
    "infinite_diversity_closed_form",
    "validate_inputs",
    "point_run",
    "spin_glass_point",
    "curve_run",
]

INF = math.inf
_PARAMS = ("alpha", "tau", "kappa", "rho", "lam_lu")


# ----------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------
def _check_kappa(kappa, owner: str = "") -> float:
    try:
        k = float(kappa)
    except (TypeError, ValueError):
        k = float("nan")
    if k == INF:
        return INF
    where = f" of {owner}" if owner else ""
    if not (k > 0) or math.isnan(k):
        raise InvalidParameterError(
            f"The 'kappa' parameter{where} must be a real number in (0, inf) or inf. Got {kappa!r} instead."
        )
    return k


def validate_inputs(alpha, tau, kappa=INF, rho=0.0, lam_lu=0.0, *, owner: str = "") -> tuple[float, ...]:
    """Check and convert the five theory parameters; raise `InvalidParameterError` naming the bad one.

    Allowed ranges: ``alpha > 0``, ``tau > 0`` (finite), ``kappa > 0`` or ``inf``, ``rho >= 0``,
    ``lam_lu >= 0``.
    """
    a = check_float("alpha", alpha, low=0.0, low_open=True, owner=owner)
    t = check_float("tau", tau, low=0.0, low_open=True, owner=owner)
    k = _check_kappa(kappa, owner)
    r = check_float("rho", rho, low=0.0, owner=owner)
    lm = check_float("lam_lu", lam_lu, low=0.0, owner=owner)
    return a, t, k, r, lm


# ----------------------------------------------------------------------------------------------------
# M_kappa
# ----------------------------------------------------------------------------------------------------
def _m_scalar(z: float, kappa: float) -> float:
    """M_κ(z) for scalar z > 0 (cancellation-free for either sign of b = z + 1 − 1/κ)."""
    if kappa == INF:
        return 1.0 / (1.0 + z)
    b = z + 1.0 - 1.0 / kappa
    disc = math.sqrt(b * b + 4.0 * z / kappa)
    if b >= 0.0:
        return 2.0 / (b + disc)
    return (disc - b) / (2.0 * z / kappa)


def _mp_scalar(z: float, kappa: float) -> float:
    """M_κ'(z) for scalar z > 0."""
    if kappa == INF:
        return -1.0 / (1.0 + z) ** 2
    b = z + 1.0 - 1.0 / kappa
    disc = math.sqrt(b * b + 4.0 * z / kappa)
    m = _m_scalar(z, kappa)
    return -0.5 * m * m * (1.0 + (z + 1.0 + 1.0 / kappa) / disc)


def M_kappa(z, kappa):
    r"""Limiting normalised resolvent trace of the pretraining task covariance.

    .. math:: M_\kappa(z) = \lim \tfrac1d \operatorname{tr}(\hat R + z I)^{-1}
              = \frac{2}{b + \sqrt{b^2 + 4z/\kappa}}, \quad b = z + 1 - 1/\kappa,

    with :math:`\hat R = \tfrac1k\sum_j w_j w_j^\top`, :math:`w_j\sim N(0, I_d)`, ``k/d = kappa``.
    It is the positive root of :math:`(z/\kappa)M^2 + bM - 1 = 0`. For ``b < 0`` the algebraically
    equal form :math:`(\sqrt{b^2+4z/\kappa}-b)/(2z/\kappa)` is used (no cancellation);
    ``kappa = inf`` gives :math:`1/(1+z)`.

    Parameters
    ----------
    z : float or array of shape (...)
        Spectral argument, ``z > 0``.
    kappa : float or array broadcastable with ``z``
        Task diversity ``k/d`` in ``(0, inf]``.

    Returns
    -------
    float or ndarray of the broadcast shape

    Examples
    --------
    >>> round(M_kappa(1.0, float("inf")), 12)
    0.5
    """
    z_arr, k_arr = np.broadcast_arrays(np.asarray(z, dtype=np.float64), np.asarray(kappa, dtype=np.float64))
    if np.any(~(z_arr > 0)) or np.any(~np.isfinite(z_arr)):
        raise InvalidParameterError(f"The 'z' parameter of M_kappa must be in (0, inf). Got {z!r} instead.")
    if np.any(~(k_arr > 0)):
        raise InvalidParameterError(f"The 'kappa' parameter of M_kappa must be in (0, inf]. Got {kappa!r} instead.")
    out = np.array([_m_scalar(float(a), float(b)) for a, b in zip(z_arr.ravel(), k_arr.ravel())]).reshape(z_arr.shape)
    return float(out) if out.ndim == 0 else out


def M_kappa_derivative(z, kappa):
    r"""Derivative :math:`M_\kappa'(z) = -\tfrac12 M^2 [1 + (z+1+1/\kappa)/\sqrt{b^2+4z/\kappa}]`.

    Equal to :math:`-\lim\tfrac1d\operatorname{tr}(\hat R+z)^{-2}`; ``kappa = inf`` gives
    :math:`-1/(1+z)^2`. Same arguments and shapes as `M_kappa`.

    Examples
    --------
    >>> round(M_kappa_derivative(1.0, float("inf")), 12)
    -0.25
    """
    z_arr, k_arr = np.broadcast_arrays(np.asarray(z, dtype=np.float64), np.asarray(kappa, dtype=np.float64))
    if np.any(~(z_arr > 0)) or np.any(~np.isfinite(z_arr)):
        raise InvalidParameterError(
            f"The 'z' parameter of M_kappa_derivative must be in (0, inf). Got {z!r} instead."
        )
    if np.any(~(k_arr > 0)):
        raise InvalidParameterError(
            f"The 'kappa' parameter of M_kappa_derivative must be in (0, inf]. Got {kappa!r} instead."
        )
    out = np.array([_mp_scalar(float(a), float(b)) for a, b in zip(z_arr.ravel(), k_arr.ravel())]).reshape(z_arr.shape)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------------------------------
# effective regularisation epsilon
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Eps:
    value: float
    converged: bool
    message: str
    divergent: bool = False


def _xi_ridgeless(xs: float, tau: float, kappa: float) -> float:
    """Closed form ξ = (1−τ)/(τ M_{κ/τ}(x*)) of the ridgeless τ < 1 root (docs/theory.md, 'Formulas implemented')."""
    return (1.0 - tau) / (tau * _m_scalar(xs, kappa / tau if kappa != INF else INF))


def _solve_eps(alpha: float, tau: float, kappa: float, rho: float, lam: float) -> _Eps:
    xs = (1.0 + rho) / alpha
    if lam == 0.0:
        if tau > 1.0:
            return _Eps(0.0, True, "ridgeless, tau > 1: epsilon = 0 (least squares)")
        if tau < 1.0:
            return _Eps(_xi_ridgeless(xs, tau, kappa), True, "ridgeless, tau < 1: closed-form xi (min-norm)")
        return _Eps(0.0, True, "ridgeless at the interpolation threshold tau = 1: the errors diverge", True)

    # g(eps) = eps * f(eps) = eps^2 M(x*+eps) - (1-tau) eps - tau lam: g(0) = -tau lam < 0, and
    # f is increasing with f -> tau > 0, so g has exactly one positive root.
    def g(eps: float) -> float:
        return eps * eps * _m_scalar(xs + eps, kappa) - (1.0 - tau) * eps - tau * lam

    hi = max(1.0, 2.0 * lam, 2.0 * abs(1.0 - tau) * (1.0 + xs) / tau)
    n_double = 0
    while g(hi) <= 0.0:
        hi *= 2.0
        n_double += 1
        if n_double > 200 or not math.isfinite(hi):
            return _Eps(math.nan, False, "could not bracket the root of the epsilon equation")
    try:
        eps, info = brentq(g, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500, full_output=True)
    except (RuntimeError, ValueError) as exc:  # pragma: no cover - defensive
        return _Eps(math.nan, False, f"Brent's method failed on the epsilon equation: {exc}")
    if not info.converged or not (eps > 0.0):
        return _Eps(float(eps), False, f"Brent's method did not converge: {info.flag}")
    resid = 1.0 - tau + tau * lam / eps - eps * _m_scalar(xs + eps, kappa)
    scale = 1.0 + tau + tau * lam / eps
    if abs(resid) > 1e-9 * scale:
        return _Eps(float(eps), False, f"epsilon equation residual {resid:.3g} too large")
    return _Eps(float(eps), True, f"Brent's method converged in {info.iterations} iterations")


def solve_epsilon(alpha, tau, kappa=INF, rho=0.0, lam_lu=0.0) -> float:
    r"""Effective regularisation ε of the pretrained Γ (docs/theory.md, 'Formulas implemented').

    ε > 0 is the unique root of :math:`1-\tau+\tau\lambda/\varepsilon-\varepsilon M_\kappa(x^*+\varepsilon)=0`,
    :math:`x^* = (1+\rho)/\alpha`, found by bracketing and Brent's method. Ridgeless limits (``lam_lu=0``):
    ``0`` for ``tau > 1``; :math:`\xi=(1-\tau)/(\tau M_{\kappa/\tau}(x^*))` for ``tau < 1``; ``0`` at
    ``tau = 1`` (where the errors diverge, see `learning_curve_point`).

    Parameters
    ----------
    alpha, tau, kappa, rho, lam_lu : float
        See the module docstring; ranges are checked by `validate_inputs`.

    Returns
    -------
    float

    Raises
    ------
    InvalidParameterError
        On parameters out of range.

    Examples
    --------
    >>> round(solve_epsilon(2.0, 0.5, float("inf"), 0.1, 0.0), 10)
    1.55
    """
    a, t, k, r, lm = validate_inputs(alpha, tau, kappa, rho, lam_lu, owner="solve_epsilon")
    res = _solve_eps(a, t, k, r, lm)
    if not res.converged:
        warnings.warn(f"solve_epsilon: {res.message}", SolverDidNotConvergeWarning, stacklevel=2)
    return res.value


# ----------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TheoryResult:
    """Asymptotic ICL and IDG errors of ridge-pretrained linear attention at one parameter point.

    Attributes
    ----------
    icl_error : float
        Test error on fresh tasks (``inf`` at the ridgeless interpolation threshold).
    idg_error : float
        Test error on tasks of the pretraining pool.
    g_task : float
        Task-generalisation gap ``icl_error − idg_error`` (NaN only when both diverge; see ``message``).
    epsilon : float
        Effective regularisation ε.
    converged : bool
        Whether ε was found to tolerance (False: errors are NaN and ``message`` says why).
    message : str
        How ε was obtained, or why the errors diverge / were not computed.
    alpha, tau, kappa, rho, lam_lu : float
        The inputs (Lu et al. conventions, docs/theory.md).
    divergent : bool
        True at the ridgeless interpolation threshold (``lam_lu = 0``, ``tau = 1``), where both errors are +inf.
    """

    icl_error: float
    idg_error: float
    g_task: float
    epsilon: float
    converged: bool
    message: str
    alpha: float = math.nan
    tau: float = math.nan
    kappa: float = math.nan
    rho: float = math.nan
    lam_lu: float = math.nan
    divergent: bool = False

    def to_dict(self) -> dict:
        """All fields as a plain dict."""
        return asdict(self)


def _errors(alpha, tau, kappa, rho, lam, eps):
    """General-λ formulas (docs/theory.md) given ε. Returns (e_icl, e_idg, c)."""
    xs = (1.0 + rho) / alpha
    nu = xs + eps
    m = _m_scalar(nu, kappa)
    mp = _mp_scalar(nu, kappa)
    t2 = 1.0 - 2.0 * nu * m - nu * nu * mp  # (1/d) tr[R²(R+ν)^-2]
    num = rho + nu - nu * nu * m - eps * t2
    den = tau - 1.0 + 2.0 * eps * m + eps * eps * mp
    c = num / den
    e_idg = tau * c
    e_icl = 1.0 + rho - 2.0 * (1.0 - nu * m) + (1.0 + xs) * (t2 + c * (m + eps * mp))
    return e_icl, e_idg, c


def _point(alpha, tau, kappa, rho, lam_lu) -> TheoryResult:
    inputs = dict(alpha=alpha, tau=tau, kappa=kappa, rho=rho, lam_lu=lam_lu)
    sol = _solve_eps(alpha, tau, kappa, rho, lam_lu)
    if sol.divergent:
        return TheoryResult(INF, INF, math.nan, 0.0, True, sol.message + " (g_task undefined: NaN)", divergent=True, **inputs)
    if not sol.converged:
        return TheoryResult(math.nan, math.nan, math.nan, sol.value, False, sol.message, **inputs)
    try:
        e_icl, e_idg, c = _errors(alpha, tau, kappa, rho, lam_lu, sol.value)
    except (ZeroDivisionError, OverflowError):  # parameters so extreme that float64 loses the formula
        return TheoryResult(math.nan, math.nan, math.nan, sol.value, False,
                            "the error formulas are singular in float64 at these parameters (under/overflow)", **inputs)
    if not (math.isfinite(e_icl) and math.isfinite(e_idg)) or c < -1e-12 * (1.0 + abs(c)):
        return TheoryResult(
            math.nan, math.nan, math.nan, sol.value, False,
            f"non-physical result (c = {c:.3g}, e_ICL = {e_icl:.3g}); epsilon: {sol.message}", **inputs,
        )
    return TheoryResult(e_icl, e_idg, e_icl - e_idg, sol.value, True, sol.message, **inputs)


def learning_curve_point(alpha, tau, kappa=INF, rho=0.0, lam_lu=0.0) -> TheoryResult:
    r"""Asymptotic ICL/IDG errors at one point (docs/theory.md, 'Formulas implemented').

    With ε from `solve_epsilon`, :math:`\nu=x^*+\varepsilon`, :math:`M=M_\kappa(\nu)`, :math:`M'=M_\kappa'(\nu)`:

    .. math::
        c = \frac{\rho+\nu-\nu^2M-\varepsilon(1-2\nu M-\nu^2M')}{\tau-1+2\varepsilon M+\varepsilon^2M'},\quad
        e_{IDG} = \tau c,\quad
        e_{ICL} = 1+\rho-2(1-\nu M)+(1+x^*)\,[(1-2\nu M-\nu^2M') + c(M+\varepsilon M')].

    Parameters
    ----------
    alpha : float
        Context length over dimension, ``ℓ/d > 0``.
    tau : float
        Pretraining contexts over ``d²``, ``> 0``.
    kappa : float, default inf
        Task-pool size over ``d``, in ``(0, inf]``.
    rho : float, default 0
        Label-noise variance, ``>= 0``.
    lam_lu : float, default 0
        Ridge strength (objective ``(1/n)Σ(…)² + (λ/d)‖Γ‖²``), ``>= 0``; ``0`` is the ridgeless limit.

    Returns
    -------
    TheoryResult
        ``converged=False`` (errors NaN, reason in ``message``, `SolverDidNotConvergeWarning`) if ε was
        not found; ``divergent=True`` with infinite errors at ``lam_lu = 0, tau = 1``.

    Raises
    ------
    InvalidParameterError
        On parameters out of range.

    Examples
    --------
    >>> r = learning_curve_point(alpha=5, tau=2, kappa=float("inf"), rho=0, lam_lu=0)
    >>> round(r.icl_error, 12)  # = tau / ((tau - 1)(1 + alpha))
    0.333333333333
    """
    a, t, k, r, lm = validate_inputs(alpha, tau, kappa, rho, lam_lu, owner="learning_curve_point")
    res = _point(a, t, k, r, lm)
    if not res.converged:
        warnings.warn(f"learning_curve_point: {res.message}", SolverDidNotConvergeWarning, stacklevel=2)
    return res


_ATTRS = {
    "icl_error": {"long_name": "ICL error (fresh tasks)", "units": "E[y^2] = 1 + rho"},
    "idg_error": {"long_name": "IDG error (pretraining tasks)", "units": "E[y^2] = 1 + rho"},
    "g_task": {"long_name": "task-generalisation gap e_ICL - e_IDG", "units": "E[y^2] = 1 + rho"},
    "epsilon": {"long_name": "effective regularisation epsilon", "units": "1"},
    "converged": {"long_name": "epsilon found", "units": "bool"},
    "divergent": {"long_name": "ridgeless interpolation threshold", "units": "bool"},
}
_COORD_ATTRS = {
    "alpha": {"long_name": "context length alpha = l/d", "units": "1"},
    "tau": {"long_name": "pretraining size tau = n/d^2", "units": "1"},
    "kappa": {"long_name": "task diversity kappa = k/d", "units": "1"},
    "rho": {"long_name": "label-noise variance rho", "units": "1"},
    "lam_lu": {"long_name": "Lu et al. ridge strength lambda_LU", "units": "1"},
}


def learning_curve(*, alpha, tau, kappa=INF, rho=0.0, lam_lu=0.0):
    """Asymptotic errors on a grid: every array-valued parameter becomes a dimension.

    Parameters
    ----------
    alpha, tau, kappa, rho, lam_lu : float or 1-D array-like
        As in `learning_curve_point`. Scalars are stored as scalar coordinates; each 1-D input becomes a
        dimension of the same name (outer product, in the order alpha, tau, kappa, rho, lam_lu).

    Returns
    -------
    xarray.Dataset
        Variables ``icl_error, idg_error, g_task, epsilon, converged, divergent`` over the array
        dimensions, with ``long_name``/``units`` attributes. Non-converged points are NaN with
        ``converged=False`` (a `SolverDidNotConvergeWarning` says how many).

    Examples
    --------
    >>> ds = learning_curve(alpha=10, tau=[0.5, 2.0], kappa=0.5, rho=0.01, lam_lu=0)
    >>> ds.icl_error.dims
    ('tau',)
    """
    import xarray as xr

    raw = dict(alpha=alpha, tau=tau, kappa=kappa, rho=rho, lam_lu=lam_lu)
    values: dict[str, np.ndarray] = {}
    dims: list[str] = []
    for name in _PARAMS:
        arr = np.asarray(raw[name], dtype=np.float64)
        if arr.ndim > 1:
            raise InvalidParameterError(
                f"The '{name}' parameter of learning_curve must be a scalar or 1-D array. Got shape {arr.shape}."
            )
        if arr.ndim == 1:
            if arr.size == 0:
                raise InvalidParameterError(f"The '{name}' parameter of learning_curve must not be empty.")
            dims.append(name)
        values[name] = arr
    # validate every value once
    for name in _PARAMS:
        for v in np.atleast_1d(values[name]):
            validate_inputs(
                **{p: (v if p == name else np.atleast_1d(values[p])[0]) for p in _PARAMS}, owner="learning_curve"
            )
    shape = tuple(values[d].size for d in dims)
    out = {k: np.empty(shape) for k in ("icl_error", "idg_error", "g_task", "epsilon")}
    conv = np.empty(shape, dtype=bool)
    div = np.empty(shape, dtype=bool)
    for idx in np.ndindex(*shape) if shape else [()]:
        p = {}
        for name in _PARAMS:
            if name in dims:
                p[name] = float(values[name][idx[dims.index(name)]])
            else:
                p[name] = float(values[name])
        r = _point(p["alpha"], p["tau"], p["kappa"], p["rho"], p["lam_lu"])
        for k in out:
            out[k][idx] = getattr(r, k)
        conv[idx] = r.converged
        div[idx] = r.divergent
    n_bad = int((~conv).sum())
    if n_bad:
        warnings.warn(
            f"learning_curve: epsilon not found at {n_bad} of {conv.size} points (NaN, converged=False)",
            SolverDidNotConvergeWarning,
            stacklevel=2,
        )
    data_vars = {k: (dims, v, _ATTRS[k]) for k, v in out.items()}
    data_vars["converged"] = (dims, conv, _ATTRS["converged"])
    data_vars["divergent"] = (dims, div, _ATTRS["divergent"])
    coords = {name: ((name,) if name in dims else (), values[name], _COORD_ATTRS[name]) for name in _PARAMS}
    return xr.Dataset(
        data_vars,
        coords=coords,
        attrs={"source": "Lu et al., arXiv 2405.11751, general-lambda asymptotics (spinlens.theory)"},
    )


# ----------------------------------------------------------------------------------------------------
# independent closed forms (cross-checks)
# ----------------------------------------------------------------------------------------------------
def _finite_or_refuse(fn):
    """Closed forms in float64: an overflow or a non-finite result outside the documented inf cases is
    refused with one line, never returned as NaN or raised as OverflowError."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            out = fn(*args, **kwargs)
        except (OverflowError, ZeroDivisionError, FloatingPointError) as exc:
            raise InvalidParameterError(
                f"{fn.__name__}: the inputs {args + tuple(kwargs.values())} are outside the range where the "
                f"closed form can be evaluated in float64 ({type(exc).__name__})."
            ) from None
        if any(math.isnan(x) or x == -INF for x in out):
            raise InvalidParameterError(
                f"{fn.__name__}: the inputs {args + tuple(kwargs.values())} are outside the range where the "
                "closed form can be evaluated in float64 (the result is not a number)."
            )
        return out

    return wrapper


@_finite_or_refuse
def ridgeless_closed_form(alpha, tau, kappa=INF, rho=0.0) -> tuple[float, float]:
    r"""The authors' ridgeless (λ → 0⁺) closed forms (Lu et al.), an independent cross-check.

    Parameters
    ----------
    alpha, tau, kappa, rho : float
        As in `learning_curve_point`; ``tau != 1``.

    Returns
    -------
    (icl_error, idg_error) : tuple of float

    Examples
    --------
    >>> [round(e, 7) for e in ridgeless_closed_form(1, 0.5, 0.5, 0.01)]
    [1.2610769, 0.8018492]
    """
    a, t, k, r, _ = validate_inputs(alpha, tau, kappa, rho, 0.0, owner="ridgeless_closed_form")
    if t == 1.0:
        return INF, INF
    xs = (1.0 + r) / a
    m_s = _m_scalar(xs, k)
    mu_s = xs * _m_scalar(xs, k / t if k != INF else INF)
    if t < 1.0:
        icl = t * (1 + xs) / (1 - t) * (1 - t * (1 - mu_s) ** 2 - ((xs - r) / xs) * mu_s) - 2 * t * (1 - mu_s) + 1 + r
        xi = (1 - t) * xs / (t * mu_s)
        c2 = 1.0 if k == INF else 1.0 / (1.0 - k / (1.0 + k * xi / (1.0 - t)) ** 2)
        idg = t * ((xs + xi) ** 2 / xi + (r + xs - 2 * xs * (1 - t) * (xs / xi + 1)) / (1 - t - c2 * (1 - t) ** 2))
    else:
        kstar = 1.0 if k == INF else 1.0 / (1.0 - k * (m_s / (k + m_s)) ** 2)
        icl = (
            (kstar - 1 / (t - 1)) * (1 + xs) * (xs * m_s) ** 2
            + ((3 - 2 * t) / (t - 1)) * m_s * xs**2
            + ((1 + r) * m_s / (t - 1) + 1) * xs
            + r * m_s / (t - 1)
            + r
        )
        idg = t * (r + xs * (1 - xs * m_s)) / (t - 1)
    return float(icl), float(idg)


@_finite_or_refuse
def infinite_diversity_closed_form(alpha, tau, rho=0.0, lam_lu=0.0) -> tuple[float, float]:
    r"""Fully explicit κ = ∞ formulas (Lu et al.): ε from a quadratic, then ``e_ICL = e_IDG``.

    Returns
    -------
    (error, epsilon) : tuple of float
        The common ICL = IDG error and ε. ``(inf, 0)`` at ``lam_lu = 0, tau = 1``.

    Examples
    --------
    >>> [round(v, 7) for v in infinite_diversity_closed_form(2, 0.5, 0.1, 0)]
    [1.2322581, 1.55]
    """
    a, t, _, r, lm = validate_inputs(alpha, tau, INF, rho, lam_lu, owner="infinite_diversity_closed_form")
    xs = (1.0 + r) / a
    if lm == 0.0:
        if t == 1.0:
            return INF, 0.0
        eps = 0.0 if t > 1.0 else (1.0 - t) * (1.0 + xs) / t
    else:
        b = (1.0 - t) * (1.0 + xs) + t * lm
        sq = math.sqrt(b * b + 4.0 * t * t * lm * (1.0 + xs))
        # positive root of t e^2 - b e - t lm (1+x*) = 0, cancellation-free for either sign of b
        eps = (b + sq) / (2.0 * t) if b >= 0 else 2.0 * t * lm * (1.0 + xs) / (sq - b)
    nu = xs + eps
    e_idg = t * (r + nu / (1 + nu) - eps / (1 + nu) ** 2) / (t - ((1 + xs) / (1 + nu)) ** 2)
    e_icl = 1 + r - 2 / (1 + nu) + (1 + xs) / (1 + nu) ** 2 + (e_idg / t) * (1 + xs) ** 2 / (1 + nu) ** 2
    return float(e_icl), float(eps)


# ----------------------------------------------------------------------------------------------------
# the modes of `spinlens theory` (one call each, returning a TheoryRun)
# ----------------------------------------------------------------------------------------------------
def point_run(alpha, tau, kappa=INF, rho=0.0, lam_lu=0.0, *, spin_glass: dict | None = None) -> TheoryRun:
    """One point of the theory as a `spinlens.theory.results.TheoryRun` (mode ``"point"``).

    ``summary``: ``spin_glass`` (when given: the spin-glass parameters the point was mapped from), the validated
    ``alpha, tau, kappa, rho, lam_lu``, then ``icl_error, idg_error, g_task, epsilon, converged, divergent,
    message`` of `learning_curve_point`.
    """
    from spinlens.theory.results import TheoryRun

    a, t, k, r, lm = validate_inputs(alpha, tau, kappa, rho, lam_lu)
    params = {"alpha": a, "tau": t, "kappa": k, "rho": r, "lam_lu": lm}
    res = _point(**params)
    out: dict = {} if spin_glass is None else {"spin_glass": spin_glass}
    out.update(params)
    out.update(icl_error=res.icl_error, idg_error=res.idg_error, g_task=res.g_task, epsilon=res.epsilon,
               converged=res.converged, divergent=res.divergent, message=res.message)
    return TheoryRun("point", out, converged=bool(res.converged), message=res.message)


def spin_glass_point(d: int | float, n_context: int | float, n_prompts: int | float, l2_strength: float = 0.0, *,
                     n_tasks: int | float | None = None, sigma_eps: float = 0.0) -> TheoryRun:
    """`point_run` at spin-glass parameters (D, N, P, λ of E(W), K or None for a fresh task per prompt, σ_ε; the
    counts may be integral floats, as parsed from text),
    mapped with `spinlens.conventions.to_lu`; ``summary["spin_glass"]`` holds them under their symbols."""
    from spinlens.conventions import to_lu
    from spinlens.errors import check_int

    D = check_int("D", d, low=1)
    N = check_int("N", n_context, low=1)
    P = check_int("P", n_prompts, low=1)
    K = None if n_tasks is None else check_int("K", n_tasks, low=1)
    l2 = check_float("lam", l2_strength, low=0.0)
    sig = check_float("sigma_eps", sigma_eps, low=0.0)
    lu = to_lu(D, N, P, l2, n_tasks=K, sigma_eps=sig)
    return point_run(**{n: lu[n] for n in _PARAMS},
                     spin_glass={"D": D, "N": N, "P": P, "lam": l2, "K": K, "sigma_eps": sig})


def curve_run(vary: str, start: float, stop: float, num: int | float, *, log: bool = False, logy: bool | None = None,
              **fixed) -> TheoryRun:
    """A learning curve: ``vary`` (one of alpha, tau, kappa, rho, lam_lu) over ``num`` points from ``start`` to
    ``stop`` (log-spaced with ``log``), the other parameters in ``fixed`` (a number, or a list: one line each).

    Returns a `spinlens.theory.results.TheoryRun` (mode ``"curve"``): ``table`` with the parameter columns and
    ``icl_error, idg_error, g_task, epsilon, converged, divergent`` (every point: no dataset is written), the
    count of points that did not converge, and the figure (`spinlens.plotting.theory.plot_learning_curve`; log y
    axis with ``logy``, automatic when None).
    """
    from spinlens.errors import check_choice, check_int
    from spinlens.theory.results import TheoryRun

    check_choice("vary", vary, _PARAMS)
    num = check_int("num", num, low=2, high=100_000)
    if log:
        if start <= 0 or stop <= 0:
            raise InvalidParameterError(f"With --log the '--from'/'--to' values must be > 0. Got {start!r}, {stop!r}.")
        grid = np.geomspace(start, stop, num)
    else:
        grid = np.linspace(start, stop, num)
    vals: dict = {vary: grid}
    for n in _PARAMS:
        if n != vary:
            v = fixed[n]
            if isinstance(v, (list, tuple)):
                v = v[0] if len(v) == 1 else np.asarray(v)
            vals[n] = v
    ds = learning_curve(**vals)
    df = ds.to_dataframe().reset_index()
    cols = [c for c in _PARAMS if c in df.columns] + ["icl_error", "idg_error", "g_task", "epsilon", "converged",
                                                     "divergent"]

    def figure():
        from spinlens.plotting.theory import plot_learning_curve

        return plot_learning_curve(ds, vary, logx=log, logy=logy or None)

    n_bad = int((~ds.converged.values.astype(bool)).sum())
    return TheoryRun("curve", {}, table=df[cols], n_bad=n_bad, n_total=int(ds.converged.size),
                     converged=n_bad == 0, make_figure=figure)
