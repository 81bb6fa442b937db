"""Function vectors on token models (Todd et al. 2023, arXiv 2310.15213), for fixed in-context token tasks.

A *function vector* (FV) is the sum, over a few attention heads, of each head's mean output at the last
position of in-context prompts of one task. Todd et al. pick the heads by their *causal indirect effect*
(CIE): on prompts whose demonstrations are corrupted (shuffled labels), set one head's output at the last
position to its mean over clean prompts of the task and measure how much the probability of the correct
answer rises. Adding the FV to the residual stream of a prompt without usable demonstrations (zero-shot: the
query alone; or shuffled labels) should bring back the task's answer.

A FV needs a task that is the *same across prompts*: in `spinlens.interp.token_icl_pairs` every prompt has its
own random input→label map, so a mean over prompts carries no information about any prompt's answer. This
module therefore draws prompts from a small set of **fixed tasks** (a table ``tasks[t, x]`` = label token of
input ``x`` under task ``t``; the query is never among the demonstrations, so the answer cannot be copied: the
model has to recognise the task from the demonstrations and apply it).

Vocabulary (as `token_icl_pairs`): inputs ``0..n_inputs-1``, labels from ``n_inputs`` on.

* `fixed_token_tasks` — a random task table; `fixed_task_prompts` — clean / shuffled / zero-shot prompts;
* `token_head_indirect_effect` — CIE per (layer, head), ``xarray.DataArray (layer, head)``;
* `token_function_vector` — one FV per task from chosen heads, ``(n_tasks, d_model)``;
* `fv_hook` / `evaluate_function_vector` — add the FV at one layer's residual stream and measure accuracy
  and p(answer); `function_vector_experiment` runs the whole pipeline and returns a `FunctionVectorResult`.

Hook names (``docs/design.md``): head outputs ``blocks.{L}.attn.hook_result`` ``[batch, pos, head, d_model]``
(after W_O), residual ``blocks.{L}.hook_resid_pre`` ``[batch, pos, d_model]``; layer ``n_layers`` means
``blocks.{n_layers-1}.hook_resid_post``. Works on any `HookedModule` that maps tokens ``(batch, pos)`` to
logits ``(batch, pos, vocab)`` (spinlens `Transformer` with ``input_kind="tokens"``, `HookedHF`).

The same ideas on regression models (prompt matrix ``Z`` in, ``ŷ`` out), used by ``spinlens steer``:
`difference_of_means` (ActAdd/CAA, Turner et al. 2023; Panickssery et al. 2023), `mean_activation`,
`function_vector` (sum over chosen heads of the mean head output at the query), `task_vector` (Hendel et
al. 2023: the residual at a layer and the last position) and `head_indirect_effect` (the causal indirect
effect with the MSE as the metric, the head × layer map used to choose the heads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
from spinlens.interp.interventions import SetActivation, run_steered
from spinlens.random import as_generator
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "FixedTaskPrompts",
    "FunctionVectorResult",
    "fixed_token_tasks",
    "fixed_task_prompts",
    "token_head_indirect_effect",
    "token_function_vector",
    "top_heads",
    "fv_hook",
    "evaluate_function_vector",
    "function_vector_experiment",
    "function_vector_on_prompts",
    "mean_activation",
    "difference_of_means",
    "function_vector",
    "task_vector",
    "head_indirect_effect",
]


# --------------------------------------------------------------------------------------------------------
# fixed tasks and prompts


def fixed_token_tasks(n_tasks: int, n_inputs: int, n_labels: int, *, rng=None) -> np.ndarray:
    """A table of ``n_tasks`` fixed input→label maps, ``tasks[t, x]`` = label token (``n_inputs + j``).

    Each map draws every input's label uniformly from the ``n_labels`` labels; maps are redrawn until all
    tasks are pairwise different on at least half of the inputs (so a few demonstrations identify the task).

    Returns
    -------
    ndarray ``(n_tasks, n_inputs)`` of int64
    """
    n_tasks = check_int("n_tasks", n_tasks, low=1)
    n_inputs = check_int("n_inputs", n_inputs, low=2)
    n_labels = check_int("n_labels", n_labels, low=2)
    g = as_generator(rng)
    for _ in range(1000):
        tab = n_inputs + g.integers(0, n_labels, size=(n_tasks, n_inputs))
        diff = (tab[:, None, :] != tab[None, :, :]).mean(-1) + np.eye(n_tasks)
        if diff.min() >= 0.5:
            return tab.astype(np.int64)
    raise InvalidParameterError(
        f"The 'n_tasks' parameter is too large for n_inputs={n_inputs}, n_labels={n_labels}: no table of "
        f"pairwise distinct tasks was found. Got {n_tasks}; use fewer tasks or more labels."
    )


@dataclass(frozen=True)
class FixedTaskPrompts:
    """In-context prompts of fixed tasks: ``x1 l1 ... xk lk x_q`` with ``l_i = tasks[t, x_i]``, ``x_q`` new.

    Attributes
    ----------
    clean : LongTensor ``(n_prompts, 2*n_pairs+1)``
        Demonstrations of the prompt's task; the query input does not occur among them.
    shuffled : LongTensor ``(n_prompts, 2*n_pairs+1)``
        The same inputs with the demonstration labels cyclically shifted (``x_i`` paired with
        ``l_{i+1}``): Todd et al.'s shuffled-label prompts (the input→label map is broken).
    other_task : LongTensor ``(n_prompts, 2*n_pairs+1)``
        The same inputs with the demonstrations labelled by another task ``other`` (the prompt now
        demonstrates a different task; its answer is ``tasks[other, x_q]``).
    zero_shot : LongTensor ``(n_prompts, 1)``
        The query alone.
    answer : LongTensor ``(n_prompts,)``
        ``tasks[task, x_q]``.
    task, other : LongTensor ``(n_prompts,)``
        The task of the clean prompt and of ``other_task`` (equal only when there is a single task).
    tasks : ndarray ``(n_tasks, n_inputs)``
    d_vocab : int
    """

    clean: torch.Tensor
    shuffled: torch.Tensor
    other_task: torch.Tensor
    zero_shot: torch.Tensor
    answer: torch.Tensor
    task: torch.Tensor
    other: torch.Tensor
    tasks: np.ndarray
    d_vocab: int


def fixed_task_prompts(n_prompts: int, tasks: np.ndarray, *, n_pairs: int = 3, task: int | None = None,
                       d_vocab: int | None = None, rng=None) -> FixedTaskPrompts:
    """Sample prompts of the fixed tasks ``tasks`` (one task per prompt, uniform unless ``task`` is given).

    Inputs within a prompt are distinct and the query input is not among the demonstrations.

    Parameters
    ----------
    n_prompts : int
    tasks : array ``(n_tasks, n_inputs)``
        Label token of each input under each task (`fixed_token_tasks`).
    n_pairs : int
        Demonstrations per prompt, ``1 <= n_pairs <= n_inputs - 1``.
    task : int or None
        Use only this task.
    d_vocab : int or None
        Vocabulary size (default ``tasks.max() + 1``).
    """
    tab = np.asarray(tasks, dtype=np.int64)
    if tab.ndim != 2 or tab.shape[1] < 2:
        raise InvalidParameterError(f"The 'tasks' parameter must be an (n_tasks, n_inputs>=2) array. Got shape {tab.shape} instead.")
    T, n_in = tab.shape
    if tab.min() < n_in:
        raise InvalidParameterError(f"The 'tasks' parameter must hold label tokens >= n_inputs={n_in}. Got min {tab.min()}.")
    n_prompts = check_int("n_prompts", n_prompts, low=1)
    K = check_int("n_pairs", n_pairs, low=1, high=n_in - 1)
    V = int(tab.max()) + 1 if d_vocab is None else check_int("d_vocab", d_vocab, low=int(tab.max()) + 1)
    g = as_generator(rng)
    t = np.full(n_prompts, check_int("task", task, low=0, high=T - 1)) if task is not None else g.integers(0, T, n_prompts)
    xs = np.argsort(g.random((n_prompts, n_in)), axis=1)[:, : K + 1]  # K demonstrations + the query, distinct
    labels = tab[t[:, None], xs]
    seq = np.empty((n_prompts, 2 * K + 1), dtype=np.int64)
    seq[:, 0 : 2 * K : 2] = xs[:, :K]
    seq[:, 1 : 2 * K : 2] = labels[:, :K]
    seq[:, -1] = xs[:, K]
    shuf = seq.copy()
    shuf[:, 1 : 2 * K : 2] = np.roll(labels[:, :K], -1, axis=1)
    t2 = (t + g.integers(1, T, n_prompts)) % T if T > 1 else t.copy()
    oth = seq.copy()
    oth[:, 1 : 2 * K : 2] = tab[t2[:, None], xs[:, :K]]
    return FixedTaskPrompts(
        torch.as_tensor(seq), torch.as_tensor(shuf), torch.as_tensor(oth), torch.as_tensor(xs[:, K:K + 1].copy()),
        torch.as_tensor(labels[:, K].copy()), torch.as_tensor(t), torch.as_tensor(t2), tab, V,
    )


# --------------------------------------------------------------------------------------------------------
# indirect effects and vectors


def _group_means(act: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean of ``act`` ``(batch, ...)`` over the prompts of each group → ``(n_groups, ...)``."""
    out = torch.zeros((n_groups,) + tuple(act.shape[1:]), dtype=act.dtype)
    for k in range(n_groups):
        sel = groups == k
        if sel.any():
            out[k] = act[sel].mean(0)
    return out


