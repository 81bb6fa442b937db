"""Precise tuning of a pretrained LM: tune only located heads and MLPs, and measure gain *and* cost along training.

The claim under test (Zhang et al. 2024 for arithmetic, Sun et al. 2025 for in-context learning): tuning a few
located components improves a skill and keeps general ability, while full fine-tuning damages it. A cost
measured at a fixed step count cannot test this (a subset that learns more slowly also drifts less), so
`precise_tuning` records the **gain** (held-out accuracy of the skill) and the **cost** (`spinlens.llm.general`:
held-out perplexity, IOI logit difference, recall and ICL accuracy) every ``eval_every`` steps and compares
the methods' cost curves **at matched gain** (`matched_costs`): the cost each run had when its gain first
reached a level, interpolated linearly between evaluations.

Methods (same data, steps, learning rate, batch order per seed):

* ``located`` — the heads and MLPs located on the training loss (``locate``: by default the top ``k_heads``
  heads and top ``k_mlps`` MLPs by attribution importance, `spinlens.edit.importance.attribution_importance`,
  of the answer-token loss), tuned through per-head masks (`spinlens.edit.pinpoint.masked_finetune`,
  `spinlens.edit.components`: per-head slices of q/k/v/o, the kv slice of a grouped-query head shared by its
  group);
* ``random`` — random heads drawn until their masked parameter count reaches that of ``located``;
* ``full`` — every parameter;
* ``lora`` — LoRA adapters (peft, optional: ``pip install 'spinlens[peft]'``) on every linear layer of the
  blocks, rank chosen so that the adapter parameter count is closest to that of ``located``.

Data (`SkillData`): training (prompt, answer) pairs and named evaluation sets of pairs never trained on.
Answers may span several tokens; the loss is the mean cross-entropy of the answer tokens (teacher forcing) and
a prompt is answered right when every answer token is the top-1 prediction (so greedy decoding starts with
the answer) and, for numeric answers, the next top-1 token does not continue the number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
from spinlens.llm.matched import finite_mean_sd, matched_costs, matched_verdict

__all__ = ["SkillData", "arithmetic_data", "icl_data", "encode_pairs", "answer_accuracy", "answer_loss",
           "locate_components", "random_heads_like", "precise_tuning", "TuningResult", "matched_costs", "matched_verdict",
           "save_hf_model", "merge_experts", "METHODS", "COMMAND_DEFAULTS", "tuning_summary", "tuning_headline",
           "write_tuning_outputs", "run_edit_command"]

METHODS = ("located", "random", "full", "lora")
#: sizes of the general-ability suite evaluated along training (`spinlens.llm.general.build_suite`)
ALONG_TRAINING_SUITE = {"n_seq": 8, "seq_len": 32, "n_prompts": 12}


@dataclass(frozen=True)
class SkillData:
    """A skill to tune: training pairs and held-out evaluation sets.

    Attributes
    ----------
    name : str
    train : list of (prompt, answer)
    evals : dict {set name: list of (prompt, answer)}
        Held-out sets; ``primary`` names the one that defines the gain used for matching.
    primary : str
    numeric : bool
        Answers are numbers (a right answer must not be continued by another digit).
    source : str
    """

    name: str
    train: list
    evals: dict
    primary: str
    numeric: bool = False
    source: str = ""
    meta: dict = field(default_factory=dict)


ARITH_FORMATS = {
    "+": ("{a} + {b} =", "Question: what is {a} plus {b}?\nAnswer:"),
    "-": ("{a} - {b} =", "Question: what is {a} minus {b}?\nAnswer:"),
}


def arithmetic_data(*, n_train: int = 256, n_eval: int = 64, ops=("+",), digits: int = 2, heldout_frac: float = 0.3,
                    seed: int = 0) -> SkillData:
    """Arithmetic on ``digits``-digit operands: train on one prompt format with operands from one set of
    numbers, evaluate on numbers never trained on (``heldout_numbers``: both operands held out) in the same
    format and in a second format never trained on (``second_format``).

    Formats: ``"12 + 25 ="`` (trained) and ``"Question: what is 12 plus 25?\\nAnswer:"``; the answer is
    ``" 37"``. Subtraction (``"-"``) keeps ``a >= b``.
    """
    from spinlens.random import as_generator

    digits = check_int("digits", digits, low=1, high=4)
    heldout_frac = check_float("heldout_frac", heldout_frac, low=0, high=1, low_open=True, high_open=True)
    for op in ops:
        check_choice("op", op, tuple(ARITH_FORMATS))
    g = as_generator(seed)
    lo, hi = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits
    nums = g.permutation(np.arange(lo, hi))
    n_held = max(2, int(round(heldout_frac * len(nums))))
    held, seen = np.sort(nums[:n_held]), np.sort(nums[n_held:])
    if len(seen) < 2:
        raise InvalidParameterError(f"digits={digits} leaves fewer than 2 training numbers.")

    def draw(pool, n, fmt_i):
        out, ops_ = [], []
        for _ in range(n):
            op = ops[int(g.integers(len(ops)))]
            a, b = (int(x) for x in g.choice(pool, size=2))
            if op == "-" and a < b:
                a, b = b, a
            c = a + b if op == "+" else a - b
            out.append((ARITH_FORMATS[op][fmt_i].format(a=a, b=b), f" {c}"))
            ops_.append(op)
        return out

    return SkillData(
        "arithmetic", draw(seen, check_int("n_train", n_train, low=1), 0),
        {"heldout_numbers": draw(held, check_int("n_eval", n_eval, low=1), 0), "second_format": draw(held, n_eval, 1)},
        primary="heldout_numbers", numeric=True,
        source=f"generated: {digits}-digit operands, ops {''.join(ops)}, {len(held)} numbers held out, seed {seed}",
        meta={"heldout_numbers": [int(x) for x in held]})


#: the words of the first- and last-letter tasks (names and countries)
LETTER_WORDS = ("Mary", "John", "Tom", "James", "Anna", "Paul", "Kate", "Mark", "Lisa", "David", "Sarah", "Peter",
                "France", "Germany", "Italy", "Spain", "Japan", "Russia", "Egypt", "Greece", "Austria", "Poland",
                "Portugal", "Norway", "Sweden", "Ireland", "Hungary", "Kenya", "Peru", "Cuba", "Thailand", "Finland",
                "Denmark", "Belgium", "Canada", "China")


def letter_tasks() -> dict:
    """Generated few-shot tasks ``{name: [(input, output), ...]}`` on letters (single-token outputs in any
    tokenizer that has the letters): case (``upper``, ``lower``), alphabet order (``next_letter``,
    ``prev_letter``), and the first / last letter of `LETTER_WORDS`."""
    import string

    low = string.ascii_lowercase
    words = sorted(LETTER_WORDS)
    return {
        "upper": [(c, c.upper()) for c in low],
        "lower": [(c.upper(), c) for c in low],
        "next_letter": [(low[i], low[i + 1]) for i in range(25)],
        "prev_letter": [(low[i + 1], low[i]) for i in range(25)],
        "first_letter": [(w, w[0]) for w in words],
        "last_letter": [(w, w[-1]) for w in words],
    }


def icl_data(*, train_tasks=("lower", "prev_letter"), heldout_tasks=("last_letter",),
             n_train: int = 192, n_eval: int = 48, shots: int = 4, seed: int = 0) -> SkillData:
    """Few-shot in-context learning: train on few-shot prompts of ``train_tasks``, evaluate few-shot accuracy
    on ``heldout_tasks`` (never trained on; ``heldout_tasks``, the primary set) and on new prompts of the
    training tasks (``train_tasks``). Tasks come from `letter_tasks`."""
    from spinlens.llm.tasks import few_shot_task
    from spinlens.random import as_generator

    g = as_generator(seed)
    tasks = letter_tasks()
    for t in (*train_tasks, *heldout_tasks):
        check_choice("task", t, tuple(tasks))

    def draw(names, n):
        per = max(1, n // len(names))
        out = []
        for nm in names:
            t = few_shot_task(nm, tasks[nm], per, shots=shots, rng=g)
            out += list(zip(t.prompts, t.answers))
        return out

    return SkillData("icl", draw(train_tasks, n_train),
                     {"heldout_tasks": draw(heldout_tasks, n_eval), "train_tasks": draw(train_tasks, n_eval)},
                     primary="heldout_tasks", source=f"generated few-shot tasks ({shots} shots), seed {seed}; "
                     f"train {', '.join(train_tasks)}; held out {', '.join(heldout_tasks)}")


# ------------------------------------------------------------------------------------------------- encoding


@dataclass
class EncodedPairs:
    """(prompt + answer) token rows, right-padded: ``ids`` (n, T), ``target`` (n, T) = the next token at the
    positions that predict an answer token, else -100; ``end`` (n,) = position of the last answer token."""

    ids: torch.Tensor
    target: torch.Tensor
    end: torch.Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows(self, idx) -> EncodedPairs:
        sub = EncodedPairs(self.ids[idx], self.target[idx], self.end[idx])
        T = int(sub.end.max()) + 1  # drop padding columns nobody needs
        return EncodedPairs(sub.ids[:, :T], sub.target[:, :T], sub.end)


def encode_pairs(pairs, tokenizer) -> EncodedPairs:
    """Tokenize (prompt, answer) pairs: the prompt with the tokenizer's special tokens, the answer without."""
    if not pairs:
        raise InvalidParameterError("No (prompt, answer) pairs to encode.")
    rows, spans = [], []
    for p, a in pairs:
        pi = list(tokenizer(p)["input_ids"])
        ai = list(tokenizer(a, add_special_tokens=False)["input_ids"])
        if not ai:
            raise InvalidParameterError(f"The answer {a!r} tokenizes to nothing.")
        rows.append(pi + ai)
        spans.append((len(pi), len(pi) + len(ai)))
    T = max(len(r) for r in rows)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = int(pad if pad is not None else (getattr(tokenizer, "eos_token_id", None) or 0))
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    tgt = torch.full((len(rows), T), -100, dtype=torch.long)
    for i, (r, (s, e)) in enumerate(zip(rows, spans)):
        ids[i, :len(r)] = torch.tensor(r)
        tgt[i, s - 1:e - 1] = ids[i, s:e]
    return EncodedPairs(ids, tgt, torch.tensor([e - 1 for _, e in spans]))


