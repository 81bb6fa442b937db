"""General ability of a causal LM: the one evaluation of the cost side of every edit (precise tuning,
sycophancy tuning, knowledge editing, merging, quantization).

`build_suite(tokenizer)` fixes the evaluation sets once; `general_ability(model, suite=suite)` measures them
(batched, inference mode) and returns one flat dict under these keys, the keys of every study's ``--json``
and headline:

==========================  ==========================================================================  ======
key                         what                                                                        better
==========================  ==========================================================================  ======
``perplexity``              exp(mean next-token cross-entropy) on held-out real text (below)            lower
``heldout_loss``            the same mean cross-entropy in nats (log of ``perplexity``)                 lower
``ioi_accuracy``            IOI prompts (`spinlens.llm.ioi.ioi_task`) whose top-1 next token is the     higher
                            indirect object
``ioi_logit_diff``          mean logit(indirect object) − logit(subject) over the IOI prompts           higher
``recall_accuracy``         factual-recall prompts (`spinlens.llm.recall.recall_task`, countryinfo)     higher
                            answered right (top-1)
``icl_accuracy``            four-shot word tasks (`spinlens.llm.icl.word_tasks`: past tense, plural,    higher
                            French country names) answered right (top-1)
``arithmetic_accuracy``     two-shot one-digit additions (`spinlens.llm.arithmetic.arithmetic_task`)    higher
``arithmetic_logit_diff``   mean logit(sum) − logit(the corrupted prompt's sum)                         higher
==========================  ==========================================================================  ======

**Held-out text.** The standard library's help topics and docstrings (`spinlens.lm.corpus.builtin_corpus`
``"stdlib-docs"``, on every machine offline), tokenized by the model's tokenizer. `heldout_ids` cuts
``n_seq`` rows of ``seq_len`` tokens, spread evenly over one half of the token stream: ``part="calib"`` the
first half (calibration of quantization), ``part="eval"`` the second (every perplexity), so calibration and
evaluation never share a token. `text_source` gives the text's SHA-256 (it depends on the Python version).

**Tasks.** An answer counts by its first token (the first digit of a two-digit sum, the first piece of a
multi-token capital; every foil starts with another token). A task that cannot be built for a tokenizer
(too few single-token names, a package missing) is left out, and ``suite.skipped`` says why; its keys are then absent. A study
that tunes a skill leaves that skill's task out of its suite (``tasks=``), so that the gain is never counted
as general ability.

``model`` is a `spinlens.interp.hf.HookedHF` or any HF causal LM (a peft model too).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_int
from spinlens.llm.tasks import TokenizedTask, tokenize_task

__all__ = ["TASKS", "TEXT", "GeneralSuite", "build_suite", "general_ability", "heldout_ids", "text_source",
           "higher_is_better", "lm_logits", "perplexity"]

#: the tasks of the suite, in headline order
TASKS = ("ioi", "recall", "icl", "arithmetic")
#: the held-out text (`spinlens.lm.corpus.builtin_corpus`) and its length in characters
TEXT = "stdlib-docs"
MAX_CHARS = 400_000
#: the word tasks of ``icl_accuracy`` (`spinlens.llm.icl.word_tasks`)
ICL_TASKS = ("past", "plural", "translate_fr")


def higher_is_better(key: str) -> bool:
    """Whether a larger value of a general-ability key (or its change ``d_<key>``) is better."""
    k = key.removeprefix("d_")
    return k not in ("perplexity", "heldout_loss")


# -------------------------------------------------------------------------------------------- held-out text

def _text() -> str:
    from spinlens.lm.corpus import builtin_corpus

    return builtin_corpus(TEXT, max_chars=MAX_CHARS)


def text_source() -> dict:
    """Provenance of the held-out text: corpus name, characters, SHA-256."""
    t = _text()
    return {"corpus": TEXT, "max_chars": MAX_CHARS, "chars": len(t),
            "sha256": hashlib.sha256(t.encode("utf-8")).hexdigest()}


def heldout_ids(tokenizer, *, n_seq: int = 16, seq_len: int = 128, part: str = "eval") -> torch.Tensor:
    """Token ids ``(n_seq, seq_len)`` of the held-out text: rows spread evenly (never overlapping) over the
    first (``part="calib"``) or second (``"eval"``) half of its token stream."""
    n_seq = check_int("n_seq", n_seq, low=1)
    seq_len = check_int("seq_len", seq_len, low=2)
    if part not in ("calib", "eval"):
        raise InvalidParameterError(f"The 'part' parameter must be 'calib' or 'eval'. Got {part!r}.")
    ids = np.asarray(tokenizer(_text(), add_special_tokens=False)["input_ids"], dtype=np.int64)
    half = ids.size // 2
    ids = ids[:half] if part == "calib" else ids[half:]
    if ids.size < n_seq * seq_len:
        raise InvalidParameterError(f"The held-out text has {ids.size} tokens in its {part} half; n_seq × seq_len = "
                                    f"{n_seq * seq_len} asked: lower n_seq or seq_len.")
    starts = np.linspace(0, ids.size - seq_len, n_seq).astype(np.int64)
    return torch.as_tensor(np.stack([ids[s:s + seq_len] for s in starts]))


# -------------------------------------------------------------------------------------------------- tasks

def _build_task(name: str, tokenizer, n: int, seed: int):
    """The `TextTask` of one suite task (raises InvalidParameterError / ImportError when it cannot be built)."""
    if name == "ioi":
        from spinlens.llm.ioi import ioi_task

        return ioi_task(n, tokenizer, rng=seed)
    if name == "recall":
        from spinlens.llm.recall import recall_task

        return recall_task(n, rng=seed)
    if name == "arithmetic":
        from spinlens.llm.arithmetic import arithmetic_task

        return arithmetic_task(n, operations=("+",), digits=1, shots=2, tokenizer=tokenizer, rng=seed)
    from spinlens.llm.icl import word_tasks
    from spinlens.llm.tasks import TextTask, few_shot_task
    from spinlens.random import as_generator

    g = as_generator(seed)
    wt = word_tasks(tokenizer, ICL_TASKS)
    per = max(1, n // len(ICL_TASKS))
    parts = [few_shot_task(k, sorted(t.pairs.items()), per, shots=4, rng=g) for k, t in wt.items()
             if len(t.pairs) >= 5]
    if not parts:
        raise InvalidParameterError("no word task has 5 single-token pairs for this tokenizer")
    return TextTask("icl", [p for t in parts for p in t.prompts], [a for t in parts for a in t.answers],
                    meta={"task": [x for t in parts for x in t.meta["task"]]},
                    source="spinlens.llm.icl.word_tasks " + ", ".join(f"{k} ({wt[k].source})" for k in wt)
                    + f", 4 shots, seed {seed}")


@dataclass
class GeneralSuite:
    """The fixed evaluation sets of `general_ability` for one tokenizer.

    Attributes
    ----------
    text : LongTensor (n_seq, seq_len)
        Held-out text rows (`heldout_ids`, ``part="eval"``): next-token loss on every position.
    tasks : dict {name: TokenizedTask}
        The tasks that could be built, in `TASKS` order.
    sources : dict {set: where it comes from}
    skipped : dict {task: why it is left out}
    """

    text: torch.Tensor
    tasks: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys `general_ability` returns for this suite, in headline order."""
        out = ["perplexity", "heldout_loss"]
        for name, tt in self.tasks.items():
            out.append(f"{name}_accuracy")
            if all(b.wrong is not None for b in tt.batches):
                out.append(f"{name}_logit_diff")
        return tuple(out)