def _groups(groups, n: int) -> tuple[torch.Tensor, int]:
    if groups is None:
        return torch.zeros(n, dtype=torch.long), 1
    g = torch.as_tensor(groups).long()
    if g.shape != (n,) or (g < 0).any():
        raise InvalidParameterError(f"The 'groups' parameter must be ({n},) non-negative task ids. Got shape {tuple(g.shape)}.")
    return g, int(g.max()) + 1


def _rows_cols(position, n: int):
    """Index pair selecting one position per prompt: an int (the same for all) or ``(n,)`` per-prompt positions
    (right-padded prompts of different lengths read at their own last token)."""
    if isinstance(position, (int, np.integer)):
        return slice(None), int(position)
    p = torch.as_tensor(position).long()
    if p.shape != (n,):
        raise InvalidParameterError(f"The 'position' parameter must be an int or ({n},) per-prompt positions. "
                                    f"Got shape {tuple(p.shape)}.")
    return torch.arange(n), p


def _at(act: torch.Tensor, position) -> torch.Tensor:
    """``act[i, position_i]`` for every prompt ``i`` → ``(batch, ...)``."""
    rows, cols = _rows_cols(position, act.shape[0])
    return act[rows, cols]


def _logprob(logits: torch.Tensor, answer: torch.Tensor, position) -> torch.Tensor:
    return torch.log_softmax(_at(logits, position).double(), -1).gather(-1, answer.long()[:, None])[:, 0]


