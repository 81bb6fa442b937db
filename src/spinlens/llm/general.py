"""General ability of a causal LM: the cost side of every edit (precise tuning, merging, ...).

`general_ability(model, tokenizer)` measures, on small fixed evaluation sets (batched, inference mode):

=====================  ===============================================================================  =========
key                    what                                                                             better
=====================  ===============================================================================  =========
``perplexity``         exp(mean next-token cross-entropy) on held-out real text: ``n_windows`` windows   lower
                       of ``window + 1`` tokens spread evenly over the standard library's help topics
                       (``pydoc_data.topics``, shipped with every Python; `spinlens.lm.corpus`)
``heldout_loss``       the same mean cross-entropy in nats (log of ``perplexity``)                      lower
``ioi_logit_diff``     mean logit(indirect object) − logit(subject) at the last position of IOI prompts  higher
``recall_accuracy``    fraction of factual-recall prompts whose top-1 next token is the answer           higher
``icl_accuracy``       fraction of few-shot in-context-learning prompts answered right (top-1)          higher
=====================  ===============================================================================  =========

None of these sets is ever used for tuning (the tuning tasks of `spinlens.llm.tuning` are arithmetic and
other ICL tasks). The IOI, recall and ICL sets come from `spinlens.llm.ioi`, `spinlens.llm.recall` and
`spinlens.llm.icl` where those modules exist; until then small built-in stand-ins with the same role are used
(`suite.sources` says which): IOI prompts from four templates and single-token names in both orders; 24
country-capital facts; three generated few-shot tasks (letter → upper case, letter → next letter,
word → its first letter). ``model`` is a `spinlens.interp.hf.HookedHF` or any HF causal LM (a peft model too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_int
from spinlens.llm.tasks import TextTask, TokenizedTask, tokenize_task

__all__ = ["GENERAL_KEYS", "GeneralSuite", "build_suite", "general_ability", "lm_logits", "HIGHER_IS_BETTER"]

#: the keys of `general_ability`, in headline order
GENERAL_KEYS = ("perplexity", "heldout_loss", "ioi_logit_diff", "recall_accuracy", "icl_accuracy")
HIGHER_IS_BETTER = {"perplexity": False, "heldout_loss": False, "ioi_logit_diff": True, "recall_accuracy": True,
                    "icl_accuracy": True}


@dataclass
class GeneralSuite:
    """The fixed evaluation sets of `general_ability` for one tokenizer.

    Attributes
    ----------
    text : LongTensor (n_windows, window + 1)
        Held-out text windows (next-token loss on every position).
    ioi, recall, icl : TokenizedTask
    sources : dict {set: where it comes from}
    """

    text: torch.Tensor
    ioi: TokenizedTask
    recall: TokenizedTask
    icl: TokenizedTask
    sources: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- stand-in sets
# (swapped for spinlens.llm.ioi / recall / icl when those land; same role, same TextTask form)

_NAMES = ["Mary", "John", "Tom", "James", "Anna", "Paul", "Kate", "Mark", "Lisa", "David", "Sarah", "Peter"]
_IOI_TEMPLATES = [
    "When {A} and {B} went to the store, {B} gave a drink to",
    "After {A} and {B} went to the park, {B} handed a ball to",
    "Then, {A} and {B} had a long talk. {B} gave a book to",
    "While {A} and {B} were working at the office, {B} passed the keys to",
]
# country -> capital (a stand-in for the recall study's sourced facts)
_CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
             ("Japan", "Tokyo"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Greece", "Athens"),
             ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Portugal", "Lisbon"), ("Norway", "Oslo"),
             ("Sweden", "Stockholm"), ("Ireland", "Dublin"), ("Hungary", "Budapest"), ("Kenya", "Nairobi"),
             ("Peru", "Lima"), ("Cuba", "Havana"), ("Thailand", "Bangkok"), ("Finland", "Helsinki"),
             ("Denmark", "Copenhagen"), ("Belgium", "Brussels"), ("Canada", "Ottawa"), ("China", "Beijing")]


def _ioi_standin(n: int, rng) -> TextTask:
    prompts, answers, wrong, tmpl = [], [], [], []
    for i in range(n):
        t = i % len(_IOI_TEMPLATES)
        a, b = rng.choice(len(_NAMES), size=2, replace=False)
        A, B = _NAMES[a], _NAMES[b]
        prompts.append(_IOI_TEMPLATES[t].format(A=A, B=B))
        answers.append(" " + A)
        wrong.append(" " + B)
        tmpl.append(t)
    return TextTask("ioi", prompts, answers, wrong_answers=wrong, meta={"template": tmpl},
                    source="spinlens.llm.general stand-in: 4 templates, 12 names, both orders")


def _recall_standin() -> TextTask:
    return TextTask("recall", [f"The capital of {c} is" for c, _ in _CAPITALS], [" " + a for _, a in _CAPITALS],
                    source="spinlens.llm.general stand-in: 24 country-capital facts")


def icl_standin_tasks() -> dict:
    """Generated few-shot tasks ``{name: [(input, output), ...]}`` with single-token outputs (the stand-in ICL
    tasks): letter case, alphabet order, and the first / last letter of the built-in names and countries."""
    import string

    low = string.ascii_lowercase
    words = sorted(set(_NAMES) | {c for c, _ in _CAPITALS})
    return {
        "upper": [(c, c.upper()) for c in low],
        "next_letter": [(low[i], low[i + 1]) for i in range(25)],
        "first_letter": [(w, w[0]) for w in words],
        "lower": [(c.upper(), c) for c in low],
        "prev_letter": [(low[i + 1], low[i]) for i in range(25)],
        "last_letter": [(w, w[-1]) for w in words],
    }


def few_shot_task(name: str, pairs, n: int, *, shots: int = 4, rng=None) -> TextTask:
    """``n`` few-shot prompts ``"x1 -> y1\\nx2 -> y2\\n...xq ->"`` with answer ``" yq"``, demonstrations and query
    drawn from ``pairs`` without replacement per prompt."""
    from spinlens.random import as_generator

    g = as_generator(rng)
    check_int("shots", shots, low=0, high=len(pairs) - 1)
    prompts, answers = [], []
    for _ in range(n):
        idx = g.choice(len(pairs), size=shots + 1, replace=False)
        demo = "".join(f"{pairs[i][0]} -> {pairs[i][1]}\n" for i in idx[:-1])
        q = pairs[idx[-1]]
        prompts.append(f"{demo}{q[0]} ->")
        answers.append(f" {q[1]}")
    return TextTask(name, prompts, answers, meta={"task": [name] * n}, source=f"few-shot {name}, {shots} shots")


def _icl_standin(n_per_task: int, rng, names=("upper", "next_letter", "first_letter")) -> TextTask:
    tasks = icl_standin_tasks()
    parts = [few_shot_task(nm, tasks[nm], n_per_task, rng=rng) for nm in names]
    return TextTask("icl", [p for t in parts for p in t.prompts], [a for t in parts for a in t.answers],
                    meta={"task": [x for t in parts for x in t.meta["task"]]},
                    source="spinlens.llm.general stand-in: " + ", ".join(names) + " (4 shots)")


def _heldout_text(tokenizer, n_windows: int, window: int) -> torch.Tensor:
    from spinlens.lm.corpus import pydoc_topics

    text = pydoc_topics()
    ids = tokenizer(text[: min(len(text), 60 * n_windows * window)], add_special_tokens=False)["input_ids"]
    need = n_windows * (window + 1)
    if len(ids) < need:
        raise InvalidParameterError(f"The held-out text has {len(ids)} tokens; {n_windows} windows of "
                                    f"{window + 1} need {need}: lower n_windows or window.")
    starts = np.linspace(0, len(ids) - window - 1, n_windows).astype(int)
    return torch.tensor([ids[s:s + window + 1] for s in starts])


def build_suite(tokenizer, *, n_windows: int = 16, window: int = 64, n_ioi: int = 32, n_icl: int = 16,
                seed: int = 0) -> GeneralSuite:
    """The fixed evaluation sets (deterministic for a given tokenizer and seed)."""
    from spinlens.random import as_generator

    n_windows = check_int("n_windows", n_windows, low=1)
    window = check_int("window", window, low=2)
    g = as_generator(seed)
    text = _heldout_text(tokenizer, n_windows, window)
    ioi = _ioi_standin(check_int("n_ioi", n_ioi, low=1), g)
    recall = _recall_standin()
    icl = _icl_standin(check_int("n_icl", n_icl, low=1), g)
    return GeneralSuite(
        text=text, ioi=tokenize_task(ioi, tokenizer), recall=tokenize_task(recall, tokenizer),
        icl=tokenize_task(icl, tokenizer),
        sources={"perplexity": f"pydoc_data.topics (Python standard library help topics), {n_windows} windows of "
                               f"{window + 1} tokens", "ioi": ioi.source, "recall": recall.source, "icl": icl.source})


# ----------------------------------------------------------------------------------------------- metrics


def lm_logits(model, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, last_only: bool = False,
              keep: int | None = None):
    """Logits ``(batch, pos, vocab)`` of a HookedHF or an HF causal LM (``last_only``: the last position only;
    ``keep``: the last ``keep`` positions; the lm head runs only there)."""
    hf = getattr(model, "hf", model)
    kw = {"input_ids": ids, "use_cache": False}
    if attention_mask is not None:
        kw["attention_mask"] = attention_mask
    if last_only:
        kw["logits_to_keep"] = 1
    elif keep:
        kw["logits_to_keep"] = int(keep)
    return hf(**kw).logits


def _task_logits(model, tt: TokenizedTask, batch_size: int):
    for b in tt.batches:
        for s in range(0, len(b), batch_size):
            lg = lm_logits(model, b.clean[s:s + batch_size], last_only=True)[:, -1].float()
            yield b, slice(s, s + batch_size), lg


def _accuracy(model, tt: TokenizedTask, batch_size: int) -> float:
    hits = n = 0
    for b, sl, lg in _task_logits(model, tt, batch_size):
        hits += int((lg.argmax(-1) == b.answer[sl]).sum())
        n += lg.shape[0]
    return hits / n


def _logit_diff(model, tt: TokenizedTask, batch_size: int) -> float:
    tot = n = 0.0
    for b, sl, lg in _task_logits(model, tt, batch_size):
        a, w = b.answer[sl], b.wrong[sl]
        tot += float((lg.gather(1, a[:, None]) - lg.gather(1, w[:, None])).sum())
        n += lg.shape[0]
    return tot / n


def _heldout_loss(model, text: torch.Tensor, batch_size: int) -> float:
    tot = 0.0
    for s in range(0, text.shape[0], batch_size):
        w = text[s:s + batch_size]
        lg = lm_logits(model, w[:, :-1]).float()
        tot += float(torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), w[:, 1:].reshape(-1),
                                                       reduction="sum"))
    return tot / (text.shape[0] * (text.shape[1] - 1))


_SUITES: dict = {}


def general_ability(model, tokenizer=None, *, suite: GeneralSuite | None = None, batch_size: int = 8) -> dict:
    """General-ability metrics of a causal LM (`GENERAL_KEYS`; see the module docstring).

    Parameters
    ----------
    model : HookedHF or HF causal LM
    tokenizer : the model's tokenizer (needed unless ``suite`` is given); the default suite is built once per
        tokenizer and reused.
    suite : GeneralSuite, optional
        Evaluation sets (`build_suite`).
    batch_size : int
        Sequences per forward pass.

    Returns
    -------
    dict {key: float}
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    if suite is None:
        if tokenizer is None:
            raise InvalidParameterError("general_ability needs a tokenizer or a suite.")
        key = getattr(tokenizer, "name_or_path", None) or id(tokenizer)
        suite = _SUITES.get(key)
        if suite is None:
            suite = _SUITES[key] = build_suite(tokenizer)
    hf = getattr(model, "hf", model)
    was_training = hf.training
    hf.eval()
    try:
        with torch.inference_mode():
            loss = _heldout_loss(model, suite.text, batch_size)
            out = {
                "perplexity": math.exp(loss),
                "heldout_loss": loss,
                "ioi_logit_diff": _logit_diff(model, suite.ioi, 4 * batch_size),
                "recall_accuracy": _accuracy(model, suite.recall, 4 * batch_size),
                "icl_accuracy": _accuracy(model, suite.icl, 4 * batch_size),
            }
    finally:
        hf.train(was_training)
    return out
