"""Per-module mixed-precision fake quantization of Hugging Face causal LMs, and library cross-checks.

The same group-wise RTN (`spinlens.edit.quantization.fake_quantize`) and knapsack (`allocate_bits`) as for
our ICL transformers, applied to the weight matrices of a local HF causal LM (GPT-2 family: ``Conv1D``
with weights (in, out); Llama family and anything else: ``nn.Linear`` with weights (out, in)). Groups
always run along the *input* dimension. By default only the Linear/Conv1D weights inside the decoder layers
are quantized; with ``include_embedding=True`` the input embedding (component ``E.embed_tokens``, groups
along d_model, which is the input dimension of a tied ``lm_head``) and an untied ``lm_head``
(``E.lm_head``) are components too. Biases and norms stay in full precision; `bit_accounting` counts
every parameter, names what is left out and its share, and gives the effective bits with each group's
16-bit scale and 16-bit zero point.

Components (``granularity``):

* ``"linear"``: each weight matrix of each layer, named ``L{i}.{path}`` (``L0.attn.c_attn``,
  ``L1.mlp.down_proj``);
* ``"module"``: the attention and the MLP of each layer (``L{i}.attn``, ``L{i}.mlp``);
* ``"layer"``: each decoder layer (``L{i}``).

Costs for the bit allocation (cheap, from a small calibration batch of token ids):

* ``"measured"``: the increase of the metric (mean next-token KL divergence from the full-precision
  model, or the LM loss) when only that component is quantized at b bits: one forward pass per
  (component, bits);
* ``"fisher"``: ½ Σ_i F_ii (Q_b(w)_i − w_i)² over the component's weights, with the empirical Fisher
  diagonal per token F_ii ≈ (T − 1) · mean over sequences of (∂ L_seq/∂w_i)² (L_seq the mean loss over the
  T − 1 predicted tokens of a sequence; the factor undoes the averaging of independent token gradients):
  one backward pass per calibration sequence, no forward pass per (component, bits).

Cross-checks with optional libraries (not dependencies; imported inside the functions):
`torchao_crosscheck` (torchao ``IntxWeightOnlyConfig``, asymmetric, per group: equals our RTN with an
integer zero point) and `hqq_crosscheck` (HQQ's ``Quantizer`` without optimisation equals our default RTN;
with its half-quadratic optimisation it is a stronger quantizer).
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np

from spinlens.errors import InvalidParameterError, check_choice, check_int

__all__ = [
    "load_hf_causal_lm",
    "hf_weight_modules",
    "hf_components",
    "quantize_hf",
    "lm_metrics",
    "calibration_tokens",
    "hf_cost_table",
    "hf_quantization_experiment",
    "bit_accounting",
    "torchao_crosscheck",
    "hqq_crosscheck",
    "library_quantized",
    "check_hf_only_options",
    "calibration_split",
    "run_quantize_command",
]

HF_GRANULARITIES = ("linear", "module", "layer")
_ATTN_WORDS = ("attn", "attention")
_MLP_WORDS = ("mlp", "feed_forward", "ffn")


def _unwrap(model):
    """The raw HF model of a `spinlens.interp.hf.HookedHF` (or the model itself)."""
    return getattr(model, "hf", model)


def load_hf_causal_lm(path, *, dtype: str = "float32", allow_pickle_weights: bool = False):
    """Load a causal LM from a local directory written by ``save_pretrained`` (no network), in eval mode.

    The same loader as the interpretability methods (`spinlens.interp.hf.load_hf_model`), unwrapped. Only
    ``*.safetensors`` weights are loaded unless ``allow_pickle_weights`` (``.bin`` files are pickles).
    """
    from spinlens.interp.hf import load_hf_model

    check_choice("dtype", dtype, ("float32", "float64"), owner="load_hf_causal_lm")
    return load_hf_model(path, dtype=dtype, allow_pickle_weights=allow_pickle_weights)


def _layers(hf):
    """The ModuleList of decoder layers: by the adapter table of `spinlens.interp.hf`, else the first
    ModuleList with ``config.num_hidden_layers`` entries."""
    from torch import nn

    from spinlens.interp.hf import ARCHITECTURES, MODEL_TYPES

    mt = getattr(getattr(hf, "config", None), "model_type", None)
    if mt in MODEL_TYPES:
        mod = hf
        for part in ARCHITECTURES[MODEL_TYPES[mt]]["layers"].split("."):
            mod = getattr(mod, part)
        return mod
    n = getattr(getattr(hf, "config", None), "num_hidden_layers", None)
    for _, mod in hf.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n:
            return mod
    raise InvalidParameterError("Cannot find the decoder layers of this model (no nn.ModuleList of num_hidden_layers).")


def _is_weight_module(mod) -> bool:
    from torch import nn

    if isinstance(mod, (nn.Linear, nn.Embedding)):
        return True
    return type(mod).__name__ == "Conv1D" and hasattr(mod, "weight") and mod.weight.ndim == 2


def _input_dim(mod) -> int:
    """The input dimension of the module's weight: −2 for GPT-2's Conv1D (in, out), −1 for nn.Linear and for
    nn.Embedding (vocab, d_model): d_model is the input dimension of the tied ``lm_head``."""
    from torch import nn

    return -1 if isinstance(mod, (nn.Linear, nn.Embedding)) else -2


def hf_weight_modules(model, *, include_embedding: bool = False) -> dict:
    """``{component name "L{i}.{path}": (full module path, kind "attn"|"mlp"|"other", module)}``, in order.

    With ``include_embedding``: first ``E.embed_tokens`` (kind "embed"; also the tied ``lm_head``), and
    ``E.lm_head`` where the output matrix is not tied to it.
    """
    hf = _unwrap(model)
    layers = _layers(hf)
    full = {id(m): n for n, m in hf.named_modules()}
    out = {}
    if include_embedding:
        emb, head = hf.get_input_embeddings(), hf.get_output_embeddings()
        out["E.embed_tokens"] = (full[id(emb)], "embed", emb)
        if head is not None and head.weight is not emb.weight:
            out["E.lm_head"] = (full[id(head)], "embed", head)
    for i, layer in enumerate(layers):
        for rel, mod in layer.named_modules():
            if rel and _is_weight_module(mod):
                head = rel.split(".")[0].lower()
                kind = ("attn" if any(w in head for w in _ATTN_WORDS)
                        else "mlp" if any(w in head for w in _MLP_WORDS) else "other")
                out[f"L{i}.{rel}"] = (full[id(mod)], kind, mod)
    if not out:
        raise InvalidParameterError("The model has no nn.Linear/Conv1D weights inside its decoder layers.")
    return out


def hf_components(model, granularity: str = "linear", *, include_embedding: bool = False) -> dict:
    """``{component name: [linear component names]}`` at the given granularity (see the module docstring).
    The embedding components (``E.*``) are their own components at every granularity."""
    check_choice("granularity", granularity, HF_GRANULARITIES)
    mods = hf_weight_modules(model, include_embedding=include_embedding)
    out: dict = {}
    for name, (_, kind, _) in mods.items():
        layer = name.split(".")[0]
        key = (name if granularity == "linear" or kind == "embed" else layer if granularity == "layer"
               else f"{layer}.{kind}")
        out.setdefault(key, []).append(name)
    return out


def hf_component_sizes(model, granularity: str = "linear", *, include_embedding: bool = False) -> dict:
    """Number of quantized weights of each component."""
    mods = hf_weight_modules(model, include_embedding=include_embedding)
    return {c: int(sum(mods[n][2].weight.numel() for n in names))
            for c, names in hf_components(model, granularity, include_embedding=include_embedding).items()}


def _n_groups(mod, group_size: int) -> int:
    """Groups of one weight matrix: rows × ceil(input dim / group size) (a group never spans two rows)."""
    w = mod.weight
    n_in = w.shape[_input_dim(mod)]
    return (w.numel() // n_in) * math.ceil(n_in / min(group_size, n_in))


def bit_accounting(model, allocation: dict, *, granularity: str = "linear", group_size: int = 32,
                   symmetric: bool = False) -> dict:
    """Count the bits of a fake-quantized model honestly.

    Returns ``average_bits`` (Σ n_c b_c / Σ n_c over the quantized weights), ``effective_bits`` (the same
    plus one 16-bit scale, and one 16-bit zero point unless ``symmetric``, per group, over the quantized
    weights), ``effective_bits_all`` (over every parameter, those left out counted at 16 bits),
    ``quantized_params``, ``total_params`` (each tied tensor once), ``quantized_share`` and ``left_out``
    ({parameter name: count}, tied duplicates dropped).
    """
    include = any(str(c).startswith("E.") for c in allocation)
    comps = hf_components(model, granularity, include_embedding=include)
    mods = hf_weight_modules(model, include_embedding=include)
    per_group = 16 if symmetric else 32
    n_q, bits_w, bits_s, done = 0, 0.0, 0.0, set()
    for c, b in allocation.items():
        for n in comps[c]:
            mod = mods[n][2]
            done.add(id(mod.weight))
            n_q += mod.weight.numel()
            bits_w += mod.weight.numel() * int(b)
            bits_s += per_group * _n_groups(mod, group_size)
    hf = _unwrap(model)
    seen, total, left = set(), 0, {}
    for name, p in hf.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if id(p) not in done:
            left[name] = int(p.numel())
    n_left = sum(left.values())
    return {"average_bits": bits_w / n_q, "effective_bits": (bits_w + bits_s) / n_q,
            "effective_bits_all": (bits_w + bits_s + 16 * n_left) / total, "quantized_params": int(n_q),
            "total_params": int(total), "quantized_share": n_q / total, "left_out": left,
            "group_size": int(group_size), "symmetric": bool(symmetric)}


def quantize_hf(model, allocation: dict, *, granularity: str = "linear", group_size: int = 32, symmetric: bool = False,
                zero_point: str = "float"):
    """A copy of the HF model whose components in ``allocation`` ({component: bits}) are fake-quantized."""


    new = copy.deepcopy(_unwrap(model))
    _quantize_inplace(new, allocation, granularity=granularity, group_size=group_size, symmetric=symmetric,
                      zero_point=zero_point)
    return new


def _quantize_inplace(hf, allocation: dict, *, granularity: str = "linear", group_size: int = 32,
                      symmetric: bool = False, zero_point: str = "float") -> dict:
    """Fake-quantize the components of ``allocation`` of ``hf`` in place; returns the original weights
    ({module path: tensor}) so that `_restore` can undo it."""
    import torch

    from spinlens.edit.quantization import fake_quantize

    include = any(str(c).startswith("E.") for c in allocation)
    comps = hf_components(hf, granularity, include_embedding=include)
    unknown = [c for c in allocation if c not in comps]
    if unknown:
        raise InvalidParameterError(
            f"Unknown component(s) {unknown} at granularity {granularity!r}; known: {list(comps)[:8]}...")
    mods = hf_weight_modules(hf, include_embedding=include)
    saved = {}
    with torch.no_grad():
        for c, b in allocation.items():
            b = check_int("bits", b, low=1, high=16)
            for n in comps[c]:
                mod = mods[n][2]
                saved[n] = mod.weight.detach().clone()
                mod.weight.copy_(fake_quantize(mod.weight, b, group_size=group_size, symmetric=symmetric,
                                               dim=_input_dim(mod), zero_point=zero_point))
    return saved


def _rel_error(hf, saved: dict) -> float:
    """‖W_q − W‖ / ‖W‖ over the weights quantized in place (``saved``: their originals)."""
    mods = hf_weight_modules(hf, include_embedding=any(n.startswith("E.") for n in saved))
    err = sum(float(((mods[n][2].weight.detach().double() - w.double()) ** 2).sum()) for n, w in saved.items())
    nrm = sum(float((w.double() ** 2).sum()) for w in saved.values())
    return math.sqrt(err / nrm) if nrm > 0 else 0.0


def _restore(hf, saved: dict) -> None:
    import torch

    mods = hf_weight_modules(hf, include_embedding=any(n.startswith("E.") for n in saved))
    with torch.no_grad():
        for n, w in saved.items():
            mods[n][2].weight.copy_(w)


def calibration_tokens(model, n_seq: int = 8, seq_len: int = 32, *, text=None, tokens=None, rng=None):
    """Token ids (n_seq, seq_len) for calibration/evaluation.

    ``tokens``: an integer array (any shape; flattened and cut into rows); ``text``: a string tokenized by
    the tokenizer saved next to the model (``model.name_or_path``); neither: uniform random token ids.
    """
    import torch

    from spinlens.random import as_generator

    hf = _unwrap(model)
    V = int(hf.config.vocab_size)
    n_seq = check_int("n_seq", n_seq, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    max_pos = getattr(hf.config, "n_positions", None) or getattr(hf.config, "max_position_embeddings", None)
    if max_pos and seq_len > max_pos:
        raise InvalidParameterError(f"The 'seq_len' parameter must be at most the model's {max_pos} positions. Got {seq_len}.")
    if text is not None:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(hf.name_or_path, local_files_only=True)
        except Exception as exc:  # no tokenizer files next to the model
            raise InvalidParameterError(f"Text calibration needs a tokenizer saved with the model: {exc}") from None
        tokens = np.asarray(tok(text)["input_ids"])
    if tokens is not None:
        flat = np.asarray(tokens).reshape(-1)
        if not np.issubdtype(flat.dtype, np.integer) or flat.size < seq_len:
            raise InvalidParameterError(f"Calibration tokens must be >= {seq_len} integer ids. Got {flat.size} of {flat.dtype}.")
        if flat.min() < 0 or flat.max() >= V:
            raise InvalidParameterError(f"Calibration token ids must lie in [0, {V}). Got [{flat.min()}, {flat.max()}].")
        rows = min(n_seq, flat.size // seq_len)
        return torch.as_tensor(flat[: rows * seq_len].reshape(rows, seq_len), dtype=torch.long)
    g = as_generator(rng)
    return torch.as_tensor(g.integers(0, V, size=(n_seq, seq_len)), dtype=torch.long)


def _logprobs(model, ids):
    import torch

    with torch.no_grad():
        logits = _unwrap(model)(input_ids=ids).logits
    return torch.log_softmax(logits.double(), -1)


def lm_metrics(model, ids, ref_logprobs=None) -> dict:
    """``{"loss": mean next-token cross-entropy, "kl": mean KL(ref ‖ model) per token}`` (float64)."""

    lp = _logprobs(model, ids)
    loss = float(-lp[:, :-1].gather(-1, ids[:, 1:, None]).mean())
    kl = float("nan") if ref_logprobs is None else float(
        (ref_logprobs.exp() * (ref_logprobs - lp)).sum(-1).mean().clamp(min=0.0))
    return {"loss": loss, "kl": kl}


def hf_cost_table(model, ids, bits=(2, 3, 4, 5, 6, 8), *, granularity: str = "linear", method: str = "measured",
                  metric: str = "kl", group_size: int = 32, symmetric: bool = False, progress: bool = False,
                  include_embedding: bool = False):
    """Cost of each component at each bit width (xarray (component, bits)); see the module docstring.

    ``method="measured"`` uses ``metric`` ("kl" to the full-precision model, or "loss" increase): each
    component is quantized in place and restored bit for bit afterwards (no copy of the model per entry);
    ``method="fisher"`` ignores it.
    """
    import torch
    import xarray as xr

    from spinlens.edit.quantization import fake_quantize

    check_choice("method", method, ("measured", "fisher"))
    check_choice("metric", metric, ("kl", "loss"))
    comps = hf_components(model, granularity, include_embedding=include_embedding)
    out = np.zeros((len(comps), len(bits)))
    if method == "measured":
        ref = _logprobs(model, ids)
        base = lm_metrics(model, ids, ref)[metric]
        it = [(i, j) for i in range(len(comps)) for j in range(len(bits))]
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="sensitivity", leave=False)
        names = list(comps)
        hf = _unwrap(model)
        for i, j in it:
            saved = _quantize_inplace(hf, {names[i]: bits[j]}, granularity=granularity, group_size=group_size,
                                      symmetric=symmetric)
            try:
                out[i, j] = lm_metrics(hf, ids, ref)[metric] - base
            finally:
                _restore(hf, saved)
    else:
        hf = copy.deepcopy(_unwrap(model))
        mods = hf_weight_modules(hf, include_embedding=include_embedding)
        fisher = {n: torch.zeros_like(m.weight, dtype=torch.float64) for n, (_, _, m) in mods.items()}
        for row in ids:
            hf.zero_grad(set_to_none=True)
            hf(input_ids=row[None], labels=row[None]).loss.backward()
            for n, (_, _, m) in mods.items():
                fisher[n] += m.weight.grad.double() ** 2 * (ids.shape[1] - 1) / len(ids)
        for i, names in enumerate(comps.values()):
            for j, b in enumerate(bits):
                tot = 0.0
                for n in names:
                    w = mods[n][2].weight.detach()
                    dq = fake_quantize(w, b, group_size=group_size, symmetric=symmetric, dim=_input_dim(mods[n][2])) - w
                    tot += 0.5 * float((fisher[n] * dq.double() ** 2).sum())
                out[i, j] = tot
    return xr.DataArray(out, dims=("component", "bits"), coords={"component": list(comps), "bits": list(bits)},
                        name=f"{method}_cost")


def _allocate(cost, sizes, budget, group_size):
    """Exact DP knapsack when its table is small, else greedy."""
    from spinlens.edit.quantization import allocate_bits

    n = np.array(list(sizes.values()))
    units = budget * n.sum() / int(np.gcd.reduce(n))
    return allocate_bits(cost, sizes, budget, method="dp" if units <= 2e5 else "greedy", group_size=group_size)


def hf_quantization_experiment(model, calib_ids, eval_ids, *, budgets=(2.5, 3.0, 3.4, 4.0, 5.0),
                               uniform_bits=(2, 3, 4, 5, 6, 8), bits=(2, 3, 4, 5, 6, 8), granularity: str = "linear",
                               importance: str = "measured", metric: str = "kl", group_size: int = 32,
                               n_random: int = 3, rng=0, progress: bool = False, include_embedding: bool = False,
                               evaluate=None, on_model=None):
    """Uniform vs importance-guided vs random bit allocations on an HF causal LM.

    Costs from ``calib_ids`` (`hf_cost_table` with ``importance``), evaluation on ``eval_ids``. Returns an
    xarray.Dataset with one row per run like `spinlens.edit.experiments.quantization_experiment`
    (``scheme``, ``average_bits``, ``effective_bits``, ``loss``, ``kl``, ``bits_json``); ``attrs["metric"]``
    names the variable that `spinlens.plotting.edit.plot_quantization` draws (``kl`` or ``loss``). There is no
    ``mse`` variable: an LM's quantization error is its loss and its KL to the full-precision model.
    ``effective_bits`` is exact (`bit_accounting`: a 16-bit scale and zero point per group, a group never
    spanning two rows).

    ``evaluate(hf_model) -> {name: float}``: more metrics per run (one variable each, e.g. task accuracies);
    ``on_model(scheme, index, hf_model, bits)``: called with each quantized model (e.g. to save it). Both see
    the model quantized in place, restored afterwards: they must not keep it.
    """
    import xarray as xr

    from spinlens.edit.quantization import random_allocation_from_sizes
    from spinlens.random import spawn

    group_size = check_int("group_size", group_size, low=1)
    sizes = hf_component_sizes(model, granularity, include_embedding=include_embedding)
    hf = _unwrap(model)
    ref = _logprobs(model, eval_ids)
    fp = lm_metrics(model, eval_ids, ref)
    extra = [dict(evaluate(hf)) if evaluate else {}]
    extra[0]["rel_weight_error"] = 0.0
    rows = [("fp32", 32.0, 32.0, fp["loss"], 0.0, "{}")]

    def run(scheme, alloc_bits):
        saved = _quantize_inplace(hf, alloc_bits, granularity=granularity, group_size=group_size)
        try:
            m = lm_metrics(hf, eval_ids, ref)
            extra.append(dict(evaluate(hf)) if evaluate else {})
            extra[-1]["rel_weight_error"] = _rel_error(hf, saved)
            if on_model is not None:
                on_model(scheme, sum(r[0] == scheme for r in rows), hf, alloc_bits)
        finally:
            _restore(hf, saved)
        acc = bit_accounting(hf, alloc_bits, granularity=granularity, group_size=group_size)
        rows.append((scheme, acc["average_bits"], acc["effective_bits"], m["loss"], m["kl"], json.dumps(alloc_bits)))

    for b in uniform_bits:
        run("uniform", {c: int(b) for c in sizes})
    cost = hf_cost_table(model, calib_ids, bits, granularity=granularity, method=importance, metric=metric,
                         group_size=group_size, progress=progress, include_embedding=include_embedding)
    gs = spawn(rng, max(n_random, 1))
    for B in budgets:
        run(f"guided_{importance}", _allocate(cost, sizes, B, group_size).bits)
        for r in range(n_random):
            run("random", random_allocation_from_sizes(sizes, B, bits, rng=gs[r]).bits)
    scheme, avg, eff, loss, kl, bj = zip(*rows)
    more = {k: ("run", np.array([e.get(k, np.nan) for e in extra], dtype=float)) for k in dict.fromkeys(
        k for e in extra for k in e)}
    return xr.Dataset(
        {"average_bits": ("run", np.array(avg)), "effective_bits": ("run", np.array(eff)),
         "loss": ("run", np.array(loss), {"long_name": "eval loss (nats/token)"}),
         "kl": ("run", np.array(kl), {"long_name": "eval KL to full precision (nats/token)"}),
         "bits_json": ("run", list(bj)), **more},
        coords={"run": np.arange(len(rows)), "scheme": ("run", list(scheme))},
        attrs={"group_size": group_size, "granularity": granularity, "fp_loss": fp["loss"], "fp_kl": 0.0, "metric": metric,
               "importance": importance, "sizes_json": json.dumps(sizes), "include_embedding": int(include_embedding),
               "cost_json": json.dumps({c: dict(zip(map(int, cost["bits"].values), map(float, cost.sel(component=c).values)))
                                        for c in cost["component"].values})},
    )


# ------------------------------------------------------------------------------------------ cross-checks


def _weight_linears(hf):
    from torch import nn

    return {n: m for n, m in hf.named_modules() if isinstance(m, nn.Linear) and n in
            {p for p, _, _ in hf_weight_modules(hf).values()}}


def torchao_crosscheck(model, bits: int = 4, *, group_size: int = 32, ids=None) -> dict:
    """Quantize every decoder nn.Linear with torchao and with our RTN (integer zero point); compare.

    torchao: ``quantize_(model, IntxWeightOnlyConfig(weight_dtype=torch.int{bits}, granularity=PerGroup(g),
    mapping_type=MappingType.ASYMMETRIC))`` restricted to the decoder layers by ``filter_fn``. Returns
    ``max_step_diff`` (max |w_torchao − w_ours| over all weights, in units of the group's step),
    ``frac_same_level`` (fraction of weights within 1e-3 of a step: the same grid level up to float32
    rounding), the relative weight errors of both, and
    with ``ids`` the eval loss of both models and their max logit difference.
    """
    bits = check_int("bits", bits, low=1, high=8)
    hf = copy.deepcopy(_unwrap(model)).float()
    lins = _weight_linears(hf)
    if not lins:
        raise InvalidParameterError("torchao_crosscheck needs nn.Linear weights (e.g. a Llama model; GPT-2 uses Conv1D).")
    orig = {n: m.weight.detach().clone() for n, m in lins.items()}
    ours = quantize_hf(hf, {c: bits for c in hf_components(hf, "linear")
                            if hf_weight_modules(hf)[c][0] in lins}, group_size=group_size, zero_point="int")
    tao = _torchao_quantized(hf, lins, bits, group_size)
    ours_mods = dict(ours.named_modules())
    tao_mods = dict(tao.named_modules())
    return _compare(orig, {n: ours_mods[n].weight.detach() for n in lins},
                    {n: tao_mods[n].weight.dequantize().detach() for n in lins}, bits, group_size, -1,
                    ours, tao, hf, ids)


def _torchao_quantized(hf, lins, bits, group_size):
    """A copy of ``hf`` whose nn.Linear modules ``lins`` torchao quantized (its tensor subclasses)."""
    import torch
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quant_primitives import MappingType

    cfg = IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"), granularity=PerGroup(group_size),
                               mapping_type=MappingType.ASYMMETRIC)
    tao = copy.deepcopy(hf)
    quantize_(tao, cfg, filter_fn=lambda m, fqn: fqn in lins)
    return tao


def _hqq_dequantized(w, bits, group_size, optimize, input_dim):
    import torch
    from hqq.core.quantize import Quantizer

    wt = w.T.contiguous() if input_dim == -2 else w  # HQQ groups consecutive entries of (out, in)
    Wq, meta = Quantizer.quantize(wt, nbits=bits, group_size=group_size, optimize=optimize, axis=1, bitpack=False,
                                  device="cpu", compute_dtype=torch.float32)
    deq = Quantizer.dequantize(Wq, meta).float().reshape(wt.shape)
    return deq.T if input_dim == -2 else deq


def library_quantized(model, library: str, bits: int = 4, *, group_size: int = 64):
    """A plain float copy of the model with its decoder weights quantized by a library, as an anchor.

    ``library``: ``"torchao"`` (``IntxWeightOnlyConfig``, asymmetric integer zero point, per group; nn.Linear
    only), ``"hqq"`` (HQQ's half-quadratic optimisation of scale and zero) or ``"hqq-rtn"`` (HQQ without it).
    The weights are dequantized back into ordinary float tensors, so the copy saves as a plain HF folder.
    Raises `InvalidParameterError` naming the package when it is not installed.
    """
    import torch

    check_choice("library", library, ("torchao", "hqq", "hqq-rtn"))
    bits = check_int("bits", bits, low=1, high=8)
    hf = copy.deepcopy(_unwrap(model)).float()
    try:
        if library == "torchao":
            lins = _weight_linears(hf)
            tao = _torchao_quantized(hf, lins, bits, group_size)
            tmods = dict(tao.named_modules())
            deq = {n: tmods[n].weight.dequantize().detach().float() for n in lins}
            del tao
            mods = dict(hf.named_modules())
            with torch.no_grad():
                for n, w in deq.items():
                    mods[n].weight.copy_(w)
        else:
            with torch.no_grad():
                for _, (_, _, m) in hf_weight_modules(hf).items():
                    m.weight.copy_(_hqq_dequantized(m.weight.detach(), bits, group_size, library == "hqq",
                                                    _input_dim(m)))
    except ImportError as exc:
        pkg = "torchao" if library == "torchao" else "hqq"
        raise InvalidParameterError(f"The {library!r} anchor needs the optional package {pkg!r} "
                                    f"(pip install 'spinlens[crosscheck]'): {exc}") from None
    return hf


def hqq_crosscheck(model, bits: int = 4, *, group_size: int = 32, optimize: bool = False, ids=None) -> dict:
    """Quantize every decoder weight with HQQ's ``Quantizer`` and with our RTN (float zero point); compare.

    With ``optimize=False`` HQQ is plain RTN over [min, max] per group, the same as our default; with
    ``optimize=True`` its half-quadratic solver moves scale and zero (compare the errors). Works for Conv1D
    (GPT-2) and nn.Linear weights; groups along the input dimension. Same keys as `torchao_crosscheck`.
    """
    import torch

    bits = check_int("bits", bits, low=1, high=8)
    hf = copy.deepcopy(_unwrap(model)).float()
    mods = hf_weight_modules(hf)
    orig = {n: m.weight.detach().clone() for n, (_, _, m) in mods.items()}
    ours = quantize_hf(hf, {c: bits for c in mods}, group_size=group_size)
    theirs = copy.deepcopy(hf)
    th_mods = hf_weight_modules(theirs)
    with torch.no_grad():
        for n, (_, _, m) in th_mods.items():
            m.weight.copy_(_hqq_dequantized(m.weight.detach(), bits, group_size, optimize, _input_dim(m)))
    o_mods = hf_weight_modules(ours)
    dims = {n: _input_dim(m) for n, (_, _, m) in mods.items()}
    return _compare(orig, {n: o_mods[n][2].weight.detach() for n in mods},
                    {n: th_mods[n][2].weight.detach() for n in mods}, bits, group_size, dims, ours, theirs, hf, ids)


def _compare(orig, ours, theirs, bits, group_size, dims, ours_model, their_model, hf, ids) -> dict:
    import torch

    max_step, n_eq, n_tot, e_o, e_t, nrm = 0.0, 0, 0, 0.0, 0.0, 0.0
    for n, w in orig.items():
        d = dims if isinstance(dims, int) else dims[n]
        wt = w.double().movedim(d, -1)
        lo = wt.reshape(-1, group_size).amin(-1, keepdim=True)
        hi = wt.reshape(-1, group_size).amax(-1, keepdim=True)
        step = ((hi - lo) / (2**bits - 1)).clamp(min=1e-30)
        diff = (ours[n].double() - theirs[n].double()).movedim(d, -1).reshape(-1, group_size).abs() / step
        max_step = max(max_step, float(diff.max()))
        n_eq += int((diff < 1e-3).sum())
        n_tot += diff.numel()
        e_o += float(((ours[n].double() - w.double()) ** 2).sum())
        e_t += float(((theirs[n].double() - w.double()) ** 2).sum())
        nrm += float((w.double() ** 2).sum())
    res = {"bits": bits, "group_size": group_size, "max_step_diff": max_step, "frac_same_level": n_eq / n_tot,
           "rel_error_ours": math.sqrt(e_o / nrm), "rel_error_library": math.sqrt(e_t / nrm)}
    if ids is not None:
        with torch.no_grad():
            lo_, lt_ = ours_model(input_ids=ids).logits, their_model(input_ids=ids).logits
        ref = _logprobs(hf, ids)
        res.update(max_logit_diff=float((lo_ - lt_).abs().max()),
                   kl_ours=lm_metrics(ours_model, ids, ref)["kl"], kl_library=lm_metrics(their_model, ids, ref)["kl"])
    return res


# ------------------------------------------------------------------------------------------------ the command


def check_hf_only_options(opts, model: str = "regression transformer") -> None:
    """``quantize`` without ``--model``: the options for Hugging Face models are refused (one line); ``model``
    names what is quantized instead."""
    hf_only = [flag for flag, given in (("--crosscheck", opts.crosscheck), ("--save", opts.save),
                                         ("--calib-text", opts.calib_text), ("--calib-tokens", opts.calib_tokens),
                                         ("--importance", opts.importance != "measured"),
                                         ("--metric", opts.metric != "kl"), ("--n-seq", opts.n_seq != 8),
                                         ("--seq-len", opts.seq_len != 32)) if given]
    if hf_only:
        raise InvalidParameterError(f"The '{hf_only[0]}' option needs '--model DIR', a Hugging Face model directory; "
                                    f"without it spinlens quantizes its own {model} and would ignore it.")


def calibration_split(model, n_seq: int, seq_len: int, *, calib_text=None, calib_tokens=None, rng=None):
    """``(calibration, test)`` token ids, ``n_seq`` sequences each (`calibration_tokens` of ``2 * n_seq``): from
    the text file ``calib_text``, the token-id file ``calib_tokens`` (.npy or whitespace-separated integers), or
    random tokens."""
    from pathlib import Path

    n = 2 * n_seq  # first half calibrates, second half evaluates
    if calib_text:
        p = Path(calib_text)
        if not p.is_file():
            raise InvalidParameterError(f"The 'calib_text' parameter must be an existing text file. Got {str(p)!r}.")
        ids = calibration_tokens(model, n, seq_len, text=p.read_text())
    elif calib_tokens:
        p = Path(calib_tokens)
        if not p.is_file():
            raise InvalidParameterError(f"The 'calib_tokens' parameter must be an existing file. Got {str(p)!r}.")
        try:
            arr = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, dtype=np.int64).reshape(-1)
        except ValueError as exc:
            raise InvalidParameterError(f"Cannot read token ids from {str(p)!r}: {exc}") from None
        ids = calibration_tokens(model, n, seq_len, tokens=arr)
    else:
        ids = calibration_tokens(model, n, seq_len, rng=rng)
    if ids.shape[0] < 2:
        raise InvalidParameterError(f"Need at least {2 * seq_len} calibration tokens (2 sequences of --seq-len).")
    h = ids.shape[0] // 2
    return ids[:h], ids[h:]


def run_quantize_command(opts, budgets):
    """``spinlens quantize --model DIR``: per-module mixed precision of a local HF causal LM
    (`hf_quantization_experiment`), or ``--crosscheck`` of our RTN against torchao / HQQ; with ``--save`` the model
    fake-quantized with the guided allocation at the first budget. Returns a `spinlens.experiment.EditResult`
    (``opts``: see `spinlens.experiment.run_edit_command`; options checked by
    `spinlens.edit.experiments.check_quantize_options`)."""
    import json
    from pathlib import Path

    from spinlens.io import check_out_dir, write_json
    from spinlens.models.pretrained import resolve_model
    from spinlens.plotting.edit import plot_quantization
    from spinlens.results import EditResult

    gran = opts.granularity or "linear"
    if gran == "head":
        raise InvalidParameterError("The 'granularity' parameter must be linear, module or layer for a Hugging Face model.")
    model = load_hf_causal_lm(opts.model, allow_pickle_weights=getattr(opts, "allow_pickle_weights", False))
    calib, test = calibration_split(model, opts.n_seq, opts.seq_len, calib_text=opts.calib_text,
                                    calib_tokens=opts.calib_tokens, rng=opts.seed)
    if opts.crosscheck:
        res = {}
        for lib in opts.crosscheck:
            fn = torchao_crosscheck if lib == "torchao" else hqq_crosscheck
            kw = {"optimize": True} if lib == "hqq-opt" else {}
            try:
                res[lib] = [fn(model, b, group_size=opts.group_size, ids=test, **kw) for b in sorted(opts.bits)]
            except ImportError as exc:
                raise InvalidParameterError(f"--crosscheck {lib} needs the optional package: {exc}") from None
        text = "\n".join(lib + " " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
                         for lib, rows in res.items() for r in rows)
        return EditResult("quantize", "hf", res, text=text)
    out = Path(opts.out) if opts.out else None
    if out:
        check_out_dir("out", out)
        out.mkdir(parents=True, exist_ok=True)
    ds = hf_quantization_experiment(model, calib, test, budgets=budgets, uniform_bits=opts.uniform_bits,
                                    bits=sorted(opts.bits), granularity=gran, importance=opts.importance,
                                    metric=opts.metric, group_size=opts.group_size, n_random=opts.n_random,
                                    rng=opts.seed, progress=not opts.no_progress)
    i = int((ds["scheme"].values == f"guided_{opts.importance}").nonzero()[0][0])  # guided, first budget
    guided = json.loads(str(ds["bits_json"].values[i]))
    if opts.save:
        q = quantize_hf(model, guided, granularity=gran, group_size=opts.group_size)
        q.save_pretrained(opts.save)
        write_json(Path(opts.save, "spinlens_quantization.json"),
                   {"bits": guided, "granularity": gran, "group_size": opts.group_size, "budget": budgets[0],
                    "average_bits": float(ds["average_bits"].values[i]), "note": "fake-quantized float weights"},
                   indent=1)
    df = ds.drop_vars("bits_json").to_dataframe()
    if opts.budget is not None:
        summary = {"budget": opts.budget, "average_bits": float(ds["average_bits"].values[i]),
                   "kl": float(ds["kl"].values[i]), "loss": float(ds["loss"].values[i]),
                   "fp_loss": ds.attrs["fp_loss"], "bits": guided}
    else:
        summary = df.reset_index().to_dict(orient="list")
    return EditResult("quantize", "hf", summary, text=df.to_string(float_format=lambda x: f"{x:.4g}"), dataset=ds,
                      figure=plot_quantization(ds)[0], stem="quantization",
                      record={"model_dir": str(Path(resolve_model(opts.model)).resolve())})
