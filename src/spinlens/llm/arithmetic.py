"""Arithmetic in a pretrained LM (Zhang et al., ICML 2024, arXiv 2409.01659): accuracy, and the few heads and
MLPs that carry operand information to the answer.

- `arithmetic_task`: prompts ``"a + b = "``, ``"a - b = "``, ``"a * b = "`` (format ``"symbolic"``) or
  ``"What is a plus b? Answer: "`` (format ``"words"``), operands of a given number of digits, each with a
  corrupted prompt (same operation and digit counts, other operands, whose answer starts with another token).
- `arithmetic_accuracy`: greedy answers, exact match of the whole number, by operation and digit count.
- `locate_components`: on prompts the model answers correctly (first answer token), each head's clean output at
  the answer position patched into the corrupted run (metric: logit difference between the clean and the
  corrupted answer's first token), computed exactly for the candidates that attribution patching ranks highest;
  heads above ``head_threshold`` are located. Then activation patching of the MLP outputs from the first located
  head's layer on, and the MLPs above ``mlp_threshold``. Returns `LocatedComponents` (``heads``, ``mlps``), the
  components that ``spinlens pinpoint --task arithmetic`` tunes. ``method="direct"`` scores heads by path
  patching to the logits instead (`spinlens.interp.patching.direct_path_patch`).
- `operand_attention`: attention of heads from the answer position to the operand, operator and other tokens.

Whether a space before the answer is part of the prompt follows the tokenizer: where ``" 7"`` is two tokens
(a space, then the digit; SmolLM2) the prompt ends with the space and the answer is the digits, so the
answer's first token is its first digit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
from spinlens.llm.tasks import TextTask, tokenize_task
from spinlens.random import as_generator
from spinlens.verdict import mean_sd

if TYPE_CHECKING:
    import xarray as xr

    from spinlens.results import StudyReport

__all__ = ["OPERATIONS", "FORMATS", "arithmetic_task", "arithmetic_accuracy", "LocatedComponents",
           "locate_components", "operand_attention", "answer_space_in_prompt", "ArithmeticResult", "arithmetic_study",
           "arithmetic_report"]

OPERATIONS = {"+": "plus", "-": "minus", "*": "times"}
FORMATS = {"symbolic": "{a} {op} {b} =", "words": "What is {a} {word} {b}? Answer:"}


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def answer_space_in_prompt(tokenizer) -> bool:
    """True where ``" 7"`` tokenizes to a lone space and the digit (the space then ends the prompt)."""
    if tokenizer is None:
        return False
    ids = tokenizer(" 7", add_special_tokens=False)["input_ids"]
    return len(ids) == 2 and tokenizer.decode([ids[0]]).strip() == ""


def _operands(g, op: str, d: int) -> tuple[int, int]:
    lo, hi = (0 if d == 1 else 10 ** (d - 1)), 10**d - 1
    a, b = int(g.integers(lo, hi + 1)), int(g.integers(lo, hi + 1))
    if op == "-" and b > a:  # non-negative results, as in the paper
        a, b = b, a
    return a, b


def arithmetic_task(
    n_prompts: int,
    *,
    operations: Sequence[str] = ("+", "-", "*"),
    digits: int | Sequence[int] = (1, 2),
    fmt: str = "symbolic",
    shots: int = 0,
    tokenizer=None,
    rng=0,
) -> TextTask:
    """Arithmetic prompts with answers, corrupted prompts (other operands) and the corrupted answers as foils.

    Parameters
    ----------
    n_prompts : int
        Prompts; the operation and the digit count are cycled (balanced), operands drawn uniformly.
    operations : subset of ``{"+", "-", "*"}``
    digits : int or list of int (1..4)
        Digits of both operands (a 1-digit operand is 0..9). Subtraction keeps ``a >= b``.
    fmt : {"symbolic", "words"}
        ``"12 + 25 ="`` or ``"What is 12 plus 25? Answer:"``.
    shots : int
        Solved examples (same operation and digit count, same format, one per line) before the question; the
        corrupted prompt shares them.
    tokenizer : optional
        Decides whether the space before the answer ends the prompt (`answer_space_in_prompt`).
    rng : seed or Generator

    Returns
    -------
    TextTask with meta ``operation``, ``digits``, ``a``, ``b``, ``result``, ``format``, ``spans`` (character
    spans of operand a, the operator and operand b in the prompt).
    """
    n = check_int("n_prompts", n_prompts, low=1)
    shots = check_int("shots", shots, low=0, high=16)
    ops = [check_choice("operation", o, tuple(OPERATIONS)) for o in operations]
    if not ops:
        raise InvalidParameterError("The 'operations' parameter must name at least one of '+', '-', '*'.")
    ds = [digits] if isinstance(digits, int) else list(digits)
    ds = [check_int("digits", d, low=1, high=4) for d in ds]
    if not ds:
        raise InvalidParameterError("The 'digits' parameter must hold at least one digit count (1..4).")
    check_choice("fmt", fmt, tuple(FORMATS))
    space = answer_space_in_prompt(tokenizer)
    g = as_generator(rng)
    prompts, answers, corrupt, wrong = [], [], [], []
    meta: dict[str, list] = {k: [] for k in ("operation", "digits", "a", "b", "result", "format", "spans")}
    combos = [(o, d) for d in ds for o in ops]
    for i in range(n):
        op, d = combos[i % len(combos)]
        a, b = _operands(g, op, d)
        r = _apply(op, a, b)
        for _ in range(1000):  # corrupted operands whose answer starts with another digit
            a2, b2 = _operands(g, op, d)
            r2 = _apply(op, a2, b2)
            if str(r2)[0] != str(r)[0]:
                break
        else:  # pragma: no cover - only for degenerate digit ranges
            raise InvalidParameterError(f"Cannot draw corrupted operands for {a} {op} {b} with {d} digits.")
        demos = ""
        for _ in range(shots):
            x, y = _operands(g, op, d)
            demos += _prompt(fmt, op, x, y, True)[0] + f"{_apply(op, x, y)}\n"
        p, spans = _prompt(fmt, op, a, b, space, demos)
        prompts.append(p)
        corrupt.append(_prompt(fmt, op, a2, b2, space, demos)[0])
        answers.append(("" if space else " ") + str(r))
        wrong.append(("" if space else " ") + str(r2))
        for k, v in (("operation", op), ("digits", d), ("a", a), ("b", b), ("result", r), ("format", fmt),
                     ("spans", spans)):
            meta[k].append(v)
    src = f"spinlens.llm.arithmetic.arithmetic_task(ops={''.join(ops)}, digits={ds}, fmt={fmt}, shots={shots}, seed={rng})"
    return TextTask("arithmetic", prompts, answers, corrupt, wrong, meta, src)


def _prompt(fmt: str, op: str, a: int, b: int, space: bool, demos: str = "") -> tuple[str, dict]:
    p = demos + FORMATS[fmt].format(a=a, b=b, op=op, word=OPERATIONS[op]) + (" " if space else "")
    ia = p.index(str(a), len(demos))
    opstr = op if fmt == "symbolic" else OPERATIONS[op]
    io = p.index(" " + opstr, ia + len(str(a))) + 1
    ib = p.index(str(b), io + len(opstr))
    return p, {"a": (ia, ia + len(str(a))), "op": (io, io + len(opstr)), "b": (ib, ib + len(str(b)))}


# ------------------------------------------------------------------------------------------- accuracy
@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int) -> list[str]:
    """Greedy continuations (``max_new_tokens`` tokens, decoded) of each prompt; prompts of equal token length
    run as one batch."""
    enc = [list(tokenizer(p)["input_ids"]) for p in prompts]
    out: list[str] = [""] * len(prompts)
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(enc):
        groups.setdefault(len(ids), []).append(i)
    hf = getattr(model, "hf", None)
    for idx in groups.values():
        x = torch.tensor([enc[i] for i in idx])
        if hf is not None and hasattr(hf, "generate"):  # HF models: greedy decoding with a kv cache
            pad = hf.generation_config.pad_token_id
            pad = pad if pad is not None else hf.generation_config.eos_token_id
            pad = pad[0] if isinstance(pad, (list, tuple)) else pad
            gen = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                              do_sample=False, pad_token_id=pad, top_p=None, top_k=None, temperature=None)[:, x.shape[1]:]
        else:
            new = []
            for _ in range(max_new_tokens):
                nxt = model(x)[:, -1].argmax(-1)
                new.append(nxt)
                x = torch.cat([x, nxt[:, None]], 1)
            gen = torch.stack(new, 1)
        for k, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[k].tolist())
    return out


_NUM = re.compile(r"^\s*(-?\d+)")


def parse_number(text: str) -> int | None:
    m = _NUM.match(text)
    return int(m.group(1)) if m else None


def arithmetic_accuracy(model, tokenizer, task: TextTask) -> dict:
    """Exact-match accuracy of the greedy answers of ``task`` (an `arithmetic_task`).

    Returns ``{"accuracy": float, "correct": [bool per prompt], "by": {(operation, digits): accuracy},
    "n": {(operation, digits): count}, "generated": [str]}``.
    """
    res = task.meta["result"]
    max_new = max(len(str(r)) for r in res) + 1
    gen = greedy_answers(model, tokenizer, task.prompts, max_new_tokens=max_new)
    correct = [parse_number(s) == r for s, r in zip(gen, res)]
    by: dict = {}
    for c, o, d in zip(correct, task.meta["operation"], task.meta["digits"]):
        by.setdefault((o, d), []).append(c)
    return {"accuracy": float(np.mean(correct)), "correct": correct, "generated": gen,
            "by": {k: float(np.mean(v)) for k, v in sorted(by.items())}, "n": {k: len(v) for k, v in sorted(by.items())}}


# ------------------------------------------------------------------------------------------- locating
@dataclass(frozen=True)
class LocatedComponents:
    """Heads and MLPs that carry arithmetic (output of `locate_components`).

    Attributes
    ----------
    heads : tuple of (layer, head)
        Heads with score ``>= head_threshold``, strongest first.
    mlps : tuple of int
        MLP layers at or after the first located head's layer with activation-patching score ``>= mlp_threshold``.
    head_scores : xarray.DataArray ``(layer, head)``
        Score of every head (normalised logit-difference recovery; ``attrs["method"]``: ``"total"``, the clean
        ``z`` at the answer position patched into the corrupted run, exact for the attribution-patching
        candidates and 0 for the rest; or ``"direct"``, path patching to the logits).
    mlp_scores : xarray.DataArray ``(layer,)``
        Activation-patching score of every MLP output from the first located head's layer on (NaN below).
    attention : dict
        Mean attention of each located head from the answer position to ``a``, ``op``, ``b`` and ``other``.
    n_prompts : int
        Prompts used (those the model answered correctly, first token).
    n_heads_total : int
    fraction_heads : float
        ``len(heads) / n_heads_total``.
    head_threshold, mlp_threshold : float
    recovery : float
        Normalised logit-difference recovery when the located heads all take their clean ``z`` at the answer
        position in the corrupted run (their joint total effect).
    recovery_random : tuple of float
        The same for random sets of as many heads (``n_random`` draws).
    logit_diff_clean, logit_diff_corrupt : float
        Mean logit difference (clean answer − corrupted answer, first token) on the clean and corrupted prompts.
    source : str
    """

    heads: tuple
    mlps: tuple
    head_scores: xr.DataArray
    mlp_scores: xr.DataArray
    attention: dict
    n_prompts: int
    n_heads_total: int
    fraction_heads: float
    head_threshold: float
    mlp_threshold: float
    logit_diff_clean: float
    logit_diff_corrupt: float
    source: str = ""
    dropped: dict = field(default_factory=dict)
    recovery: float = float("nan")
    recovery_random: tuple = ()

    def to_dict(self) -> dict:
        r = np.asarray(self.recovery_random, dtype=float)
        return {
            "recovery": self.recovery,
            "recovery_random": {"mean": mean_sd(r)[0] if len(r) else None,
                                "sd": mean_sd(r)[1] if len(r) else None, "values": r.tolist()},
            "heads": [list(h) for h in self.heads],
            "head_scores_of_located": [float(self.head_scores.values[L, h]) for L, h in self.heads],
            "mlps": list(self.mlps),
            "mlp_scores_of_located": [float(self.mlp_scores.values[L]) for L in self.mlps],
            "attention": {f"{L}.{h}": v for (L, h), v in self.attention.items()},
            "n_prompts": self.n_prompts, "n_heads_total": self.n_heads_total, "fraction_heads": self.fraction_heads,
            "head_threshold": self.head_threshold, "mlp_threshold": self.mlp_threshold,
            "logit_diff_clean": self.logit_diff_clean, "logit_diff_corrupt": self.logit_diff_corrupt,
            "source": self.source, "n_dropped": len(self.dropped),
        }


def _first_token_correct(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(batch.clean)[:, -1].argmax(-1) == batch.answer


def correct_batches(model, tokenizer, task: TextTask):
    """The equal-length batches of ``task`` restricted to prompts whose clean answer's first token is the model's
    top token (``(batches, dropped)``). Raises one line if the model answers none correctly."""
    from spinlens.llm.tasks import TokenBatch

    tt = tokenize_task(task, tokenizer, single_token=False)  # multi-digit answers: scored by their first token
    out = []
    for b in tt.batches:
        keep = torch.nonzero(_first_token_correct(model, b))[:, 0]
        if len(keep):
            out.append(TokenBatch(clean=b.clean[keep], answer=b.answer[keep], index=b.index[keep],
                                  corrupt=None if b.corrupt is None else b.corrupt[keep],
                                  wrong=None if b.wrong is None else b.wrong[keep]))
    if not out:
        raise InvalidParameterError(f"The task {task.name!r}: the model answers none of its {len(task)} prompts "
                                    "correctly (first answer token), so there is nothing to locate.")
    return out, tt.dropped


def operand_attention(model, tokenizer, task: TextTask, batches, heads) -> dict:
    """Mean attention of ``heads`` from the last position to the tokens of operand a, the operator, operand b,
    and everything else (``{(L, h): {"a", "op", "b", "other"}}``), over the prompts of ``batches``."""
    from spinlens.vocabulary import act_name

    layers = sorted({L for L, _ in heads})
    if not layers:
        return {}
    sums: dict = {hd: {k: 0.0 for k in ("a", "op", "b")} for hd in heads}
    n = 0
    for batch in batches:
        with torch.no_grad():
            _, cache = model.run_with_cache(batch.clean, names_filter=[act_name("pattern", L) for L in layers],
                                            positions=-1)
        T = batch.clean.shape[1]
        masks = {k: torch.zeros(len(batch), T) for k in ("a", "op", "b")}
        for r, i in enumerate(batch.index.tolist()):
            offs = tokenizer(task.prompts[i], return_offsets_mapping=True)["offset_mapping"]
            for k, (s, e) in task.meta["spans"][i].items():
                for t, (ts, te) in enumerate(offs):
                    if te > s and ts < e and te > ts:
                        masks[k][r, t] = 1.0
        for L, h in heads:
            p = cache[act_name("pattern", L)][:, h, -1].float()  # [b, k]
            for k, m in masks.items():
                sums[(L, h)][k] += float((p * m).sum())
        n += len(batch)
    out = {}
    for hd, d in sums.items():
        d = {k: v / n for k, v in d.items()}
        d["other"] = 1.0 - sum(d.values())
        out[hd] = d
    return out


def _pool(vals_per_batch, refs, sizes) -> np.ndarray:
    """One normalisation over length groups: ``Σ n_g (m_g - m_b,g) / Σ n_g (m_s,g - m_b,g)``."""
    num = sum(n * (v - mb) for v, (mb, _), n in zip(vals_per_batch, refs, sizes))
    den = sum(n * (ms - mb) for (mb, ms), n in zip(refs, sizes))
    return num / den


def _last_pos_head_patch(model, batch, heads, metric, refs, max_batch) -> np.ndarray:
    """Metric means with each head's clean ``z`` patched into the corrupted run at the last position only."""
    from spinlens.interp.patching import _hook_name, _variant_means, run_variants

    layers = sorted({L for L, _ in heads})
    names = {L: _hook_name("z", L) for L in layers}
    with torch.no_grad():
        _, cc = model.run_with_cache(batch.clean, names_filter=list(names.values()))
    outs, _ = run_variants(model, batch.corrupt, [[(names[L], (-1, h), cc[names[L]])] for L, h in heads],
                           max_batch=max_batch, reduce=metric)
    return _variant_means(outs)


