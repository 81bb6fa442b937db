"""Text tasks for causal LMs: prompts, answers, corrupted prompts, tokenized into aligned batches.

A `TextTask` is the "task" of an experiment setting: a list of prompts (strings), the answer each should be
continued with, and optionally a corrupted prompt per clean one (same template, other content: the patching
baseline) and a wrong answer (the logit-difference foil). `tokenize_task` turns it into `TokenBatch` es: prompts
grouped by token length, so that within a batch every clean/corrupted pair is aligned position by position and
the answer is read at the last position (``position=-1`` in `spinlens.interp.metrics`). Answers count by their
first token; `tokenize_task` refuses (or drops, and says how many) prompts whose answers are not single tokens
when ``single_token=True``, and pairs whose clean and corrupted prompts tokenize to different lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from spinlens.errors import InvalidParameterError

__all__ = ["TextTask", "TokenBatch", "TokenizedTask", "tokenize_task", "answer_token", "few_shot_task",
           "load_model_and_tokenizer"]


@dataclass(frozen=True)
class TextTask:
    """Prompts with answers (and optionally corrupted prompts and wrong answers) for a causal LM.

    Attributes
    ----------
    name : str
    prompts : list of str
    answers : list of str
        The continuation each prompt should get, with its leading space where the tokenizer needs it
        (``" Mary"``); scored by its first token.
    corrupt_prompts : list of str or None
        One per prompt, same template and token length, other content (the patching baseline).
    wrong_answers : list of str or None
        The foil of the logit difference ``logit(answer) - logit(wrong)``, one per prompt.
    meta : dict of lists
        Per-prompt fields (template, operation, digits, language, ...), each a list as long as ``prompts``.
    source : str
        Where the data come from (a generator with its seed, or a packaged data set with its version).
    """

    name: str
    prompts: list[str]
    answers: list[str]
    corrupt_prompts: list[str] | None = None
    wrong_answers: list[str] | None = None
    meta: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if n == 0:
            raise InvalidParameterError(f"The task {self.name!r} has no prompts.")
        for what, xs in (("answers", self.answers), ("corrupt_prompts", self.corrupt_prompts),
                         ("wrong_answers", self.wrong_answers), *((f"meta[{k!r}]", v) for k, v in self.meta.items())):
            if xs is not None and len(xs) != n:
                raise InvalidParameterError(f"The task {self.name!r}: {what} has {len(xs)} entries for {n} prompts.")

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: Sequence[int]) -> TextTask:
        """The prompts ``idx`` (and their answers, corrupted prompts and meta)."""
        idx = list(idx)

        def pick(xs):
            return None if xs is None else [xs[i] for i in idx]

        return TextTask(self.name, pick(self.prompts), pick(self.answers), pick(self.corrupt_prompts),
                        pick(self.wrong_answers), {k: pick(v) for k, v in self.meta.items()}, self.source)


@dataclass
class TokenBatch:
    """Prompts of one token length: ``clean`` (n, T) and optionally ``corrupt`` (n, T), answers (n,)."""

    clean: torch.Tensor
    answer: torch.Tensor
    index: torch.Tensor  #: positions of these prompts in the task
    corrupt: torch.Tensor | None = None
    wrong: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.clean.shape[0])


@dataclass
class TokenizedTask:
    """A `TextTask` as aligned token batches; ``dropped`` says which prompts were left out and why."""

    task: TextTask
    batches: list[TokenBatch]
    dropped: dict[int, str]

    @property
    def n_prompts(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def kept(self) -> list[int]:
        return sorted(int(i) for b in self.batches for i in b.index)


def answer_token(tokenizer, text: str) -> tuple[int, int]:
    """(first token id, number of tokens) of an answer string, without special tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InvalidParameterError(f"The answer {text!r} tokenizes to nothing.")
    return int(ids[0]), len(ids)


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])  # with the tokenizer's own BOS where it adds one


