"""Natural-language in-context tasks for a trained LM, and function vectors on them.

Tasks map one word to another (`TEXT_TASKS`): ``copy`` (``file -> file``), ``capitalise`` (``file -> File``),
``lowercase`` (``File -> file``). Words are the most frequent lower-case words of real text (by default the
held-out part of the LM's own training corpus, see `task_words`). A prompt is ``k`` demonstrations and a query,

    `` file: file\\n value: value\\n return:``     (template ``" {x}:"`` + ``" {y}"`` + ``"\\n"``)

tokenized with the LM's tokenizer as one string; its answer is the **first token** of ``" {y}"`` after the
prompt (checked by construction: the prompt's tokens are a prefix of the tokens of prompt + answer). Words
are several tokens long, so prompts have different lengths: they are right-padded and read at their own last
token (causal attention: padding after a position never changes it).

Conditions (Todd et al. 2023): ``clean`` (k demonstrations, few-shot ICL), ``zero_shot`` (the query alone),
``shuffled`` (the demonstrations' answers cyclically shifted, so the word→word map is broken). The function
vector pipeline is `spinlens.interp.function_vectors.function_vector_on_prompts`; `text_fv_experiment` runs
it over seeds, with disjoint word sets for choosing heads / building the FV and for evaluating it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
from spinlens.random import as_generator

if TYPE_CHECKING:
    from spinlens.results import StudyReport

__all__ = ["TEXT_TASKS", "TEMPLATE", "WordTask", "TextTaskPrompts", "task_pair", "task_words", "text_task_prompts",
           "text_fv_experiment", "heldout_text", "text_fv_report"]

#: task name → (input form, answer form) of a lower-case word
TEXT_TASKS = {
    "copy": (lambda w: w, lambda w: w),
    "capitalise": (lambda w: w, lambda w: w[:1].upper() + w[1:]),
    "lowercase": (lambda w: w[:1].upper() + w[1:], lambda w: w),
}
#: (query part, answer part, end of a demonstration)
TEMPLATE = (" {x}:", " {y}", "\n")


@dataclass(frozen=True)
class WordTask:
    """A task given by data: ``pairs[input] = answer`` (e.g. country -> capital, English -> French), with the
    ``source`` it comes from (`spinlens.llm.icl.word_tasks`). Accepted wherever a `TEXT_TASKS` name is."""

    name: str
    pairs: dict
    source: str = ""


def _check_task(task):
    return task if isinstance(task, WordTask) else check_choice("task", task, tuple(TEXT_TASKS))


def _task_name(task) -> str:
    return task.name if isinstance(task, WordTask) else task


def task_pair(task, word: str) -> tuple[str, str]:
    """``(input, answer)`` strings of ``word`` under ``task`` (a `TEXT_TASKS` name or a `WordTask`)."""
    if isinstance(_check_task(task), WordTask):
        return word, task.pairs[word]
    fx, fy = TEXT_TASKS[task]
    return fx(word), fy(word)


def _enc(tok, s: str) -> list[int]:
    """Token ids of ``s`` under a `tokenizers.Tokenizer` (spinlens LMs) or a Hugging Face tokenizer (with its
    special tokens, as `spinlens.llm.tasks` encodes prompts)."""
    ids = tok.encode(s)
    return list(getattr(ids, "ids", ids))


def _decode(tok, ids) -> str:
    return tok.decode(list(ids))


def task_words(text: str | None, tokenizer, task, *, n_words: int = 200, min_len: int = 3, max_tokens: int = 3,
               template=TEMPLATE) -> list[str]:
    """The ``n_words`` most frequent lower-case words (``[a-z]{min_len,}``) of ``text`` usable for ``task``: input
    (with the query's separator: ``max_tokens + 1``) and answer each at most ``max_tokens`` tokens in the
    template, and the answer's first token (the one scored) holds the answer's first letter (not a bare space).
    Ties: alphabetical. A `WordTask`'s inputs are taken in their given order (``text`` unused), under the same
    token checks."""
    _check_task(task)
    n_words = check_int("n_words", n_words, low=2)
    check_int("min_len", min_len, low=1)
    max_tokens = check_int("max_tokens", max_tokens, low=1)
    q, a, _ = template
    if isinstance(task, WordTask):
        cands = list(task.pairs)
    else:
        counts = Counter(re.findall(rf"(?<![A-Za-z0-9_])[a-z]{{{min_len},}}(?![A-Za-z0-9_])", text or ""))
        cands = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    n_special = len(_enc(tokenizer, ""))  # a tokenizer's own BOS, if it adds one
    out = []
    for w in cands:
        x, y = task_pair(task, w)
        tx, ty = _enc(tokenizer, q.format(x=x))[n_special:], _enc(tokenizer, a.format(y=y))[n_special:]
        # the scored first answer token must carry the word's first letter (BPE may split " Argument" as " ", "A", ...)
        ok = (0 < len(tx) <= max_tokens + 1 and 0 < len(ty) <= max_tokens
              and y[:1] in _decode(tokenizer, ty[:1]))
        if ok:  # +1 on the input: the query part's separator
            out.append(w)
        if len(out) == n_words:
            break
    return out


@dataclass(frozen=True)
class TextTaskPrompts:
    """Right-padded token prompts of one natural-language task (the prompt-set protocol of
    `spinlens.interp.function_vectors.function_vector_on_prompts`).

    Attributes
    ----------
    clean, shuffled, zero_shot : LongTensor ``(n_prompts, max_len)``
        Token ids, right-padded with ``pad_id``; ``last[name]`` ``(n_prompts,)`` is each prompt's last token.
    answer : LongTensor ``(n_prompts,)``
        First token of the query's answer (the same for all three conditions).
    task : LongTensor ``(n_prompts,)``
        Zeros (one task per prompt set).
    last : dict of LongTensor
    texts : dict of list of str
        The prompt strings of each condition; ``answers``: the answer strings.
    words : list of str
        Query words (base, lower-case form), one per prompt.
    """

    clean: torch.Tensor
    shuffled: torch.Tensor
    zero_shot: torch.Tensor
    answer: torch.Tensor
    task: torch.Tensor
    last: dict
    texts: dict
    answers: list
    words: list
    other_task = None  # no second task in one prompt set


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(r) for r in rows)
    out = torch.full((len(rows), n), int(pad_id), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r)
    return out, torch.as_tensor([len(r) - 1 for r in rows], dtype=torch.long)


def text_task_prompts(n_prompts: int, words, tokenizer, task: str, *, n_pairs: int = 4, template=TEMPLATE,
                      max_len: int | None = None, pad_id: int = 0, rng=None) -> TextTaskPrompts:
    """``n_prompts`` prompts of ``task``: ``n_pairs`` demonstrations and a query, all distinct words of ``words``.

    The answer token is the first token of the answer text following the prompt; a prompt whose tokens are not
    a prefix of the tokens of prompt + answer (a BPE merge across the boundary) is an error. ``max_len``
    (e.g. the model's context) bounds the longest prompt.
    """
    _check_task(task)
    words = list(words)
    n_prompts = check_int("n_prompts", n_prompts, low=1)
    K = check_int("n_pairs", n_pairs, low=1, high=max(1, len(words) - 1))
    if len(words) < K + 1:
        raise InvalidParameterError(f"The 'words' parameter needs at least n_pairs + 1 = {K + 1} words. Got {len(words)}.")
    q, a, end = template
    g = as_generator(rng)
    rows: dict[str, list[list[int]]] = {"clean": [], "shuffled": [], "zero_shot": []}
    texts: dict[str, list[str]] = {k: [] for k in rows}
    answers, answer_ids, qwords = [], [], []
    for _ in range(n_prompts):
        pick = [words[i] for i in g.choice(len(words), K + 1, replace=False)]
        pairs = [task_pair(task, w) for w in pick]
        xq, yq = pairs[-1]
        ys = [y for _, y in pairs[:K]]
        shuf = ys[1:] + ys[:1]
        bodies = {"clean": "".join(q.format(x=x) + a.format(y=y) + end for (x, _), y in zip(pairs[:K], ys)),
                  "shuffled": "".join(q.format(x=x) + a.format(y=y) + end for (x, _), y in zip(pairs[:K], shuf)),
                  "zero_shot": ""}
        ans = a.format(y=yq)
        first = None
        for c, body in bodies.items():
            text = body + q.format(x=xq)
            ids = _enc(tokenizer, text)
            full = _enc(tokenizer, text + ans)
            if full[: len(ids)] != ids or len(full) == len(ids):
                raise InvalidParameterError(f"The 'template' parameter: the answer {ans!r} merges with the prompt "
                                            f"{text[-20:]!r} under this tokenizer; use a separator before the answer.")
            if first is None:
                first = full[len(ids)]
            elif full[len(ids)] != first:
                raise InvalidParameterError(f"The 'template' parameter: the answer's first token of {ans!r} depends "
                                            f"on the prompt; use a separator before the answer.")
            rows[c].append(ids)
            texts[c].append(text)
        answers.append(ans)
        answer_ids.append(first)
        qwords.append(pick[-1])
    longest = max(len(r) for r in rows["clean"] + rows["shuffled"])
    if max_len is not None and longest > max_len:
        raise InvalidParameterError(f"The 'n_pairs' parameter is too large: a prompt of {longest} tokens exceeds the "
                                    f"model's context of {max_len}. Got n_pairs={K}; use fewer demonstrations.")
    padded = {c: _pad(r, pad_id) for c, r in rows.items()}
    return TextTaskPrompts(
        padded["clean"][0], padded["shuffled"][0], padded["zero_shot"][0], torch.as_tensor(answer_ids, dtype=torch.long),
        torch.zeros(n_prompts, dtype=torch.long), {c: p[1] for c, p in padded.items()}, texts, answers, qwords)


def heldout_text(folder, tokenizer) -> str:
    """The held-out text of an LM folder (its saved held-out tokens, decoded)."""
    from spinlens.lm.train import load_heldout

    ids = load_heldout(folder, vocab_size=tokenizer.get_vocab_size())
    if ids is None:
        raise InvalidParameterError(f"The checkpoint {str(folder)!r} has no held-out tokens (heldout_tokens.npy).")
    return tokenizer.decode([int(i) for i in ids])


def text_fv_experiment(model, tokenizer, text: str | None, task,  *, n_prompts: int = 128, n_pairs: int = 4,
                       n_words: int = 200, top_k: int = 3, strength: float = 1.0, layers=None, seeds=(0, 1, 2),
                       progress: bool = False):
    """Function vectors on a natural-language task, over seeds.

    Each seed splits the task's words (`task_words` of ``text``) into two disjoint halves: prompts of the first
    choose the heads (causal indirect effect, shuffled-label corruption) and build the FV; prompts of the second
    measure few-shot (``clean``), zero-shot and shuffled accuracy, and zero-shot / shuffled accuracy with the FV
    added at each layer. ``majority_accuracy``: always answering the most frequent answer token of the first
    half's prompts (what knowing the answer *class*, e.g. "a capital letter", without the word gives). Returns ``(dataset, results)``: an `xarray.Dataset` with dims ``seed``, ``condition``,
    ``layer`` (where the FV is added), ``ie_layer``, ``head``, and the per-seed `FunctionVectorResult` list.
    """
    import xarray as xr

    from spinlens.interp.function_vectors import function_vector_on_prompts

    _check_task(task)
    name = _task_name(task)
    check_int("n_prompts", n_prompts, low=2)
    check_int("top_k", top_k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    check_float("strength", strength)
    seeds = [check_int("seed", s, low=0) for s in seeds]
    if not seeds:
        raise InvalidParameterError("The 'seeds' parameter must list at least one seed.")
    words = task_words(text, tokenizer, task, n_words=n_words)
    if len(words) < 2 * (n_pairs + 1):
        raise InvalidParameterError(f"The text gives {len(words)} usable words for task {name!r}; need at least "
                                    f"2 * (n_pairs + 1) = {2 * (n_pairs + 1)} (two disjoint halves).")
    results, majority = [], []
    n_ctx = getattr(model.cfg, "max_pos", None)
    model.eval()
    for s in seeds:
        g = as_generator(s)
        perm = g.permutation(len(words))
        half = len(words) // 2
        fit_w, ev_w = [words[i] for i in perm[:half]], [words[i] for i in perm[half:]]
        fit = text_task_prompts(n_prompts, fit_w, tokenizer, task, n_pairs=n_pairs, max_len=n_ctx, rng=g)
        ev = text_task_prompts(n_prompts, ev_w, tokenizer, task, n_pairs=n_pairs, max_len=n_ctx, rng=g)
        with torch.no_grad():
            r = function_vector_on_prompts(model, fit, ev, top_k=top_k, layers=layers, strength=strength)
        results.append(r)
        # no-mapping baseline: always answer the most frequent answer token of the fit prompts
        vals, counts = np.unique(fit.answer.numpy(), return_counts=True)
        top = int(vals[counts.argmax()])  # ties: the smallest token id
        majority.append(float((ev.answer == top).double().mean()))
        if progress:
            e = r.evaluation
            print(f"  fv {name} seed {s}: clean {e.attrs['clean_accuracy']:.3f}, zero-shot "
                  f"{float(e.base_accuracy.sel(condition='zero_shot')):.3f} -> "
                  f"{np.round(e.accuracy.sel(condition='zero_shot').values, 3).tolist()} with the FV", flush=True)
    ev0 = results[0].evaluation
    stack = lambda v: np.stack([r.evaluation[v].values for r in results])  # noqa: E731
    attr = lambda k: np.array([r.evaluation.attrs[k] for r in results])  # noqa: E731
    ds = xr.Dataset(
        {
            "accuracy": (("seed", "condition", "layer"), stack("accuracy")),
            "logprob": (("seed", "condition", "layer"), stack("logprob")),
            "prob": (("seed", "condition", "layer"), stack("prob")),
            "base_accuracy": (("seed", "condition"), stack("base_accuracy")),
            "base_logprob": (("seed", "condition"), stack("base_logprob")),
            "clean_accuracy": ("seed", attr("clean_accuracy")),
            "clean_logprob": ("seed", attr("clean_logprob")),
            "majority_accuracy": ("seed", np.array(majority)),
            "indirect_effect": (("seed", "ie_layer", "head"), np.stack([r.indirect_effect.values for r in results])),
            "heads": ("seed", [" ".join(f"{L}.{h}" for L, h in r.heads) for r in results]),
        },
        coords={"seed": seeds, "condition": ev0.coords["condition"].values, "layer": ev0.coords["layer"].values,
                "ie_layer": np.arange(model.cfg.n_layers), "head": np.arange(model.cfg.n_heads)},
        attrs={"task": name, "source": task.source if isinstance(task, WordTask) else "text", "n_pairs": int(n_pairs), "n_prompts": int(n_prompts), "top_k": int(top_k),
               "strength": float(strength), "n_words": len(words), "n_layers": int(model.cfg.n_layers),
               "template": repr(TEMPLATE),
               "example_prompt": text_task_prompts(1, words, tokenizer, task, n_pairs=n_pairs, rng=0).texts["clean"][0]},
    )
    ds["gain"] = ds["accuracy"] - ds["base_accuracy"]
    ds["logprob_gain"] = ds["logprob"] - ds["base_logprob"]
    return ds, results


def summarise_fv(ds) -> dict:
    """Mean ± sd over seeds (ddof 1) of the accuracies and gains of `text_fv_experiment`."""

    from spinlens.verdict import mean_sd_dict as ms

    out = {"task": ds.attrs["task"], "seeds": [int(s) for s in ds.seed.values], "n_pairs": ds.attrs["n_pairs"],
           "n_words": ds.attrs["n_words"], "example_prompt": ds.attrs["example_prompt"],
           "heads": [str(h) for h in ds["heads"].values],
           "few_shot_accuracy": ms(ds.clean_accuracy), "few_shot_logprob": ms(ds.clean_logprob),
           "majority_accuracy": ms(ds.majority_accuracy)}
    for c in ds.condition.values:
        c = str(c)
        out[f"{c}_accuracy"] = ms(ds.base_accuracy.sel(condition=c))
        out[f"{c}_logprob"] = ms(ds.base_logprob.sel(condition=c))
        for L in ds.layer.values:
            e = ds.sel(condition=c, layer=L)
            out.setdefault(f"{c}_fv", {})[int(L)] = {"accuracy": ms(e.accuracy), "gain": ms(e.gain),
                                                     "logprob_gain": ms(e.logprob_gain)}
    return out


def fv_verdict(ds) -> dict:
    """The verdict (`spinlens.verdict.compare`) of a function-vector experiment: accuracy with the FV at the best
    (condition, layer), by mean gain over seeds, against the same condition without it (per seed)."""
    from spinlens.verdict import compare

    gain = ds["gain"].mean("seed").transpose("condition", "layer")
    c, L = np.unravel_index(int(np.nanargmax(gain.values)), gain.shape)
    cond, layer = str(ds.condition.values[c]), int(ds.layer.values[L])
    return compare(ds["accuracy"].sel(condition=cond, layer=layer).values, ds["base_accuracy"].sel(condition=cond).values,
                   what=f"{cond} accuracy", method=f"FV before layer {layer}", baseline="no FV",
                   better="higher").to_dict()


def text_fv_report(checkpoint, *, task: str | None = None, n_prompts: int = 256, n_pairs: int | None = None,
                   top_k: int = 3, corruption: str = "shuffled", strength: float = 1.0, seed: int = 0,
                   n_seeds: int = 3, progress: bool = True) -> StudyReport:
    """``spinlens interp fv --checkpoint LMDIR --task T``: `text_fv_experiment` on the held-out text of a
    language model from ``spinlens lm`` (``task`` default ``copy``; seeds ``seed .. seed + n_seeds - 1``) as a
    `spinlens.experiment.StudyReport`: `summarise_fv` with the source and `fv_verdict`, the headline table, the
    figure and data ``function_vectors_lm``."""
    from spinlens.lm.train import load_lm
    from spinlens.results import StudyReport

    task = check_choice("task", task or "copy", tuple(TEXT_TASKS))
    n_seeds = check_int("n-seeds", n_seeds, low=1, high=100)
    if corruption != "shuffled":
        raise InvalidParameterError(f"The 'corruption' parameter must be shuffled for a language model task. Got {corruption!r}.")
    model, tok, _ = load_lm(checkpoint)
    n_pairs = check_int("n-pairs", n_pairs if n_pairs is not None else 4, low=1, high=(model.cfg.max_pos - 2) // 3)
    check_int("top-k", top_k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    text = heldout_text(checkpoint, tok)
    with torch.no_grad():
        ds, _ = text_fv_experiment(model, tok, text, task, n_prompts=n_prompts, n_pairs=n_pairs, top_k=top_k,
                                   strength=strength, seeds=tuple(range(seed, seed + n_seeds)), progress=progress)
    d = summarise_fv(ds)
    d["source"] = f"checkpoint:{checkpoint}"
    d["verdict"] = fv_verdict(ds)
    f = lambda m: f"{m['mean']:.3f} ± {m['sd']:.3f}"  # noqa: E731
    rows = [("source", d["source"]), ("task", task), ("seeds", " ".join(map(str, d["seeds"]))),
            ("heads (per seed)", " | ".join(d["heads"])), ("few-shot accuracy", f(d["few_shot_accuracy"])),
            ("most frequent answer token (no-mapping baseline)", f(d["majority_accuracy"]))]
    for c in ("zero_shot", "shuffled"):
        rows.append((f"{c} accuracy (no FV)", f(d[f"{c}_accuracy"])))
        for L, e in d[f"{c}_fv"].items():
            where = f"before layer {L}" if L < model.cfg.n_layers else "after the last layer"
            rows.append((f"{c} + FV {where}: accuracy / gain", f"{f(e['accuracy'])} / {f(e['gain'])}"))
    from spinlens.plotting.lm import plot_lm_function_vectors

    return StudyReport("interp fv", d, rows, [d["verdict"]["line"]],
                       figures={"function_vectors_lm": lambda: plot_lm_function_vectors(ds)},
                       data={"function_vectors_lm": ds})