def _prob(logits: torch.Tensor, answer: torch.Tensor, position) -> torch.Tensor:
    return _logprob(logits, answer, position).exp()


def _set_head(name: str, values: torch.Tensor, position, head: int):
    """A ``(hook_name, fn)`` pair setting head ``head`` of ``name`` (``[batch, pos, head, d]``) at each prompt's
    ``position`` to ``values[i]``."""

    def fn(act, hook):
        out = act.clone()
        rows, cols = _rows_cols(position, act.shape[0])
        out[rows, cols, head] = values.to(act.dtype)
        return out

    return name, fn


class _LastTokenRuns:
    """Forward passes of a Hugging Face model (`HookedHF`) whose interventions touch only each prompt's last
    token: the tokens before it run once with a key/value cache, and each intervened run recomputes only the
    last token (exact: causal attention, nothing before the last position changes). Prompts of different
    lengths (right-padded, read at ``position``) are left-aligned for the cache: their prefixes are
    left-padded, masked out of attention, with each token at its own position id."""

    def __init__(self, model, tokens: torch.Tensor, position, *, repeat: int = 1) -> None:
        self.model, n = model, len(tokens)
        last = (torch.full((n,), int(position) % tokens.shape[1], dtype=torch.long)
                if isinstance(position, (int, np.integer)) else torch.as_tensor(position).long())
        P = int(last.max())
        self.n, self.P, self.cache = n, P, None
        self.last_tok = tokens[torch.arange(n), last][:, None]
        self.mask = torch.zeros((n, P + 1), dtype=torch.long)
        for i, p in enumerate(last.tolist()):
            self.mask[i, P - p:] = 1
        self.pos = last[:, None]
        if P > 0:
            prefix = torch.zeros((n, P), dtype=torch.long)
            for i, p in enumerate(last.tolist()):
                prefix[i, P - p:] = tokens[i, :p]
            pid = (torch.cumsum(self.mask[:, :P], 1) - 1).clamp(min=0)
            with model.hooks([]):
                out = model.hf(input_ids=prefix, attention_mask=self.mask[:, :P], position_ids=pid, use_cache=True)
            self.cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        import inspect

        # transformers >= 5.x names the key/value cache argument "cache" (older: "past_key_values")
        self.cache_kw = "cache" if "cache" in inspect.signature(model.hf.forward).parameters else "past_key_values"
        if repeat > 1:  # each prompt ``repeat`` times in a row (row i * repeat + j): one batch for many interventions
            self.n = n * repeat
            self.last_tok, self.mask, self.pos = (t.repeat_interleave(repeat, 0) for t in (self.last_tok, self.mask,
                                                                                         self.pos))
            if self.cache is not None:
                self.cache.batch_repeat_interleave(repeat)

    def logits(self, make_hooks=None) -> torch.Tensor:
        """Logits ``(n, vocab)`` at each prompt's last position; ``make_hooks(idx)`` gives the ``(name, fn)``
        hooks (or interventions) for the prompts ``idx`` (here all, in order), acting on the last token
        (position -1)."""
        from spinlens.interp.interventions import steer

        hooks = [] if make_hooks is None else make_hooks(torch.arange(self.n))
        kw = {} if self.cache is None else {self.cache_kw: self.cache}
        with steer(self.model, hooks):
            lg = self.model.hf(input_ids=self.last_tok, attention_mask=self.mask, position_ids=self.pos,
                               use_cache=self.cache is not None, **kw).logits[:, -1]
        if self.cache is not None:
            _crop(self.cache, self.P)
        return lg


