"""Induction heads of a causal LM: scores on repeated random tokens, in-context loss, ablation, K-composition.

Definitions (one name for one quantity, as in the CLI and JSON):

* Repeated random tokens: ``n_seq`` sequences ``[x_0 .. x_{T-1}, x_0 .. x_{T-1}]`` of ``2T`` tokens; each half
  is ``T`` distinct tokens drawn uniformly from the vocabulary (special tokens excluded), so every token of
  the repeat has exactly one earlier occurrence.
* ``induction_score`` of a head: its mean attention, from every query position ``i`` in the second half, to
  position ``i - T + 1`` (the token that followed the earlier occurrence of the current token). A perfect
  induction head scores 1; uniform causal attention scores about ``1/i``.
* ``prev_token_score``: mean attention from every position ``i >= 1`` to ``i - 1``.
* ``repeated_loss``: mean next-token cross-entropy (nats) of the tokens of the first half (``first``;
  targets ``x_1 .. x_{T-1}``, unpredictable: about ``log V``) and of the repeat (``repeat``; targets
  ``x_1 .. x_{T-1}`` again, predictable by copying). ``first - repeat`` is the repeat advantage.
* ``icl_score`` on held-out text: mean loss at late context positions minus mean loss at early ones
  (Olsson et al. 2022 use the 500th minus the 50th token). Negative means later tokens are predicted
  better, i.e. the model uses its context. Early: positions ``[n_ctx/16, n_ctx/8)``; late: the last
  ``n_ctx/8`` positions.
* ``induction_head_formed``: the largest induction score is at least ``FORMED_SCORE`` (0.1, five to ten times
  what uniform causal attention gives at half length 32-64, `uniform_induction_baseline`) and the repeat advantage is at least
  ``FORMED_ADVANTAGE`` (1 nat). Models that grew an induction head scored 0.2-0.33 with advantages of 2.1-3.0
  nats; models that did not, below 0.08 and 0.9 nats (docs/lm.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_int
from spinlens.random import as_generator
from spinlens.vocabulary import act_name


def repeated_tokens(n_seq: int, half: int, d_vocab: int, *, rng=None, exclude=(0,)) -> torch.Tensor:
    """``(n_seq, 2 * half)`` int64: random halves repeated once."""
    check_int("n_seq", n_seq, low=1)
    check_int("half", half, low=2)
    g = as_generator(rng)
    allowed = np.setdiff1d(np.arange(d_vocab), np.asarray(exclude, dtype=int))
    if len(allowed) < 2:
        raise InvalidParameterError(f"The vocabulary ({d_vocab}) is too small for random token sequences.")
    if len(allowed) >= half:  # distinct tokens within a half: the earlier occurrence of a token is unique
        x = np.stack([allowed[g.permutation(len(allowed))[:half]] for _ in range(n_seq)])
    else:
        x = allowed[g.integers(0, len(allowed), size=(n_seq, half))]
    return torch.from_numpy(np.concatenate([x, x], axis=1).astype(np.int64))


def _patterns(model, tokens, *, hooks=()) -> torch.Tensor:
    """Attention patterns ``[layer, batch, head, q, k]`` (float32, cpu)."""
    names = [act_name("pattern", L) for L in range(model.cfg.n_layers)]
    dev = next(model.parameters()).device
    with torch.no_grad(), model.hooks(list(hooks)):
        _, cache = model.run_with_cache(tokens.to(dev), names_filter=names)
    return torch.stack([cache[n].float().cpu() for n in names])


def head_scores(model, tokens: torch.Tensor, *, hooks=()) -> tuple[np.ndarray, np.ndarray]:
    """``(induction_score, prev_token_score)``, each ``(n_layers, n_heads)``, on repeated sequences ``tokens``."""
    T2 = tokens.shape[1]
    if T2 % 2 or T2 < 4:
        raise InvalidParameterError(f"The 'tokens' must be repeated halves of even length >= 4. Got length {T2}.")
    T = T2 // 2
    P = _patterns(model, tokens, hooks=hooks)  # [L, B, H, q, k]
    q = torch.arange(T, T2)
    ind = P[:, :, :, q, q - T + 1].mean(dim=(1, 3))
    q1 = torch.arange(1, T2)
    prev = P[:, :, :, q1, q1 - 1].mean(dim=(1, 3))
    return ind.numpy().astype(float), prev.numpy().astype(float)


def repeated_loss(model, tokens: torch.Tensor, *, hooks=()) -> dict:
    """``{"first", "repeat"}``: mean next-token loss (nats) on the first half and on its repeat."""
    from spinlens.lm.data import token_losses

    T = tokens.shape[1] // 2
    # windows: the whole sequence; position t predicts token t+1
    ce = token_losses(model, tokens, hooks=hooks)  # (n, 2T - 1)
    first = ce[:, : T - 1]  # targets x_1 .. x_{T-1}
    repeat = ce[:, T:]  # targets x_1 .. x_{T-1} of the repeat (position T predicts x_1)
    return {"first": float(first.mean()), "repeat": float(repeat.mean())}


def icl_score(model, windows: torch.Tensor, *, hooks=()) -> dict:
    """``{"icl_score", "early_loss", "late_loss", "early", "late"}`` on held-out windows ``(n, n_ctx + 1)``."""
    from spinlens.lm.data import token_losses

    return icl_score_of_losses(token_losses(model, windows, hooks=hooks).mean(0))


def icl_score_of_losses(ce) -> dict:
    """`icl_score` from the mean loss per position ``ce`` (what `loss_by_position` returns): late minus early loss.
    A figure of ``ce`` titles itself with this, so its title is the number of its own data."""
    ce = torch.as_tensor(np.asarray(ce))
    n = ce.shape[0]
    e0, e1 = max(1, n // 16), max(2, n // 8)
    l0 = n - max(1, n // 8)
    early, late = float(ce[e0:e1].mean()), float(ce[l0:].mean())
    return {"icl_score": late - early, "early_loss": early, "late_loss": late, "early": [e0, e1], "late": [l0, n]}


FORMED_SCORE = 0.1
FORMED_ADVANTAGE = 1.0


def uniform_induction_baseline(half: int) -> float:
    """The induction score of a head that attends uniformly to all earlier positions (and itself):
    the mean over the repeat's query positions ``i`` in ``[T, 2T)`` of ``1 / (i + 1)``."""
    check_int("half", half, low=1)
    return float(np.mean(1.0 / (np.arange(half, 2 * half) + 1.0)))


