"""End-to-end edit experiments on small ICL-regression transformers (used by the CLI and examples).

Each experiment returns an ``xarray.Dataset`` (the data behind its figure); plots live in
`spinlens.plotting.edit`. Every experiment compares the interpretability-informed choice with an uninformed
baseline on the same model:

* `steering_experiment`: function vectors (heads chosen by causal indirect effect) and task vectors added
  at the query of zero-shot prompts, recovery of the ICL prediction vs strength and layer; baseline: a
  random vector of the same norm.
* `pinpoint_experiment`: top-k heads by importance vs k random heads vs bottom-k vs full fine-tuning.
* `merging_experiment`: task arithmetic, TIES and neuron merge of two fine-tunes of one base.
* `quantization_experiment`: loss vs average bits for uniform, importance-guided, measured-cost-guided
  and random allocations.

The base model they start from (`pretrained_base`) lives in `spinlens.edit.base`, the importance scores
(`component_importance`) in `spinlens.edit.importance`; both names stay importable from here. Each
experiment takes ``n_context``, the context length the model was trained on (default: its longest).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from spinlens.models.source import ModelSource

from spinlens.edit._data import mse, sample_regression_prompts

# the base model (training, caching) lives in spinlens.edit.base; importance in spinlens.edit.importance
from spinlens.edit.base import BASE_DEFAULTS, load_transformer, pretrained_base  # noqa: E402,F401
from spinlens.edit.base import regression_dims as _d_n  # noqa: E402
from spinlens.edit.importance import component_importance
from spinlens.errors import InvalidParameterError
from spinlens.random import as_generator, spawn
from spinlens.vocabulary import act_name

# ----------------------------------------------------------------------------------------------- steering


def steering_experiment(model, *, n_context: int | None = None, strengths=(0, 0.5, 1, 2, 3, 4), n_top_heads: int = 3, n_prompts: int = 256, rng=0):
    """Function-vector and task-vector steering of zero-shot prompts towards one task w_A.

    ICL prompts all use one task w_A; zero-shot prompts have the context labels set to 0 (token-level
    ablation of the demonstrations). Heads with the largest causal indirect effect (corrupted = shuffled
    labels) give the function vector; it is added at the query at ``blocks.L.hook_resid_pre`` (L = 0 ..
    n_layers−1) and at the final residual (``blocks.{last}.hook_resid_post``).

    Returns an xarray.Dataset with ``recovery`` (layer, strength) = 1 − MSE_steered / MSE_zero-shot of the
    function vector, ``recovery_random`` for a random vector of the same norm, ``recovery_task_vector``
    (layer) for Hendel et al.'s patch of the mean residual (it overwrites the query token, x_query
    included), ``recovery_mean_diff`` for the difference of mean residuals ICL − zero-shot added with a
    strength (CAA), and the indirect-effect map ``indirect_effect``
    (ie_layer, head), and the effect size ``abs_shift`` (layer, strength): mean |ŷ_steered − ŷ_unsteered|.
    """
    import torch
    import xarray as xr

    from spinlens.interp import steering as st

    d, n = _d_n(model, n_context)
    g = as_generator(rng)
    wA = g.standard_normal(d)
    Z_icl, y_icl, _ = sample_regression_prompts(n_prompts, d, n, w=wA, rng=g)
    Z_q, y_q, _ = sample_regression_prompts(n_prompts, d, n, w=wA, rng=g)
    Z_zero = st.TokenEdit("zero_labels").apply(Z_q)
    Z_shuf = st.TokenEdit("shuffle_labels", seed=1).apply(Z_icl)
    L = model.cfg.n_layers
    ie = st.head_indirect_effect(model, Z_icl, Z_shuf, y_icl)
    flat = np.argsort(-ie.values.ravel())[:n_top_heads]
    heads = [(int(i // ie.shape[1]), int(i % ie.shape[1])) for i in flat]
    fv = st.function_vector(model, Z_icl, heads)
    rv = torch.as_tensor(g.standard_normal(fv.shape[0]), dtype=fv.dtype)
    rv = rv / rv.norm() * fv.norm()
    hooks = [act_name("resid_pre", i) for i in range(L)] + [act_name("resid_post", L - 1)]
    dtype = next(model.parameters()).dtype
    Zz = torch.as_tensor(Z_zero, dtype=dtype)
    t = torch.as_tensor(y_q, dtype=dtype)

    def err(ivs):
        return float(torch.mean((st.run_steered(model, Zz, ivs) - t) ** 2))

    e0 = err([])
    sweep = st.steering_sweep(model, Zz, fv, hooks, strengths)
    e_icl = mse(model, Z_q, y_q)
    rec = np.zeros((len(hooks), len(strengths)))
    rec_r = np.zeros_like(rec)
    for i, hk in enumerate(hooks):
        for j, s in enumerate(strengths):
            rec[i, j] = 1 - err([st.AddVector(hk, fv, float(s), -1)]) / e0
            rec_r[i, j] = 1 - err([st.AddVector(hk, rv, float(s), -1)]) / e0
    rec_md = np.zeros_like(rec)
    for i, hk in enumerate(hooks):
        md = st.difference_of_means(model, Z_icl, Z_zero, hk, position=-1)
        for j, s in enumerate(strengths):
            rec_md[i, j] = 1 - err([st.AddVector(hk, md, float(s), -1)]) / e0
    rec_tv = np.array(
        [1 - err([st.SetActivation(hk, st.mean_activation(model, Z_icl, hk, position=-1), -1)]) / e0 for hk in hooks]
    )
    return xr.Dataset(
        {
            "recovery": (("layer", "strength"), rec, {"long_name": "1 − MSE/MSE_zero-shot (function vector)"}),
            "abs_shift": (("layer", "strength"), sweep["abs_shift"].values,
                          {"long_name": "mean |ŷ_steered − ŷ| (function vector)"}),
            "recovery_random": (("layer", "strength"), rec_r, {"long_name": "same, random vector of equal norm"}),
            "recovery_mean_diff": (("layer", "strength"), rec_md,
                                   {"long_name": "same, mean(ICL) − mean(zero-shot) residual (CAA)"}),
            "recovery_task_vector": (("layer",), rec_tv, {"long_name": "task vector patch (Hendel et al.)"}),
            "indirect_effect": (("ie_layer", "head"), ie.values),
        },
        coords={"layer": hooks, "strength": np.asarray(strengths, float), "ie_layer": np.arange(L),
                "head": np.arange(ie.shape[1])},
        attrs={"mse_zero_shot": e0, "mse_icl": e_icl, "recovery_icl": 1 - e_icl / e0, "fv_heads": json.dumps(heads),
               "fv_norm": float(fv.norm())},
    )


# ----------------------------------------------------------------------------------------------- pinpoint


TARGET_TASKS: dict[str, dict[str, Any]] = {
    "corr": dict(corr=0.7),
    "noisy": dict(sigma_eps=0.5),
    "aniso": dict(task_cov="aniso"),
}


def _task_kwargs(name: str, d: int) -> dict:
    kw = dict(TARGET_TASKS[name])
    if kw.get("task_cov") == "aniso":
        kw["task_cov"] = np.diag(np.where(np.arange(d) < d // 2 + 1, 2.0, 0.1))
    return kw


def pinpoint_experiment(model, *, n_context: int | None = None, target: str = "corr", k: int = 2, n_random: int = 3, steps: int = 300,
                        lr: float = 3e-3, importance: str = "patching", n_train: int = 8192, rng=0, progress=False):
    """Adapt ``model`` to a shifted task (``target`` in {"corr", "noisy", "aniso"}) by pinpoint tuning.

    ``importance``: "patching" (activation patching of each head's output, `spinlens.interp.patching`, on
    target-task prompts vs label-corrupted copies; falls back to attribution if unavailable) or
    "attribution" (gradient × activation). Returns the dataset of `pinpoint_comparison` plus the
    importance map.
    """
    from spinlens.edit.pinpoint import attribution_importance, pinpoint_comparison

    d, n = _d_n(model, n_context)
    g = spawn(rng, 5)
    kw = _task_kwargs(target, d)
    Ztr, ytr, _ = sample_regression_prompts(n_train, d, n, rng=g[0], **kw)
    Zte, yte, _ = sample_regression_prompts(2048, d, n, rng=g[1], **kw)
    Zg, yg, _ = sample_regression_prompts(2048, d, n, rng=g[2])
    imp, used = None, importance
    if importance == "patching":
        try:
            imp = _patching_importance(model, Ztr[:512], target_kw=kw, rng=g[3])
        except ImportError:  # pragma: no cover - interp.patching not present
            used = "attribution"
    if imp is None:
        imp = attribution_importance(model, Ztr[:512], ytr[:512], kind="head")
    ds = pinpoint_comparison(model, (Ztr, ytr, Zte, yte), (Zg, yg), importance=imp, kind="head", k=k,
                             n_random=n_random, lr=lr, steps=steps, rng=g[4], progress=progress)
    ds["importance"] = (("imp_layer", "head"), np.asarray(imp.values, float))
    ds = ds.assign_coords(imp_layer=np.arange(imp.shape[0]), head=np.arange(imp.shape[1]))
    ds.attrs.update(target=target, importance=used, k=k, steps=steps, lr=lr)
    return ds


def _patching_importance(model, Z, *, target_kw, rng):
    """|activation-patching score| of each head output (denoising label-corrupted target-task prompts)."""
    import torch

    from spinlens.interp.metrics import regression_metric
    from spinlens.interp.patching import activation_patch

    d, n = Z.shape[1] - 1, Z.shape[2] - 1
    g = as_generator(rng)
    dtype = next(model.parameters()).dtype
    w2 = g.standard_normal((Z.shape[0], d))
    Zc = Z.copy()
    Zc[:, d, :n] = np.einsum("pd,pdn->pn", w2, Z[:, :d, :n]) / np.sqrt(d)
    clean = torch.as_tensor(Z, dtype=dtype)
    with torch.no_grad():
        target = model(clean)
    res = activation_patch(model, clean, torch.as_tensor(Zc, dtype=dtype), metric=regression_metric(target),
                           component="result")
    s = res.scores
    return abs(s.fillna(0.0))


# ------------------------------------------------------------------------------------------------ merging


def merging_experiment(model, *, n_context: int | None = None, tasks=("corr", "aniso"), steps: int = 300, lr: float = 3e-3, density: float = 0.3,
                       n_train: int = 8192, rng=0, progress=False):
    """Fine-tune ``model`` on two task families, merge, evaluate every model on both tasks (and the base task).

    Returns an xarray.Dataset with ``mse`` (model, task) for models base, expert_A, expert_B, task arithmetic
    (λ = 1/2 and λ = 1), TIES and the neuron merge.
    """
    import xarray as xr

    from spinlens.edit.merging import merge_models
    from spinlens.edit.pinpoint import attribution_importance, pinpoint_tune

    d, n = _d_n(model, n_context)
    gs = spawn(rng, 3 * len(tasks) + 1)
    data = {}
    for i, t in enumerate(tasks):
        kw = _task_kwargs(t, d)
        data[t] = (sample_regression_prompts(n_train, d, n, rng=gs[3 * i], **kw),
                   sample_regression_prompts(2048, d, n, rng=gs[3 * i + 1], **kw))
    data["base"] = (None, sample_regression_prompts(2048, d, n, rng=gs[-1]))
    experts, imps = [], []
    for i, t in enumerate(tasks):
        (Ztr, ytr, _), _ = data[t]
        res = pinpoint_tune(model, "all", Ztr, ytr, lr=lr, steps=steps, batch_size=128, rng=gs[3 * i + 2],
                            progress=progress)
        experts.append(res.model)
        imps.append(attribution_importance(res.model, Ztr[:512], ytr[:512], kind="neuron"))
    models = {"base": model, "expert_A": experts[0], "expert_B": experts[1],
              "task_arithmetic_0.5": merge_models(model, experts, "task_arithmetic", scale=0.5),
              "task_arithmetic_1": merge_models(model, experts, "task_arithmetic", scale=1.0),
              "ties": merge_models(model, experts, "ties", density=density, scale=1.0),
              "neuron": merge_models(model, experts, "neuron", importances=imps)}
    evals = [tasks[0], tasks[1], "base"]
    vals = np.array([[mse(m, data[t][1][0], data[t][1][1]) for t in evals] for m in models.values()])
    frac = np.mean(np.argmax(np.stack([np.asarray(i.values) for i in imps]), 0) == 0)
    return xr.Dataset({"mse": (("model", "task"), vals, {"long_name": "test MSE"})},
                      coords={"model": list(models), "task": [f"A:{tasks[0]}", f"B:{tasks[1]}", "base"]},
                      attrs={"steps": steps, "lr": lr, "density": density, "neurons_to_A": float(frac)})


# ------------------------------------------------------------------------------------------- quantization


def _coarsen(imp: dict, comps) -> dict:
    """Sum head/MLP importances into the given (possibly coarser) components."""
    from spinlens.edit.components import Component

    out = {}
    for c in comps:
        c = Component.parse(c)
        if c.kind in ("head", "mlp"):
            out[str(c)] = imp.get(str(c), 0.0)
            continue
        keys = [k for k in imp if Component.parse(k).layer == c.layer
                and (c.kind == "layer" or Component.parse(k).kind == ("head" if c.kind == "attn" else "mlp"))]
        out[str(c)] = float(sum(imp[k] for k in keys))
    return out


def quantization_experiment(model, *, n_context: int | None = None, budgets=(2.5, 3.0, 3.4, 4.0, 5.0), uniform_bits=(2, 3, 4, 5, 6, 8),
                            bits=(2, 3, 4, 5, 6, 8), group_size: int = 32, n_test: int = 2048, n_random: int = 3,
                            granularity: str = "head", rng=0, progress=False):
    """Loss vs average bits for uniform, importance-guided, measured-guided and random allocations.

    Components: each head and each MLP (``granularity="head"``), or each attention layer and MLP
    ("module"), or each block ("layer"); a coarse component's importance is the sum of its heads' and
    MLP's. Guided schemes (all allocated by the exact DP knapsack):
    ``guided_attribution`` and ``guided_ablation`` use cost = importance × (relative weight error)² with the
    two `component_importance` methods; ``guided_measured`` uses the measured MSE increase when only that
    component is quantized (`measured_cost_table`). All importances/costs use calibration prompts
    disjoint from the test prompts. Returns an xarray.Dataset with one row per run: ``scheme``,
    ``average_bits``, ``effective_bits`` (with scale/zero overhead), ``mse`` and ``bits_json``.
    """
    import xarray as xr

    from spinlens.edit.components import component_size
    from spinlens.edit.quantization import (
        allocate_bits,
        importance_cost_table,
        measured_cost_table,
        quantization_components,
        quantize_model,
        random_allocation,
        uniform_allocation,
    )

    d, n = _d_n(model, n_context)
    g = spawn(rng, 3 + n_random)
    Zc, yc, _ = sample_regression_prompts(1024, d, n, rng=g[0])
    Zt, yt, _ = sample_regression_prompts(n_test, d, n, rng=g[1])
    comps = quantization_components(model, granularity)
    sizes = {str(c): component_size(model, c) for c in comps}
    base = mse(model, Zt, yt)
    rows = [("fp32", 32.0, 32.0, base, "{}", np.nan)]

    def run(scheme, alloc, budget=np.nan):
        q = quantize_model(model, alloc.bits, group_size=group_size)
        rows.append((scheme, alloc.average_bits, alloc.average_bits + 32 / group_size, mse(q, Zt, yt),
                     json.dumps(alloc.bits), budget))

    for b in uniform_bits:
        run("uniform", uniform_allocation(model, b, granularity=granularity, group_size=group_size))
    imp = _coarsen(component_importance(model, Zc, yc, method="attribution"), comps)
    imp_ab = _coarsen(component_importance(model, Zc, yc, method="ablation"), comps)
    cost_imp = importance_cost_table(model, imp, bits, group_size=group_size)
    cost_ab = importance_cost_table(model, imp_ab, bits, group_size=group_size)
    cost_meas = measured_cost_table(model, comps, lambda m: mse(m, Zc, yc), bits, group_size=group_size,
                                    progress=progress)
    for B in budgets:
        run("guided_attribution", allocate_bits(cost_imp, sizes, B, method="dp", group_size=group_size), B)
        run("guided_ablation", allocate_bits(cost_ab, sizes, B, method="dp", group_size=group_size), B)
        run("guided_measured", allocate_bits(cost_meas, sizes, B, method="dp", group_size=group_size), B)
        for r in range(n_random):
            run("random", random_allocation(model, B, bits, granularity=granularity, rng=g[3 + r],
                                            group_size=group_size), B)
    scheme, avg, eff, err, bj, bud = zip(*rows)
    return xr.Dataset(
        {"average_bits": ("run", np.array(avg)), "effective_bits": ("run", np.array(eff)),
         "mse": ("run", np.array(err)), "bits_json": ("run", list(bj))},
        coords={"run": np.arange(len(rows)), "scheme": ("run", list(scheme)),
                "budget": ("run", np.array(bud, dtype=float), {"long_name": "bit budget of the allocation (NaN: none)"})},
        attrs={"group_size": group_size, "granularity": granularity, "fp_mse": base, "importance_json": json.dumps(imp),
               "ablation_importance_json": json.dumps(imp_ab),
               "sizes_json": json.dumps(sizes)},
    )


# ------------------------------------------------------------------------------------------------ headline


def headline(name: str, ds) -> dict:
    """One-line result of a regression-setting edit experiment, with its verdict (`spinlens.verdict.compare`).

    * ``pinpoint``: target-task MSE after tuning the importance-chosen components vs ``n_random`` random draws of
      as many components (and full fine-tuning, for scale);
    * ``steer``: the best function-vector recovery (over layers and strengths) vs a random vector of the same norm
      (every layer and strength);
    * ``merge``: the worse of the two tasks' MSE of the best merge vs the two single fine-tunes;
    * ``quantize``: test MSE of the measured-guided allocation at the budget 3.4 (else the first) vs the random
      allocations at that budget.

    Returns a dict of the numbers, ``text`` (the headline) and ``verdict`` (`Verdict.to_dict`, its ``line``).
    """
    from spinlens.verdict import compare

    if name == "pinpoint":
        meth = [str(m) for m in ds["method"].values]
        t = np.asarray(ds["target_mse"].values, float)
        pick = lambda m: t[[i for i, x in enumerate(meth) if x == m]]  # noqa: E731
        imp, rnd, full, before = pick("importance"), pick("random"), pick("full"), pick("before")
        k = int(ds.attrs.get("k", 0))
        v = compare(imp, rnd, what="target-task MSE", method=f"importance-chosen {k} head{'s' * (k != 1)}",
                    baseline=f"random heads (n = {rnd.size})", better="lower")
        text = (f"pinpoint ({ds.attrs.get('target', 'target')} task): target MSE before {before.mean():.4g}, "
                f"importance-chosen {imp.mean():.4g}, random {rnd.min():.4g} … {rnd.max():.4g}"
                + (f", full fine-tuning {full.mean():.4g}" if full.size else ""))
        out = {"before": float(before.mean()), "importance": float(imp.mean()), "random": rnd.tolist(),
               "full": float(full.mean()) if full.size else None}
    elif name == "steer":
        rec, rnd = np.asarray(ds["recovery"].values, float), np.asarray(ds["recovery_random"].values, float)
        i = np.unravel_index(np.nanargmax(rec), rec.shape)
        v = compare([rec[i]], rnd, what="recovery of the ICL error", method="function vector (best layer/strength)",
                    baseline="random vectors of equal norm", better="higher")
        text = (f"steer: function vector recovers {rec[i]:.3f} of the zero-shot → ICL error gap at "
                f"{ds['layer'].values[i[0]]}, strength {float(ds['strength'].values[i[1]]):g} (ICL itself: 1; random "
                f"vector {np.nanmin(rnd):.3f} … {np.nanmax(rnd):.3f})")
        out = {"recovery": float(rec[i]), "random": [float(np.nanmin(rnd)), float(np.nanmax(rnd))]}
    elif name == "merge":
        models = [str(m) for m in ds["model"].values]
        mse_ab = np.asarray(ds["mse"].values, float)[:, :2]  # the two tasks (the third column is the base task)
        worst = dict(zip(models, mse_ab.max(1)))
        merges = [m for m in models if m not in ("base", "expert_A", "expert_B")]
        best = min(merges, key=lambda m: worst[m])
        v = compare([worst[best]], [worst["expert_A"], worst["expert_B"]], what="worse task's MSE",
                    method=f"merge {best}", baseline="single fine-tunes", better="lower")
        text = (f"merge: worse task's MSE, best merge {best} {worst[best]:.4g} vs single fine-tunes "
                f"{worst['expert_A']:.4g} / {worst['expert_B']:.4g} (base {worst['base']:.4g})")
        out = {"best": best, "worst_task_mse": {m: float(x) for m, x in worst.items()}}
    elif name == "quantize":
        sch, bud = [str(x) for x in ds["scheme"].values], np.asarray(ds["budget"].values, float)
        budgets = sorted(set(bud[np.isfinite(bud)].tolist()))
        if not budgets:
            raise InvalidParameterError("The quantization headline needs a guided allocation.")
        B = 3.4 if any(abs(b - 3.4) < 1e-9 for b in budgets) else budgets[0]
        at = np.isclose(bud, B)
        e = np.asarray(ds["mse"].values, float)
        g = e[at & (np.array(sch) == "guided_measured")]
        r = e[at & (np.array(sch) == "random")]
        if r.size == 0:
            raise InvalidParameterError("The quantization verdict needs random allocations (--n-random >= 1).")
        v = compare(g, r, what=f"test MSE at {B:g} bits", method="measured-guided bits",
                    baseline=f"random bits (n = {r.size})", better="lower")
        text = (f"quantize: test MSE at {B:g} bits, measured-guided {g.mean():.4g} vs random {r.min():.4g} … "
                f"{r.max():.4g} (full precision {float(ds.attrs['fp_mse']):.4g})")
        out = {"budget": B, "guided": float(g.mean()), "random": r.tolist()}
    else:
        raise InvalidParameterError(f"No headline for {name!r}.")
    return {**out, "text": text, "verdict": v.to_dict()}


# ------------------------------------------------------------------------------------------------ intervention specs


def checked_spec(path) -> dict:
    """Read an intervention spec file (JSON/YAML) and check every entry (keys, vector files) before any model
    is built; one-line `InvalidParameterError` naming the file otherwise."""
    from spinlens.interp import steering as st

    try:
        spec = st.load_spec(path)
        st.interventions_from_spec({**spec, "interventions": [  # mean ablations need a model: checked when applied
            e for e in spec["interventions"]
            if not (isinstance(e, dict) and e.get("type") == "ablate" and e.get("mode", "zero") != "zero")]})
    except InvalidParameterError:
        raise
    except UnicodeDecodeError:
        raise InvalidParameterError(f"The 'spec' file {path!r} is not UTF-8 text (JSON or YAML).") from None
    except OSError as exc:
        raise InvalidParameterError(f"The 'spec' file {path!r} names a file that cannot be read: "
                                    f"{exc.filename or ''} ({exc.strerror or exc}).") from None
    except ValueError as exc:  # e.g. a vector .npy holding Python objects (never unpickled)
        raise InvalidParameterError(f"The 'spec' file {path!r}: a vector file is not a plain numeric array "
                                    f"({' '.join(str(exc).split())}).") from None
    return spec


def apply_spec(model, spec: dict, *, n_prompts: int, n_context: int, seed=0, name: str = "spec"):
    """Apply a spec's interventions to a regression model on fresh prompts: ``(result, columns)`` — mean shift,
    mean absolute shift, MSE before and after, and the per-prompt target / unsteered / steered columns."""
    import torch

    from spinlens.interp import steering as st

    d = model.cfg.d_in - 1
    Z, y, _ = sample_regression_prompts(n_prompts, d, n_context, rng=seed)
    Zt = torch.as_tensor(Z, dtype=next(model.parameters()).dtype)
    ivs = st.interventions_from_spec(spec, model=model, Z_ref=Zt)
    base = st.run_steered(model, Zt)
    try:
        steered = st.run_steered(model, Zt, ivs)
    except KeyError as exc:  # an unknown hook name in the spec
        raise InvalidParameterError(f"The 'spec' file {name!r}: {exc.args[0] if exc.args else exc}") from None
    yt = torch.as_tensor(y, dtype=base.dtype)
    res = {"n_interventions": len(ivs), "mean_shift": float((steered - base).mean()),
           "mean_abs_shift": float((steered - base).abs().mean()), "mse_before": float(((base - yt) ** 2).mean()),
           "mse_after": float(((steered - yt) ** 2).mean())}
    return res, {"target": y, "unsteered": base.numpy(), "steered": steered.numpy()}


# ------------------------------------------------------------------------------------------------ one call per command


def check_base_options(opts) -> None:
    """The options every regression edit command shares (``d``, ``n_context``, ``base_steps``, ``seed``, ``out``),
    checked before any work (nothing is written when this raises)."""
    from spinlens.errors import check_int
    from spinlens.io import check_out_dir

    check_int("d", opts.d, low=1, high=64)
    check_int("n_context", opts.n_context, low=1, high=512)
    check_int("base_steps", opts.base_steps, low=0, high=10**6)
    check_int("seed", opts.seed, low=0)
    check_out_dir("out", opts.out)


def check_edit_options(command: str, opts) -> None:
    """The options of ``command`` that the regression and language-model settings share, checked before any work:
    ``strengths`` (steer); ``k``, ``n_random`` (>= 1: the uninformed baseline is part of the result), ``steps``,
    ``lr`` (pinpoint); ``density``, ``steps``, ``lr`` (merge)."""
    from spinlens.errors import check_float, check_int

    if command == "steer":
        for s in opts.strengths:
            check_float("strengths", s)
    if command == "pinpoint":
        check_int("k", opts.k, low=1)
        check_int("n_random", opts.n_random, low=1)
    if command == "merge":
        check_float("density", opts.density, low=0, high=1, low_open=True)
    if command in ("pinpoint", "merge"):
        check_int("steps", opts.steps, low=1)
        check_float("lr", opts.lr, low=0, low_open=True)


def open_base(opts):
    """``(model, out)`` of the regression setting: ``opts.source`` (`open_regression`: the
    ``--checkpoint`` transformer or the base trained here, cached in ``OUT/base``) and the output folder, created
    once the model has loaded. Sets ``opts.d`` and ``opts.n_context`` to the model's."""
    from pathlib import Path


    check_base_options(opts)
    src = opts.source
    out = Path(opts.out) if opts.out else None
    if out and src.path is None:
        out.mkdir(parents=True, exist_ok=True)
    model, opts.d, opts.n_context = open_regression(src, d=opts.d, n_context=opts.n_context, out=out,
                                                    base_steps=opts.base_steps, seed=opts.seed,
                                                    progress=not opts.no_progress)
    if out:  # a bad --checkpoint fails before OUT is created
        out.mkdir(parents=True, exist_ok=True)
    return model, out