def _crop(cache, length: int) -> None:
    """Cut a key/value cache back to ``length`` tokens (transformers < 5 crop to a length, >= 5 by a count)."""
    n = int(cache.get_seq_length())
    if n == length:
        return
    try:
        cache.crop(length - n)
    except ValueError:
        cache.crop(length)
    if int(cache.get_seq_length()) != length:
        cache.crop(length)


def _fast(model) -> bool:
    """Whether the last-token runs apply (a Hugging Face model through `HookedHF`)."""
    return getattr(model, "hf", None) is not None and hasattr(model.hf, "config")


def _rows_prob(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.double(), -1).gather(-1, answer.long()[:, None])[:, 0]


@torch.no_grad()
def token_head_indirect_effect(model, clean: torch.Tensor, corrupt: torch.Tensor, answer: torch.Tensor, *,
                               groups=None, position=-1, corrupt_position=None,
                               hook_template: str = "blocks.{layer}.attn.hook_result"):
    """Causal indirect effect of every head (Todd et al. 2023) on a token task.

    ``CIE(l, h) = mean_prompts [ p(answer | corrupt, head (l,h) at ``position`` := its mean over the clean
    prompts of the same group) − p(answer | corrupt) ]``.

    Parameters
    ----------
    model : HookedModule, tokens ``(batch, pos)`` → logits ``(batch, pos, vocab)``
    clean, corrupt : LongTensor ``(batch, pos)``
        Clean in-context prompts and their corrupted versions (e.g. shuffled labels); same shape.
    answer : LongTensor ``(batch,)``
        The correct token of each prompt.
    groups : LongTensor ``(batch,)`` or None
        Task of each prompt: means are taken per task (Todd et al. average the CIE over tasks).
    position : int or LongTensor ``(batch,)``
        Where the clean head output is read (default: the last position); per-prompt positions for
        right-padded prompts of different lengths.
    corrupt_position : int or LongTensor ``(batch,)`` or None
        Where the head output is set and the answer read in the corrupted prompts (default: ``position``).

    Returns
    -------
    xarray.DataArray, dims ``(layer, head)``, name ``indirect_effect`` (probability units).
    """

    cpos = position if corrupt_position is None else corrupt_position
    fixed = isinstance(position, int) and isinstance(cpos, int)
    if clean.ndim != 2 or corrupt.ndim != 2 or (clean.shape != corrupt.shape if fixed else len(clean) != len(corrupt)):
        raise InvalidParameterError(
            f"The 'clean' and 'corrupt' parameters must be token tensors of the same shape (batch, pos). "
            f"Got {tuple(clean.shape)} and {tuple(corrupt.shape)}."
        )
    if answer.shape != (len(clean),):
        raise InvalidParameterError(f"The 'answer' parameter must have shape ({len(clean)},). Got {tuple(answer.shape)}.")
    g, n_groups = _groups(groups, len(clean))
    n_layers = model.cfg.n_layers
    names = [hook_template.format(layer=L) for L in range(n_layers)]
    _, cache = model.run_with_cache(clean, names_filter=names)
    n_heads = cache[names[0]].shape[2]
    out = np.zeros((n_layers, n_heads))
    if _fast(model):  # all heads of a layer in one batch: row i * n_heads + h sets head h of prompt i
        runs = _LastTokenRuns(model, corrupt, cpos, repeat=n_heads)
        rows = torch.arange(runs.n)
        ans = answer.repeat_interleave(n_heads)
        p0 = _rows_prob(runs.logits(), ans).reshape(-1, n_heads)[:, 0]
        for L in range(n_layers):
            vals = _group_means(_at(cache[names[L]], position), g, n_groups)[g].reshape(runs.n, -1)

            def fn(act, hook, vals=vals):
                act = act.clone()
                act[rows, -1, rows % n_heads] = vals.to(act.dtype)
                return act

            p = _rows_prob(runs.logits(lambda idx, fn=fn, L=L: [(names[L], fn)]), ans).reshape(-1, n_heads)
            out[L] = (p - p0[:, None]).mean(0).numpy()
        return _ie_array(out)
    base = _prob(model(corrupt), answer, cpos)
    for L in range(n_layers):
        means = _group_means(_at(cache[names[L]], position), g, n_groups)  # (group, head, d_model)
        for h in range(n_heads):
            iv = (SetActivation(names[L], means[g, h], positions=cpos, head=h) if isinstance(cpos, int)
                  else _set_head(names[L], means[g, h], cpos, h))
            p = _prob(run_steered(model, corrupt, [iv]), answer, cpos)
            out[L, h] = float((p - base).mean())
    return _ie_array(out)


def _ie_array(out: np.ndarray):
    import xarray as xr

    n_layers, n_heads = out.shape
    return xr.DataArray(
        out, dims=("layer", "head"), coords={"layer": np.arange(n_layers), "head": np.arange(n_heads)},
        name="indirect_effect",
        attrs={"long_name": "p(answer | corrupt, head := clean mean) − p(answer | corrupt)", "units": "probability"},
    )


