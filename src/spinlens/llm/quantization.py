"""Guided mixed-precision quantization of a pretrained LLM, with its bits counted honestly.

The claim under test: interpretability-guided mixed precision at 3.4 bits per weight on average matches
uniform 4 bits. `quantization_study` runs, on one model and one grouping:

* uniform 3 and 4 bits (group-wise round to nearest, `spinlens.edit.hf_quantization`);
* the guided allocation at ``budget`` bits (importance per component from a calibration set of the held-out
  text's first half: ``"fisher"``, the empirical-Fisher estimate, or ``"measured"``, the KL increase when
  the component alone is quantized; then the knapsack of `spinlens.edit.quantization.allocate_bits`);
* ``n_random`` random allocations at the same budget (one seed each);
* anchors at 4 bits from libraries where they install (``"hqq"``: HQQ with its half-quadratic optimisation;
  ``"torchao"``: ``IntxWeightOnlyConfig``), same group size;
* uniform 4 and 3 bits at the ``aligned`` group sizes (32 and 64 by default): the published SmolLM2 weights
  sit on a Q4_1 grid (blocks of 32 along the input dimension, a scale and a minimum each), so 4 bits in
  groups of 32 can land back on that grid and look lossless. The main grouping must not divide into it
  (48 or 96, or per channel); the aligned rows show what an aligned study would have reported.

Every run is evaluated the same way (`spinlens.llm.general`): held-out perplexity (second half of the
text), KL to the full-precision model, relative weight error, and task accuracies. Bits: `bit_accounting`
gives the average bits over the quantized weights, the effective bits with a 16-bit scale and a 16-bit
zero point per group, and what is left out with its share (by default the tied embedding/``lm_head``, which
``include_embedding=True`` quantizes as one more component). Guided is compared with the straight line between
uniform 3 and uniform 4 bits at the guided run's effective bits, not with uniform 3 alone.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from spinlens.errors import InvalidParameterError, check_float, check_int
from spinlens.verdict import mean_sd

__all__ = ["QuantizationStudy", "quantization_study", "line_between", "run_study_command"]

BITS = (2, 3, 4, 5, 6, 8)


@dataclass
class QuantizationStudy:
    """Result of `quantization_study`.

    Attributes
    ----------
    rows : list of dict
        One per run: ``method`` (fp32, uniform3, uniform4, guided, random, hqq4, torchao4, uniform4_g32, ...),
        ``seed`` (random runs), ``group_size``, ``average_bits``, ``effective_bits``, ``perplexity``, ``kl``,
        ``rel_weight_error``, and ``<task>_accuracy`` / ``<task>_logit_diff``.
    summary : dict
        Per method (random: mean and sd over its seeds) the same metrics, under the keys the headline prints.
    line : dict
        Each metric of the uniform 3–4 bit line at the guided run's effective bits.
    accounting : dict
        `spinlens.edit.hf_quantization.bit_accounting` of the guided allocation (shares, left out).
    verdict : str
    seconds : dict
        ``search`` (cost table + allocation), ``evaluation`` (every run's evaluation), ``total``.
    """

    model: str
    budget: float
    group_size: int
    granularity: str
    importance: str
    bits: list
    include_embedding: bool
    rows: list
    summary: dict
    line: dict
    accounting: dict
    verdict: str
    holds: bool
    text: dict
    task_sources: dict
    skipped: dict = field(default_factory=dict)
    guided_bits: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def line_between(lo: dict, hi: dict, x: float, keys) -> dict:
    """Linear interpolation of ``keys`` between two runs at ``effective_bits`` x (lo and hi are rows)."""
    x0, x1 = lo["effective_bits"], hi["effective_bits"]
    t = (x - x0) / (x1 - x0)
    return {k: lo[k] + t * (hi[k] - lo[k]) for k in keys if k in lo and k in hi}


def _metric_keys(row):
    return [k for k in row if k in ("perplexity", "kl", "rel_weight_error") or k.endswith(("_accuracy", "_logit_diff"))]


def quantization_study(model="smollm2-135m", *, budget: float = 3.4, group_size: int = 48, bits=BITS,
                       granularity: str = "linear", importance: str = "fisher", n_random: int = 3,
                       anchors=("hqq", "torchao"), aligned=(32, 64), include_embedding: bool = False,
                       n_calib: int = 8, n_seq: int = 16, seq_len: int = 128, n_prompts: int = 48, seed: int = 0,
                       save_dir=None, save_methods=None, progress: bool = False, log=None) -> QuantizationStudy:
    """Guided vs uniform vs random vs library quantization of a pretrained LLM (see the module docstring).

    Parameters
    ----------
    model : str or path
        A named pretrained model or a local HF folder.
    budget : float
        Average bits of the guided and random allocations; at least ``min(bits)``.
    group_size : int
        Weights per scale/zero point, along the input dimension (a size larger than a row: per channel).
    save_dir : path, optional
        Each evaluated model is written as a plain HF folder ``save_dir/METHOD`` (random: ``random_seedK``)
        with its ``run.json``; ``save_methods`` restricts which methods (default: all but the aligned rows).
    log : callable, optional
        Called with one line per finished run (progress).
    """
    import torch
    from transformers import AutoTokenizer

    from spinlens.edit import hf_quantization as H
    from spinlens.llm.general import build_suite, general_ability, heldout_ids, text_source
    from spinlens.models.pretrained import resolve_model

    bits = sorted(int(check_int("bits", b, low=1, high=16)) for b in bits)
    if len(set(bits)) != len(bits):
        raise InvalidParameterError(f"The 'bits' parameter must not repeat values. Got {bits}.")
    budget = check_float("budget", budget, low=float(bits[0]), high=float(bits[-1]))
    group_size = check_int("group_size", group_size, low=1)
    for g in aligned:
        check_int("aligned", g, low=1)
    n_random = check_int("n_random", n_random, low=0)
    for b in (3, 4):
        if b not in bits:
            raise InvalidParameterError(f"The 'bits' parameter must contain 3 and 4 (the uniform line). Got {bits}.")
    t_start = time.perf_counter()
    path = resolve_model(model)
    hf = H.load_hf_causal_lm(path)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    torch.manual_seed(seed)
    calib = heldout_ids(tok, n_seq=n_calib, seq_len=seq_len, part="calib")
    suite = build_suite(tok, n_seq=n_seq, seq_len=seq_len, n_prompts=n_prompts, seed=seed)
    eval_ids = suite.text
    t_eval = [0.0]

    def evaluate(m):
        t0 = time.perf_counter()
        out = general_ability(m, suite=suite, text=False)  # perplexity: the experiment's own loss on the same ids
        t_eval[0] += time.perf_counter() - t0
        return out

    def record(method, extra):
        from spinlens.io import run_record

        return run_record("quantize", seed=seed, model=str(model), method=method,
                          **{"group_size": group_size, "granularity": granularity, **extra},
                          note="fake-quantized float weights")

    def save(method, m, extra):
        if save_dir is None or (save_methods is not None and method not in save_methods):
            return
        from pathlib import Path

        from spinlens.io import write_hf_model

        write_hf_model(Path(save_dir) / method, m, tokenizer=tok, record=record(method, extra))

    def on_model(scheme, index, m, alloc):
        method = {"uniform": f"uniform{next(iter(alloc.values()))}", "random": f"random_seed{index}"}.get(
            scheme, "guided" if scheme.startswith("guided") else scheme)
        save(method, m, {"bits": alloc, **H.bit_accounting(m, alloc, granularity=granularity, group_size=group_size)})

    ds = H.hf_quantization_experiment(hf, calib, eval_ids, budgets=(budget,), uniform_bits=(3, 4), bits=bits,
                                      granularity=granularity, importance=importance, metric="kl",
                                      group_size=group_size, n_random=n_random, rng=seed, progress=progress,
                                      include_embedding=include_embedding, evaluate=evaluate, on_model=on_model)
    t_main = time.perf_counter() - t_start
    rows, k_rand = [], 0
    extra_vars = [v for v in ds.data_vars if v not in ("average_bits", "effective_bits", "mse", "loss", "kl", "bits_json")]
    for i, scheme in enumerate(ds["scheme"].values):
        alloc = json.loads(str(ds["bits_json"].values[i]))
        method = ("fp32" if scheme == "fp32" else f"uniform{next(iter(alloc.values()))}" if scheme == "uniform"
                  else "random" if scheme == "random" else "guided")
        r = {"method": method, "group_size": group_size if method != "fp32" else None,
             "average_bits": float(ds["average_bits"].values[i]), "effective_bits": float(ds["effective_bits"].values[i]),
             "perplexity": math.exp(float(ds["loss"].values[i])), "kl": float(ds["kl"].values[i])}
        if method == "random":
            r["seed"] = k_rand
            k_rand += 1
        r.update({v: float(ds[v].values[i]) for v in extra_vars})
        rows.append(r)
        if log:
            log(_fmt_row(r))
    guided_bits = json.loads(str(ds["bits_json"].values[list(ds["scheme"].values).index(f"guided_{importance}")]))
    acct = H.bit_accounting(hf, guided_bits, granularity=granularity, group_size=group_size)
    t_search = t_main - t_eval[0]

    ref = H._logprobs(hf, eval_ids)

    def evaluate_model(method, m, alloc_bits, g):
        t0 = time.perf_counter()
        lm = H.lm_metrics(m, eval_ids, ref)
        acc = H.bit_accounting(m, alloc_bits, granularity=granularity, group_size=g)
        r = {"method": method, "group_size": g, "average_bits": acc["average_bits"], "effective_bits": acc["effective_bits"],
             "perplexity": math.exp(lm["loss"]), "kl": lm["kl"]}
        r.update(evaluate(m))
        r["rel_weight_error"] = _weight_error(hf, m)
        t_eval[0] += time.perf_counter() - t0
        rows.append(r)
        if log:
            log(_fmt_row(r))
        return r

    all_lin = {c: 4 for c in H.hf_components(hf, granularity)}
    for lib in anchors:
        try:
            m = H.library_quantized(hf, lib, 4, group_size=group_size)
        except InvalidParameterError as exc:
            rows.append({"method": f"{lib}4", "skipped": str(exc)})
            if log:
                log(f"{lib}4: skipped ({exc})")
            continue
        evaluate_model(f"{lib}4", m, all_lin, group_size)
        save(f"{lib}4", m, {"library": lib, "bits": 4})
        del m
    for g in aligned:
        for b in (4, 3):
            alloc = {c: b for c in all_lin}
            m = H.quantize_hf(hf, alloc, granularity=granularity, group_size=g)
            evaluate_model(f"uniform{b}_g{g}", m, alloc, g)
            del m
    t_total = time.perf_counter() - t_start

    summary = _summarise(rows)
    u3, u4, gd = summary["uniform3"], summary["uniform4"], summary["guided"]
    line = line_between(u3, u4, gd["effective_bits"], _metric_keys(gd))
    gap = (gd["perplexity"] - u4["perplexity"]) / (u3["perplexity"] - u4["perplexity"]) if u3["perplexity"] != u4["perplexity"] else float("nan")
    holds = bool(gd["perplexity"] <= u4["perplexity"] * 1.01)
    rnd = summary.get("random")
    rtxt = (f"; random at {budget:g} bits {rnd['perplexity']:.3f} ± {rnd.get('perplexity_sd', float('nan')):.3f} (n={rnd['n']})"
            if rnd and "perplexity" in rnd else "")
    verdict = (f"guided {budget:g} bits ({gd['effective_bits']:.3f} effective) perplexity {gd['perplexity']:.3f} vs uniform 4 "
               f"{u4['perplexity']:.3f} ({u4['effective_bits']:.3f} eff.), uniform 3 {u3['perplexity']:.3f}, 3–4 bit line at the same "
               f"effective bits {line['perplexity']:.3f}{rtxt}; guided closes {1 - gap:.0%} of the 3→4 bit gap. "
               f"'3.4 bits ≈ 4 bits' {'holds' if holds else 'does not hold'} (within 1 % of uniform 4's perplexity: "
               f"{'yes' if holds else 'no'}); guided is {'below' if gd['perplexity'] < line['perplexity'] else 'above'} the line by "
               f"{abs(line['perplexity'] - gd['perplexity']):.3f}.")
    return QuantizationStudy(
        model=str(model), budget=budget, group_size=group_size, granularity=granularity, importance=importance,
        bits=bits, include_embedding=include_embedding, rows=rows, summary=summary, line=line, accounting=acct,
        verdict=verdict, holds=holds, text=text_source(), task_sources=suite.sources, skipped=suite.skipped,
        guided_bits=guided_bits, seconds={"search": t_search, "evaluation": t_eval[0], "total": t_total})


def _weight_error(ref_model, m) -> float:
    """‖W_m − W_ref‖ / ‖W_ref‖ over every decoder weight matrix."""
    from spinlens.edit.hf_quantization import hf_weight_modules

    a, b = hf_weight_modules(ref_model), hf_weight_modules(m)
    err = sum(float(((b[n][2].weight.detach().double() - a[n][2].weight.detach().double()) ** 2).sum()) for n in a)
    nrm = sum(float((a[n][2].weight.detach().double() ** 2).sum()) for n in a)
    return math.sqrt(err / nrm)


def _summarise(rows) -> dict:
    out: dict = {}
    for r in rows:
        if "skipped" in r:
            out[r["method"]] = {"skipped": r["skipped"]}
            continue
        out.setdefault(r["method"], []).append(r)
    for k, rs in list(out.items()):
        if isinstance(rs, dict):
            continue
        keys = [k2 for k2 in rs[0] if isinstance(rs[0][k2], float)]
        s = {k2: float(np.mean([r[k2] for r in rs])) for k2 in keys}
        if len(rs) > 1:
            s.update({f"{k2}_sd": mean_sd([r[k2] for r in rs])[1] for k2 in keys})
        s["n"] = len(rs)
        s["group_size"] = rs[0]["group_size"]
        out[k] = s
    return out


def _fmt_row(r) -> str:
    keys = [k for k in r if k not in ("method", "seed", "group_size")]
    return f"{r['method']:<14}" + " ".join(f"{k}={r[k]:.4g}" for k in keys if isinstance(r[k], float))


def run_study_command(opts):
    """``spinlens quantize --model NAME --study``: `quantization_study` with the command's options (``opts``: see
    `spinlens.experiment.run_edit_command`, checked by `spinlens.edit.experiments.check_quantize_options`),
    ``result.json``, run.json and the figure written under ``opts.out``; a `spinlens.experiment.EditResult`."""
    from pathlib import Path

    from spinlens.io import check_out_dir, run_record, write_study
    from spinlens.plotting.edit import plot_llm_quantization
    from spinlens.results import EditResult

    check_out_dir("out", opts.out)
    check_int("n_prompts", opts.n_prompts, low=1, high=10_000)
    budget = opts.budget if opts.budget is not None else 3.4
    out = Path(opts.out) if opts.out else None
    log = None if opts.json or opts.no_progress else (lambda s: print(s, flush=True))
    res = quantization_study(opts.model, budget=budget, group_size=opts.group_size, bits=opts.bits,
                             granularity=opts.granularity or "linear", importance=opts.importance,
                             n_random=opts.n_random, anchors=tuple(opts.anchors), aligned=tuple(opts.aligned),
                             include_embedding=opts.include_embedding, n_calib=opts.n_seq, seq_len=opts.seq_len,
                             n_prompts=opts.n_prompts, seed=opts.seed,
                             save_dir=None if (out is None or opts.no_save) else out / "models",
                             progress=not (opts.no_progress or opts.json), log=log)
    d = res.to_dict()
    if out is not None:
        write_study(out, d, run_record("quantize --study", args=opts, seed=opts.seed, summary=res.summary,
                                       verdict=res.verdict, elapsed_s=res.seconds),
                    fig=plot_llm_quantization(res)[0], stem="quantization")
    acc = res.accounting
    text = (f"{res.verdict}\nquantized {acc['quantized_params']:,} of {acc['total_params']:,} parameters "
            f"({acc['quantized_share']:.1%}); left out: {sum(acc['left_out'].values()):,} "
            f"({', '.join(list(acc['left_out'])[:3])}, ...)\ntime: search {res.seconds['search']:.0f} s, "
            f"evaluation {res.seconds['evaluation']:.0f} s, total {res.seconds['total']:.0f} s")
    return EditResult("quantize", "hf", d, text=text)