def answer_loss(model, enc: EncodedPairs, *, reduction: str = "mean"):
    """Cross-entropy of the answer tokens (teacher forcing): mean over answer tokens, or summed per prompt
    then over prompts (``reduction="sum"``)."""
    lg, tgt = _answer_logits(model, enc)
    return torch.nn.functional.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), tgt.reshape(-1),
                                             ignore_index=-100, reduction=reduction)


def _answer_logits(model, enc: EncodedPairs):
    """Logits of the positions from the first answer-predicting one on (the lm head runs only there), and the
    matching targets."""
    from spinlens.llm.general import lm_logits

    first = int((enc.target >= 0).int().argmax(1).min())
    T = enc.ids.shape[1]
    lg = lm_logits(model, enc.ids, keep=T - first)
    return lg, enc.target[:, first:].to(lg.device)


def _digit_start_ids(tokenizer) -> torch.Tensor:
    """Bool mask over the vocabulary: tokens that begin with a digit (they would continue a number)."""
    vocab = tokenizer.get_vocab()
    mask = torch.zeros(max(max(vocab.values()) + 1, len(tokenizer)), dtype=torch.bool)
    for tok, i in vocab.items():
        s = tokenizer.convert_tokens_to_string([tok])
        if s[:1].isdigit():
            mask[i] = True
    return mask


