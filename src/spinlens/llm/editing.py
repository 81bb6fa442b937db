"""Knowledge editing in a pretrained LLM: rewrite one fact by tuning only the MLPs that causal tracing located,
against tuning other layers' MLPs and full fine-tuning (Meng et al. 2022 compare the same baselines).

An *edit* asks the model to continue a prompt of a fact it knows (``"The capital of France is"`` → ``" Paris"``)
with a new object (``" Rome"``). Each method minimises ``−log p(new object's first token | edit prompt)`` with
Adam on its parameters only, until ``p(new) >= target_prob`` or ``max_steps``:

* ``located``: the output projections (``down_proj``) of the MLPs of the layers ``layers`` (e.g. the window
  where `spinlens.llm.recall` finds the MLP effect at the last subject token);
* ``other``: the output projections of as many MLPs in other layers (``other_layers``);
* ``full``: every parameter.

Measures, before and after (the model is restored after each edit):

* ``efficacy``: the new object is the top next token of the edit prompt;
* ``generalisation``: fraction of paraphrases (the fact's other templates) whose top token is the new object;
* ``specificity``: fraction of neighbouring facts (other subjects of the relation the model knew) whose top
  token is unchanged;
* general ability (`spinlens.llm.general`): ``perplexity``, ``heldout_loss`` and the IOI, ICL and arithmetic
  task metrics (factual recall is left out of the suite: the neighbours measure it, as specificity).

The rank-one ROME update (a closed-form key-value insertion with the MLP's key covariance) is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int

__all__ = ["METHODS", "EditCase", "EditResult", "edit_params", "apply_edit", "editing_study"]

METHODS = ("located", "other", "full")


@dataclass(frozen=True)
class EditCase:
    """One edit: the prompt, its true and new objects, paraphrases and neighbouring prompts (with answers)."""

    prompt: str
    true_object: str
    new_object: str
    paraphrases: list
    neighbours: list  # [(prompt, answer)]


def _first(tok, text: str) -> int:
    from spinlens.llm.tasks import answer_token

    return answer_token(tok, text)[0]


@torch.no_grad()
def _top(model, tok, prompts: list[str]) -> list[int]:
    from spinlens.llm.recall import last_logits

    out = []
    for p in prompts:
        ids = torch.as_tensor([tok(p)["input_ids"]])
        out.append(int(last_logits(model, ids)[0].argmax()))
    return out


def edit_params(model, method: str, layers) -> list:
    """The parameters a method tunes (`METHODS`); ``layers`` are the MLPs of ``located`` / ``other``."""
    check_choice("method", method, METHODS)
    hf = model.hf
    if method == "full":
        return [p for p in hf.parameters()]
    from spinlens.interp.hf import _get

    blocks = _get(hf, model.spec["layers"])
    n = len(blocks)
    out = []
    for L in layers:
        L = check_int("layer", L, low=0, high=n - 1)
        out.append(_get(blocks[L], model.spec["mlp_down"]).weight)
    return out


def apply_edit(model, tok, case: EditCase, params: list, *, lr: float = 1e-3, max_steps: int = 30,
               target_prob: float = 0.9) -> dict:
    """Tune ``params`` (in place) until ``p(new | prompt) >= target_prob``; returns ``steps`` and ``p_new``."""
    from spinlens.llm.recall import last_logits
    from spinlens.training import fit

    ids = torch.as_tensor([tok(case.prompt)["input_ids"]])
    new = _first(tok, case.new_object)
    seen = {"p_new": 0.0}

    def loss(m, step):  # stops (None) once the new object is likely enough
        lp = torch.log_softmax(last_logits(model, ids)[0].float(), -1)[new]
        seen["p_new"] = float(lp.detach().exp())
        return None if seen["p_new"] >= target_prob else -lp

    res = fit(model.hf, loss, steps=max_steps, optimizer="adam", lr=lr, params=params, label="edit")
    step, p_new = res.n_steps, seen["p_new"]
    if res.n_steps == max_steps or not res.converged:  # not stopped by the target: measure the last weights
        with torch.no_grad():
            p_new = float(torch.softmax(last_logits(model, ids)[0].float(), -1)[new])
    return {"steps": int(step), "p_new": p_new}


def _measure(model, tok, case: EditCase, before=None) -> dict:
    new, true = _first(tok, case.new_object), _first(tok, case.true_object)
    top = _top(model, tok, [case.prompt] + list(case.paraphrases) + [p for p, _ in case.neighbours])
    k = 1 + len(case.paraphrases)
    nb = top[k:]
    out = {"efficacy": float(top[0] == new), "true_top": float(top[0] == true),
           "generalisation": float(np.mean([t == new for t in top[1:k]])) if k > 1 else float("nan"),
           "neighbours_top": nb}
    if before is not None:
        out["specificity"] = float(np.mean([a == b for a, b in zip(nb, before["neighbours_top"])])) if nb else float("nan")
    return out


@dataclass
class EditResult:
    """Result of `editing_study`: per method, per case rows; ``summary`` mean ± sd over cases."""

    rows: list
    summary: dict
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"summary": self.summary, "rows": self.rows, **self.settings}


def _ms(a) -> dict:
    from spinlens.verdict import mean_sd_dict

    return mean_sd_dict(a)  # mean ± sd over seeds, ddof 1 (the one convention)


def editing_study(model, tok, cases: list[EditCase], *, layers, other_layers, methods=METHODS, lr: float = 1e-3,
                  full_lr: float = 1e-5, max_steps: int = 30, target_prob: float = 0.9, suite=None,
                  progress: bool = False) -> EditResult:
    """Every method on every case (the model restored between edits): efficacy, generalisation, specificity
    and general ability after, and the same before. ``suite``: the `spinlens.llm.general.GeneralSuite`
    (default: IOI, ICL and arithmetic, 8 rows of 64 tokens of held-out text). A case whose fact the model does not know (its top token is
    not the true object) raises `InvalidParameterError` (one line)."""
    check_float("lr", lr, low=0.0)
    check_int("max_steps", max_steps, low=1)
    check_float("target_prob", target_prob, low=0.0, high=1.0)
    for m in methods:
        check_choice("method", m, METHODS)
    if not cases:
        raise InvalidParameterError("The 'cases' parameter must hold at least one edit.")
    for c in cases:
        if _top(model, tok, [c.prompt])[0] != _first(tok, c.true_object):
            raise InvalidParameterError(f"The edit of {c.prompt!r}: the model does not know this fact (its answer is "
                                        f"not {c.true_object!r}), so there is nothing to edit.")
    from spinlens.llm.general import build_suite, general_ability

    suite = suite or build_suite(tok, tasks=("ioi", "icl", "arithmetic"), n_seq=8, seq_len=64)
    general_keys = suite.keys
    state = {k: v.detach().clone() for k, v in model.hf.state_dict().items()}
    base = general_ability(model, suite=suite)
    rows = []
    for ci, c in enumerate(cases):
        before = _measure(model, tok, c, None)
        for m in methods:
            params = edit_params(model, m, layers if m == "located" else other_layers)
            info = apply_edit(model, tok, c, params, lr=full_lr if m == "full" else lr, max_steps=max_steps,
                              target_prob=target_prob)
            after = {**_measure(model, tok, c, before), **general_ability(model, suite=suite)}
            model.hf.load_state_dict(state)
            n_params = sum(p.numel() for p in params)
            rows.append({"case": ci, "prompt": c.prompt, "new_object": c.new_object, "method": m, "n_params": n_params,
                         **info, **{k: v for k, v in after.items() if k != "neighbours_top"},
                         **{f"d_{k}": after[k] - base[k] for k in general_keys},
                         "generalisation_before": before["generalisation"]})
            if progress:
                r = rows[-1]
                print(f"  edit {ci} {m}: steps {r['steps']}, efficacy {r['efficacy']:.0f}, generalisation "
                      f"{r['generalisation']:.2f}, specificity {r['specificity']:.2f}, perplexity {r['perplexity']:.3f}",
                      flush=True)
    summary: dict[str, dict[str, Any]] = {}
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        summary[m] = {k: _ms([r[k] for r in rs]) for k in ("efficacy", "generalisation", "specificity", "steps",
                                                              "p_new", *general_keys, *(f"d_{k}" for k in general_keys))}
        summary[m]["n_params"] = rs[0]["n_params"]
    summary["before"] = {**base, "generalisation": _ms([r["generalisation_before"] for r in rows if r["method"] == methods[0]])}
    return EditResult(rows, summary, {"layers": [int(x) for x in layers], "other_layers": [int(x) for x in other_layers],
                                      "lr": lr, "full_lr": full_lr, "max_steps": max_steps, "target_prob": target_prob,
                                      "general_keys": list(general_keys), "general_sources": suite.sources,
                                      "general_skipped": suite.skipped})