def run_edit_command(command: str, opts):
    """The regression setting of an edit command (and the checks ``quantize`` shares with the ``hf`` setting):
    a `spinlens.experiment.EditResult`. ``opts``: see `spinlens.experiment.run_edit_command`."""
    runs = {"steer": _steer_command, "pinpoint": _pinpoint_command, "merge": _merge_command,
            "quantize": _quantize_command}
    if command not in runs:
        raise InvalidParameterError(f"The 'command' parameter must be steer, pinpoint, merge or quantize. Got {command!r}.")
    return runs[command](opts)


def _steer_command(opts):
    from spinlens.errors import check_int
    from spinlens.results import EditResult

    check_base_options(opts)
    check_int("n_prompts", opts.n_prompts, low=1, high=10**6)
    check_int("n_top_heads", opts.n_top_heads, low=1, high=10**4)
    check_edit_options("steer", opts)
    spec = checked_spec(opts.spec) if opts.spec else None  # every entry checked before any model is trained
    model, out = open_base(opts)
    if spec is not None:
        res, cols = apply_spec(model, spec, n_prompts=opts.n_prompts, n_context=opts.n_context, seed=opts.seed,
                               name=opts.spec)
        if out:
            from spinlens import io

            io.save_columns(cols, out, "steered")
            io.write_run_json(out, io.run_record("steer", args=opts, seed=opts.seed, result=res))
        return EditResult("steer", "regression", res, rows=list(res.items()))
    from spinlens.plotting.edit import plot_steering

    check_int("n_top_heads", opts.n_top_heads, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    ds = steering_experiment(model, n_context=opts.n_context, strengths=opts.strengths, n_top_heads=opts.n_top_heads,
                             n_prompts=opts.n_prompts, rng=opts.seed)
    head = headline("steer", ds)
    best = np.unravel_index(np.argmax(ds["recovery"].values), ds["recovery"].shape)
    res = {"recovery_icl": ds.attrs["recovery_icl"], "best_function_vector_recovery": float(ds["recovery"].values[best]),
           "best_layer": str(ds["layer"].values[best[0]]), "best_strength": float(ds["strength"].values[best[1]]),
           "best_mean_diff_recovery": float(ds["recovery_mean_diff"].values.max()),
           "best_task_vector_recovery": float(ds["recovery_task_vector"].values.max()), "fv_heads": ds.attrs["fv_heads"]}
    return EditResult("steer", "regression", {**res, "headline": head}, head, rows=list(res.items()), dataset=ds,
                      figure=plot_steering(ds)[0], stem="steering", record={"headline": head})


def read_importance_file(path):
    """The (layer, head) DataArray of importance scores in the NetCDF file ``path`` (one-line errors)."""
    import xarray as xr

    from spinlens.io import check_regular_file

    check_regular_file("importance_file", path)  # a FIFO would block the read
    try:
        da = xr.open_dataarray(path)
    except (OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidParameterError(f"The 'importance_file' parameter must be a NetCDF file holding one DataArray "
                                    f"(layer, head): cannot read {path!r}: {msg}") from None
    if da.ndim != 2:
        raise InvalidParameterError(f"The 'importance_file' parameter must hold a 2-d DataArray (layer, head). "
                                    f"Got dims {da.dims}.")
    return da


def _pinpoint_command(opts):
    from spinlens.errors import check_int
    from spinlens.plotting.edit import plot_pinpoint
    from spinlens.results import EditResult

    check_base_options(opts)
    check_edit_options("pinpoint", opts)
    imp_da = read_importance_file(opts.importance_file) if opts.importance_file else None
    model, out = open_base(opts)
    check_int("k", opts.k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    if imp_da is not None:
        shape = (model.cfg.n_layers, model.cfg.n_heads)
        if tuple(imp_da.shape) != shape:
            raise InvalidParameterError(f"The 'importance_file' parameter must hold a (layer, head) = {shape} array "
                                        f"for this model. Got shape {tuple(imp_da.shape)}.")
        ds = pinpoint_with_importance(model, imp_da, n_context=opts.n_context, target=opts.target, k=opts.k,
                                      n_random=opts.n_random, steps=opts.steps, lr=opts.lr, seed=opts.seed,
                                      name=str(opts.importance_file))
    else:
        ds = pinpoint_experiment(model, n_context=opts.n_context, target=opts.target, k=opts.k, n_random=opts.n_random,
                                 steps=opts.steps, lr=opts.lr, importance=opts.importance, rng=opts.seed,
                                 progress=not opts.no_progress)
    head = headline("pinpoint", ds)
    record = {"headline": head}
    if out:
        record["delta"] = save_top_delta(model, ds, out, n_context=opts.n_context, target=opts.target, lr=opts.lr,
                                         steps=opts.steps, seed=opts.seed)
    df = ds[["method", "components", "target_mse", "general_mse", "target_gain", "general_change", "n_trainable"]]
    df = df.drop_vars([v for v in ("imp_layer", "head") if v in df.coords]).to_dataframe()
    return EditResult("pinpoint", "regression", {**df.reset_index().to_dict(orient="list"), "headline": head}, head,
                      text=df.to_string(float_format=lambda x: f"{x:.4g}"), dataset=ds, figure=plot_pinpoint(ds)[0],
                      stem="pinpoint", record=record)


def pinpoint_with_importance(model, importance, *, n_context: int, target: str = "corr", k: int = 2,
                             n_random: int = 3, steps: int = 300, lr: float = 3e-3, seed: int = 0,
                             name: str = "given"):
    """`pinpoint_experiment` with given importance scores (a (layer, head) DataArray; ``name``: where they come
    from, recorded as the ``importance`` attribute) instead of computed ones."""
    from spinlens.edit.pinpoint import pinpoint_comparison

    d, n = model.cfg.d_in - 1, n_context
    g = spawn(seed, 4)
    kw = _task_kwargs(target, d)
    Ztr, ytr, _ = sample_regression_prompts(8192, d, n, rng=g[0], **kw)
    Zte, yte, _ = sample_regression_prompts(2048, d, n, rng=g[1], **kw)
    Zg, yg, _ = sample_regression_prompts(2048, d, n, rng=g[2])
    ds = pinpoint_comparison(model, (Ztr, ytr, Zte, yte), (Zg, yg), importance=importance, kind="head", k=k,
                             n_random=n_random, lr=lr, steps=steps, rng=g[3])
    ds["importance"] = (("imp_layer", "head"), importance.values)
    ds.attrs.update(target=target, importance=name, k=k)
    return ds


def save_top_delta(model, ds, out, *, n_context: int, target: str, lr: float, steps: int, seed: int = 0) -> dict:
    """Tune the importance-chosen components of a pinpoint result again and save the weight delta as
    ``OUT/pinpoint_delta.safetensors`` (`spinlens.edit.pinpoint.save_delta`); returns its run.json entry."""
    from pathlib import Path

    from spinlens.edit.pinpoint import pinpoint_tune, save_delta

    comps = str(ds["components"].values[list(ds["method"].values).index("importance")]).split(",")
    d = model.cfg.d_in - 1
    Z, y, _ = sample_regression_prompts(8192, d, n_context, rng=seed, **_task_kwargs(target, d))
    res = pinpoint_tune(model, comps, Z, y, lr=lr, steps=steps, rng=seed)
    n_saved = save_delta(Path(out) / "pinpoint_delta.safetensors", model, res.model, res.masks,
                         metadata={"components": comps, "target": target})
    return {"file": "pinpoint_delta.safetensors", "components": comps, "n_entries": n_saved}


def _merge_command(opts):
    from spinlens.errors import check_float
    from spinlens.results import EditResult

    check_edit_options("merge", opts)
    if opts.scale is not None:
        check_float("scale", opts.scale)
    if opts.models:
        saved = merge_saved_models(opts)
        return EditResult("merge", "regression", saved, text=f"saved {opts.save}")
    from spinlens.plotting.edit import plot_merging

    if opts.tasks[0] == opts.tasks[1]:
        raise InvalidParameterError(f"The 'tasks' parameter must name two different task families. Got {opts.tasks}.")
    if opts.save:
        raise InvalidParameterError("The '--save' option needs '--models' (fine-tuned models to merge).")
    model, out = open_base(opts)
    ds = merging_experiment(model, n_context=opts.n_context, tasks=tuple(opts.tasks), steps=opts.steps, lr=opts.lr,
                            density=opts.density, rng=opts.seed, progress=not opts.no_progress)
    head = headline("merge", ds)
    table = ds["mse"].to_pandas()
    return EditResult("merge", "regression", {m: dict(zip(table.columns, table.loc[m].tolist())) for m in table.index},
                      head, text=table.to_string(float_format=lambda x: f"{x:.4g}"), dataset=ds,
                      figure=plot_merging(ds)[0], stem="merging", record={"headline": head})


def merge_saved_models(opts) -> dict:
    """``merge --checkpoint BASE --models A B ... --save DIR``: merge saved fine-tunes of one base
    (`spinlens.edit.merging.merge_models`) and save the merged model folder; returns what was saved."""
    from spinlens.edit.merging import merge_models
    from spinlens.io import check_out_dir
    from spinlens.models.checkpoint import save_model
    from spinlens.models.source import ModelSource, load_spinlens_model

    src = opts.source
    if src.path is None or not opts.save:
        raise InvalidParameterError("Merging saved models needs --checkpoint (the base) and --save (a folder).")
    check_out_dir("save", opts.save)
    base, ck = load_spinlens_model(src)
    models = [load_spinlens_model(ModelSource("regression", str(p), "models"))[0] for p in opts.models]
    if opts.save.endswith(".safetensors"):
        import sys

        print(f"spinlens: deprecated: --save {opts.save}: the merged model is written as a model folder", file=sys.stderr)
    kw = {"density": opts.density, "scale": 1.0 if opts.scale is None else opts.scale} if opts.method == "ties" \
        else {"scale": opts.scale}
    merged = merge_models(base, models, opts.method, **kw)
    save_model(merged, opts.save, metadata={**ck.metadata, "merge": {"method": opts.method, **kw,
                                                                      "models": list(opts.models)}})
    return {"saved": opts.save, "method": opts.method, **kw}


def check_quantize_options(opts, setting: str = "regression") -> list:
    """The options of ``quantize`` in every setting, checked before any work; fills ``opts.group_size`` (32; 48
    for ``--study``) and returns the budgets to run. Outside the ``hf`` setting, the options for Hugging Face
    models are refused (`spinlens.edit.hf_quantization.check_hf_only_options`)."""
    from spinlens.errors import check_float, check_int
    from spinlens.io import check_out_dir

    study = bool(getattr(opts, "study", False))
    if opts.group_size is None:
        opts.group_size = 48 if study and setting != "lm" else 32  # the study: off the published 4-bit grid of 32
    check_int("group_size", opts.group_size, low=1, high=1 << 20)
    check_int("n_random", opts.n_random, low=0)  # 0: no random baseline (e.g. only --save a quantized model)
    for b in opts.bits + opts.uniform_bits:
        check_int("bits", b, low=1, high=16)
    if len(set(opts.bits)) != len(opts.bits):
        raise InvalidParameterError(f"The 'bits' parameter must not repeat values. Got {opts.bits}.")
    budgets = [opts.budget] if opts.budget is not None else opts.budgets
    for b in budgets:
        check_float("budget", b, low=min(opts.bits), high=max(opts.bits))
    if setting == "lm":
        from spinlens.edit.hf_quantization import check_hf_only_options

        check_hf_only_options(opts, "language model")
        if opts.granularity not in (None, "head", "module", "layer"):
            raise InvalidParameterError(f"The 'granularity' parameter must be head, module or layer for a spinlens "
                                        f"language model. Got {opts.granularity!r}.")
        return budgets
    check_int("n_seq", opts.n_seq, low=1, high=4096)
    check_int("seq_len", opts.seq_len, low=2)
    check_base_options(opts)
    check_out_dir("save", opts.save)
    return budgets


def _quantize_command(opts):
    from spinlens.plotting.edit import plot_quantization
    from spinlens.results import EditResult

    setting = opts.source.setting
    budgets = check_quantize_options(opts, setting)
    if getattr(opts, "study", False):
        from spinlens.llm.quantization import run_study_command

        return run_study_command(opts)
    if setting == "hf":
        from spinlens.edit.hf_quantization import run_quantize_command

        opts.model = opts.source.path
        return run_quantize_command(opts, budgets)
    from spinlens.edit.hf_quantization import check_hf_only_options

    check_hf_only_options(opts)
    if opts.granularity == "linear":
        raise InvalidParameterError("The 'granularity' parameter 'linear' is for Hugging Face models; use head, module or layer.")
    opts.granularity = opts.granularity or "head"
    model, out = open_base(opts)
    ds = quantization_experiment(model, n_context=opts.n_context, budgets=budgets, uniform_bits=opts.uniform_bits,
                                 bits=sorted(opts.bits), group_size=opts.group_size, n_random=opts.n_random,
                                 granularity=opts.granularity, rng=opts.seed, progress=not opts.no_progress)
    head = headline("quantize", ds) if opts.n_random else None  # the verdict needs the random baseline
    df = ds.drop_vars("bits_json").to_dataframe()
    if opts.budget is not None:
        i = int((ds["scheme"].values == "guided_ablation").nonzero()[0][0])
        summary = {"budget": opts.budget, "average_bits": float(ds["average_bits"].values[i]),
                   "mse": float(ds["mse"].values[i]), "fp_mse": ds.attrs["fp_mse"],
                   "bits": json.loads(str(ds["bits_json"].values[i]))}
    else:
        summary = {**df.reset_index().to_dict(orient="list"), **({"headline": head} if head else {})}
    return EditResult("quantize", "regression", summary, head, text=df.to_string(float_format=lambda x: f"{x:.4g}"),
                      dataset=ds, figure=plot_quantization(ds)[0], stem="quantization",
                      record={"headline": head} if head else None)


def open_regression(source: ModelSource, *, d: int, n_context: int, out=None, base_steps: int = 2000, seed: int = 0,
                    progress: bool = True):
    """``(model, d, n_context)`` of the regression setting: the ``--checkpoint`` transformer, or the base trained
    here (cached in ``OUT/base``). The checkpoint's own D and N win over the arguments."""
    from pathlib import Path

    from spinlens.models.source import load_spinlens_model

    if source.path is not None:
        model, ck = load_spinlens_model(source)
        if getattr(model.cfg, "input_kind", "regression") != "regression":
            raise InvalidParameterError(f"The '--{source.flag}' parameter must hold a regression Transformer (prompt "
                                        f"matrices in, a number out). Got a token Transformer in {source.path!r}.")
        return model, model.cfg.d_in - 1, ck.n_context() or model.cfg.max_pos - 1
    cache = Path(out) / "base" if out else None
    model = pretrained_base(d, n_context, steps=base_steps, path=cache, rng=seed, progress=progress)
    return model, d, n_context
