"""General ability of a pretrained LM, before and after an edit: held-out perplexity and task accuracies.

One evaluation for every method that changes a model (quantization, precise tuning, sycophancy tuning):

* **held-out perplexity** on real text that installs offline: the standard library's docstrings
  (`spinlens.lm.corpus.builtin_corpus` ``"stdlib-docs"``, the text of the trained-LM studies), tokenized by
  the model's tokenizer. `heldout_ids` cuts it into rows of ``seq_len`` tokens; ``part="calib"`` takes them
  from the first half of the token stream, ``part="eval"`` from the second half, so that calibration and
  evaluation never share a token. The text's SHA-256 is recorded (`text_source`).
* **task accuracies**: `task_scores` reads the answer at the last position of each prompt of a
  `spinlens.llm.tasks.TextTask` (argmax over the vocabulary equals the answer's first token) and, where the
  task has foils, the mean logit difference answer − foil.

`general_tasks` builds the tasks: the studies' own task builders where they exist (`spinlens.llm.arithmetic`,
`spinlens.llm.ioi`, `spinlens.llm.recall`), else the small rule-generated stand-ins of this module (arithmetic
``a + b =`` on one-digit sums written in words of digits, IOI from templates); factual recall is left out
(and said so in ``skipped``) when no fact source is installed. `general_ability` returns one flat dict
``{"ppl": ..., "arithmetic_acc": ..., "ioi_acc": ..., "ioi_logit_diff": ..., ...}``: the keys that every
study's ``--json`` and headline use.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from spinlens.errors import InvalidParameterError, check_int

__all__ = ["heldout_ids", "text_source", "task_scores", "GeneralTasks", "general_tasks", "general_ability",
           "arithmetic_standin", "ioi_standin", "perplexity"]

TEXT = "stdlib-docs"
MAX_CHARS = 400_000

# single-token first names of the SmolLM2 / Llama vocabularies (checked by `ioi_standin`, which drops others)
_NAMES = ("Mary", "John", "Tom", "James", "Anna", "Paul", "Sarah", "David", "Emma", "Mike", "Lisa", "Mark",
          "Kate", "Peter", "Laura", "Daniel", "Alice", "Bob", "Jack", "Susan")
_PLACES = ("store", "park", "school", "office", "beach", "station", "garden", "market")
_OBJECTS = ("drink", "book", "ball", "gift", "letter", "key", "ticket", "bag")
_IOI_TEMPLATES = (
    "When {a} and {b} went to the {p}, {b} gave a {o} to",
    "After {a} and {b} arrived at the {p}, {b} handed a {o} to",
    "Then, {a} and {b} had a long day at the {p}. {b} gave a {o} to",
)


def _text() -> str:
    from spinlens.lm.corpus import builtin_corpus

    return builtin_corpus(TEXT, max_chars=MAX_CHARS)


def text_source() -> dict:
    """Provenance of the held-out text: corpus name, characters, SHA-256."""
    t = _text()
    return {"corpus": TEXT, "max_chars": MAX_CHARS, "chars": len(t),
            "sha256": hashlib.sha256(t.encode("utf-8")).hexdigest()}


def heldout_ids(tokenizer, *, n_seq: int = 16, seq_len: int = 128, part: str = "eval"):
    """Token ids (n_seq, seq_len) from the held-out text; ``part`` "calib" (first half) or "eval" (second half)."""
    import torch

    n_seq = check_int("n_seq", n_seq, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    if part not in ("calib", "eval"):
        raise InvalidParameterError(f"The 'part' parameter must be 'calib' or 'eval'. Got {part!r}.")
    ids = np.asarray(tokenizer(_text(), add_special_tokens=False)["input_ids"], dtype=np.int64)
    half = ids.size // 2
    ids = ids[:half] if part == "calib" else ids[half:]
    if ids.size < n_seq * seq_len:
        raise InvalidParameterError(f"The held-out text has {ids.size} tokens in its {part} half; n_seq × seq_len = "
                                    f"{n_seq * seq_len} asked.")
    return torch.as_tensor(ids[: n_seq * seq_len].reshape(n_seq, seq_len))


def perplexity(model, ids, *, batch_size: int = 8) -> float:
    """exp(mean next-token cross-entropy) of an HF causal LM (or `HookedHF`) on ``ids`` (n, T)."""
    import torch

    hf = getattr(model, "hf", model)
    tot, n = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(ids), batch_size):
            x = ids[i: i + batch_size].to(hf.device)
            logits = hf(input_ids=x, use_cache=False).logits[:, :-1].float()
            tot += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                           reduction="sum"))
            n += x[:, 1:].numel()
    return math.exp(tot / n)


def task_scores(model, tokenizer, task, *, batch_size: int = 32) -> dict:
    """``{"acc": fraction of prompts whose top next token is the answer's first token, "logit_diff": mean
    logit(answer) − logit(foil) (NaN without foils), "n": prompts scored, "dropped": prompts dropped}``."""
    import torch

    from spinlens.llm.tasks import tokenize_task

    hf = getattr(model, "hf", model)
    tt = tokenize_task(task, tokenizer, single_token=True, on_bad="drop")
    hits, diffs, n = 0, [], 0
    with torch.inference_mode():
        for b in tt.batches:
            for i in range(0, len(b), batch_size):
                x = b.clean[i: i + batch_size].to(hf.device)
                last = hf(input_ids=x, use_cache=False).logits[:, -1].float().cpu()
                ans = b.answer[i: i + batch_size]
                hits += int((last.argmax(-1) == ans).sum())
                if b.wrong is not None:
                    w = b.wrong[i: i + batch_size]
                    diffs.append((last.gather(1, ans[:, None]) - last.gather(1, w[:, None]))[:, 0])
                n += len(ans)
    ld = float(torch.cat(diffs).mean()) if diffs else float("nan")
    return {"acc": hits / n, "logit_diff": ld, "n": n, "dropped": len(tt.dropped)}


def space_is_separate(tokenizer) -> bool:
    """True when the tokenizer writes " 7" as two tokens, a space and the digit (SmolLM2): then prompts end
    with the space and answers start at the digit."""
    ids = tokenizer(" 7", add_special_tokens=False)["input_ids"]
    return len(ids) > 1 and tokenizer.decode(ids[:1]).strip() == ""


def arithmetic_standin(n: int = 48, *, rng=0, space_token: bool = False):
    """Stand-in arithmetic task: two-shot ``"a + b = c"`` lines, then ``"x + y ="``; sums below 10, so the
    answer is one token in any tokenizer that splits digits. Foil: the sum ± 1. ``space_token``: the
    prompt ends with the space and the answer is the bare digit (`space_is_separate` tokenizers)."""
    from spinlens.llm.tasks import TextTask
    from spinlens.random import as_generator

    g = as_generator(rng)
    prompts, answers, wrong = [], [], []
    for _ in range(check_int("n", n, low=1)):
        shots = []
        for _ in range(2):
            a, b = g.integers(1, 5, size=2)
            shots.append(f"{a} + {b} = {a + b}\n")
        x, y = (int(v) for v in g.integers(1, 5, size=2))
        sp = "" if space_token else " "
        prompts.append("".join(shots) + f"{x} + {y} =" + (" " if space_token else ""))
        answers.append(f"{sp}{x + y}")
        wrong.append(f"{sp}{x + y + 1 if x + y < 9 else x + y - 1}")
    return TextTask("arithmetic", prompts, answers, None, wrong, source=f"spinlens.llm.evaluation.arithmetic_standin rng={rng}")


def ioi_standin(n: int = 48, *, rng=0):
    """Stand-in IOI task: three templates, names from a fixed list, both orders; foil the subject."""
    from spinlens.llm.tasks import TextTask
    from spinlens.random import as_generator

    g = as_generator(rng)
    prompts, answers, wrong = [], [], []
    for k in range(check_int("n", n, low=1)):
        a, b = (str(s) for s in g.choice(_NAMES, size=2, replace=False))
        t = _IOI_TEMPLATES[k % len(_IOI_TEMPLATES)]
        p, o = str(g.choice(_PLACES)), str(g.choice(_OBJECTS))
        if k % 2:
            prompts.append(t.replace("{a} and {b}", "{b} and {a}", 1).format(a=a, b=b, p=p, o=o))
        else:
            prompts.append(t.format(a=a, b=b, p=p, o=o))
        answers.append(f" {a}")
        wrong.append(f" {b}")
    return TextTask("ioi", prompts, answers, None, wrong, source=f"spinlens.llm.evaluation.ioi_standin rng={rng}")


@dataclass
class GeneralTasks:
    """The tasks of the general-ability evaluation, with where each came from and what was skipped."""

    tasks: dict
    sources: dict
    skipped: dict = field(default_factory=dict)


def _study_task(module: str, fn: str, **kw):
    import importlib

    try:
        mod = importlib.import_module(f"spinlens.llm.{module}")
    except ImportError:
        return None
    f = getattr(mod, fn, None)
    if f is None:
        return None
    try:
        return f(**kw)
    except (TypeError, InvalidParameterError):
        return None


def general_tasks(n: int = 48, *, rng=0, tokenizer=None) -> GeneralTasks:
    """Arithmetic, IOI and factual-recall tasks of ``n`` prompts (see the module docstring); ``tokenizer``
    adapts the stand-ins to it (`space_is_separate`)."""
    import functools

    tasks, sources, skipped = {}, {}, {}
    sep = tokenizer is not None and space_is_separate(tokenizer)
    for name, module, fn, standin in (("arithmetic", "arithmetic", "arithmetic_task",
                                       functools.partial(arithmetic_standin, space_token=sep)),
                                      ("ioi", "ioi", "ioi_task", ioi_standin), ("recall", "recall", "recall_task", None)):
        t = _study_task(module, fn, n=n, rng=rng)
        if t is None and standin is not None:
            t = standin(n, rng=rng)
        if t is None:
            skipped[name] = f"no spinlens.llm.{module}.{fn} installed (factual recall needs the fact source)"
            continue
        tasks[name] = t
        sources[name] = t.source
    return GeneralTasks(tasks, sources, skipped)


def general_ability(model, tokenizer, eval_ids, tasks: GeneralTasks) -> dict:
    """``{"ppl": held-out perplexity, "<task>_acc": accuracy, "<task>_logit_diff": mean logit difference}``."""
    out = {"ppl": perplexity(model, eval_ids)}
    for name, t in tasks.tasks.items():
        s = task_scores(model, tokenizer, t)
        out[f"{name}_acc"] = s["acc"]
        if not math.isnan(s["logit_diff"]):
            out[f"{name}_logit_diff"] = s["logit_diff"]
    return out