def top_heads(indirect_effect, k: int) -> list[tuple[int, int]]:
    """The ``k`` (layer, head) pairs with the largest indirect effect, largest first."""
    ie = np.asarray(indirect_effect)
    k = check_int("k", k, low=1, high=ie.size)
    flat = np.argsort(-ie.ravel(), kind="stable")[:k]
    rows, cols = np.unravel_index(flat, ie.shape)
    return [(int(L), int(h)) for L, h in zip(rows, cols)]


@torch.no_grad()
def token_function_vector(model, clean: torch.Tensor, heads: Sequence[tuple[int, int]], *, groups=None,
                          position=-1, hook_template: str = "blocks.{layer}.attn.hook_result") -> torch.Tensor:
    """Function vector of each task: Σ over ``heads`` of the head's mean output at ``position`` (an int, or
    ``(batch,)`` per-prompt positions).

    Returns
    -------
    Tensor ``(n_groups, d_model)`` (``n_groups = 1`` when ``groups`` is None).
    """
    if len(heads) == 0:
        raise InvalidParameterError("The 'heads' parameter must list at least one (layer, head) pair.")
    g, n_groups = _groups(groups, len(clean))
    names = sorted({hook_template.format(layer=int(L)) for L, _ in heads})
    _, cache = model.run_with_cache(clean, names_filter=names)
    parts = [_group_means(_at(cache[hook_template.format(layer=int(L))], position)[:, int(h)], g, n_groups)
             for L, h in heads]
    v = parts[0]
    for part in parts[1:]:
        v = v + part
    return v


def _resid_hook(model, layer: int) -> str:
    n = model.cfg.n_layers
    layer = check_int("layer", layer, low=0, high=n)
    return act_name("resid_pre", layer) if layer < n else act_name("resid_post", n - 1)


def fv_hook(model, vectors: torch.Tensor, *, layer: int, groups=None, position=-1, strength: float = 1.0):
    """A ``(hook_name, fn)`` pair adding ``strength * vectors[group]`` to the residual before ``layer`` at ``position``
    (an int, or ``(batch,)`` per-prompt positions).

    ``layer = n_layers`` adds after the last block. Use with ``model.hooks([...])`` or
    `spinlens.interp.interventions.run_steered`.
    """
    strength = check_float("strength", strength)
    name = _resid_hook(model, layer)
    vec = torch.as_tensor(vectors)
    vec = vec[None] if vec.ndim == 1 else vec

    def fn(act, hook):
        g = torch.zeros(act.shape[0], dtype=torch.long) if groups is None else torch.as_tensor(groups).long()
        out = act.clone()
        rows, cols = _rows_cols(position, act.shape[0])
        out[rows, cols] = out[rows, cols] + strength * vec.to(act.dtype)[g]
        return out

    return name, fn


@torch.no_grad()
def evaluate_function_vector(model, prompts: torch.Tensor, answer: torch.Tensor, vectors: torch.Tensor, *,
                             layers: Sequence[int], groups=None, strength: float = 1.0, position=-1) -> dict:
    """Accuracy, mean p(answer) and mean log p(answer) at ``position`` (default the last; ``(batch,)``
    per-prompt positions for right-padded prompts) without and with the FV added there before each layer.

    Returns
    -------
    dict with ``base_accuracy``, ``base_prob``, ``base_logprob`` (floats) and ``accuracy``, ``prob``,
    ``logprob`` (arrays over ``layers``).
    """
    layers = [int(L) for L in layers]
    fast = None
    if _fast(model):  # every layer in one batch: row i * len(layers) + j adds the FV before layers[j]
        R = len(layers) + 1  # the last block of rows: no FV (the base)
        runs = _LastTokenRuns(model, prompts, position, repeat=R)
        rows = torch.arange(runs.n)
        gr = torch.zeros(len(prompts), dtype=torch.long) if groups is None else torch.as_tensor(groups).long()
        vec = torch.as_tensor(vectors)
        vec = (vec[None] if vec.ndim == 1 else vec)[gr].repeat_interleave(R, 0)
        by_name: dict = {}
        for j, L in enumerate(layers):
            by_name.setdefault(_resid_hook(model, L), []).append(j)
        hooks = []
        for name, js in by_name.items():
            sel = rows[torch.isin(rows % R, torch.as_tensor(js))]

            def fn(act, hook, sel=sel):
                act = act.clone()
                act[sel, -1] = act[sel, -1] + strength * vec[sel].to(act.dtype)
                return act

            hooks.append((name, fn))
        fast = runs.logits(lambda idx: hooks).reshape(len(prompts), R, -1)
        base = fast[:, -1]
    else:
        base = _at(model(prompts), position)
    acc, prob, lp = [], [], []
    for j, L in enumerate(layers):
        if fast is not None:
            lg = fast[:, j]
        else:
            hk = fv_hook(model, vectors, layer=L, groups=groups, strength=strength, position=position)
            lg = _at(run_steered(model, prompts, [hk]), position)
        acc.append(float((lg.argmax(-1) == answer).double().mean()))
        lp.append(float(_logprob(lg[:, None], answer, -1).mean()))
        prob.append(float(_prob(lg[:, None], answer, -1).mean()))
    return {
        "base_accuracy": float((base.argmax(-1) == answer).double().mean()),
        "base_prob": float(_prob(base[:, None], answer, -1).mean()),
        "base_logprob": float(_logprob(base[:, None], answer, -1).mean()),
        "accuracy": np.array(acc),
        "prob": np.array(prob),
        "logprob": np.array(lp),
    }