def locate_components(
    model,
    tokenizer,
    *,
    operations: Sequence[str] = ("+", "-", "*"),
    n_digits: int = 2,
    n_prompts: int = 64,
    fmt: str = "symbolic",
    shots: int = 3,
    seed: int = 0,
    head_threshold: float = 0.05,
    mlp_threshold: float = 0.1,
    method: str = "total",
    n_candidates: int = 24,
    max_batch: int = 256,
    n_random: int = 5,
    task: TextTask | None = None,
) -> LocatedComponents:
    """Locate the heads (and the MLPs after them) that move operand information to the answer position.

    Parameters
    ----------
    model : HookedHF
        E.g. ``load_hf("smollm2-135m")``.
    tokenizer : the model's tokenizer
    operations, n_digits, n_prompts, fmt, shots, seed
        The `arithmetic_task` the components are located on (ignored when ``task`` is given); only prompts the
        model answers correctly (first answer token) are used, pooled over their token-length groups.
    head_threshold : float
        A head is located if its score (normalised recovery of the clean logit difference) is at least this.
    mlp_threshold : float
        An MLP (layer >= the first located head's layer) is located if patching its clean output into the
        corrupted run recovers at least this fraction of the logit difference.
    method : {"total", "direct"}
        ``"total"``: the head's clean output at the answer position patched into the corrupted run (activation
        patching of ``z`` at the last position: its effect through every later head and MLP), computed exactly
        for the ``n_candidates`` heads with the largest attribution-patching estimate
        (`spinlens.interp.attribution.head_attribution` restricted to the last position), 0 for the others.
        ``"direct"``: path patching to the logits only (`direct_path_patch`; every head, exact).
    n_random : int
        Random head sets (seeded by ``seed``) for the joint-recovery baseline.

    Returns
    -------
    LocatedComponents (``.heads`` ``[(layer, head), ...]``, ``.mlps`` ``[layer, ...]``).

    Raises
    ------
    InvalidParameterError
        When the model answers none of the prompts correctly (one line).
    """
    import xarray as xr

    from spinlens.interp.attribution import head_attribution
    from spinlens.interp.metrics import logit_diff_metric
    from spinlens.interp.patching import _hook_name, _variant_means, direct_path_patch, run_variants

    check_float("head_threshold", head_threshold, low=0)
    check_float("mlp_threshold", mlp_threshold, low=0)
    check_choice("method", method, ("total", "direct"))
    check_int("n_candidates", n_candidates, low=1)
    if task is None:
        task = arithmetic_task(n_prompts, operations=operations, digits=n_digits, fmt=fmt, shots=shots,
                               tokenizer=tokenizer, rng=seed)
    batches, dropped = correct_batches(model, tokenizer, task)
    metrics = [logit_diff_metric(b.answer, b.wrong) for b in batches]
    sizes = [len(b) for b in batches]
    nL, nH = model.cfg.n_layers, model.cfg.n_heads
    n_tot = nL * nH
    direct = [direct_path_patch(model, b.clean, b.corrupt, metric=m) for b, m in zip(batches, metrics)]
    refs = [(r.metric_base, r.metric_source) for r in direct]
    if method == "direct":
        v = _pool([r.metric_base + r.scores.values * (r.metric_source - r.metric_base) for r in direct], refs, sizes)
    else:
        att = _pool([r.metric_base + head_attribution(model, b.clean, b.corrupt, metric=m, position=-1).scores.values
                     * (r.metric_source - r.metric_base) for b, m, r in zip(batches, metrics, direct)], refs, sizes)
        cand = [tuple(int(x) for x in np.unravel_index(i, att.shape)) for i in np.argsort(-att, axis=None)[:n_candidates]]
        exact = _pool([_last_pos_head_patch(model, b, cand, m, r, max_batch) for b, m, r in zip(batches, metrics, refs)],
                      refs, sizes)
        v = np.zeros((nL, nH))
        for (L, h), x in zip(cand, exact):
            v[L, h] = x
    order = np.argsort(-v, axis=None)
    heads = tuple((int(L), int(h)) for L, h in (np.unravel_index(i, v.shape) for i in order) if v[L, h] >= head_threshold)
    first = min((L for L, _ in heads), default=nL)
    mlp_v = np.full(nL, np.nan)  # MLPs from the first located head's layer on ("the MLPs after them")
    if first < nL:
        names = [_hook_name("mlp_out", L) for L in range(first, nL)]
        per = []
        for b, m in zip(batches, metrics):
            with torch.no_grad():
                _, cc = model.run_with_cache(b.clean, names_filter=names)
            outs, _ = run_variants(model, b.corrupt, [[(n, (), cc[n])] for n in names], max_batch=max_batch, reduce=m)
            per.append(_variant_means(outs))
        mlp_v[first:] = _pool(per, refs, sizes)
    mlps = tuple(int(L) for L in range(first, nL) if mlp_v[L] >= mlp_threshold)
    attn = operand_attention(model, tokenizer, task, batches, heads)

    rec = float("nan")
    rand: tuple[float, ...] = ()
    if heads:
        g = np.random.default_rng(seed)
        sets = [list(heads)] + [[(int(i) // nH, int(i) % nH) for i in g.choice(n_tot, size=len(heads), replace=False)]
                                for _ in range(n_random)]
        r = _pool([_joint_last_pos_patch(model, b, sets, m, max_batch) for b, m in zip(batches, metrics)], refs, sizes)
        rec, rand = float(r[0]), tuple(float(x) for x in r[1:])
    m_b = sum(n * r[0] for n, r in zip(sizes, refs)) / sum(sizes)
    m_s = sum(n * r[1] for n, r in zip(sizes, refs)) / sum(sizes)
    hs_da = xr.DataArray(v, dims=("layer", "head"), coords={"layer": np.arange(nL), "head": np.arange(nH)},
                         name="head_score", attrs={"long_name": f"head score ({method})", "method": method})
    mlp_scores = xr.DataArray(mlp_v, dims=("layer",), coords={"layer": np.arange(nL)}, name="mlp_patching_score",
                              attrs={"long_name": "MLP activation-patching score (NaN below the first located head)"})
    return LocatedComponents(heads, mlps, hs_da, mlp_scores, attn, int(sum(sizes)), n_tot, len(heads) / n_tot,
                             float(head_threshold), float(mlp_threshold), m_s, m_b, task.source, dropped, rec, rand)


def _joint_last_pos_patch(model, batch, head_sets, metric, max_batch) -> np.ndarray:
    """Metric means with all heads of each set given their clean ``z`` at the last position together."""
    from spinlens.interp.patching import _hook_name, _variant_means, run_variants

    layers = sorted({L for hs in head_sets for L, _ in hs})
    names = {L: _hook_name("z", L) for L in layers}
    with torch.no_grad():
        _, cc = model.run_with_cache(batch.clean, names_filter=list(names.values()))
    variants = []
    for hs in head_sets:
        by: dict = {}
        for L, h in hs:
            by.setdefault(L, []).append(h)
        variants.append([(names[L], (-1, sorted(h)), cc[names[L]]) for L, h in sorted(by.items())])
    outs, _ = run_variants(model, batch.corrupt, variants, max_batch=max_batch, reduce=metric)
    return _variant_means(outs)


# ------------------------------------------------------------------------------------------- study
@dataclass(frozen=True)
class ArithmeticResult:
    """Result of `arithmetic_study`.

    Attributes
    ----------
    accuracy : dict
        ``"fmt op digits"`` → per-seed accuracies (exact match of the greedy answer), plus ``"fmt all"``.
    located : dict
        seed → `LocatedComponents`.
    seeds : tuple of int
    """

    accuracy: dict
    located: dict
    seeds: tuple
    n_prompts: int
    shots: int

    def heads_all_seeds(self) -> list:
        sets = [set(lc.heads) for lc in self.located.values()]
        return sorted(set.intersection(*sets)) if sets else []

    @property
    def verdict(self) -> str:
        fr = np.array([lc.fraction_heads for lc in self.located.values()])
        rec = np.array([lc.recovery for lc in self.located.values()])
        rnd = np.array([np.mean(lc.recovery_random) if lc.recovery_random else np.nan for lc in self.located.values()])
        k = len(self.heads_all_seeds())
        return (f"{fr.mean():.1%} ± {mean_sd(fr)[1]:.1%} of the heads located (paper: under 5 %), "
                f"{k} in every seed; together they recover {rec.mean():.2f} ± {mean_sd(rec)[1]:.2f} "
                f"of the logit difference directly, random sets of as many heads {np.nanmean(rnd):.2f}")

    def to_dict(self) -> dict:
        acc = {k: {**dict(zip(("mean", "sd"), mean_sd(v))), "values": list(v)} for k, v in self.accuracy.items()}
        fr = np.array([lc.fraction_heads for lc in self.located.values()])
        return {"accuracy": acc, "located": {str(s): lc.to_dict() for s, lc in self.located.items()},
                "heads_all_seeds": [f"{L}.{h}" for L, h in self.heads_all_seeds()],
                "fraction_heads": dict(zip(("mean", "sd"), mean_sd(fr))),
                "seeds": list(self.seeds), "n_prompts": self.n_prompts, "shots": self.shots, "verdict": self.verdict}

    def dataset(self):
        """Head scores ``(seed, layer, head)``, MLP scores ``(seed, layer)`` and accuracies as an xarray Dataset."""
        import xarray as xr

        seeds = list(self.located)
        hs = xr.concat([self.located[s].head_scores for s in seeds], dim=xr.DataArray(seeds, dims="seed", name="seed"))
        ms = xr.concat([self.located[s].mlp_scores for s in seeds], dim=xr.DataArray(seeds, dims="seed", name="seed"))
        keys = list(self.accuracy)
        acc = xr.DataArray(np.array([self.accuracy[k] for k in keys], dtype=float), dims=("setting", "seed_index"),
                           coords={"setting": keys}, name="accuracy")
        return xr.Dataset({"head_score": hs, "mlp_score": ms, "accuracy": acc})


def arithmetic_study(model, tokenizer, *, operations=("+", "-", "*"), digits=(1, 2), locate_digits: int = 2,
                     n_prompts: int = 48, shots: int = 3, seeds=(0, 1, 2), formats=("symbolic", "words"),
                     head_threshold: float = 0.05, mlp_threshold: float = 0.1, progress=None) -> ArithmeticResult:
    """Accuracy by format, operation and digit count over ``seeds``, and `locate_components` on each seed."""
    say = progress or (lambda s: None)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise InvalidParameterError("The 'seeds' parameter must hold at least one seed.")
    acc: dict = {}
    for sd in seeds:
        for fmt in formats:
            t = arithmetic_task(n_prompts, operations=operations, digits=digits, fmt=fmt, shots=shots,
                                tokenizer=tokenizer, rng=sd)
            a = arithmetic_accuracy(model, tokenizer, t)
            acc.setdefault(f"{fmt} all", []).append(a["accuracy"])
            for (o, d), v in a["by"].items():
                acc.setdefault(f"{fmt} {o} {d}-digit", []).append(v)
            say(f"seed {sd}, {fmt}: accuracy {a['accuracy']:.3f}")
    located = {}
    for sd in seeds:
        located[sd] = locate_components(model, tokenizer, operations=operations, n_digits=locate_digits,
                                        n_prompts=n_prompts, shots=shots, seed=sd, head_threshold=head_threshold,
                                        mlp_threshold=mlp_threshold)
        say(f"seed {sd}: {len(located[sd].heads)} heads, {len(located[sd].mlps)} MLPs located on "
            f"{located[sd].n_prompts} correct prompts")
    return ArithmeticResult(acc, located, seeds, int(n_prompts), int(shots))


def arithmetic_report(model: str, *, operations: str | Sequence[str] = "+,-,*", digits: str | Sequence[int] = "1,2",
                      locate_digits: int = 2, n_prompts: int = 48, shots: int = 3, seed: int = 0, n_seeds: int = 3,
                      head_threshold: float = 0.05, mlp_threshold: float = 0.1, progress=None) -> StudyReport:
    """``spinlens interp arithmetic``: check the options (``operations``, ``digits``: comma-separated or
    sequences), load ``model`` (a named pretrained model or a Hugging Face folder), run `arithmetic_study` on
    seeds ``seed .. seed + n_seeds - 1`` and return its `spinlens.experiment.StudyReport` (``to_dict()`` with the
    model, the headline table, the figure and data ``arithmetic``)."""
    from spinlens.llm.tasks import load_model_and_tokenizer
    from spinlens.results import StudyReport

    spec = operations if isinstance(operations, str) else ",".join(operations)
    ops = tuple(o.strip() for o in spec.split(",") if o.strip())
    for o in ops:
        if o not in OPERATIONS:
            raise InvalidParameterError(f"The 'operations' parameter must be a comma-separated subset of + - *. Got {spec!r} instead.")
    spec = digits if isinstance(digits, str) else ",".join(map(str, digits))
    try:
        ds = tuple(int(x) for x in spec.split(","))
    except ValueError:
        raise InvalidParameterError(f"The 'digits' parameter must be comma-separated integers 1..4. Got {spec!r} instead.") from None
    for x in ds:
        check_int("digits", x, low=1, high=4)
    check_int("locate-digits", locate_digits, low=1, high=4)
    n = check_int("n-prompts", n_prompts, low=2)
    check_int("shots", shots, low=0, high=16)
    check_int("seed", seed, low=0)
    ns = check_int("n-seeds", n_seeds, low=1, high=20)
    check_float("head-threshold", head_threshold, low=0)
    check_float("mlp-threshold", mlp_threshold, low=0)
    net, tok = load_model_and_tokenizer(model)
    with torch.no_grad():
        res = arithmetic_study(net, tok, operations=ops, digits=ds, locate_digits=locate_digits, n_prompts=n,
                               shots=shots, seeds=tuple(range(seed, seed + ns)), head_threshold=head_threshold,
                               mlp_threshold=mlp_threshold, progress=progress)
    d = res.to_dict()
    d["model"] = model
    rows = [("model", model)]
    for key, v in d["accuracy"].items():
        rows.append((f"accuracy {key}", f"{v['mean']:.3f} ± {v['sd']:.3f}"))
    for s, lc in d["located"].items():
        rows.append((f"seed {s}: heads ({lc['fraction_heads']:.1%} of {lc['n_heads_total']})",
                     " ".join(f"{L}.{h}" for L, h in lc["heads"]) or "-"))
        rows.append((f"seed {s}: MLPs", " ".join(map(str, lc["mlps"])) or "-"))
    rows += [("heads located in every seed", " ".join(d["heads_all_seeds"]) or "-"),
             ("fraction of heads (mean ± sd)", f"{d['fraction_heads']['mean']:.3%} ± {d['fraction_heads']['sd']:.3%}"),
             ("verdict", d["verdict"])]
    from spinlens.plotting import interp as P

    return StudyReport("interp arithmetic", d, rows, figures={"arithmetic": lambda: P.plot_arithmetic(res)},
                       data={"arithmetic": res.dataset()})