def build_suite(tokenizer, *, tasks=TASKS, n_seq: int = 16, seq_len: int = 64, n_prompts: int = 32,
                seed: int = 0) -> GeneralSuite:
    """The fixed evaluation sets (deterministic for a given tokenizer and seed).

    Parameters
    ----------
    tokenizer : the model's tokenizer
    tasks : subset of `TASKS`
        Leave out the skill a study tunes.
    n_seq, seq_len : held-out text rows (`heldout_ids`)
    n_prompts : prompts per task (before single-token filtering; factual recall: at most the facts there are)
    seed : draws of every task
    """
    n_prompts = check_int("n_prompts", n_prompts, low=1)
    seed = check_int("seed", seed, low=0)
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise InvalidParameterError(f"The 'tasks' parameter must be among {{{', '.join(TASKS)}}}. Got {bad}.")
    text = heldout_ids(tokenizer, n_seq=n_seq, seq_len=seq_len, part="eval")
    src = text_source()
    suite = GeneralSuite(text, sources={"perplexity": f"{TEXT} (Python standard library help topics and "
                                                      f"docstrings, sha256 {src['sha256'][:12]}), eval half, "
                                                      f"{n_seq} rows of {seq_len} tokens"})
    for name in TASKS:
        if name not in tasks:
            continue
        try:
            t = dataclasses.replace(_build_task(name, tokenizer, n_prompts, seed), corrupt_prompts=None)
            tt = tokenize_task(t, tokenizer, single_token=False, on_bad="drop")
        except (InvalidParameterError, ImportError) as exc:
            suite.skipped[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        suite.tasks[name] = tt
        n_kept = sum(len(b) for b in tt.batches)
        suite.sources[name] = t.source + (f"; {n_kept} of {len(t)} prompts kept" if n_kept < len(t) else "")
    return suite


# ------------------------------------------------------------------------------------------------ metrics

def lm_logits(model, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, last_only: bool = False,
              keep: int | None = None):
    """Logits ``(batch, pos, vocab)`` of a HookedHF or an HF causal LM (``last_only``: the last position only;
    ``keep``: the last ``keep`` positions; the lm head runs only there)."""
    hf = getattr(model, "hf", model)
    kw = {"input_ids": ids.to(hf.device), "use_cache": False}
    if attention_mask is not None:
        kw["attention_mask"] = attention_mask
    if last_only:
        kw["logits_to_keep"] = 1
    elif keep:
        kw["logits_to_keep"] = int(keep)
    return hf(**kw).logits


def _heldout_loss(model, text: torch.Tensor, batch_size: int) -> float:
    tot = 0.0
    for s in range(0, text.shape[0], batch_size):
        w = text[s:s + batch_size]
        lg = lm_logits(model, w[:, :-1]).float().cpu()
        tot += float(torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), w[:, 1:].reshape(-1),
                                                       reduction="sum"))
    return tot / (text.shape[0] * (text.shape[1] - 1))