@dataclass(frozen=True)
class FunctionVectorResult:
    """Result of `function_vector_experiment`.

    Attributes
    ----------
    indirect_effect : xarray.DataArray ``(layer, head)``
    heads : list of (layer, head)
        The top heads used for the FVs.
    vectors : Tensor ``(n_tasks, d_model)``
    evaluation : xarray.Dataset
        dims ``(condition, layer)`` with condition ∈ {``zero_shot``, ``shuffled``} and ``layer`` = where the FV
        is added (residual before that layer); variables ``accuracy``, ``prob``, ``logprob`` (with the FV) and
        ``base_accuracy``, ``base_prob``, ``base_logprob`` (dims ``condition``: without it). attrs:
        ``clean_accuracy``, ``clean_prob``, ``clean_logprob`` (full in-context prompts, no intervention).
    """

    indirect_effect: xr.DataArray
    heads: list
    vectors: torch.Tensor
    evaluation: xr.Dataset

    def to_dict(self) -> dict:
        ev = self.evaluation
        out = {"heads": [list(h) for h in self.heads], "clean_accuracy": ev.attrs["clean_accuracy"],
               "clean_prob": ev.attrs["clean_prob"], "indirect_effect": self.indirect_effect.values.tolist()}
        for c in ev.coords["condition"].values:
            e = ev.sel(condition=c)
            out[str(c)] = {
                "base_accuracy": float(e["base_accuracy"]), "base_prob": float(e["base_prob"]),
                "accuracy_by_layer": {int(L): float(a) for L, a in zip(ev.coords["layer"].values, e["accuracy"].values)},
                "prob_by_layer": {int(L): float(a) for L, a in zip(ev.coords["layer"].values, e["prob"].values)},
            }
            if "logprob" in ev:
                out[str(c)]["base_logprob"] = float(e["base_logprob"])
                out[str(c)]["logprob_by_layer"] = {int(L): float(a) for L, a in zip(ev.coords["layer"].values,
                                                                                     e["logprob"].values)}
        if "clean_logprob" in ev.attrs:
            out["clean_logprob"] = ev.attrs["clean_logprob"]
        return out


def fv_verdict(res: FunctionVectorResult) -> dict:
    """The verdict (`spinlens.verdict.compare`) of `function_vector_experiment`: accuracy with the FV at the best
    (condition, layer) against the same condition without it (one value each: no spread)."""
    from spinlens.verdict import compare

    ev = res.evaluation
    gain = (ev["accuracy"] - ev["base_accuracy"]).transpose("condition", "layer")
    c, L = np.unravel_index(int(np.nanargmax(gain.values)), gain.shape)
    cond, layer = str(ev.condition.values[c]), int(ev.layer.values[L])
    return compare([float(ev["accuracy"].sel(condition=cond, layer=layer))], [float(ev["base_accuracy"].sel(condition=cond))],
                   what=f"{cond} accuracy", method=f"FV at layer {layer}", baseline="no FV", better="higher").to_dict()


def function_vector_experiment(model, tasks: np.ndarray, *, n_prompts: int = 256, n_pairs: int = 3, top_k: int = 3,
                               layers: Sequence[int] | None = None, strength: float = 1.0, corruption: str = "shuffled",
                               rng=None) -> FunctionVectorResult:
    """CIE of every head → FVs from the ``top_k`` heads → FV added to zero-shot and shuffled prompts.

    The heads are chosen on one prompt set (CIE with the ``corruption`` prompts of `FixedTaskPrompts`,
    ``shuffled`` as in Todd et al. or ``other_task``, as the base) and the FVs are
    extracted from it; the evaluation uses fresh prompts (same tasks). ``layers`` defaults to
    ``0..n_layers`` (every residual insertion point).
    """
    check_choice("corruption", corruption, ("shuffled", "other_task"))
    g = as_generator(rng)
    V = model.cfg.d_vocab if getattr(model.cfg, "d_vocab", None) else None
    fit = fixed_task_prompts(n_prompts, tasks, n_pairs=n_pairs, d_vocab=V, rng=g)
    T = np.asarray(tasks).shape[0]
    if len(np.unique(fit.task.numpy())) < T:  # a task absent from the fit set (tiny n_prompts)
        raise InvalidParameterError(f"The 'n_prompts' parameter is too small to see all {T} tasks. Got {n_prompts}.")
    ev = fixed_task_prompts(n_prompts, tasks, n_pairs=n_pairs, d_vocab=V, rng=g)
    return function_vector_on_prompts(model, fit, ev, top_k=top_k, layers=layers, strength=strength,
                                      corruption=corruption)