@torch.inference_mode()
def answer_accuracy(model, enc: EncodedPairs, *, digit_mask: torch.Tensor | None = None, batch_size: int = 32) -> float:
    """Fraction of prompts whose every answer token is the top-1 prediction under teacher forcing (with
    ``digit_mask``: and whose next top-1 token after the answer does not start with a digit)."""
    hits = 0
    for s in range(0, len(enc), batch_size):
        sub = enc.rows(slice(s, s + batch_size))
        lg, tgt = _answer_logits(model, sub)
        pred = lg.argmax(-1)
        ok = ((pred == tgt) | (tgt == -100)).all(1)
        if digit_mask is not None:
            first = sub.ids.shape[1] - pred.shape[1]
            nxt = pred.gather(1, (sub.end - first)[:, None])[:, 0]
            ok &= ~digit_mask[nxt.cpu()]
        hits += int(ok.sum())
    return hits / len(enc)


# ------------------------------------------------------------------------------------------------- locating


def locate_components(model, enc: EncodedPairs, *, k_heads: int = 6, k_mlps: int = 2, n_prompts: int = 32):
    """The ``k_heads`` heads and ``k_mlps`` MLPs with the largest attribution importance (|grad × activation|,
    `spinlens.edit.importance.attribution_importance`) for the answer-token loss of the first ``n_prompts``
    training prompts. Returns ``(components, {name: score})``."""
    from spinlens.edit.components import Component, list_components
    from spinlens.edit.importance import attribution_importance

    n_heads = len(list_components(model, "head"))
    k_heads = check_int("k_heads", k_heads, low=0, high=n_heads)
    k_mlps = check_int("k_mlps", k_mlps, low=0, high=model.cfg.n_layers)
    if k_heads + k_mlps == 0:
        raise InvalidParameterError("Locate at least one component: k_heads + k_mlps must be >= 1.")
    sub = enc.rows(slice(0, n_prompts))

    def loss_fn(m):
        return answer_loss(m, sub, reduction="sum")

    scores = {}
    picked = []
    for kind, k in (("head", k_heads), ("mlp", k_mlps)):
        da = attribution_importance(model, None, None, kind=kind, loss_fn=loss_fn)
        vals = np.asarray(da.values, dtype=float)
        if kind == "head":
            comp = [Component("head", L, h) for L in range(vals.shape[0]) for h in range(vals.shape[1])]
            flat = vals.reshape(-1)
        else:
            comp = [Component("mlp", L) for L in range(vals.shape[0])]
            flat = vals
        order = np.argsort(-flat, kind="stable")[:k]
        picked += [comp[i] for i in order]
        scores.update({str(c): float(v) for c, v in zip(comp, flat)})
    return picked, scores


def locate_by_study(model, tokenizer, skill: str, *, k_heads: int = 6, k_mlps: int = 2, seed: int = 0):
    """The located set of a skill from its interpretability study: for ``"arithmetic"`` the ``k_heads`` heads
    and ``k_mlps`` MLPs with the largest scores of `spinlens.llm.arithmetic.locate_components` (heads that move
    operand information to the answer position, by activation patching with corrupted operands; the MLPs after
    them); for ``"icl"`` the ``k_heads`` heads of largest causal indirect effect of
    `spinlens.llm.icl.locate_fv_heads` (the function-vector heads, which carry the input-label mapping) and no
    MLP. Returns ``(components, {name: score})``; the scores are the study's."""
    from spinlens.edit.components import Component

    check_choice("skill", skill, ("arithmetic", "icl"))
    if skill == "arithmetic":
        from spinlens.llm.arithmetic import locate_components as study

        comps = study(model, tokenizer, operations=("+",), n_digits=2, n_prompts=64, seed=seed)
        hs = np.asarray(comps.head_scores.values, dtype=float)
        ms = np.nan_to_num(np.asarray(comps.mlp_scores.values, dtype=float), nan=-np.inf)
        heads = [divmod(int(i), hs.shape[1]) for i in np.argsort(-hs.reshape(-1), kind="stable")[:k_heads]]
        mlps = [int(i) for i in np.argsort(-ms, kind="stable")[:k_mlps] if np.isfinite(ms[i])]
        scores = {str(Component("head", L, h)): float(hs[L, h]) for L, h in heads}
        scores.update({str(Component("mlp", L)): float(ms[L]) for L in mlps})
        return [Component("head", L, h) for L, h in heads] + [Component("mlp", L) for L in mlps], scores
    from spinlens.llm.icl import locate_fv_heads

    loc = locate_fv_heads(model, tokenizer, top_k=k_heads, seeds=(seed,))
    ie = loc.indirect_effect.values
    return ([Component("head", int(L), int(h)) for L, h in loc.heads],
            {str(Component("head", int(L), int(h))): float(ie[L, h]) for L, h in loc.heads})


