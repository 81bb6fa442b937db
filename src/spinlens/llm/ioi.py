"""Indirect object identification (Wang et al. 2022, arXiv 2211.00593) in a pretrained LM.

A prompt names two people, then repeats one of them (the subject S) and stops where the other (the indirect
object IO) should come: "When Mary and John went to the store, John gave a drink to" → " Mary". The model's
preference is the logit difference ``logit(IO) - logit(S)`` at the last position.

- `ioi_task`: prompts from `TEMPLATES` (10 templates) in both name orders (``ABBA``: IO named first;
  ``BABA``: S named first), names from `NAMES` kept only where the tokenizer makes them one token (the others
  are listed in ``meta``/``source`` and in `single_token_names`), and a corrupted prompt per clean one from the
  "ABC" distribution: the same sentence with three unrelated names in place of IO, S and the repeated S.
- `ioi_study`: the clean logit difference (mean ± sd over prompts, and over seeds of the dataset draw), then on
  the first seed's prompts: the direct path-patching score of every head to the logits (name movers > 0,
  negative name movers < 0; `spinlens.interp.patching.direct_path_patch`), path patching into the name movers'
  queries (S-inhibition heads), per-head attention from the end to IO / S1 / S2, and duplicate-token,
  induction and previous-token scores on repeated random tokens; heads classed by role with the evidence for
  each; the circuit's faithfulness with every other head mean-ablated over the ABC distribution, against
  random sets of as many heads.

Prompts are grouped by token length (`spinlens.llm.tasks.tokenize_task`); patching scores are pooled over the
groups with one normalisation, ``Σ_g n_g (m_patched - m_base) / Σ_g n_g (m_source - m_base)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_float, check_int
from spinlens.llm.tasks import TextTask, tokenize_task
from spinlens.random import as_generator
from spinlens.verdict import mean_sd
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    import xarray as xr

    from spinlens.results import StudyReport

__all__ = ["NAMES", "TEMPLATES", "single_token_names", "ioi_task", "IOIResult", "ioi_study", "logit_diffs",
           "mean_ablation_faithfulness", "circuit_search", "CircuitSearch", "ioi_report"]

NAMES = (
    "Mary", "John", "Tom", "James", "Michael", "David", "Sarah", "Paul", "Emma", "Anna", "Peter", "Laura",
    "Daniel", "Kevin", "Lisa", "Mark", "Rachel", "Steven", "Jessica", "Andrew", "Robert", "Linda", "Susan",
    "George", "Helen", "Frank", "Alice", "Henry", "Grace", "Jack", "Kate", "Amy", "Eric", "Ryan", "Adam",
    "Jason", "Chris", "Brian", "Karen", "Nancy", "Scott", "Emily", "Sophie", "Oliver", "Lucy", "Harry",
    "Charlotte", "Thomas", "Edward", "Victoria", "Benjamin", "Samuel", "Matthew", "Joseph", "Katherine",
)
PLACES = ("store", "park", "school", "garden", "station", "office", "restaurant", "hospital", "beach", "house")
OBJECTS = ("drink", "book", "ring", "ball", "letter", "necklace", "basketball", "computer", "kiss", "snack")
# {A}, {B}: the two names introduced; {S}: the repeated one (the subject); the answer is the other one
TEMPLATES = (
    "When {A} and {B} went to the {P}, {S} gave a {O} to",
    "Then, {A} and {B} had a long day at the {P}. {S} gave a {O} to",
    "After {A} and {B} arrived at the {P}, {S} handed a {O} to",
    "While {A} and {B} were working at the {P}, {S} gave a {O} to",
    "Yesterday {A} and {B} met at the {P}, and {S} passed a {O} to",
    "Today {A} and {B} were walking to the {P} when {S} threw a {O} to",
    "At the {P}, {A} and {B} found a {O}. {S} gave it to",
    "Later, {A} and {B} went back to the {P}, where {S} showed a {O} to",
    "The {P} was quiet when {A} and {B} came in, so {S} brought a {O} to",
    "Once {A} and {B} left the {P}, {S} sent a {O} to",
)


def single_token_names(tokenizer, names: Sequence[str] = NAMES) -> tuple[list[str], list[str]]:
    """``(kept, refused)``: names whose form with a leading space (``" Mary"``) is exactly one token."""
    kept: list[str] = []
    refused: list[str] = []
    for n in names:
        ids = tokenizer(" " + n, add_special_tokens=False)["input_ids"]
        (kept if len(ids) == 1 else refused).append(n)
    return kept, refused


def ioi_task(n_prompts: int, tokenizer, *, templates: Sequence[str] = TEMPLATES, names: Sequence[str] = NAMES,
             rng=0) -> TextTask:
    """IOI prompts with answers (IO), foils (S) and ABC-corrupted prompts.

    Prompts cycle through ``templates`` × orders (``ABBA``, ``BABA``); names, places and objects are drawn
    with ``rng``. Names that are not single tokens are left out and listed in ``meta["refused_names"]`` and
    in ``source``; fewer than 5 single-token names is refused (one line).

    Returns
    -------
    TextTask with meta ``template`` (index), ``order``, ``io``, ``s``, and ``refused_names`` (one list per
    prompt, the same for all).
    """
    n = check_int("n_prompts", n_prompts, low=1)
    if not templates:
        raise InvalidParameterError("The 'templates' parameter must hold at least one template.")
    for t in templates:
        if any(k not in t for k in ("{A}", "{B}", "{S}")) or any(k in t and f" {k}" not in t for k in ("{A}", "{B}", "{S}")):
            raise InvalidParameterError(f"Each template must contain {{A}}, {{B}}, {{S}}, each after a space (names are "
                                        f"single tokens with their leading space). Got {t!r} instead.")
    kept, refused = single_token_names(tokenizer, names)
    if len(kept) < 5:
        raise InvalidParameterError(f"The 'names' parameter must hold at least 5 names that are single tokens for this "
                                    f"tokenizer (with a leading space). Got {len(kept)} ({len(refused)} refused: "
                                    f"{', '.join(refused[:8])}).")
    g = as_generator(rng)
    prompts, answers, corrupt, wrong = [], [], [], []
    meta: dict[str, list] = {k: [] for k in ("template", "order", "io", "s", "refused_names")}
    for i in range(n):
        ti = (i // 2) % len(templates)
        order = "ABBA" if i % 2 == 0 else "BABA"
        io, s, x, y, z = (kept[j] for j in g.choice(len(kept), size=5, replace=False))
        P = PLACES[int(g.integers(len(PLACES)))]
        O = OBJECTS[int(g.integers(len(OBJECTS)))]
        a, b = (io, s) if order == "ABBA" else (s, io)
        prompts.append(templates[ti].format(A=a, B=b, S=s, P=P, O=O))
        corrupt.append(templates[ti].format(A=x, B=y, S=z, P=P, O=O))  # ABC: three unrelated names
        answers.append(" " + io)
        wrong.append(" " + s)
        for k, v in (("template", ti), ("order", order), ("io", io), ("s", s), ("refused_names", list(refused))):
            meta[k].append(v)
    src = f"spinlens.llm.ioi.ioi_task(templates={len(templates)}, names={len(kept)} single-token"
    src += f" ({len(refused)} refused: {', '.join(refused)})" if refused else ""
    return TextTask("ioi", prompts, answers, corrupt, wrong, meta, src + f", seed={rng})")


def _positions(task: TextTask, tokenizer, idx: int, ids: list[int]) -> dict:
    """Token positions of IO, S1, S2 (first and second occurrence of S) and the end in prompt ``idx``."""
    io_id = tokenizer(" " + task.meta["io"][idx], add_special_tokens=False)["input_ids"][0]
    s_id = tokenizer(" " + task.meta["s"][idx], add_special_tokens=False)["input_ids"][0]
    s_pos = [p for p, t in enumerate(ids) if t == s_id]
    io_pos = [p for p, t in enumerate(ids) if t == io_id]
    return {"io": io_pos[0], "s1": s_pos[0], "s2": s_pos[-1], "end": len(ids) - 1}


# ----------------------------------------------------------------------------------------------- metrics
def logit_diffs(model, batches) -> np.ndarray:
    """Per-prompt ``logit(IO) - logit(S)`` at the last position of the clean prompts, batch after batch."""
    out = []
    with torch.no_grad():
        for b in batches:
            lg = model(b.clean)[:, -1]
            out.append((lg.gather(-1, b.answer[:, None]) - lg.gather(-1, b.wrong[:, None]))[:, 0].double().numpy())
    return np.concatenate(out)


def _pooled(parts) -> tuple[np.ndarray, float, float]:
    """Pool `PatchingResult` s of several prompt groups under one normalisation (see module doc)."""
    num = sum(p.n_prompts * p.scores.values * (p.metric_source - p.metric_base) for p in parts)
    den = sum(p.n_prompts * (p.metric_source - p.metric_base) for p in parts)
    n = sum(p.n_prompts for p in parts)
    m_b = sum(p.n_prompts * p.metric_base for p in parts) / n
    m_s = sum(p.n_prompts * p.metric_source for p in parts) / n
    return num / den, m_b, m_s


def _corrupt_z_means(model, batch) -> list:
    """``[(hook name, mean z [pos, head, d])]`` per layer: every head's output averaged over the batch's
    corrupted prompts (the value a mean-ablated head takes)."""
    names = [act_name("z", L) for L in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.corrupt, names_filter=names)
    return [(n, cache[n].mean(0)) for n in names]


def _mean_ablation_hooks(model, batch, keep: set) -> list:
    """Hooks that set every head's ``z`` outside ``keep`` to its mean over the batch's corrupted prompts."""
    hooks = []
    for L, (name, mean) in enumerate(_corrupt_z_means(model, batch)):
        heads = [h for h in range(model.cfg.n_heads) if (L, h) not in keep]
        if not heads:
            continue

        def hook(act, hook, heads=heads, mean=mean):
            act = act.clone()
            act[:, :, heads] = mean[None, :, heads]
            return act

        hooks.append((name, hook))
    return hooks


def mean_ablation_faithfulness(model, batches, heads) -> float:
    """Mean logit difference with only ``heads`` left, every other head's ``z`` mean-ablated over the ABC
    prompts of its group, divided by the full model's (Wang et al.'s F(C) / F(M))."""
    keep = {(int(L), int(h)) for L, h in heads}
    full = logit_diffs(model, batches).mean()
    vals = []
    with torch.no_grad():
        for b in batches:
            with model.hooks(_mean_ablation_hooks(model, b, keep)):
                lg = model(b.clean)[:, -1]
            vals.append((lg.gather(-1, b.answer[:, None]) - lg.gather(-1, b.wrong[:, None]))[:, 0].double().numpy())
    return float(np.concatenate(vals).mean() / full)


@dataclass
class CircuitSearch:
    """Result of `circuit_search`: head circuits found by their effect, of several sizes.

    Attributes
    ----------
    sizes : list of int
        Circuit sizes (heads), largest first.
    circuits : list of list of (layer, head)
        The heads kept at each size.
    faithfulness : list of float
        F(circuit) / F(model), every other head mean-ablated over the corrupted prompts (exact).
    faithfulness_random : list of list of float
        The same for ``n_random`` random head sets of each size.
    removed : list of (layer, head)
        The pruning order (first removed first).
    attribution : ndarray (layer, head)
        The first step's gradient of F with respect to each head's gate at g = 1: to first order, the drop of
        the logit difference when that head alone is mean-ablated (positive: the head raises it).
    n_steps : int
        Gradient evaluations of the pruning.
    """

    sizes: list
    circuits: list
    faithfulness: list
    faithfulness_random: list
    removed: list
    attribution: np.ndarray
    n_steps: int

    def smallest_faithful(self, level: float = 0.8) -> int | None:
        """The smallest size whose circuit keeps at least ``level`` of the logit difference and lies above
        every one of its random sets (None when no size does)."""
        ok = [k for k, f, r in zip(self.sizes, self.faithfulness, self.faithfulness_random)
              if f >= level and f > max(r, default=-np.inf)]
        return min(ok) if ok else None

    def to_dict(self) -> dict:
        out = []
        for k, c, f, r in zip(self.sizes, self.circuits, self.faithfulness, self.faithfulness_random):
            m, sd = mean_sd(np.asarray(r, dtype=float))
            out.append({"size": int(k), "heads": [f"{L}.{h}" for L, h in c], "faithfulness": float(f),
                        "faithfulness_random": {"mean": m, "sd": sd, "values": [float(x) for x in r]}})
        return {"method": "iterative attribution pruning of mean-ablation gates", "by_size": out,
                "smallest_faithful_0.8": self.smallest_faithful(0.8), "n_steps": self.n_steps,
                "removed": [f"{L}.{h}" for L, h in self.removed]}


def _gate_hooks(model, batch, gates):
    """Hooks that set each head's ``z`` to ``m + g (z - m)``, m its mean over the batch's corrupted prompts and
    g its entry of ``gates`` (layer, head): g = 1 keeps the head, g = 0 mean-ablates it."""
    hooks = []
    for L, (name, mean) in enumerate(_corrupt_z_means(model, batch)):

        def hook(act, hook, L=L, mean=mean):
            g = gates[L].to(act.dtype)[None, None, :, None]
            return mean[None] + g * (act - mean[None])

        hooks.append((name, hook))
    return hooks


def circuit_search(model, batches, *, sizes: Sequence[int] = (64, 32, 16, 8, 4), prune_fraction: float = 0.2,
                   n_random: int = 5, rng=0, progress=None) -> CircuitSearch:
    """Head circuits of ``model`` found by their effect on the task's logit difference, not by role.

    Every head gets a gate g: its output ``z`` is ``m + g (z - m)``, m its mean over the corrupted prompts
    (as in `mean_ablation_faithfulness`). Starting from the whole model (every g = 1), each step computes the
    gradient of F (the mean logit difference over ``batches``) with respect to the gates of the heads still
    kept, and mean-ablates (g = 0) the ``prune_fraction`` of them with the smallest ``|dF/dg|`` — the heads
    whose removal changes F least, in either direction — never stepping past the next size of ``sizes``. At
    each size the kept heads are the circuit; its faithfulness is measured exactly, against ``n_random``
    random sets of as many heads (``rng``). One forward and backward pass over the prompts per step.
    """
    check_float("prune_fraction", prune_fraction, low=0, high=1, low_open=True, high_open=True)
    check_int("n_random", n_random, low=1)
    nL, nH = model.cfg.n_layers, model.cfg.n_heads
    sizes = sorted({check_int("sizes", int(k), low=1, high=nL * nH) for k in sizes}, reverse=True)
    if not sizes:
        raise InvalidParameterError("The 'sizes' parameter must hold at least one circuit size.")
    say = progress or (lambda s: None)
    alive = np.ones((nL, nH), dtype=bool)
    removed: list = []
    attribution = np.zeros((nL, nH))
    n_steps = 0
    circuits: list = []
    for k in sizes:
        while alive.sum() > k:
            gates = torch.tensor(alive, dtype=torch.float32, requires_grad=True)
            total = torch.zeros(())
            n = 0
            with torch.enable_grad():  # the caller may run under no_grad
                for b in batches:
                    with model.hooks(_gate_hooks(model, b, gates)):
                        lg = model(b.clean)[:, -1]
                    d = (lg.gather(-1, b.answer[:, None]) - lg.gather(-1, b.wrong[:, None]))[:, 0]
                    total = total + d.sum()
                    n += len(d)
                (grad,) = torch.autograd.grad(total / n, gates)
            gr = grad.double().numpy()
            if n_steps == 0:
                attribution = gr.copy()
            n_steps += 1
            cand = np.flatnonzero(alive.ravel())
            n_cut = min(max(1, int(np.ceil(prune_fraction * len(cand)))), len(cand) - k)
            cut = cand[np.argsort(np.abs(gr.ravel()[cand]), kind="stable")[:n_cut]]
            alive.ravel()[cut] = False
            removed += [(int(i) // nH, int(i) % nH) for i in cut]
            say(f"circuit search: {int(alive.sum())} heads kept")
        circuits.append([(int(L), int(h)) for L, h in zip(*np.nonzero(alive))])
    g = as_generator(rng)
    faith, rand = [], []
    for c in circuits:
        faith.append(mean_ablation_faithfulness(model, batches, c))
        rand.append([mean_ablation_faithfulness(model, batches, [(int(i) // nH, int(i) % nH) for i in
                                                                  g.choice(nL * nH, size=len(c), replace=False)])
                     for _ in range(n_random)])
        say(f"circuit search: {len(c)} heads keep {faith[-1]:.3f} of the logit difference "
            f"(random sets {np.mean(rand[-1]):.3f})")
    return CircuitSearch(list(sizes), circuits, faith, rand, removed, attribution, n_steps)


def repeated_token_scores(model, *, n_seq: int = 8, half: int = 20, rng=0) -> dict:
    """Induction, previous-token and duplicate-token scores ``(layer, head)`` on random tokens repeated once.

    duplicate-token: attention from a token of the second half to its own earlier occurrence (q → q − half);
    induction: to the token after it (q → q − half + 1); previous-token: to the token before (q → q − 1).
    """
    from spinlens.lm.induction import _patterns, repeated_tokens

    toks = repeated_tokens(n_seq, half, model.cfg.d_vocab, rng=rng, exclude=tuple(range(min(300, model.cfg.d_vocab // 4))))
    P = _patterns(model, toks)  # [L, B, H, q, k]
    q = torch.arange(half, 2 * half)
    q1 = torch.arange(1, 2 * half)
    return {"induction": P[:, :, :, q, q - half + 1].mean(dim=(1, 3)).numpy().astype(float),
            "duplicate": P[:, :, :, q, q - half].mean(dim=(1, 3)).numpy().astype(float),
            "previous": P[:, :, :, q1, q1 - 1].mean(dim=(1, 3)).numpy().astype(float)}


# ----------------------------------------------------------------------------------------------- study
@dataclass(frozen=True)
class IOIResult:
    """Result of `ioi_study`.

    Attributes
    ----------
    logit_diff : dict
        Per seed: ``mean``, ``sd`` over prompts, ``accuracy`` (IO above S), ``n``; and ``over_seeds``
        (mean ± sd of the per-seed means).
    logit_diff_corrupt : float
        Mean logit difference (same IO/S tokens) on the ABC prompts of the first seed.
    direct : xarray.DataArray ``(layer, head)``
        Direct path-patching score to the logits (denoising ABC → clean).
    to_name_movers_q : xarray.DataArray ``(layer, head)`` or None
        Path-patching score of each earlier head through the name movers' queries.
    attention : xarray.DataArray ``(layer, head, target)``
        Mean attention from the end to ``io``, ``s1``, ``s2`` (clean prompts), and from S2 to ``s1``.
    head_scores : xarray.DataArray ``(layer, head, kind)``
        ``induction``, ``duplicate``, ``previous`` on repeated random tokens.
    roles : dict
        ``name_mover``, ``negative_name_mover``, ``s_inhibition``, ``induction``, ``duplicate_token``,
        ``previous_token``: lists of ``(layer, head)``.
    evidence : dict
        ``"L.h"`` → the numbers behind each classed head.
    circuit : tuple of (layer, head)
    faithfulness : float
        F(circuit) / F(model), everything else mean-ablated over the ABC prompts.
    faithfulness_random : list of float
        The same for random head sets of the circuit's size.
    faithfulness_empty : float
        Every head mean-ablated.
    edges : list
        ``(sender, receiver, input, score)`` of the circuit graph.
    seeds, n_prompts, n_prompts_patching : ...
    source : str
    """

    logit_diff: dict
    logit_diff_corrupt: float
    direct: xr.DataArray
    to_name_movers_q: xr.DataArray | None
    attention: xr.DataArray
    head_scores: xr.DataArray
    roles: dict
    evidence: dict
    circuit: tuple
    faithfulness: float
    faithfulness_random: list
    faithfulness_empty: float
    edges: list
    seeds: tuple
    n_prompts: int
    n_prompts_patching: int
    n_layers: int
    n_heads: int
    source: str = ""
    dropped: dict = field(default_factory=dict)
    search: CircuitSearch | None = None

    @property
    def verdict(self) -> str:
        r = np.asarray(self.faithfulness_random)
        m, s = mean_sd(r)
        k = len(self.circuit)
        if self.faithfulness > m + 2 * s and self.faithfulness > 0.5:
            line = (f"the {k}-head circuit by role keeps {self.faithfulness:.2f} of the logit difference alone; "
                    f"random {k}-head sets keep {m:.2f} ± {s:.2f} — the circuit carries the task")
        else:
            line = (f"the {k}-head circuit by role keeps {self.faithfulness:.2f} of the logit difference; random "
                    f"{k}-head sets {m:.2f} ± {s:.2f} — not clearly better than random")
        if self.search is not None:
            sr = self.search
            parts = [f"{n}: {f:.2f} (random {np.mean(r):.2f})" for n, f, r in
                     zip(sr.sizes, sr.faithfulness, sr.faithfulness_random)]
            best = sr.smallest_faithful(0.8)
            line += ("; circuits by effect keep " + ", ".join(parts) + " — " +
                     (f"the smallest faithful one (>= 0.8, above every random set) has {best} heads" if best
                      else "none of these sizes is faithful (>= 0.8 and above every random set)"))
        return line

    def to_dict(self) -> dict:
        def hl(xs):
            return [f"{L}.{h}" for L, h in xs]

        r = np.asarray(self.faithfulness_random, dtype=float)
        return {
            "logit_diff": self.logit_diff, "logit_diff_corrupt": self.logit_diff_corrupt,
            "roles": {k: hl(v) for k, v in self.roles.items()}, "evidence": self.evidence,
            "circuit": hl(self.circuit), "faithfulness": self.faithfulness,
            "faithfulness_random": {**dict(zip(("mean", "sd"), mean_sd(r))), "values": r.tolist()},
            "faithfulness_empty": self.faithfulness_empty, "verdict": self.verdict,
            "edges": [{"sender": f"{s[0]}.{s[1]}", "receiver": rc if rc == "output" else f"{rc[0]}.{rc[1]}",
                       "input": i, "score": float(v)} for s, rc, i, v in self.edges],
            "seeds": list(self.seeds), "n_prompts": self.n_prompts, "n_prompts_patching": self.n_prompts_patching,
            "source": self.source, "n_dropped": len(self.dropped),
            **({"circuit_search": self.search.to_dict()} if self.search is not None else {}),
        }

    def circuit_object(self):
        """The circuit as a `spinlens.interp.patching.Circuit` (for `spinlens.plotting.interp.plot_circuit`)."""
        from spinlens.interp.patching import Circuit

        return Circuit(tuple(sorted(self.circuit)), tuple(self.edges), 0.0, self.n_layers, self.n_heads)


def _top(v: np.ndarray, threshold: float, sign: int = 1, k: int | None = None) -> list:
    order = np.argsort(-sign * v, axis=None)
    out = [tuple(int(x) for x in np.unravel_index(i, v.shape)) for i in order if sign * v.flat[i] >= threshold]
    return out[:k] if k else out


def _subset_batch(b, n: int):
    from spinlens.llm.tasks import TokenBatch

    return TokenBatch(b.clean[:n], b.answer[:n], b.index[:n], b.corrupt[:n], b.wrong[:n])


def ioi_study(
    model,
    tokenizer,
    *,
    n_prompts: int = 64,
    seeds: Sequence[int] = (0, 1, 2),
    n_prompts_patching: int = 16,
    direct_threshold: float = 0.05,
    sinh_threshold: float = 0.03,
    score_threshold: float = 0.3,
    max_name_movers: int = 4,
    n_random: int = 5,
    max_batch: int = 256,
    search_sizes: Sequence[int] = (64, 32, 16, 8),
    progress=None,
) -> IOIResult:
    """The IOI circuit of ``model`` (see the module doc).

    Parameters
    ----------
    n_prompts : int
        Prompts per seed for the logit difference, the direct path patching and faithfulness.
    seeds : seeds of the dataset draws (the first one is used for the circuit).
    n_prompts_patching : int
        Prompts (from the largest equal-length group) for path patching into the name movers' queries (the
        costly step: one patched forward per earlier head).
    direct_threshold : float
        Name movers: direct score ``>= direct_threshold`` with more attention from the end to IO than to S2;
        negative name movers: ``<= -direct_threshold``.
    sinh_threshold : float
        S-inhibition heads: path score through the name movers' queries ``>= sinh_threshold``.
    score_threshold : float
        Induction / duplicate-token / previous-token heads: score on repeated tokens ``>= score_threshold``.
    max_name_movers : int
        Name movers that receive the query path patching (strongest first).
    n_random : int
        Random head sets for the faithfulness baseline.
    search_sizes : sizes of the circuits found by effect (`circuit_search` on the first seed's prompts, with
        ``n_random`` random sets each); sizes at or above the model's number of heads are left out; empty:
        no search.
    progress : callable(str) or None
    """
    import xarray as xr

    from spinlens.interp.metrics import logit_diff_metric
    from spinlens.interp.patching import direct_path_patch, path_patch

    check_int("n_prompts", n_prompts, low=2)
    check_int("n_prompts_patching", n_prompts_patching, low=1)
    check_int("n_random", n_random, low=2)
    for name, v in (("direct_threshold", direct_threshold), ("sinh_threshold", sinh_threshold),
                    ("score_threshold", score_threshold)):
        check_float(name, v, low=0)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise InvalidParameterError("The 'seeds' parameter must hold at least one seed.")
    say = progress or (lambda s: None)
    nL, nH = model.cfg.n_layers, model.cfg.n_heads

    ld: dict = {}
    tt0 = None
    for sd in seeds:
        task = ioi_task(n_prompts, tokenizer, rng=sd)
        tt = tokenize_task(task, tokenizer)
        d = logit_diffs(model, tt.batches)
        ld[str(sd)] = {**dict(zip(("mean", "sd"), mean_sd(d))), "accuracy": float((d > 0).mean()), "n": int(len(d))}
        say(f"seed {sd}: logit difference {ld[str(sd)]['mean']:.3f} ± {ld[str(sd)]['sd']:.3f} over {len(d)} prompts")
        if tt0 is None:
            tt0 = tt
    means = np.array([v["mean"] for v in ld.values()])
    ld["over_seeds"] = dict(zip(("mean", "sd"), mean_sd(means)))
    if not np.isfinite(ld["over_seeds"]["mean"]) or ld["over_seeds"]["mean"] <= 0:
        raise InvalidParameterError(f"The model does not prefer the indirect object (mean logit difference "
                                    f"{ld['over_seeds']['mean']:.3f} <= 0): there is no IOI behaviour to explain.")
    assert tt0 is not None  # seeds is not empty
    task, batches = tt0.task, tt0.batches

    # name movers: direct path to the logits, pooled over length groups
    parts = []
    for b in batches:
        assert b.corrupt is not None and b.wrong is not None  # an IOI task has its ABC prompts and wrong names
        parts.append(direct_path_patch(model, b.clean, b.corrupt, metric=logit_diff_metric(b.answer, b.wrong)))
    direct, m_cor, m_cl = _pooled(parts)
    say("direct path patching to the logits: done")

    # attention from the end to IO / S1 / S2, and from S2 to S1
    targets = ("io", "s1", "s2", "s2_to_s1")
    att = np.zeros((nL, nH, len(targets)))
    names = [act_name("pattern", L) for L in range(nL)]
    n_tot = 0
    with torch.no_grad():
        for b in batches:
            _, cache = model.run_with_cache(b.clean, names_filter=names)
            for r, i in enumerate(b.index.tolist()):
                pos = _positions(task, tokenizer, i, b.clean[r].tolist())
                for L in range(nL):
                    p = cache[names[L]][r]  # [head, q, k]
                    att[L, :, 0] += p[:, pos["end"], pos["io"]].double().numpy()
                    att[L, :, 1] += p[:, pos["end"], pos["s1"]].double().numpy()
                    att[L, :, 2] += p[:, pos["end"], pos["s2"]].double().numpy()
                    att[L, :, 3] += p[:, pos["s2"], pos["s1"]].double().numpy()
                n_tot += 1
    att /= max(n_tot, 1)
    say("attention patterns: done")

    nm = [hd for hd in _top(direct, direct_threshold) if att[hd][0] > att[hd][2]]
    nnm = _top(direct, direct_threshold, sign=-1)
    scores = repeated_token_scores(model, rng=seeds[0])
    say("repeated-token scores: done")

    # S-inhibition: path patching into the strongest name movers' queries
    receivers = nm[:max_name_movers]
    sinh_scores = np.full((nL, nH), np.nan)
    big = max(batches, key=len)
    pb = _subset_batch(big, n_prompts_patching)
    if receivers:
        say(f"path patching into the queries of {len(receivers)} name movers on {len(pb)} prompts ...")
        res = path_patch(model, pb.clean, pb.corrupt, metric=logit_diff_metric(pb.answer, pb.wrong),
                         receivers=receivers, receiver_input="q", max_batch=max_batch)
        sinh_scores = res.scores.values
    movers = set(nm) | set(nnm)
    sinh = [hd for hd in _top(np.nan_to_num(sinh_scores, nan=-np.inf), sinh_threshold) if hd not in movers]
    induction = _top(scores["induction"], score_threshold)
    duplicate = _top(scores["duplicate"], score_threshold)
    previous = _top(scores["previous"], score_threshold)
    roles = {"name_mover": nm, "negative_name_mover": nnm, "s_inhibition": sinh, "induction": induction,
             "duplicate_token": duplicate, "previous_token": previous}

    evidence: dict[str, dict] = {}
    for role, hs in roles.items():
        for L, h in hs:
            e = evidence.setdefault(f"{L}.{h}", {"roles": []})
            e["roles"].append(role)
            e.update({"direct": float(direct[L, h]), "q_path_to_name_movers": float(sinh_scores[L, h]),
                      "attn_end_to_io": float(att[L, h, 0]), "attn_end_to_s1": float(att[L, h, 1]),
                      "attn_end_to_s2": float(att[L, h, 2]), "attn_s2_to_s1": float(att[L, h, 3]),
                      "induction": float(scores["induction"][L, h]), "duplicate": float(scores["duplicate"][L, h]),
                      "previous": float(scores["previous"][L, h])})

    # the circuit: movers, S-inhibition, and the induction / duplicate-token heads below the S-inhibition heads
    top_s = max((L for L, _ in sinh), default=0)
    circuit = sorted(set(nm) | set(nnm) | set(sinh) | {hd for hd in induction + duplicate if hd[0] < top_s})
    edges: list[tuple] = [(hd, "output", "out", float(direct[hd])) for hd in nm + nnm]
    for hd in sinh:
        for r in receivers:
            edges.append((hd, r, "q", float(sinh_scores[hd])))
    for hd in sorted({hd for hd in induction + duplicate if hd[0] < top_s}):
        for s in sinh:
            if hd[0] < s[0]:
                edges.append((hd, s, "v", float(scores["duplicate"][hd] + scores["induction"][hd])))

    say(f"faithfulness of {len(circuit)} heads against {n_random} random sets ...")
    faith = mean_ablation_faithfulness(model, batches, circuit)
    empty = mean_ablation_faithfulness(model, batches, [])
    g = np.random.default_rng(seeds[0])
    rand = []
    for _ in range(n_random):
        pick = g.choice(nL * nH, size=len(circuit), replace=False)
        rand.append(mean_ablation_faithfulness(model, batches, [(int(i) // nH, int(i) % nH) for i in pick]))

    sizes = [int(k) for k in search_sizes if int(k) < nL * nH]  # the whole model is no circuit to search for
    search = (circuit_search(model, batches, sizes=sizes, n_random=n_random, rng=seeds[0], progress=say)
              if sizes else None)

    coords = {"layer": np.arange(nL), "head": np.arange(nH)}
    direct_da = xr.DataArray(direct, dims=("layer", "head"), coords=coords, name="direct_path_score")
    sinh_da = xr.DataArray(sinh_scores, dims=("layer", "head"), coords=coords, name="q_path_score_to_name_movers")
    att_da = xr.DataArray(att, dims=("layer", "head", "target"), coords={**coords, "target": list(targets)},
                          name="attention")
    hs_da = xr.DataArray(np.stack([scores[k] for k in ("induction", "duplicate", "previous")], -1),
                         dims=("layer", "head", "kind"), coords={**coords, "kind": ["induction", "duplicate", "previous"]},
                         name="head_score")
    return IOIResult(ld, float(m_cor), direct_da, sinh_da, att_da, hs_da, roles, evidence, tuple(circuit), faith, rand,
                     empty, edges, seeds, int(n_prompts), len(pb), nL, nH, task.source, tt0.dropped, search)


def ioi_report(model: str, *, n_prompts: int = 64, seed: int = 0, n_seeds: int = 3, n_patching: int = 16,
               n_random: int = 5, search_sizes: Sequence[int] = (64, 32, 16, 8), progress=None) -> StudyReport:
    """``spinlens interp ioi``: check the options, load ``model`` (a named pretrained model or a Hugging Face
    folder), run `ioi_study` on seeds ``seed .. seed + n_seeds - 1`` and return its
    `spinlens.experiment.StudyReport`: ``IOIResult.to_dict()`` with the model, the headline table, the figures
    ``ioi_circuit`` and ``ioi_heads`` and the data ``ioi.nc``."""
    from spinlens.llm.tasks import load_model_and_tokenizer
    from spinlens.results import StudyReport

    n = check_int("n-prompts", n_prompts, low=2)
    check_int("seed", seed, low=0)
    ns = check_int("n-seeds", n_seeds, low=1, high=20)
    check_int("n-patching", n_patching, low=1)
    check_int("n-random", n_random, low=2)
    for k in search_sizes:
        check_int("search-sizes", k, low=1)
    net, tok = load_model_and_tokenizer(model)
    with torch.no_grad():
        res = ioi_study(net, tok, n_prompts=n, seeds=tuple(range(seed, seed + ns)), n_prompts_patching=n_patching,
                        n_random=n_random, search_sizes=search_sizes, progress=progress)
    d = res.to_dict()
    d["model"] = model
    ld = d["logit_diff"]
    rows = [("model", model), ("prompts", f"{n} per seed, seeds {d['seeds']}")]
    for s in d["seeds"]:
        v = ld[str(s)]
        rows.append((f"logit difference, seed {s}", f"{v['mean']:.3f} ± {v['sd']:.3f} (IO above S: {v['accuracy']:.2f})"))
    rows.append(("logit difference over seeds", f"{ld['over_seeds']['mean']:.3f} ± {ld['over_seeds']['sd']:.3f}"))
    rows.append(("logit difference, ABC prompts", f"{d['logit_diff_corrupt']:.3f}"))
    for k, v in d["roles"].items():
        rows.append((k.replace("_", " ") + " heads", " ".join(v[:12]) + (" ..." if len(v) > 12 else "") or "-"))
    fr = d["faithfulness_random"]
    rows += [("circuit", " ".join(d["circuit"])), ("faithfulness", f"{d['faithfulness']:.3f}"),
             ("random circuits (same size)", f"{fr['mean']:.3f} ± {fr['sd']:.3f} over {len(fr['values'])}"),
             ("no head kept", f"{d['faithfulness_empty']:.3f}")]
    for x in d.get("circuit_search", {}).get("by_size", []):
        r = x["faithfulness_random"]
        rows.append((f"circuit by effect, {x['size']} heads", f"faithfulness {x['faithfulness']:.3f} (random "
                     f"{r['mean']:.3f} ± {r['sd']:.3f})"))
    rows.append(("verdict", d["verdict"]))

    def dataset():
        import xarray as xr

        return xr.Dataset({"direct_path_score": res.direct, "q_path_score_to_name_movers": res.to_name_movers_q,
                           "attention": res.attention, "head_score": res.head_scores})

    from spinlens.plotting import interp as P

    return StudyReport("interp ioi", d, rows, figures={
        "ioi_circuit": lambda: P.plot_circuit(res.circuit_object(), roles=res.roles, title="IOI circuit"),
        "ioi_heads": lambda: P.plot_ioi_heads(res)}, data={"ioi": dataset()})