def _last(prompts, name: str):
    """Read position of one prompt set: per-prompt last tokens (``prompts.last[name]``) or -1."""
    last = getattr(prompts, "last", None)
    return -1 if last is None else last[name]


def function_vector_on_prompts(model, fit, ev, *, top_k: int = 3, layers: Sequence[int] | None = None,
                               strength: float = 1.0, corruption: str = "shuffled") -> FunctionVectorResult:
    """The FV pipeline on given prompt sets: CIE on ``fit`` → FVs from the ``top_k`` heads → evaluation on ``ev``.

    ``fit`` and ``ev`` are prompt sets with token tensors ``clean``, ``shuffled``, ``zero_shot`` (and
    ``other_task`` for that corruption), ``answer`` and ``task`` (`FixedTaskPrompts`, or the natural-language
    prompts of `spinlens.lm.icl_tasks`, whose right-padded prompts carry per-prompt last positions in
    ``last[name]``). Heads and vectors come from ``fit``; accuracy from ``ev`` (fresh prompts).
    """
    import xarray as xr

    check_choice("corruption", corruption, ("shuffled", "other_task"))
    if getattr(fit, corruption, None) is None:
        raise InvalidParameterError(f"The 'corruption' parameter {corruption!r} is not available for these prompts; use shuffled.")
    T = int(fit.task.max()) + 1
    ie = token_head_indirect_effect(model, fit.clean, getattr(fit, corruption), fit.answer, groups=fit.task,
                                    position=_last(fit, "clean"), corrupt_position=_last(fit, corruption))
    heads = top_heads(ie.values, top_k)
    vecs = token_function_vector(model, fit.clean, heads, groups=fit.task, position=_last(fit, "clean"))
    if vecs.shape[0] < T:
        raise InvalidParameterError(f"The fit prompts must see all {T} tasks. Got {vecs.shape[0]}.")
    layers = list(range(model.cfg.n_layers + 1)) if layers is None else [int(L) for L in layers]
    with torch.no_grad():
        clean_logits = _at(model(ev.clean), _last(ev, "clean"))
    res = {c: evaluate_function_vector(model, getattr(ev, c), ev.answer, vecs, layers=layers, groups=ev.task,
                                       strength=strength, position=_last(ev, c))
           for c in ("zero_shot", "shuffled")}
    conds = list(res)
    ds = xr.Dataset(
        {
            "accuracy": (("condition", "layer"), np.stack([res[c]["accuracy"] for c in conds])),
            "prob": (("condition", "layer"), np.stack([res[c]["prob"] for c in conds])),
            "logprob": (("condition", "layer"), np.stack([res[c]["logprob"] for c in conds])),
            "base_accuracy": ("condition", np.array([res[c]["base_accuracy"] for c in conds])),
            "base_prob": ("condition", np.array([res[c]["base_prob"] for c in conds])),
            "base_logprob": ("condition", np.array([res[c]["base_logprob"] for c in conds])),
        },
        coords={"condition": conds, "layer": layers},
        attrs={
            "clean_accuracy": float((clean_logits.argmax(-1) == ev.answer).double().mean()),
            "clean_prob": float(_prob(clean_logits[:, None], ev.answer, -1).mean()),
            "clean_logprob": float(_logprob(clean_logits[:, None], ev.answer, -1).mean()),
            "heads": str(heads), "strength": float(strength), "n_layers": int(model.cfg.n_layers),
        },
    )
    return FunctionVectorResult(ie, heads, vecs, ds)


# --------------------------------------------------------------------------------------------------------
# vectors from data on regression models (prompt matrices in, a number out)


def mean_activation(model, Z, hook, *, position: int | slice | None = -1, batch_size: int | None = None):
    """Mean over prompts of the activation at ``hook`` and ``position`` (None: mean over positions too).

    ``Z`` is a batch of prompt matrices or, for a token model (`spinlens.interp.hf.HookedHF`, a token
    Transformer), an integer tensor of tokens ``(batch, pos)``, kept as integers. ``position`` may be a slice
    (``slice(1, None)``: every position after a BOS token), averaged like None. ``batch_size`` runs the
    prompts in chunks (a large vocabulary's logits do not fit at once); the mean is the same. ``hook`` may be
    a list of names: one pass gives ``{name: mean}``.

    Returns a tensor of the trailing shape of the hook (``(d,)`` for residual hooks), or a dict of them.
    """
    import torch

    names = [hook] if isinstance(hook, str) else list(hook)
    Zt = torch.as_tensor(Z)
    if Zt.dtype.is_floating_point:
        Zt = Zt.to(next(model.parameters()).dtype)
    step = int(batch_size) if batch_size else max(1, Zt.shape[0])
    total: dict = {}
    n = 0
    for i in range(0, Zt.shape[0], step):
        with torch.no_grad():
            _, cache = model.run_with_cache(Zt[i: i + step], names_filter=names)
        for name in names:
            if name not in cache:
                raise InvalidParameterError(f"The 'hook' parameter must be an exact hook name of the model. Got {name!r}.")
            a = cache[name]
            a = a.mean(1) if position is None else a[:, position].mean(1) if isinstance(position, slice) else a[:, position]
            total[name] = a.sum(0) + total.get(name, 0.0)
        n += min(step, Zt.shape[0] - i)
    means = {name: t / n for name, t in total.items()}
    return means[hook] if isinstance(hook, str) else means


