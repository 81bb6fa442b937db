"""Arithmetic in a pretrained LM (Zhang et al., ICML 2024, arXiv 2409.01659): accuracy, and the few heads and
MLPs that carry operand information to the answer.

- `arithmetic_task`: prompts ``"a + b = "``, ``"a - b = "``, ``"a * b = "`` (format ``"symbolic"``) or
  ``"What is a plus b? Answer: "`` (format ``"words"``), operands of a given number of digits, each with a
  corrupted prompt (same operation and digit counts, other operands, whose answer starts with another token).
- `arithmetic_accuracy`: greedy answers, exact match of the whole number, by operation and digit count.
- `locate_components`: on prompts the model answers correctly, the direct path-patching score of every head
  to the logits (`spinlens.interp.patching.direct_path_patch`: the head's output from the clean run, everything
  else frozen at the corrupted run; metric: logit difference between the clean and the corrupted answer's
  first token), heads above ``head_threshold``; then activation patching of every MLP output, and the MLPs
  in or after the first located head's layer above ``mlp_threshold``. Returns `LocatedComponents`
  (``heads``, ``mlps``), the components that ``spinlens pinpoint --task arithmetic`` tunes.
- `operand_attention`: attention of heads from the answer position to the operand, operator and other tokens.

Whether a space before the answer is part of the prompt follows the tokenizer: where ``" 7"`` is two tokens
(a space, then the digit; SmolLM2) the prompt ends with the space and the answer is the digits, so the
answer's first token is its first digit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
from spinlens.llm.tasks import TextTask, tokenize_task
from spinlens.random import as_generator

__all__ = ["OPERATIONS", "FORMATS", "arithmetic_task", "arithmetic_accuracy", "LocatedComponents",
           "locate_components", "operand_attention", "answer_space_in_prompt", "ArithmeticResult", "arithmetic_study",
           "joint_direct_recovery"]

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
        Heads with direct path-patching score ``>= head_threshold`` to the logits, strongest first.
    mlps : tuple of int
        MLP layers at or after the first located head's layer with activation-patching score ``>= mlp_threshold``.
    head_scores : xarray.DataArray ``(layer, head)``
        Direct path-patching score of every head (normalised logit-difference recovery).
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
        Normalised logit-difference recovery when the located heads' outputs (all of them together) go from the
        corrupted to the clean run with everything else frozen (their joint direct effect).
    recovery_random : tuple of float
        The same for random sets of as many heads (``n_random`` draws).
    logit_diff_clean, logit_diff_corrupt : float
        Mean logit difference (clean answer − corrupted answer, first token) on the clean and corrupted prompts.
    source : str
    """

    heads: tuple
    mlps: tuple
    head_scores: object
    mlp_scores: object
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
            "recovery_random": {"mean": float(r.mean()) if len(r) else None,
                                "sd": float(r.std(ddof=1)) if len(r) > 1 else None, "values": r.tolist()},
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


def correct_batch(model, tokenizer, task: TextTask):
    """The largest equal-length batch of ``task`` restricted to prompts whose clean answer's first token is the
    model's top token. Raises one line if the model answers none correctly."""
    tt = tokenize_task(task, tokenizer, single_token=False)  # multi-digit answers: scored by their first token
    best = None
    for b in tt.batches:
        ok = _first_token_correct(model, b)
        if int(ok.sum()) == 0:
            continue
        keep = torch.nonzero(ok)[:, 0]
        sub = type(b)(clean=b.clean[keep], answer=b.answer[keep], index=b.index[keep],
                      corrupt=None if b.corrupt is None else b.corrupt[keep],
                      wrong=None if b.wrong is None else b.wrong[keep])
        if best is None or len(sub) > len(best):
            best = sub
    if best is None:
        raise InvalidParameterError(f"The task {task.name!r}: the model answers none of its {len(task)} prompts "
                                    "correctly (first answer token), so there is nothing to locate.")
    return best, tt.dropped


