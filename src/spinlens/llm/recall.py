"""Factual recall by causal tracing (Meng et al. 2022, ROME, arXiv 2202.05262) on a pretrained causal LM.

Protocol (per known fact, e.g. ``"The capital of France is"`` → ``" Paris"``, scored by the answer's first
token):

1. *clean* run: cache every layer's residual output (``blocks.L.hook_resid_post``), MLP output
   (``hook_mlp_out``) and attention output (``hook_attn_out``);
2. *corrupted* run: Gaussian noise of standard deviation ``noise × σ`` added to the input embeddings
   (``hook_embed``) of the subject's tokens, where ``σ`` is the standard deviation of the embeddings of the
   subjects' tokens over all traced facts (the paper: ``noise = 3``);
3. *restored* runs: the corrupted run with one clean state put back — the residual stream at one (layer,
   position) (``resid``), or the MLP (``mlp``) / attention (``attn``) outputs of a window of ``window``
   consecutive layers centred on a layer (layers ``L - window//2 .. L + window - window//2 - 1``, clipped) at
   one position.

The *indirect effect* of a state is ``p(answer | restored) − p(answer | corrupted)`` (probability units).
Positions are grouped as in the paper: first subject token, middle subject tokens, last subject token,
first subsequent token, further tokens, last token (a one-token subject counts as its *last* subject token;
the prompt's last position as the *last token*). Positions before the subject are identical in the clean and
corrupted runs, so restoring them changes nothing (indirect effect exactly 0): they are not traced.

Each noise seed draws one noise tensor per fact, shared by all its restorations (paired comparisons, as in
the paper); the spread over seeds is reported. The paper's GPT-2 XL (48 layers) shows the MLP effect at the
last subject token peaking in the early-middle layers (about layer 15 of 48 with a window of 10), and
attention mattering at the last token in late layers; ``window=None`` scales the paper's 10 of 48 layers to
the model's depth (6 of 30 for SmolLM2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_float, check_int
from spinlens.random import as_generator
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    import xarray as xr

    from spinlens.results import StudyReport

__all__ = ["CATEGORIES", "KINDS", "RecallResult", "recall_task", "known_facts", "subject_positions", "trace_fact", "causal_trace",
           "recall_study", "last_logits", "recall_report"]

CATEGORIES = ("first subject token", "middle subject tokens", "last subject token", "first subsequent token",
              "further tokens", "last token")
KINDS = ("resid", "mlp", "attn")
_HOOK = {"resid": "resid_post", "mlp": "mlp_out", "attn": "attn_out"}


def last_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """Logits at the last position ``(batch, vocab)`` of a `HookedHF` (the unembedding only there)."""
    hf = getattr(model, "hf", None)
    if hf is not None:
        try:
            return hf(input_ids=tokens, use_cache=False, logits_to_keep=1).logits[:, -1]
        except TypeError:  # a family without logits_to_keep
            pass
    return model(tokens)[:, -1]


def subject_positions(tokenizer, prompt: str, subject: str) -> tuple[list[int], list[int]]:
    """``(token ids, positions of the subject's tokens)`` of ``prompt`` (ids as `spinlens.llm.tasks` encodes
    them, with the tokenizer's special tokens); a token belongs to the subject if its characters overlap the
    subject's first occurrence."""
    s = prompt.find(subject)
    if s < 0:
        raise InvalidParameterError(f"The subject {subject!r} does not occur in the prompt {prompt!r}.")
    e = s + len(subject)
    enc = tokenizer(prompt, return_offsets_mapping=True)
    pos = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < e and b > s]
    if not pos:
        raise InvalidParameterError(f"The subject {subject!r} covers no token of {prompt!r}.")
    return list(enc["input_ids"]), pos


@torch.no_grad()
def known_facts(model, tokenizer, task, *, batch_size: int = 32) -> np.ndarray:
    """Boolean mask over the prompts of a `TextTask`: the model's top next token is the answer's first token."""
    from spinlens.llm.tasks import tokenize_task

    tt = tokenize_task(task, tokenizer, single_token=False)
    ok = np.zeros(len(task), dtype=bool)
    for b in tt.batches:
        for i in range(0, len(b), batch_size):
            lg = last_logits(model, b.clean[i:i + batch_size])
            ok[b.index[i:i + batch_size].numpy()] = (lg.argmax(-1) == b.answer[i:i + batch_size]).numpy()
    return ok