def difference_of_means(model, Z_pos, Z_neg, hook, *, position: int | slice | None = -1,
                        batch_size: int | None = None):
    """Steering vector mean(act | Z_pos) − mean(act | Z_neg) at ``hook`` (CAA / ActAdd; shape ``(d,)``).

    ``position``, ``batch_size`` and a list of hooks (a dict of vectors) as in `mean_activation` (token
    models: integer tokens ``(batch, pos)``).
    """
    pos = mean_activation(model, Z_pos, hook, position=position, batch_size=batch_size)
    neg = mean_activation(model, Z_neg, hook, position=position, batch_size=batch_size)
    return pos - neg if isinstance(hook, str) else {k: pos[k] - neg[k] for k in pos}


def function_vector(
    model,
    Z,
    heads: Sequence[tuple[int, int]],
    *,
    position: int = -1,
    hook_template: str = "blocks.{layer}.attn.hook_result",
):
    """Function vector (Todd et al. 2023): Σ over ``heads`` [(layer, head), ...] of the mean head output.

    The head output is read at ``hook_template`` (``[batch, pos, head, d_model]``, after W_O) at the
    query ``position``, averaged over the ICL prompts ``Z`` (all of one task). Returns ``(d_model,)``.
    """
    import torch

    if len(heads) == 0:
        raise InvalidParameterError("The 'heads' parameter must list at least one (layer, head) pair.")
    dtype = next(model.parameters()).dtype
    names = sorted({hook_template.format(layer=int(layer)) for layer, _ in heads})
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(Z, dtype=dtype), names_filter=names)
    v = None
    for layer, head in heads:
        a = cache[hook_template.format(layer=int(layer))][:, position, int(head)].mean(0)
        v = a if v is None else v + a
    return v


def task_vector(model, Z, layer: int, *, position: int = -1, hook_template: str = "blocks.{layer}.hook_resid_pre"):
    """Task vector (Hendel et al. 2023): mean residual at ``layer`` and the last position over ICL prompts Z.

    Patch it into a zero-shot forward pass with ``SetActivation(hook_template.format(layer=L), θ, -1)``.
    """
    return mean_activation(model, Z, hook_template.format(layer=int(layer)), position=position)


def head_indirect_effect(
    model,
    Z_clean,
    Z_corrupt,
    target,
    *,
    position: int = -1,
    hook_template: str = "blocks.{layer}.attn.hook_result",
    n_layers: int | None = None,
    n_heads: int | None = None,
):
    """Causal indirect effect of each head (Todd et al. 2023, regression analogue).

    For each (layer, head): on the corrupted prompts, set the head's output at the query to its mean over
    the clean prompts and measure the drop of the MSE to ``target``:
    ``CIE = MSE(corrupt) − MSE(corrupt, head := mean clean)``. Positive = the head carries the task.

    Returns
    -------
    xarray.DataArray, dims (layer, head)
    """
    import torch
    import xarray as xr

    dtype = next(model.parameters()).dtype
    n_layers = n_layers or getattr(model, "n_layers", None) or len(model.blocks)
    Zc = torch.as_tensor(Z_clean, dtype=dtype)
    Zx = torch.as_tensor(Z_corrupt, dtype=dtype)
    t = torch.as_tensor(np.asarray(target), dtype=dtype)
    names = [hook_template.format(layer=layer) for layer in range(n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(Zc, names_filter=names)
        base = float(torch.mean((model(Zx) - t) ** 2))
    n_heads = n_heads or cache[names[0]].shape[2]
    out = np.zeros((n_layers, n_heads))
    for layer in range(n_layers):
        means = cache[names[layer]][:, position].mean(0)  # (head, d_model)
        for h in range(n_heads):
            iv = SetActivation(names[layer], means[h], positions=position, head=h)
            pred = run_steered(model, Zx, [iv])
            out[layer, h] = base - float(torch.mean((pred - t) ** 2))
    return xr.DataArray(
        out,
        dims=("layer", "head"),
        coords={"layer": np.arange(n_layers), "head": np.arange(n_heads)},
        name="indirect_effect",
        attrs={"long_name": "MSE(corrupt) − MSE(patched)", "units": "squared label units"},
    )