def operand_attention(model, tokenizer, task: TextTask, batch, heads) -> dict:
    """Mean attention of ``heads`` from the last position to the tokens of operand a, the operator, operand b,
    and everything else (``{(L, h): {"a", "op", "b", "other"}}``)."""
    from spinlens.vocabulary import act_name

    layers = sorted({L for L, _ in heads})
    if not layers:
        return {}
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.clean, names_filter=[act_name("pattern", L) for L in layers])
    T = batch.clean.shape[1]
    masks = {k: torch.zeros(len(batch), T) for k in ("a", "op", "b")}
    for r, i in enumerate(batch.index.tolist()):
        enc = tokenizer(task.prompts[i], return_offsets_mapping=True)
        offs = enc["offset_mapping"]
        for k, (s, e) in task.meta["spans"][i].items():
            for t, (ts, te) in enumerate(offs):
                if te > s and ts < e and te > ts:
                    masks[k][r, t] = 1.0
    out = {}
    for L, h in heads:
        p = cache[act_name("pattern", L)][:, h, -1].float()  # [b, k]
        d = {k: float((p * m).sum(-1).mean()) for k, m in masks.items()}
        d["other"] = 1.0 - sum(d.values())
        out[(L, h)] = d
    return out


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
    max_batch: int = 1024,
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
        model answers correctly (first answer token) are used, from the largest group of equal token length.
    head_threshold : float
        A head is located if its direct path-patching score (normalised recovery of the clean logit difference)
        is at least this.
    mlp_threshold : float
        An MLP (layer >= the first located head's layer) is located if patching its clean output into the
        corrupted run recovers at least this fraction of the logit difference.
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

    from spinlens.interp.metrics import logit_diff_metric
    from spinlens.interp.patching import _hook_name, _metric_means, direct_path_patch, run_variants

    check_float("head_threshold", head_threshold, low=0)
    check_float("mlp_threshold", mlp_threshold, low=0)
    if task is None:
        task = arithmetic_task(n_prompts, operations=operations, digits=n_digits, fmt=fmt, shots=shots,
                               tokenizer=tokenizer, rng=seed)
    batch, dropped = correct_batch(model, tokenizer, task)
    metric = logit_diff_metric(batch.answer, batch.wrong)
    hs = direct_path_patch(model, batch.clean, batch.corrupt, metric=metric)
    v = hs.scores.values
    order = np.argsort(-v, axis=None)
    heads = tuple((int(L), int(h)) for L, h in (np.unravel_index(i, v.shape) for i in order) if v[L, h] >= head_threshold)
    nL = model.cfg.n_layers
    first = min((L for L, _ in heads), default=nL)
    mlp_v = np.full(nL, np.nan)  # MLPs from the first located head's layer on ("the MLPs after them")
    if first < nL:
        names = [_hook_name("mlp_out", L) for L in range(first, nL)]
        with torch.no_grad():
            _, cc = model.run_with_cache(batch.clean, names_filter=names)
        outs, _ = run_variants(model, batch.corrupt, [[(n, (), cc[n])] for n in names], max_batch=max_batch)
        mlp_v[first:] = (_metric_means(metric, outs) - hs.metric_base) / (hs.metric_source - hs.metric_base)
    mlps = tuple(int(L) for L in range(first, nL) if mlp_v[L] >= mlp_threshold)
    att = operand_attention(model, tokenizer, task, batch, heads)
    n_tot = model.cfg.n_layers * model.cfg.n_heads
    mlp_scores = xr.DataArray(mlp_v, dims=("layer",), coords={"layer": np.arange(nL)}, name="mlp_patching_score",
                              attrs={"long_name": "MLP activation-patching score (NaN below the first located head)"})
    rec = joint_direct_recovery(model, batch, heads, metric)
    g = np.random.default_rng(seed)
    rand = tuple(joint_direct_recovery(model, batch, [(int(i) // model.cfg.n_heads, int(i) % model.cfg.n_heads)
                                                      for i in g.choice(n_tot, size=len(heads), replace=False)], metric)
                 for _ in range(n_random)) if heads else ()
    return LocatedComponents(heads, mlps, hs.scores, mlp_scores, att, len(batch), n_tot, len(heads) / n_tot,
                             float(head_threshold), float(mlp_threshold), hs.metric_source, hs.metric_base,
                             task.source, dropped, rec, rand)


def joint_direct_recovery(model, batch, heads, metric) -> float:
    """Normalised metric recovery when ``heads`` all take their clean output at the last position while every
    other head and MLP stays at the corrupted run (the joint direct path to the logits)."""
    from spinlens.interp.patching import _hook_name

    nL = model.cfg.n_layers
    res_names = [_hook_name("result", L) for L in range(nL)]
    fin = _hook_name("resid_post", nL - 1)
    with torch.no_grad():
        out_b, cb = model.run_with_cache(batch.corrupt, names_filter=res_names + [fin], positions=-1)
        out_s, cs = model.run_with_cache(batch.clean, names_filter=res_names, positions=-1)
        m_b, m_s = float(metric(out_b).mean()), float(metric(out_s).mean())
        to_resid = getattr(model, "attn_out_from_heads", lambda L, x: x)
        resid = cb[fin][:, -1].clone()
        for L in sorted({L for L, _ in heads}):
            hs = [h for LL, h in heads if LL == L]
            rb = cb[res_names[L]][:, -1]
            new = rb.clone()
            new[:, hs] = cs[res_names[L]][:, -1][:, hs]
            resid += to_resid(L, new.sum(1)) - to_resid(L, rb.sum(1))
        m = float(metric(model.unembed(resid)[:, None]).mean())
    return (m - m_b) / (m_s - m_b)


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
        return (f"{fr.mean():.1%} ± {fr.std(ddof=1) if len(fr) > 1 else 0:.1%} of the heads located (paper: under 5 %), "
                f"{k} in every seed; together they recover {rec.mean():.2f} ± {rec.std(ddof=1) if len(rec) > 1 else 0:.2f} "
                f"of the logit difference directly, random sets of as many heads {np.nanmean(rnd):.2f}")

    def to_dict(self) -> dict:
        acc = {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "values": list(v)}
               for k, v in self.accuracy.items()}
        fr = np.array([lc.fraction_heads for lc in self.located.values()])
        return {"accuracy": acc, "located": {str(s): lc.to_dict() for s, lc in self.located.items()},
                "heads_all_seeds": [f"{L}.{h}" for L, h in self.heads_all_seeds()],
                "fraction_heads": {"mean": float(fr.mean()), "sd": float(fr.std(ddof=1)) if len(fr) > 1 else 0.0},
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