def perplexity(model, ids: torch.Tensor, *, batch_size: int = 8) -> float:
    """exp(mean next-token cross-entropy) of a causal LM on the rows ``ids`` (n, T)."""
    with torch.inference_mode():
        return math.exp(_heldout_loss(model, ids, check_int("batch_size", batch_size, low=1)))


def _task_scores(model, tt: TokenizedTask, batch_size: int) -> tuple[float, float | None]:
    hits = n = 0
    diff = 0.0
    has_foil = all(b.wrong is not None for b in tt.batches)
    for b in tt.batches:
        for s in range(0, len(b), batch_size):
            lg = lm_logits(model, b.clean[s:s + batch_size], last_only=True)[:, -1].float().cpu()
            a = b.answer[s:s + batch_size]
            hits += int((lg.argmax(-1) == a).sum())
            n += lg.shape[0]
            if has_foil and b.wrong is not None:
                w = b.wrong[s:s + batch_size]
                diff += float((lg.gather(1, a[:, None]) - lg.gather(1, w[:, None])).sum())
    return hits / n, (diff / n if has_foil else None)


_SUITES: dict = {}


def general_ability(model, tokenizer=None, *, suite: GeneralSuite | None = None, batch_size: int = 8,
                    text: bool = True) -> dict:
    """General-ability metrics of a causal LM (``suite.keys``; see the module docstring).

    Parameters
    ----------
    model : HookedHF or HF causal LM
    tokenizer : the model's tokenizer (needed unless ``suite`` is given); the default suite is built once per
        tokenizer and reused.
    suite : GeneralSuite, optional
        Evaluation sets (`build_suite`).
    batch_size : int
        Sequences per forward pass (held-out text; task prompts go four times as many at once).
    text : bool
        Measure ``perplexity`` and ``heldout_loss`` (a caller that measures the same rows itself passes False).

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
    out: dict = {}
    try:
        with torch.inference_mode():
            if text:
                loss = _heldout_loss(model, suite.text, batch_size)
                out.update(perplexity=math.exp(loss), heldout_loss=loss)
            for name, tt in suite.tasks.items():
                acc, ld = _task_scores(model, tt, 4 * batch_size)
                out[f"{name}_accuracy"] = acc
                if ld is not None:
                    out[f"{name}_logit_diff"] = ld
    finally:
        hf.train(was_training)
    return out