def induction_formed(max_induction_score: float, repeated: dict) -> bool:
    """The verdict ``induction_head_formed`` (module docstring) from the top score and `repeated_loss`."""
    adv = float(repeated["first"]) - float(repeated["repeat"])
    return bool(max_induction_score >= FORMED_SCORE and adv >= FORMED_ADVANTAGE)


def loss_by_position(model, windows: torch.Tensor) -> np.ndarray:
    from spinlens.lm.data import token_losses

    return token_losses(model, windows).mean(0).numpy()


def ablation_hooks(model, heads, *, mode: str = "mean", reference: torch.Tensor | None = None):
    """Hooks that ablate ``heads`` [(layer, head)] at ``attn.hook_z``: ``"zero"`` or ``"mean"`` (the head's mean
    output over ``reference`` tokens and positions; a constant, so it carries no information about the input)."""
    from collections import defaultdict

    by_layer = defaultdict(list)
    for L, h in heads:
        by_layer[int(L)].append(int(h))
    means = {}
    if mode == "mean":
        if reference is None:
            raise InvalidParameterError("Mean ablation needs 'reference' tokens.")
        names = [act_name("z", L) for L in by_layer]
        dev = next(model.parameters()).device
        with torch.no_grad():
            _, cache = model.run_with_cache(reference.to(dev), names_filter=names)
        means = {n: cache[n].mean(dim=(0, 1)) for n in names}  # [head, d_head]
    hooks = []
    for L, hs in by_layer.items():
        name = act_name("z", L)

        def fn(act, hook, hs=hs, name=name):
            act = act.clone()
            for h in hs:
                act[:, :, h] = 0.0 if mode == "zero" else means[name][h].to(act)
            return act

        hooks.append((name, fn))
    return hooks


def second_half_logprob_metric(tokens: torch.Tensor):
    """Metric for patching: mean log-probability of the correct next token over the repeat, per sequence."""
    T = tokens.shape[1] // 2
    tgt = tokens[:, T + 1:].long()

    def metric(logits: torch.Tensor) -> torch.Tensor:
        lp = torch.log_softmax(logits[:, T:-1].float(), -1)
        return lp.gather(-1, tgt.to(lp.device)[..., None])[..., 0].mean(-1)

    return metric