def _mask_count(masks) -> int:
    return int(sum(int(m.sum()) for m in masks.values()))


def random_heads_like(model, n_params: int, *, rng=None):
    """Random heads (uniform order, without replacement) until their masked parameter count is closest to
    ``n_params``; returns ``(components, count)``."""
    from spinlens.edit.components import Component, component_masks, list_components
    from spinlens.random import as_generator

    heads = list_components(model, "head")
    order = as_generator(rng).permutation(len(heads))
    picked: list[Component] = []
    prev = 0
    for i in order:
        cand = picked + [heads[i]]
        cnt = _mask_count(component_masks(model, cand))
        if cnt >= n_params:
            if abs(cnt - n_params) <= abs(prev - n_params) or not picked:
                return sorted(cand), cnt
            return sorted(picked), prev
        picked, prev = cand, cnt
    return sorted(picked), prev


def _lora(hf_model, n_params: int, seed: int):
    """A peft LoRA model on every linear layer of the blocks, rank matched to ``n_params``."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise InvalidParameterError("The 'lora' method needs peft: pip install 'spinlens[peft]' (or drop lora from "
                                    "the methods).") from None
    per_rank = 0
    for name, mod in hf_model.named_modules():
        w = getattr(mod, "weight", None)
        if isinstance(mod, torch.nn.Linear) and name.split(".")[-1] != "lm_head" and w is not None:
            per_rank += w.shape[0] + w.shape[1]
    r = max(1, int(round(n_params / max(per_rank, 1))))
    cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear", bias="none")
    import warnings

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft reads transformers' deprecated `is_gradient_checkpointing` (theirs to change; nothing to act on here)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        torch.manual_seed(seed)
        pm = get_peft_model(hf_model, cfg)
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in pm.named_parameters() if "lora_" in n}
    return pm, masks, r


# ------------------------------------------------------------------------------------------------- saving


def save_hf_model(model, tokenizer, path, record: dict) -> str:
    """Write ``model`` (HookedHF, peft LoRA model — merged first — or HF model) as a plain Hugging Face folder
    (safetensors, config, tokenizer) with ``run.json``; written to a temporary folder and renamed, so a
    folder is whole or absent. Returns the path."""
    import os
    import shutil
    import tempfile

    from spinlens.io import write_run_json

    hf = getattr(model, "hf", None)
    if hf is None:
        hf = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        hf.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        write_run_json(tmp, record)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(path)


# ------------------------------------------------------------------------------------------------- tuning


@dataclass
class TuningResult:
    """Result of `precise_tuning`.

    Attributes
    ----------
    skill : str
    curves : list of dict
        One row per (method, seed, step): ``accuracy_<set>`` per evaluation set, ``gain_<set>`` (accuracy −
        before), every general-ability metric (``suite.keys``, `spinlens.llm.general`) and its change ``d_<key>``, ``train_loss``.
    final : dict {method: {key: (mean, sd)}}
        The same keys at the last step, over seeds.
    matched : dict
        `matched_costs` output: gain levels and each method's cost (mean, sd, n seeds reaching the level).
    components : dict {method: list of str per seed}
    n_trainable : dict {method: int (mean over seeds)}
    step_time : dict {method: seconds per training step (mean over seeds)}
    verdict : str
    before : dict
        Gain-set accuracies and general metrics of the untuned model.
    """

    skill: str
    curves: list
    final: dict
    matched: dict
    components: dict
    n_trainable: dict
    step_time: dict
    verdict: str
    before: dict
    settings: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict, repr=False)
    saved: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"skill": self.skill, "before": self.before, "final": self.final, "matched": self.matched,
                "components": self.components, "n_trainable": self.n_trainable, "step_time": self.step_time,
                "verdict": self.verdict, "settings": self.settings, "saved": self.saved}


def precise_tuning(model, tokenizer, data: SkillData, *, methods=METHODS, seeds=(0, 1, 2), steps: int = 30,
                   lr: float = 1e-4, batch_size: int = 8, eval_every: int = 10, k_heads: int = 6, k_mlps: int = 2,
                   components=None, locate: str = "study", suite=None, save_dir=None, record: dict | None = None,
                   progress=None, on_eval=None) -> TuningResult:
    """Tune ``model`` on ``data`` with each method and seed; record gain and cost along training.

    Parameters
    ----------
    model : HookedHF (not modified: every run tunes a copy)
    tokenizer : its tokenizer
    data : SkillData (`arithmetic_data`, `icl_data`)
    methods : subset of ``("located", "random", "full", "lora")``
    seeds : ints — batch order, random heads and LoRA initialisation
    steps, lr, batch_size : Adam training, the same for every method
    eval_every : evaluate gain and cost every this many steps (and at the last step)
    k_heads, k_mlps : size of the located set (when ``components`` is None)
    components : list of component names, optional
        The located set, given; default: located by ``locate``.
    locate : {"study", "attribution"}
        ``"study"``: the skill's interpretability study (`locate_by_study`: the arithmetic study's heads and
        MLPs, the function-vector heads for ICL); ``"attribution"``: attribution importance of the answer loss
        (`locate_components`, faster).
    suite : GeneralSuite, optional
        Default: `spinlens.llm.general.build_suite` at the sizes of `ALONG_TRAINING_SUITE` (it runs at every
        evaluation of every run).
    save_dir : path, optional
        Save every tuned model as ``save_dir/METHOD/seed{S}`` (`save_hf_model`).
    progress : callable(str), optional
        Told each evaluation.
    on_eval : callable(dict), optional
        Called with each new row of ``curves`` (e.g. to append it to a log while a long run goes on).

    Raises
    ------
    InvalidParameterError
        When the model already answers every prompt of the primary evaluation set (nothing to gain), or on
        bad settings (before any tuning or writing).
    """
    from spinlens.edit.components import Component, all_masks, component_masks
    from spinlens.edit.pinpoint import masked_finetune
    from spinlens.llm.general import TASKS, build_suite, general_ability
    from spinlens.random import torch_generator

    for m in methods:
        check_choice("method", m, METHODS)
    check_choice("locate", locate, ("study", "attribution"))
    if not methods:
        raise InvalidParameterError("The 'methods' parameter must name at least one method.")
    steps = check_int("steps", steps, low=1)
    lr = check_float("lr", lr, low=0, low_open=True)
    batch_size = check_int("batch_size", batch_size, low=1)
    eval_every = check_int("eval_every", eval_every, low=1)
    seeds = [check_int("seed", s, low=0) for s in seeds]
    if not seeds:
        raise InvalidParameterError("The 'seeds' parameter must hold at least one seed.")
    if "lora" in methods:
        try:
            import peft  # noqa: F401
        except ImportError:
            raise InvalidParameterError("The 'lora' method needs peft: pip install 'spinlens[peft]' (or leave lora "
                                        "out of the methods).") from None
    say = progress or (lambda s: None)
    # the skill's own task is the gain, never counted as general ability
    suite = suite or build_suite(tokenizer, tasks=[t for t in TASKS if t != data.name], **ALONG_TRAINING_SUITE)
    general_keys = suite.keys
    train = encode_pairs(data.train, tokenizer)
    evals = {k: encode_pairs(v, tokenizer) for k, v in data.evals.items()}
    digit_mask = _digit_start_ids(tokenizer) if data.numeric else None

    def gain_metrics(m):
        return {f"accuracy_{k}": answer_accuracy(m, e, digit_mask=digit_mask) for k, e in evals.items()}

    say("evaluating the untuned model")
    before = {**gain_metrics(model), **general_ability(model, suite=suite)}
    if before[f"accuracy_{data.primary}"] >= 1.0:
        raise InvalidParameterError(f"The task {data.name!r}: the model already answers every held-out prompt "
                                    f"({data.primary}: accuracy 1.0); there is nothing to gain.")
    located, scores = [], {}
    if components is not None:
        located = [Component.parse(c) for c in components]
    elif {"located", "random", "lora"} & set(methods):  # the last two match the located set's size
        if locate == "study":
            say(f"locating components (the {data.name} study)")
            located, scores = locate_by_study(model, tokenizer, data.name, k_heads=k_heads, k_mlps=k_mlps)
        else:
            say("locating components (attribution importance of the answer loss)")
            located, scores = locate_components(model, train, k_heads=k_heads, k_mlps=k_mlps)
    n_located = _mask_count(component_masks(model, located)) if located else 0

    curves: list = []
    comps: dict = {}
    ntr: dict = {}
    stime: dict = {}
    saved: dict = {}
    for seed in seeds:
        for method in methods:
            gen = torch_generator(seed)
            lora_rank = None
            if method == "lora":
                new, masks, lora_rank = _lora(model.plain_copy(), n_located, seed)
                names = [f"LoRA r={lora_rank} (all linear layers)"]
            else:
                new = model.clone()
                if method == "full":
                    masks, names = all_masks(new), ["all"]
                elif method == "located":
                    masks, names = component_masks(new, located), [str(c) for c in located]
                else:
                    rh, _ = random_heads_like(model, n_located, rng=seed)
                    masks, names = component_masks(new, rh), [str(c) for c in rh]
            comps.setdefault(method, []).append(names)
            getattr(new, "hf", new).train()
            timer = {"t": time.perf_counter(), "train": 0.0, "loss": float("nan")}

            train_hist: list = []

            def batch_loss(m, step, gen=gen, train_hist=train_hist):
                idx = torch.randint(0, len(train), (min(batch_size, len(train)),), generator=gen)
                loss = answer_loss(m, train.rows(idx))
                train_hist.append(float(loss.detach()))
                return loss

            def row(m, step, method=method, seed=seed):
                r = {"method": method, "seed": seed, "step": step, **gain_metrics(m),
                     **general_ability(m, suite=suite)}
                for k in evals:
                    r[f"gain_{k}"] = r[f"accuracy_{k}"] - before[f"accuracy_{k}"]
                for k in general_keys:
                    r[f"d_{k}"] = r[k] - before[k]
                return r

            # step 0 is the untuned model for every method (a copy; LoRA starts with B = 0): reuse `before`
            r0 = {"method": method, "seed": seed, "step": 0, **before, "train_loss": float("nan"),
                  **{f"gain_{k}": 0.0 for k in evals}, **{f"d_{k}": 0.0 for k in general_keys}}
            curves.append(r0)
            if on_eval is not None:
                on_eval(r0)

            def on_step(m, step, method=method, seed=seed, timer=timer, train_hist=train_hist):
                timer["train"] += time.perf_counter() - timer["t"]
                if step % eval_every == 0 or step == steps:
                    r = row(m, step)
                    r["train_loss"] = float(train_hist[-1]) if train_hist else float("nan")
                    curves.append(r)
                    if on_eval is not None:
                        on_eval(r)
                    say(f"{method} seed {seed} step {step}/{steps}: {data.primary} accuracy "
                        f"{r[f'accuracy_{data.primary}']:.3f}, perplexity {r['perplexity']:.3f}")
                    getattr(m, "hf", m).train()
                timer["t"] = time.perf_counter()

            probe = None
            if progress:  # the estimate, from one counted step on the first batch (no random draw)
                first = train.rows(torch.arange(min(batch_size, len(train))))

                def probe(m, first=first):
                    return answer_loss(m, first)

            _, n = masked_finetune(new, masks, batch_loss, steps=steps, lr=lr, on_step=on_step, probe=probe,
                                   on_estimate=lambda e, method=method, seed=seed: say(
                                       f"{method} seed {seed}: {steps} steps, estimate {e.describe()} (without the "
                                       f"evaluations)"))
            ntr.setdefault(method, []).append(n)
            stime.setdefault(method, []).append(timer["train"] / steps)
            getattr(new, "hf", new).eval()
            if save_dir is not None:
                rec = {**(record or {}), "method": method, "seed": seed, "skill": data.name, "components": names,
                       "n_trainable": n, "lora_rank": lora_rank, "steps": steps, "lr": lr, "batch_size": batch_size,
                       "metrics": {k: v for k, v in curves[-1].items() if k not in ("method", "seed")}}
                saved.setdefault(method, []).append(
                    save_hf_model(new, tokenizer, Path(save_dir) / method / f"seed{seed}", rec))
            del new, masks

    gain_key = f"gain_{data.primary}"
    cost_keys = [f"d_{k}" for k in general_keys]
    matched = matched_costs(curves, gain_key=gain_key, cost_keys=cost_keys)
    final: dict = {}
    for method in methods:
        last = [r for r in curves if r["method"] == method and r["step"] == steps]
        keys = [k for k in last[0] if k not in ("method", "seed", "step")]
        final[method] = {k: finite_mean_sd([r[k] for r in last]) for k in keys}
    verdict = matched_verdict(matched, "d_heldout_loss") if "located" in methods else "no located method run"
    return TuningResult(
        skill=data.name, curves=curves, final=final, matched=matched, components=comps,
        n_trainable={m: int(round(np.mean(v))) for m, v in ntr.items()},
        step_time={m: float(np.mean(v)) for m, v in stime.items()}, verdict=verdict, before=before,
        settings={"steps": steps, "lr": lr, "batch_size": batch_size, "eval_every": eval_every, "seeds": list(seeds),
                  "methods": list(methods), "located": [str(c) for c in located], "n_located": n_located,
                  "located_by": "given" if components is not None else locate,
                  "data_source": data.source, "general_sources": suite.sources, "general_keys": list(general_keys),
                  "general_skipped": suite.skipped, "primary": data.primary},
        scores=scores, saved=saved)


# ------------------------------------------------------------------------------------------------- merging


def merge_experts(base, experts, tokenizer, *, methods=("task_arithmetic", "ties", "module"), skills=None,
                  density: float = 0.3, scale=None, expert_names=None, suite=None) -> dict:
    """Merge tuned copies of one pretrained LM (`spinlens.edit.merging`) and measure what each merge keeps.

    Parameters
    ----------
    base : HookedHF (the pretrained model the experts were tuned from)
    experts : HF causal LMs (e.g. loaded from the folders `precise_tuning` saves)
    methods : subset of ``("task_arithmetic", "ties", "module")``
    skills : list of SkillData or None, one per expert
        The skill each expert was tuned for; its primary held-out accuracy is measured on the base, the expert
        and each merge, and ``kept_<i>`` = (merged − base) / (expert − base) (NaN when the expert gained nothing).
    density, scale : TIES density; λ (task arithmetic and the rest of a module merge: None = 1/T; TIES: 1)

    Returns
    -------
    dict with ``base`` and ``experts`` (metrics), ``methods`` {method: metrics, ``kept_<i>``,
    ``accuracy_<i>``}, ``assignment`` (module merge: component → expert) and ``models`` {method: HF model}.

    Raises
    ------
    InvalidParameterError
        Experts whose architecture (model type, parameter names or shapes) differs from the base, before any
        merging.
    """
    from spinlens.edit.merging import module_merge, task_arithmetic, ties_merge
    from spinlens.llm.general import build_suite, general_ability

    for m in methods:
        check_choice("method", m, ("task_arithmetic", "ties", "module"))
    names = expert_names or [f"expert {i}" for i in range(len(experts))]
    bsd = {k: v.detach() for k, v in base.hf.state_dict().items()}
    bt = getattr(base.hf.config, "model_type", None)
    for nm, e in zip(names, experts):
        et = getattr(getattr(e, "config", None), "model_type", None)
        esd = e.state_dict()
        bad = et != bt or set(esd) != set(bsd) or any(esd[k].shape != bsd[k].shape for k in bsd)
        if bad:
            raise InvalidParameterError(f"The model {nm!r} ({et}, {sum(v.numel() for v in esd.values()):,} "
                                        f"parameters) has another architecture than the base ({bt}, "
                                        f"{sum(v.numel() for v in bsd.values()):,}); merging needs fine-tunes of "
                                        "one base.")
    skills = list(skills or [None] * len(experts))
    suite = suite or build_suite(tokenizer, **ALONG_TRAINING_SUITE)
    encs = [None if s is None else encode_pairs(s.evals[s.primary], tokenizer) for s in skills]
    dmask = [None if s is None or not s.numeric else _digit_start_ids(tokenizer) for s in skills]

    def measure(model):
        r = dict(general_ability(model, suite=suite))
        for i, e in enumerate(encs):
            if e is not None:
                r[f"accuracy_{i}"] = answer_accuracy(model, e, digit_mask=dmask[i])
        return r

    out = {"base": measure(base), "experts": [measure(e) for e in experts], "methods": {}, "models": {},
           "skills": [None if s is None else s.name for s in skills], "expert_names": list(names)}
    esds = [{k: v.detach() for k, v in e.state_dict().items()} for e in experts]
    for m in methods:
        if m == "task_arithmetic":
            sd = task_arithmetic(bsd, esds, scale=scale)
        elif m == "ties":
            sd = ties_merge(bsd, esds, density=density, scale=1.0 if scale is None else scale)
        else:
            sd, assign = module_merge(bsd, esds, layout=base, scale=scale)
            out["assignment"] = {k: v for k, v in assign.items() if v >= 0}
        merged = base.plain_copy()
        merged.load_state_dict(sd)
        merged.eval()
        r = measure(merged)
        for i in range(len(experts)):
            if f"accuracy_{i}" in r:
                b0, e1 = out["base"][f"accuracy_{i}"], out["experts"][i][f"accuracy_{i}"]
                r[f"kept_{i}"] = (r[f"accuracy_{i}"] - b0) / (e1 - b0) if e1 != b0 else float("nan")
        out["methods"][m] = r
        out["models"][m] = merged
    return out


# ------------------------------------------------------------------------------------------------ the commands

#: defaults of ``pinpoint --model`` (fine-tuning a 135M model on a shared 2-core CPU: short prompts, few steps)
COMMAND_DEFAULTS = {"steps": 30, "lr": 1e-4, "k": 6, "k_mlps": 2, "n_seeds": 3, "batch_size": 8, "eval_every": 10,
                    "seed": 0}


def run_edit_command(command: str, opts):
    """The ``hf`` setting of ``pinpoint`` (`precise_tuning` of a pretrained LM on a skill) and ``merge``
    (`merge_experts` of tuned folders into ``--model``): a `spinlens.experiment.EditResult`; outputs (curves,
    figure, tuned or merged models, run.json) written under ``opts.out``. Options left None take
    `COMMAND_DEFAULTS`; ``opts``: see `spinlens.experiment.run_edit_command`."""
    if command == "pinpoint":
        return _pinpoint_command(opts)
    if command == "merge":
        return _merge_command(opts)
    raise InvalidParameterError(f"The '--model' parameter (a Hugging Face model) is not supported by "
                                f"'{command}'; give a spinlens model folder under --checkpoint.")


def _opt(opts, dest):
    v = getattr(opts, dest, None)
    return COMMAND_DEFAULTS[dest] if v is None else v


def _tokenizer(name):
    from transformers import AutoTokenizer

    from spinlens.models.pretrained import resolve_model

    return AutoTokenizer.from_pretrained(str(resolve_model(name)), local_files_only=True)


def _pinpoint_command(opts):
    import sys

    from spinlens.interp.hf import load_hf
    from spinlens.io import check_out_dir, run_record
    from spinlens.results import EditResult

    task = opts.task or "arithmetic"
    steps, n_seeds, seed, k, k_mlps, batch_size, eval_every = (
        check_int(d, _opt(opts, d), low=low) for d, low in (("steps", 1), ("n_seeds", 1), ("seed", 0), ("k", 0),
                                                             ("k_mlps", 0), ("batch_size", 1), ("eval_every", 1)))
    methods = tuple(opts.methods or METHODS)
    check_out_dir("out", opts.out)
    say = (lambda s: None) if opts.no_progress else (lambda s: print(f"spinlens pinpoint: {s}", flush=True,
                                                                      file=sys.stderr))
    say(f"loading {opts.model}")
    model = load_hf(opts.model, allow_pickle_weights=bool(getattr(opts, "allow_pickle_weights", False)))
    tok = _tokenizer(opts.model)
    data = arithmetic_data(seed=0) if task == "arithmetic" else icl_data(seed=0)
    out = Path(opts.out) if opts.out else None
    record = run_record("pinpoint", args=opts, seed=seed, model=str(opts.model), task=task)
    res = precise_tuning(
        model, tok, data, methods=methods, seeds=list(range(seed, seed + n_seeds)), steps=steps, lr=_opt(opts, "lr"),
        batch_size=batch_size, eval_every=eval_every, k_heads=k, k_mlps=k_mlps, components=opts.components,
        locate=opts.locate or "study",
        save_dir=None if (out is None or bool(opts.no_save_models)) else out / "models", record=record, progress=say)
    summary = tuning_summary(res)
    if out is not None:
        write_tuning_outputs(res, out, record, summary)
    return EditResult("pinpoint", "hf", summary, text=tuning_headline(res))


def tuning_summary(res: TuningResult) -> dict:
    """The summary of a `precise_tuning` result: per method the target metrics (gain keys) and every
    general-ability metric, mean and sd; what was before, matched costs, verdict, settings, saved models."""
    gk = res.settings["general_keys"]
    methods = {}
    for m, fin in res.final.items():
        keys = [k for k in fin if k.startswith(("gain_", "accuracy_"))] + list(gk) + [f"d_{k}" for k in gk]
        methods[m] = {k: {"mean": fin[k][0], "sd": fin[k][1]} for k in keys if k in fin}
        methods[m]["n_trainable"] = res.n_trainable[m]
        methods[m]["step_time"] = res.step_time[m]
    return {"skill": res.skill, "before": res.before, "methods": methods, "matched": res.matched,
            "verdict": res.verdict, "settings": res.settings, "components": res.components, "saved": res.saved}


def _pm(ms, digits=3):
    m, s = ms
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def tuning_headline(res: TuningResult) -> str:
    """The lines printed for a `precise_tuning` result: settings, before, each method's gains and general
    metrics, the costs at matched gain, the verdict."""
    s = res.settings
    gains = [k for k in next(iter(res.final.values())) if k.startswith("gain_")]
    lines = [f"precise tuning: {res.skill}, {s['steps']} steps, lr {s['lr']:g}, batch {s['batch_size']}, "
             f"seeds {s['seeds']} (mean ± sd); located: {', '.join(s['located'])}",
             "before: " + ", ".join(f"{k} {v:.3f}" for k, v in res.before.items())]
    for m, fin in res.final.items():
        lines.append(f"{m:8s} ({res.n_trainable[m]:,} params, {res.step_time[m]:.2f} s/step): "
                     + ", ".join(f"{g} {_pm(fin[g])}" for g in gains) + " | "
                     + ", ".join(f"{k} {_pm(fin[k])}" for k in s["general_keys"]))
    mt = res.matched
    if mt["levels"]:
        lines.append(f"cost at matched {mt['gain_key']} (levels {', '.join(f'{x:.3f}' for x in mt['levels'])}):")
        for m, per in mt["costs"].items():
            lines.append(f"  {m:8s} d_heldout_loss " + "  ".join(
                f"{a:+.4f}±{sd:.4f} (n={n})" for a, sd, n in per["d_heldout_loss"]))
    lines.append("verdict: " + res.verdict)
    return "\n".join(lines)


def write_tuning_outputs(res: TuningResult, out, record: dict, summary: dict) -> None:
    """``OUT/pinpoint_curves.csv``, the cost-vs-gain figure and run.json (``record`` with ``summary``)."""
    from spinlens import io
    from spinlens.plotting.edit import plot_precise_tuning

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(res.curves[0])
    io.save_columns({k: [r.get(k) for r in res.curves] for k in keys}, out, "pinpoint_curves")
    fig, _ = plot_precise_tuning(res.curves, gain_key=res.matched["gain_key"], matched=res.matched)
    io.save_figure(fig, out, "pinpoint_cost_vs_gain", dpi=150)
    io.write_run_json(out, {**record, "summary": summary})


def _skill_data(folder):
    """The skill an expert folder was tuned for (its run.json ``skill``), as SkillData; None if unknown."""
    import json

    try:
        skill = json.loads((Path(folder) / "run.json").read_text()).get("skill")
    except (OSError, ValueError, AttributeError):
        return None
    return {"arithmetic": arithmetic_data, "icl": icl_data}.get(skill, lambda **k: None)(seed=0)


def _merge_command(opts):
    from spinlens.interp.hf import load_hf, load_hf_model
    from spinlens.io import check_out_dir, run_record, write_run_json
    from spinlens.results import EditResult

    if not opts.models or len(opts.models) < 2:
        raise InvalidParameterError("The '--models' parameter must name at least two tuned Hugging Face folders "
                                    "(the experts to merge into --model).")
    check_out_dir("out", opts.out)
    if opts.save:
        check_out_dir("save", opts.save)
    base = load_hf(opts.model)
    experts = [load_hf_model(m) for m in opts.models]  # a folder that is no HF model fails here, in one line
    tok = _tokenizer(opts.model)
    methods = [opts.method] if getattr(opts, "method", None) else ["task_arithmetic", "ties", "module"]
    skills = [_skill_data(m) for m in opts.models]
    res = merge_experts(base, experts, tok, methods=methods, skills=skills, density=opts.density or 0.3,
                        scale=opts.scale, expert_names=[str(m) for m in opts.models])
    out = Path(opts.out) if opts.out else None
    saved = {}
    record = run_record("merge", args=opts, seed=getattr(opts, "seed", None), model=str(opts.model))
    for m, model in res.pop("models").items():
        target = Path(opts.save) if (opts.save and len(methods) == 1) else (out / "models" / f"merge-{m}" if out else None)
        if target is not None:
            saved[m] = save_hf_model(model, tok, target, {**record, "merge_method": m, "experts": list(opts.models),
                                                           "metrics": res["methods"][m]})
    res["saved"] = saved
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_run_json(out, {**record, "summary": res})
    lines = []
    for m, r in res["methods"].items():
        kept = ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k.startswith("kept_"))
        gen = ", ".join(f"{k} {r[k]:.3f}" for k in ("perplexity", "ioi_logit_diff", "recall_accuracy", "icl_accuracy"))
        lines.append(f"{m:16s} kept: {kept or '-'} | {gen}")
    return EditResult("merge", "hf", res, text="\n".join(lines))