def recall_task(n: int = 48, *, rng=0, relations=("capital",)):
    """``n`` factual-recall prompts (first template of each relation) about countries drawn with ``rng`` from
    `spinlens.llm.facts.country_facts` — the sourced recall set of the general-ability evaluations
    (`spinlens.llm.general`)."""
    from spinlens.llm import facts as F

    n = check_int("n", n, low=1)
    fs = F.country_facts(relations)
    g = as_generator(rng)
    pick = sorted(g.choice(len(fs), size=min(n, len(fs)), replace=False).tolist())
    return F.recall_task([fs[i] for i in pick], templates={r: F.TEMPLATES[r][:1] for r in relations})


def _category(pos: int, subj: list[int], T: int) -> str:
    s0, s1 = subj[0], subj[-1]
    if s0 <= pos <= s1:
        return CATEGORIES[2] if pos == s1 else CATEGORIES[0] if pos == s0 else CATEGORIES[1]
    if pos == T - 1:
        return CATEGORIES[5]
    return CATEGORIES[3] if pos == s1 + 1 else CATEGORIES[4]


def _window_layers(L: int, window: int, n_layers: int) -> range:
    lo = max(0, L - window // 2)
    return range(lo, min(n_layers, L - window // 2 + window))


def _restore_hooks(rows, clean_cache: dict, window: int, n_layers: int):
    """Hooks putting clean states back: row ``r`` of the batch restores ``rows[r] = (kind, layer, pos)``."""
    per: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for r, (kind, L, p) in enumerate(rows):
        layers = [L] if kind == "resid" else _window_layers(L, window, n_layers)
        for ell in layers:
            name = act_name(_HOOK[kind], ell)
            per[name][0].append(r)
            per[name][1].append(p)
    hooks = []
    for name, (rr, pp) in per.items():
        ri, pi = torch.as_tensor(rr), torch.as_tensor(pp)
        vals = clean_cache[name][0, pi]

        def fn(act, hook, ri=ri, pi=pi, vals=vals):
            act = act.clone()
            act[ri, pi] = vals.to(act.dtype)
            return act

        hooks.append((name, fn))
    return hooks


@torch.no_grad()
def trace_fact(model, ids, subject: list[int], answer: int, noise: torch.Tensor, *, kinds=KINDS, window: int = 6,
               chunk: int = 256) -> dict:
    """Causal trace of one prompt.

    Parameters
    ----------
    ids : list of int
        The prompt's tokens.
    subject : list of int
        Positions of the subject's tokens (consecutive).
    answer : int
        The answer's first token.
    noise : Tensor ``(n_seeds, len(subject), d_model)``
        The noise added to the subject's embeddings, one draw per seed.

    Returns
    -------
    dict with ``p_clean`` (float), ``p_corrupt`` ``(n_seeds,)``, ``positions`` (the traced positions: from the
    first subject token to the end) and, per kind, ``ie`` ``(n_seeds, n_layers, n_positions)``.
    """
    n_layers = model.cfg.n_layers
    tok = torch.as_tensor([ids], dtype=torch.long)
    T = tok.shape[1]
    names = [act_name(_HOOK[k], L) for k in kinds for L in range(n_layers)]
    logits, cache = model.run_with_cache(tok, names_filter=names)
    p_clean = float(torch.softmax(logits[0, -1].double(), -1)[answer])
    positions = list(range(subject[0], T))
    rows = [(k, L, p) for k in kinds for L in range(n_layers) for p in positions]
    sp = torch.as_tensor(subject)
    out: dict[str, Any] = {"p_clean": p_clean, "positions": positions, "p_corrupt": np.zeros(len(noise))}
    for k in kinds:
        out[k] = np.zeros((len(noise), n_layers, len(positions)))
    emb = act_name("embed")
    for s, z in enumerate(noise):
        def corrupt(act, hook, z=z):
            act = act.clone()
            act[:, sp] = act[:, sp] + z.to(act.dtype)
            return act

        with model.hooks([(emb, corrupt)]):
            base = float(torch.softmax(last_logits(model, tok)[0].double(), -1)[answer])
        out["p_corrupt"][s] = base
        probs = []
        for c in range(0, len(rows), chunk):
            part = rows[c:c + chunk]
            with model.hooks([(emb, corrupt), *_restore_hooks(part, cache, window, n_layers)]):
                lg = last_logits(model, tok.expand(len(part), T))
            probs.append(torch.softmax(lg.double(), -1)[:, answer])
        p = torch.cat(probs).numpy().reshape(len(kinds), n_layers, len(positions))
        for i, k in enumerate(kinds):
            out[k][s] = p[i] - base
    return out


@dataclass
class RecallResult:
    """Result of `recall_study` (``to_dict`` is the JSON of ``spinlens interp recall``).

    Attributes
    ----------
    indirect_effect : xarray.Dataset
        Variables ``mean`` and ``sd`` with dims ``(kind, layer, category)``: the indirect effect averaged over
        the traced facts (and the positions of each category within a fact), mean and sd (ddof 1) over the
        noise seeds; ``by_seed`` with dims ``(seed, kind, layer, category)``; ``n_facts`` per category.
    known : dict
        ``n_prompts``, ``n_known`` and per relation / template counts of prompts the model answers right.
    peaks : dict
        Per kind, the layer where the indirect effect peaks at its category (``mlp``/``resid``: last subject
        token; ``attn``: last token): layer of the seed-mean curve, per-seed layers, the value mean ± sd.
    """

    indirect_effect: xr.Dataset
    known: dict
    peaks: dict
    p_clean: float
    p_corrupt: dict
    facts: list
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        ds = self.indirect_effect
        curves = {str(k): {str(c): [round(float(v), 6) for v in ds["mean"].sel(kind=k, category=c).values]
                           for c in ds.category.values} for k in ds.kind.values}
        return {"known": self.known, "p_clean": self.p_clean, "p_corrupt": self.p_corrupt, "peaks": self.peaks,
                "n_facts_traced": len(self.facts),
                "n_facts_by_category": {str(c): int(n) for c, n in zip(ds.category.values, ds["n_facts"].values)},
                "indirect_effect_mean": curves, "facts": self.facts, **self.settings}


def _ms(a) -> dict:
    from spinlens.verdict import mean_sd_dict

    return mean_sd_dict(a)  # mean ± sd over seeds, ddof 1 (the one convention)


@torch.no_grad()
def causal_trace(model, tokenizer, task, *, idx=None, noise: float = 3.0, n_seeds: int = 3, window: int | None = None,
                 kinds=KINDS, rng=0, progress: bool = False):
    """Causal traces of the prompts ``idx`` of a `TextTask` whose ``meta["subject"]`` names each subject.

    Returns ``(dataset, per_fact)``: the `RecallResult.indirect_effect` dataset and the per-fact traces
    (`trace_fact` outputs, with ``prompt``, ``answer`` added).
    """
    import xarray as xr

    from spinlens.llm.tasks import answer_token

    if "subject" not in task.meta:
        raise InvalidParameterError("The task must name each prompt's subject in meta['subject'].")
    n_seeds = check_int("n_seeds", n_seeds, low=1, high=100)
    noise = check_float("noise", noise, low=0.0)
    n_layers = model.cfg.n_layers
    window = max(1, round(10 * n_layers / 48)) if window is None else check_int("window", window, low=1, high=n_layers)
    idx = list(range(len(task))) if idx is None else [int(i) for i in idx]
    if not idx:
        raise InvalidParameterError("No fact to trace: the model answers none of the prompts correctly.")
    prepared = []
    for i in idx:
        ids, subj = subject_positions(tokenizer, task.prompts[i], task.meta["subject"][i])
        prepared.append((i, ids, subj, answer_token(tokenizer, task.answers[i])[0]))
    # σ: the standard deviation of the embeddings of the subjects' tokens over all traced facts
    W = model.hf.get_input_embeddings().weight if hasattr(model, "hf") else None
    emb_name = act_name("embed")
    subj_emb = []
    for _, ids, subj, _ in prepared:
        if W is not None and getattr(model.hf.config, "model_type", "").startswith("gemma"):
            W = None  # scaled embeddings: read them through the hook
        if W is not None:
            subj_emb.append(W[torch.as_tensor([ids[p] for p in subj])])
        else:
            _, c = model.run_with_cache(torch.as_tensor([ids]), names_filter=[emb_name])
            subj_emb.append(c[emb_name][0, subj])
    sigma = float(torch.cat(subj_emb).double().std())
    g = as_generator(rng)
    per_fact = []
    for n, (i, ids, subj, ans) in enumerate(prepared):
        z = torch.as_tensor(g.standard_normal((n_seeds, len(subj), model.cfg.d_model)) * noise * sigma,
                            dtype=torch.float32)
        tr = trace_fact(model, ids, subj, ans, z, kinds=kinds, window=window)
        tr.update(prompt=task.prompts[i], answer=task.answers[i], subject=subj, n_tokens=len(ids), index=i)
        per_fact.append(tr)
        if progress and (n + 1) % 5 == 0:
            print(f"  traced {n + 1}/{len(prepared)} facts", flush=True)
    # average positions within each category per fact, then over the facts that have the category
    cats = [c for c in CATEGORIES if any(_category(p, f["subject"], f["n_tokens"]) == c
                                         for f in per_fact for p in f["positions"])]
    by_seed = np.zeros((n_seeds, len(kinds), n_layers, len(cats)))
    n_facts = np.zeros(len(cats), dtype=int)
    for j, c in enumerate(cats):
        acc = []
        for f in per_fact:
            cols = [q for q, p in enumerate(f["positions"]) if _category(p, f["subject"], f["n_tokens"]) == c]
            if cols:
                acc.append(np.stack([f[k][:, :, cols].mean(-1) for k in kinds], axis=1))  # (seed, kind, layer)
        n_facts[j] = len(acc)
        by_seed[..., j] = np.mean(acc, axis=0)
    from spinlens.verdict import mean_sd

    mean, sd = mean_sd(by_seed, axis=0)
    ds = xr.Dataset(
        {"mean": (("kind", "layer", "category"), mean), "sd": (("kind", "layer", "category"), sd),
         "by_seed": (("seed", "kind", "layer", "category"), by_seed), "n_facts": ("category", n_facts)},
        coords={"kind": list(kinds), "layer": np.arange(n_layers), "category": cats, "seed": np.arange(n_seeds)},
        attrs={"long_name": "indirect effect p(answer | restored) − p(answer | corrupted)", "units": "probability",
               "noise": noise, "sigma": sigma, "window": int(window), "n_seeds": int(n_seeds)},
    )
    return ds, per_fact


def _peaks(ds) -> dict:
    out = {}
    n_layers = ds.sizes["layer"]
    for k in ds.kind.values:
        cat = "last token" if str(k) == "attn" else "last subject token"
        if cat not in ds.category.values:
            continue
        curve = ds["mean"].sel(kind=k, category=cat).values
        Lm = int(np.argmax(curve))
        per = ds["by_seed"].sel(kind=k, category=cat).values  # (seed, layer)
        out[str(k)] = {"category": cat, "layer": Lm, "relative_depth": Lm / n_layers,
                       "layer_by_seed": [int(x) for x in per.argmax(1)],
                       "indirect_effect": _ms(per[:, Lm])}
    return out


@torch.no_grad()
def recall_study(model, tokenizer, task, *, n_facts: int = 40, noise: float = 3.0, n_seeds: int = 3,
                 window: int | None = None, rng=0, progress: bool = False) -> RecallResult:
    """Known facts of ``task`` (a `spinlens.llm.facts.recall_task`) → causal traces of up to ``n_facts`` of
    them (drawn with ``rng``) → `RecallResult`.

    A task the model answers nowhere correctly raises `InvalidParameterError` (one line).
    """
    n_facts = check_int("n_facts", n_facts, low=1)
    ok = known_facts(model, tokenizer, task)
    meta = task.meta
    known: dict[str, Any] = {"n_prompts": len(task), "n_known": int(ok.sum()), "accuracy": float(ok.mean())}
    for key in ("relation", "template"):
        if key in meta:
            vals = np.asarray(meta[key])
            known[f"by_{key}"] = {str(v): [int(ok[vals == v].sum()), int((vals == v).sum())] for v in np.unique(vals)}
    if not ok.any():
        raise InvalidParameterError(f"The task {task.name!r}: the model answers none of its {len(task)} prompts "
                                    "correctly, so there is no known fact to trace.")
    g = as_generator(rng)
    good = np.flatnonzero(ok)
    pick = np.sort(g.choice(good, size=min(n_facts, len(good)), replace=False))
    seed = int(g.integers(0, 2**31 - 1))
    ds, per_fact = causal_trace(model, tokenizer, task, idx=pick, noise=noise, n_seeds=n_seeds, window=window,
                                rng=seed, progress=progress)
    facts = [{"prompt": f["prompt"], "answer": f["answer"], "p_clean": f["p_clean"],
              "p_corrupt": float(np.mean(f["p_corrupt"]))} for f in per_fact]
    p_corrupt_seed = np.mean([f["p_corrupt"] for f in per_fact], axis=0)
    return RecallResult(ds, known, _peaks(ds), float(np.mean([f["p_clean"] for f in per_fact])), _ms(p_corrupt_seed),
                        facts, {"noise": noise, "sigma": ds.attrs["sigma"], "window": ds.attrs["window"],
                                "n_seeds": n_seeds, "n_layers": int(model.cfg.n_layers), "source": task.source})


def recall_report(model: str, *, relations: str | Sequence[str] = "capital", n_facts: int = 40, n_seeds: int = 3,
                  noise: float = 3.0, window: int | None = None, seed: int = 0, progress: bool = False) -> StudyReport:
    """``spinlens interp recall``: check the options (``relations``: comma-separated or a sequence, among
    `spinlens.llm.facts.TEMPLATES`), load ``model`` (a named pretrained model or a Hugging Face folder), run
    `recall_study` on the country facts of ``relations`` and return its `spinlens.experiment.StudyReport`
    (``to_dict()`` with the model, the headline table, the figure and data ``causal_trace``)."""
    from spinlens.llm import facts as F
    from spinlens.llm.tasks import load_model_and_tokenizer
    from spinlens.results import StudyReport

    check_int("n-facts", n_facts, low=1)
    check_int("n-seeds", n_seeds, low=1, high=100)
    check_float("noise", noise, low=0.0)
    check_int("seed", seed, low=0)
    if window is not None:
        check_int("window", window, low=1)
    spec = relations if isinstance(relations, str) else ",".join(relations)
    rels = [r.strip() for r in spec.split(",") if r.strip()]
    bad = [r for r in rels if r not in F.TEMPLATES]
    if bad or not rels:
        raise InvalidParameterError(f"The 'relations' parameter must list some of {{{', '.join(F.TEMPLATES)}}}. "
                                    f"Got {spec!r}.")
    task = F.recall_task(F.country_facts(rels))
    net, tok = load_model_and_tokenizer(model)
    if window is not None:
        check_int("window", window, low=1, high=net.cfg.n_layers)
    with torch.no_grad():
        res = recall_study(net, tok, task, n_facts=n_facts, noise=noise, n_seeds=n_seeds, window=window, rng=seed,
                           progress=progress)
    d = res.to_dict()
    d["model"] = str(model)
    k = d["known"]
    rows = [("model", d["model"]), ("facts", d["source"]),
            ("known facts", f"{k['n_known']} of {k['n_prompts']} prompts ({k['accuracy']:.3f})"),
            ("traced", f"{d['n_facts_traced']} facts x {d['n_seeds']} noise seeds, noise {d['noise']} x "
                       f"sigma {d['sigma']:.4f}, window {d['window']}"),
            ("p(answer) clean / corrupted", f"{d['p_clean']:.3f} / {d['p_corrupt']['mean']:.3f} ± "
                                            f"{d['p_corrupt']['sd']:.3f}")]
    for kind, p in d["peaks"].items():
        ie = p["indirect_effect"]
        rows.append((f"{kind} peak ({p['category']})", f"layer {p['layer']} of {d['n_layers']} (per seed "
                     f"{p['layer_by_seed']}), indirect effect {ie['mean']:.3f} ± {ie['sd']:.3f}"))
    from spinlens.plotting.interp import plot_causal_trace

    return StudyReport("interp recall", d, rows, figures={"causal_trace": lambda: plot_causal_trace(res.indirect_effect)},
                       data={"causal_trace": res.indirect_effect})