def k_composition(model, *, n_seq: int = 64, half: int = 32, receivers=None, senders=None, rng=0) -> dict:
    """Path patching from layer-0 heads into the induction heads' keys, queries and values.

    Clean: repeated random tokens ``[x, x]``; corrupted: ``[y, x]`` (a fresh first half, so nothing repeats).
    In the noising direction (clean base, corrupted source) a sender head's output is swapped for its
    corrupted value along one route only (into the receivers' ``k``, ``q`` or ``v``). The score is the fraction
    of the clean-to-corrupted drop of the repeat's log-probability that this route alone causes: a
    previous-token head feeding an induction head's keys (K-composition) scores near 1 through ``k``.

    Returns ``{"receivers", "scores": {"k"|"q"|"v": (n_layers, n_heads) array}, "top": {input: (L, H, score)}}``.
    """
    from spinlens.interp.patching import path_patch

    cfg = model.cfg
    g = as_generator(rng)
    clean = repeated_tokens(n_seq, half, cfg.d_vocab, rng=g)
    y = repeated_tokens(n_seq, half, cfg.d_vocab, rng=g)[:, :half]
    corrupt = clean.clone()
    corrupt[:, :half] = y
    if receivers is None:
        ind, _ = head_scores(model, clean)
        L = int(np.argmax(ind.max(1)))
        receivers = [(L, int(np.argmax(ind[L])))]
    receivers = [(int(a), int(b)) for a, b in receivers]
    if min(L for L, _ in receivers) == 0:
        raise InvalidParameterError("K-composition needs receiver heads above layer 0.")
    metric = second_half_logprob_metric(clean)
    dev = next(model.parameters()).device
    scores = {}
    for inp in ("k", "q", "v"):
        res = path_patch(model, clean.to(dev), corrupt.to(dev), metric=metric, receivers=receivers, receiver_input=inp,
                         senders=senders, direction="noise")
        scores[inp] = res.scores.values
    top = {}
    for inp, s in scores.items():
        i = np.nanargmax(np.nan_to_num(s, nan=-np.inf))
        Ls, Hs = np.unravel_index(i, s.shape)
        top[inp] = (int(Ls), int(Hs), float(s[Ls, Hs]))
    return {"receivers": receivers, "scores": scores, "top": top}


@dataclass
class InductionReport:
    """Result of `induction_report` (``to_dict`` is the JSON of ``spinlens interp induction``)."""

    induction: np.ndarray
    prev_token: np.ndarray
    repeated_loss: dict
    icl: dict | None
    n_seq: int
    half: int
    seed: int
    extras: dict = field(default_factory=dict)

    def heads(self) -> list[dict]:
        nL, nH = self.induction.shape
        rows = [{"layer": L, "head": h, "induction_score": float(self.induction[L, h]),
                 "prev_token_score": float(self.prev_token[L, h])} for L in range(nL) for h in range(nH)]
        return sorted(rows, key=lambda r: -r["induction_score"])

    def induction_heads(self, threshold: float = 0.3) -> list[tuple[int, int]]:
        return [(r["layer"], r["head"]) for r in self.heads() if r["induction_score"] >= threshold]

    @property
    def formed(self) -> bool:
        """``induction_head_formed`` (module docstring)."""
        return induction_formed(float(self.induction.max()), self.repeated_loss)

    def to_dict(self) -> dict:
        return {"heads": self.heads(), "repeated_loss": dict(self.repeated_loss),
                "induction_head_formed": self.formed, "uniform_baseline": uniform_induction_baseline(self.half),
                "icl_score": None if self.icl is None else self.icl["icl_score"],
                "icl": self.icl, "n_seq": self.n_seq, "half": self.half, "seed": self.seed, **self.extras}


#: repeated sequences of the standard induction evaluation: `spinlens lm` (every checkpoint) and `spinlens interp
#: induction` both use it, so the same model gets the same scores and repeated losses from both commands
N_SEQ = 64


def induction_report(model, *, val_windows: torch.Tensor | None = None, n_seq: int = N_SEQ, half: int | None = None,
                     rng=0, exclude=(0,)) -> InductionReport:
    """Per-head induction / previous-token scores, repeated loss and (with ``val_windows``) the ICL score.

    Works on spinlens' own LMs and on Hugging Face causal LMs (`spinlens.interp.hf.HookedHF`, e.g. the named
    pretrained models); ``exclude``: token ids never drawn into the repeated sequences (a tokenizer's special
    tokens)."""
    cfg = model.cfg
    if cfg.input_kind != "tokens":
        raise InvalidParameterError("Induction scores need a token model (input_kind='tokens').")
    max_pos = getattr(cfg, "max_pos", None) or 2048
    half = half if half is not None else max(2, min(64, max_pos // 2))
    check_int("half", half, low=2, high=max_pos // 2)
    seed = int(rng) if isinstance(rng, (int, np.integer)) else 0
    tokens = repeated_tokens(n_seq, half, cfg.d_vocab, rng=rng, exclude=exclude)
    ind, prev = head_scores(model, tokens)
    rl = repeated_loss(model, tokens)
    icl = icl_score(model, val_windows) if val_windows is not None else None
    return InductionReport(ind, prev, rl, icl, n_seq, half, seed)