def tokenize_task(task: TextTask, tokenizer, *, single_token: bool = True, on_bad: str = "drop") -> TokenizedTask:
    """Tokenize a task into batches of equal token length (clean and corrupted aligned).

    Parameters
    ----------
    single_token : bool
        Require single-token answers (and wrong answers); a prompt whose answer is longer is dropped or refused.
    on_bad : {"drop", "raise"}
        What to do with a prompt that cannot be used (multi-token answer, clean/corrupted lengths differ):
        drop it (recorded in ``dropped``) or raise `InvalidParameterError`. If every prompt is dropped, raises.
    """
    if on_bad not in ("drop", "raise"):
        raise InvalidParameterError(f"The 'on_bad' parameter must be one of {{'drop', 'raise'}}. Got {on_bad!r} instead.")
    groups: dict[int, list[tuple[int, list[int], list[int] | None, int, int | None]]] = {}
    dropped: dict[int, str] = {}
    for i, prompt in enumerate(task.prompts):
        a, na = answer_token(tokenizer, task.answers[i])
        w = nw = wrong = None
        if task.wrong_answers is not None:
            wrong = task.wrong_answers[i]
            w, nw = answer_token(tokenizer, wrong)
        why = None
        if single_token and (na > 1 or (nw or 1) > 1):
            why = (f"answer {task.answers[i]!r} is {na} tokens" if na > 1
                   else f"wrong answer {wrong!r} is {nw} tokens")
        ids = _encode(tokenizer, prompt)
        cids = None
        if why is None and task.corrupt_prompts is not None:
            cids = _encode(tokenizer, task.corrupt_prompts[i])
            if len(cids) != len(ids):
                why = f"clean and corrupted prompts tokenize to {len(ids)} and {len(cids)} tokens"
        if why is not None:
            if on_bad == "raise":
                raise InvalidParameterError(f"The task {task.name!r}, prompt {i} ({prompt!r}): {why}.")
            dropped[i] = why
            continue
        groups.setdefault(len(ids), []).append((i, ids, cids, a, w))
    if not groups:
        first = next(iter(dropped.values()), "no prompts")
        raise InvalidParameterError(f"The task {task.name!r}: no usable prompt is left ({len(dropped)} dropped; "
                                    f"e.g. {first}).")
    batches = []
    for _, rows in sorted(groups.items()):
        batches.append(TokenBatch(
            clean=torch.tensor([r[1] for r in rows]),
            answer=torch.tensor([r[3] for r in rows]),
            index=torch.tensor([r[0] for r in rows]),
            corrupt=None if task.corrupt_prompts is None else torch.tensor([r[2] for r in rows]),
            wrong=None if task.wrong_answers is None else torch.tensor([r[4] for r in rows]),
        ))
    return TokenizedTask(task, batches, dropped)


def few_shot_task(name: str, pairs, n: int, *, shots: int = 4, rng=None) -> TextTask:
    """``n`` few-shot prompts ``"x1 -> y1\\nx2 -> y2\\n...xq ->"`` with answer ``" yq"``; the demonstrations
    and the query of each prompt are drawn from ``pairs`` (a list of ``(input, output)``) without replacement."""
    from spinlens.errors import check_int
    from spinlens.random import as_generator

    g = as_generator(rng)
    check_int("shots", shots, low=0, high=len(pairs) - 1)
    prompts, answers = [], []
    for _ in range(check_int("n", n, low=1)):
        idx = g.choice(len(pairs), size=shots + 1, replace=False)
        demo = "".join(f"{pairs[i][0]} -> {pairs[i][1]}\n" for i in idx[:-1])
        q = pairs[idx[-1]]
        prompts.append(f"{demo}{q[0]} ->")
        answers.append(f" {q[1]}")
    return TextTask(name, prompts, answers, meta={"task": [name] * n}, source=f"few-shot {name}, {shots} shots")


def load_model_and_tokenizer(model: str):
    """``(HookedHF, tokenizer)`` of a named pretrained model (``"smollm2-135m"``, prepared on first use) or a local
    Hugging Face folder; no network."""
    from transformers import AutoTokenizer

    from spinlens.interp.hf import load_hf
    from spinlens.models.pretrained import resolve_model

    m = load_hf(model)
    tok = AutoTokenizer.from_pretrained(str(resolve_model(model)), local_files_only=True)
    return m, tok
