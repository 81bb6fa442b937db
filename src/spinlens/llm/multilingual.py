"""Language-specific neurons (Tang et al., ACL 2024: language activation probability entropy, LAPE).

The study, on any hooked causal LM with a gated or plain MLP (`spinlens.interp.hf.HookedHF`; made for Gemma 3
270M, which is multilingual):

1. **Text.** A parallel corpus that installs offline: the translation catalogs that ship inside Django
   (`django_corpus`: the ``.mo`` files of ``django/conf/locale`` and ``django/contrib/*/locale``, BSD-3-Clause,
   the same licence as Django). Every message is a short human translation of one English source string
   (form errors, admin pages, date words, ...); entries are aligned by that string, so every language has the
   same content. Messages with placeholders (``%(name)s``, ``{0}``) or HTML tags, untranslated entries and
   messages of fewer than ``min_words`` English words are dropped. The English source strings are the English
   text. The messages are split once by a seeded permutation into a *fit* half (activation statistics, the
   language identifier) and a *held-out* half (perplexity, generation prompts), the same split for every
   language.
2. **Activation probability.** Each language's fit messages are shuffled, joined by newlines into one stream
   and cut into rows of ``n_ctx`` tokens behind a BOS token (`token_rows`). For every MLP neuron (layer l,
   unit j) and language k, ``p[k, l, j]`` is the fraction of the language's tokens (BOS excluded) at which
   the neuron is *active*: its activation function's output is positive. For Gemma's gated MLP
   ``down(gelu(gate(x)) * up(x))`` that is ``gelu(gate) > 0``, i.e. ``mlp.hook_pre > 0`` (GELU is positive
   exactly for positive inputs; the same test as the paper's ``silu(gate) > 0`` for LLaMA), not the sign of
   ``mlp.hook_post = gelu(gate) * up``, which also carries the sign of ``up``.
3. **LAPE.** ``p`` is normalised over languages, ``q[k] = p[k] / sum_k p[k]``, and its entropy
   ``H = -sum_k q[k] log q[k]`` (nats) is the neuron's LAPE: low for a neuron that fires for one language
   only. The selection follows the paper's: neurons whose largest probability over languages does not exceed
   the ``filter_quantile`` (0.95) quantile of all probabilities are left out; of the rest, the ``top_fraction``
   (1 %) of all neurons with the lowest entropy are *language-specific*, and each is assigned to every language
   whose probability exceeds the ``bar_quantile`` (0.95) quantile of all probabilities (a neuron can belong to
   two related languages).
4. **Switching off** (`perplexity_matrix`): language k's neurons are set to zero at ``mlp.hook_post`` (the
   activation function's output times ``up``, so the neuron writes nothing) and the mean next-token loss is
   measured on every language's held-out rows: the ``[off, eval]`` matrix of the change in loss (nats/token;
   the perplexity ratio is its exponential). Control: the same number of random neurons in the same layers,
   drawn outside the language-specific set, one draw per seed.
5. **Switching on** (`language_switch`): prompts from each source language's held-out rows are continued
   greedily with target language t's neurons set, at every position, to their mean ``mlp.hook_post`` over
   t's fit tokens; the *switch rate* is the fraction of continuations that `LanguageIdentifier` labels t.
   Baselines: no intervention, and random neurons of the same count and layers set to their own mean over t.

The language identifier is a character n-gram naive Bayes model trained on the fit messages (no judge model);
its accuracy on the held-out messages is part of the result.
"""

from __future__ import annotations

import math
import re
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from spinlens.errors import InvalidParameterError, check_float, check_int
from spinlens.verdict import mean_sd

if TYPE_CHECKING:
    from spinlens.results import StudyReport

__all__ = [
    "DJANGO_LOCALES",
    "ParallelCorpus",
    "read_mo",
    "django_corpus",
    "LanguageIdentifier",
    "token_rows",
    "activation_statistics",
    "lape",
    "select_language_neurons",
    "random_neurons_like",
    "perplexity_matrix",
    "language_switch",
    "LanguageNeuronsResult",
    "result_dataset",
    "language_neurons_study",
    "language_neurons_report",
]

# spinlens language code -> Django locale folder
DJANGO_LOCALES = {
    "en": "en", "fr": "fr", "de": "de", "es": "es", "it": "it", "pt": "pt", "nl": "nl", "pl": "pl", "ru": "ru",
    "uk": "uk", "cs": "cs", "sv": "sv", "fi": "fi", "tr": "tr", "el": "el", "ar": "ar", "he": "he", "fa": "fa",
    "hi": "hi", "id": "id", "vi": "vi", "ja": "ja", "ko": "ko", "zh": "zh_Hans",
}
DEFAULT_LANGUAGES = ("en", "fr", "de", "es", "ru", "zh")

_PLACEHOLDER = re.compile(r"%\([^)]*\)[-#0 +]*\d*(?:\.\d+)?[sdifr]|%[-#0 +]*\d*(?:\.\d+)?[sdifr]|\{[^{}]*\}|<[^<>]*>")


# ------------------------------------------------------------------------------------------------ corpus
def read_mo(data: bytes) -> dict[str, str]:
    """The messages of a GNU gettext ``.mo`` catalog: ``{msgid: msgstr}`` (the header entry ``""`` left out).

    Plural entries (``msgid\\0plural``) give their first forms; a message context (``ctx\\x04msgid``) stays in
    the key. Raises `InvalidParameterError` for data that is not a catalog.
    """
    if len(data) < 28:
        raise InvalidParameterError("The 'data' parameter must be a GNU .mo catalog. Got fewer than 28 bytes.")
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if end is None:
        raise InvalidParameterError("The 'data' parameter must be a GNU .mo catalog (magic 0x950412de). Got other bytes.")
    _, n, o_orig, o_trans = struct.unpack(end + "4I", data[4:20])
    out = {}
    for i in range(n):
        lo, oo = struct.unpack(end + "2I", data[o_orig + 8 * i: o_orig + 8 * i + 8])
        lt, ot = struct.unpack(end + "2I", data[o_trans + 8 * i: o_trans + 8 * i + 8])
        key = data[oo: oo + lo].decode("utf-8", "replace").split("\x00")[0]
        if key:
            out[key] = data[ot: ot + lt].decode("utf-8", "replace").split("\x00")[0]
    return out


def _clean(text: str) -> str:
    return " ".join(_PLACEHOLDER.sub(" ", text.split("\x04")[-1]).split())


@dataclass(frozen=True)
class ParallelCorpus:
    """Aligned messages in several languages: ``texts[lang][i]`` translates ``keys[i]`` (English source)."""

    languages: tuple[str, ...]
    keys: list[str]
    texts: dict[str, list[str]]
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def split(self, seed: int, heldout_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the fit and held-out messages (one seeded permutation, the same for every language)."""
        check_float("heldout_fraction", heldout_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        perm = np.random.default_rng(int(seed)).permutation(len(self.keys))
        n_held = max(1, int(round(heldout_fraction * len(perm))))
        return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def django_corpus(languages: Sequence[str] = DEFAULT_LANGUAGES, *, min_words: int = 2) -> ParallelCorpus:
    """The parallel corpus of Django's translation catalogs (installed with Django; nothing is downloaded).

    Parameters
    ----------
    languages : codes of `DJANGO_LOCALES` (``"en"`` is the English source strings)
    min_words : keep messages whose English source has at least this many words

    Returns
    -------
    ParallelCorpus whose messages are translated in every language asked for; ``source`` records the package,
    its version, its licence and the catalogs read.
    """
    import importlib.metadata as md
    from pathlib import Path

    langs = tuple(languages)
    if len(langs) < 2 or len(set(langs)) != len(langs):
        raise InvalidParameterError(f"The 'languages' parameter must hold at least 2 distinct codes. Got {list(langs)}.")
    bad = [c for c in langs if c not in DJANGO_LOCALES]
    if bad:
        raise InvalidParameterError(f"The 'languages' parameter must hold codes of {sorted(DJANGO_LOCALES)}. Got {bad}.")
    check_int("min_words", min_words, low=1)
    try:
        import django
    except ImportError:
        raise InvalidParameterError("The multilingual corpus needs Django's translation catalogs: "
                                    "pip install 'django>=4.2,<6' (or spinlens[llm]).") from None
    root = Path(django.__file__).parent
    catalogs: dict[str, dict[str, str]] = {c: {} for c in langs if c != "en"}
    files = 0
    for c in catalogs:
        loc = DJANGO_LOCALES[c]
        for mo in sorted(root.glob(f"**/locale/{loc}/LC_MESSAGES/django.mo")):
            catalogs[c].update(read_mo(mo.read_bytes()))
            files += 1
    keys: list[str] = []
    texts: dict[str, list[str]] = {c: [] for c in langs}
    seen = set()
    for key in sorted(set.intersection(*(set(k) for k in catalogs.values())) if catalogs else []):
        en = _clean(key)
        if len(en.split()) < min_words or en in seen or _PLACEHOLDER.search(key.split("\x04")[-1]):
            continue
        tr = {c: _clean(catalogs[c][key]) for c in catalogs}
        if any(not t or t == en or _PLACEHOLDER.search(catalogs[c][key]) for c, t in tr.items()):
            continue
        seen.add(en)
        keys.append(key)
        texts.setdefault("en", [])
        for c in langs:
            texts[c].append(en if c == "en" else tr[c])
    if len(keys) < 20:
        raise InvalidParameterError(f"The 'languages' parameter {list(langs)}: only {len(keys)} messages are translated "
                                    "in all of them (need >= 20); choose other languages or a lower min_words.")
    src = {"corpus": "django-locale", "package": "Django", "version": md.version("Django"),
           "licence": "BSD-3-Clause (Django's licence, translations included)",
           "catalogs": files, "path": "django/conf/locale, django/contrib/*/locale (LC_MESSAGES/django.mo)",
           "min_words": int(min_words), "n_messages": len(keys)}
    return ParallelCorpus(langs, keys, texts, src)


# ------------------------------------------------------------------------------------------------ language id
class LanguageIdentifier:
    """Character n-gram naive Bayes (n = 1..3, add-one smoothing, uniform prior) over a fixed set of languages.

    `predict` returns ``"none"`` for a text without letters.
    """

    def __init__(self, n_max: int = 3) -> None:
        self.n_max = check_int("n_max", n_max, low=1, high=6)
        self.languages: list[str] = []
        self._logp: list[dict[str, float]] = []
        self._unseen: list[float] = []

    def _grams(self, text: str) -> list[str]:
        t = " " + " ".join(text.lower().split()) + " "
        return [t[i: i + n] for n in range(1, self.n_max + 1) for i in range(len(t) - n + 1)]

    def fit(self, texts: Mapping[str, Sequence[str]]) -> LanguageIdentifier:
        counts = {c: Counter(g for s in ts for g in self._grams(s)) for c, ts in texts.items()}
        vocab = set().union(*counts.values())
        self.languages = list(texts)
        self._logp, self._unseen = [], []
        for c in self.languages:
            tot = sum(counts[c].values()) + len(vocab) + 1
            self._logp.append({g: math.log((k + 1) / tot) for g, k in counts[c].items()})
            self._unseen.append(math.log(1 / tot))
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        out = []
        for s in texts:
            if not any(ch.isalpha() for ch in s):
                out.append("none")
                continue
            grams = self._grams(s)
            scores = [sum(lp.get(g, un) for g in grams) for lp, un in zip(self._logp, self._unseen)]
            out.append(self.languages[int(np.argmax(scores))])
        return out

    def accuracy(self, texts: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """Fraction of each language's texts labelled with that language."""
        return {c: float(np.mean([p == c for p in self.predict(ts)])) for c, ts in texts.items()}


# ------------------------------------------------------------------------------------------------ tokens
def token_rows(messages: Sequence[str], tokenizer, *, n_ctx: int, max_tokens: int, seed: int = 0):
    """Rows ``[BOS] + n_ctx - 1`` tokens cut from the shuffled messages joined by newlines (int64 tensor).

    ``max_tokens`` caps the tokens per language (whole rows); at least one row or `InvalidParameterError`.
    """
    import torch

    order = np.random.default_rng(int(seed)).permutation(len(messages))
    ids = tokenizer.encode("\n".join(messages[i] for i in order), add_special_tokens=False)
    step = n_ctx - 1
    n_rows = min(len(ids) // step, max(1, max_tokens // n_ctx))
    if n_rows < 1:
        raise InvalidParameterError(f"The text gives {len(ids)} tokens, fewer than one row of n_ctx={n_ctx}: lower 'n_ctx'.")
    body = torch.tensor(ids[: n_rows * step], dtype=torch.long).view(n_rows, step)
    bos = torch.full((n_rows, 1), int(tokenizer.bos_token_id), dtype=torch.long)
    return torch.cat([bos, body], 1)


def _batches(rows, batch_size):
    for i in range(0, rows.shape[0], batch_size):
        yield rows[i: i + batch_size]


def _trunk(model, tokens):
    """Every layer and the final norm, not the unembedding (a 262k vocabulary costs more than the layers)."""
    base = getattr(model, "hf", None)
    if base is not None:
        return base.base_model(input_ids=tokens, use_cache=False)
    return model(tokens)


def activation_statistics(model, rows: dict, *, batch_size: int = 8, progress=None):
    """Per language: probability that each MLP neuron is active (``mlp.hook_pre > 0``) and its mean ``hook_post``.

    Returns
    -------
    (prob, mean_post, n_tokens): arrays ``[lang, layer, d_mlp]`` (languages in the order of ``rows``) and the
    token count per language; BOS positions are left out.
    """
    import torch

    n_layers = model.cfg.n_layers
    langs = list(rows)
    prob, mpost, ntok = [], [], []
    for c in langs:
        active = torch.zeros(n_layers, model.cfg.d_mlp, dtype=torch.float64)
        post = torch.zeros_like(active)
        count = 0

        def rec_pre(act, hook, acc=active):
            acc[int(hook.name.split(".")[1])] += (act[:, 1:] > 0).sum((0, 1)).double()

        def rec_post(act, hook, acc=post):
            acc[int(hook.name.split(".")[1])] += act[:, 1:].double().sum((0, 1))

        fns = [(f"blocks.{L}.mlp.hook_pre", rec_pre) for L in range(n_layers)]
        fns += [(f"blocks.{L}.mlp.hook_post", rec_post) for L in range(n_layers)]
        with torch.inference_mode(), model.hooks(fns):
            for b in _batches(rows[c], batch_size):
                _trunk(model, b)
                count += b.shape[0] * (b.shape[1] - 1)
                if progress:
                    progress(c, count)
        prob.append((active / count).numpy())
        mpost.append((post / count).numpy())
        ntok.append(count)
    return np.stack(prob), np.stack(mpost), np.asarray(ntok)


def lape(prob: np.ndarray) -> np.ndarray:
    """Language activation probability entropy (nats) of each neuron: ``prob [lang, ...] -> [...]``."""
    p = np.asarray(prob, dtype=float)
    tot = p.sum(0, keepdims=True)
    q = np.divide(p, tot, out=np.zeros_like(p), where=tot > 0)
    return -(q * np.log(np.where(q > 0, q, 1.0))).sum(0)


def select_language_neurons(prob: np.ndarray, *, top_fraction: float = 0.01, filter_quantile: float = 0.95,
                            bar_quantile: float = 0.95):
    """Language-specific neurons by LAPE (Tang et al. 2024's selection, see the module docstring).

    Parameters
    ----------
    prob : array ``[lang, layer, d_mlp]`` of activation probabilities

    Returns
    -------
    (mask, entropy, thresholds): ``mask [lang, layer, d_mlp]`` (True: the neuron is specific to that language),
    the entropy ``[layer, d_mlp]``, and ``{"filter": p, "bar": p, "entropy_cut": H}``.
    """
    check_float("top_fraction", top_fraction, low=0.0, high=1.0, low_open=True)
    check_float("filter_quantile", filter_quantile, low=0.0, high=1.0)
    check_float("bar_quantile", bar_quantile, low=0.0, high=1.0)
    p = np.asarray(prob, dtype=float)
    H = lape(p)
    filt = float(np.quantile(p, filter_quantile))
    bar = float(np.quantile(p, bar_quantile))
    cand = np.where((p > filt).any(0), H, np.inf).ravel()
    k = min(int(round(top_fraction * cand.size)), int(np.isfinite(cand).sum()))
    chosen = np.zeros(cand.size, dtype=bool)
    if k > 0:
        chosen[np.argsort(cand, kind="stable")[:k]] = True
    mask = chosen.reshape(H.shape)[None] & (p > bar)
    cut = float(cand[np.argsort(cand, kind="stable")[k - 1]]) if k > 0 else float("nan")
    return mask, H, {"filter": filt, "bar": bar, "entropy_cut": cut, "n_selected": int(k)}


def random_neurons_like(mask: np.ndarray, *, exclude: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """A random neuron set with as many neurons in every layer as ``mask [layer, d_mlp]``, outside ``exclude``."""
    rng = np.random.default_rng(int(seed))
    m = np.asarray(mask, dtype=bool)
    ex = np.zeros_like(m) if exclude is None else np.asarray(exclude, dtype=bool)
    out = np.zeros_like(m)
    for L in range(m.shape[0]):
        k = int(m[L].sum())
        if k:
            pool = np.flatnonzero(~ex[L])
            out[L, rng.choice(pool, size=min(k, pool.size), replace=False)] = True
    return out


def _neuron_interventions(mask: np.ndarray, value: np.ndarray | float = 0.0) -> list:
    """`SetNeurons` on ``blocks.L.mlp.hook_post`` for every layer with a chosen neuron (value: scalar or [layer, d_mlp])."""
    from spinlens.interp.interventions import SetNeurons

    ivs = []
    for L in range(mask.shape[0]):
        idx = np.flatnonzero(mask[L])
        if idx.size:
            v = float(value) if isinstance(value, (int, float, np.number)) else np.asarray(value)[L, idx]
            ivs.append(SetNeurons(f"blocks.{L}.mlp.hook_post", idx.tolist(), value=v))
    return ivs


def mean_nll(model, rows, interventions=(), *, batch_size: int = 4) -> float:
    """Mean next-token loss (nats/token) of ``model`` on ``rows`` (BOS-led), with the interventions applied."""
    import torch
    import torch.nn.functional as F

    from spinlens.interp.interventions import steer

    tot, n = 0.0, 0
    with torch.inference_mode(), steer(model, interventions):
        for b in _batches(rows, batch_size):
            logits = model(b)[:, :-1]
            tot += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), b[:, 1:].reshape(-1), reduction="sum"))
            n += b[:, 1:].numel()
    return tot / n


def perplexity_matrix(model, eval_rows: dict, masks: dict, *, batch_size: int = 4, progress=None):
    """Loss per evaluation language with no intervention and with each mask's neurons set to zero.

    Returns
    -------
    (base [eval], off [mask, eval]) mean losses in nats/token, in the orders of ``eval_rows`` and ``masks``.
    """
    langs = list(eval_rows)
    base = np.array([mean_nll(model, eval_rows[c], batch_size=batch_size) for c in langs])
    off = np.zeros((len(masks), len(langs)))
    for i, (name, m) in enumerate(masks.items()):
        ivs = _neuron_interventions(m, 0.0)
        for j, c in enumerate(langs):
            off[i, j] = mean_nll(model, eval_rows[c], ivs, batch_size=batch_size)
        if progress:
            progress(name)
    return base, off


def _generate(model, prompts, n_new: int, interventions=()):
    """Greedy continuation of equal-length prompts ``[b, t]`` by ``n_new`` tokens, interventions at every step.

    Through transformers' ``generate`` (key-value cache, logits of the last position only) on a `HookedHF`:
    the interventions act on every forward, the prompt's and each new token's.
    """
    import torch

    from spinlens.interp.interventions import steer

    hf = model.hf
    with torch.inference_mode(), steer(model, interventions):
        out = hf.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=n_new,
                          min_new_tokens=n_new, do_sample=False, pad_token_id=hf.config.pad_token_id or 0)
    return out[:, prompts.shape[1]:]


def language_switch(model, tokenizer, prompts: dict, target_sets: dict | None, lid: LanguageIdentifier, *,
                    n_new: int = 16, targets: Sequence[str] | None = None):
    """Fraction of greedy continuations labelled with each target language, per (source, target).

    Parameters
    ----------
    prompts : {source language: int tensor [n, t]}
    target_sets : {target language: list of interventions (switching the target's neurons on)}; None: no
        intervention at all (one continuation per source, labelled against every language of ``targets``)

    Returns
    -------
    (rate [source, target], texts {(source, target): [str]}); rate[s, t] is the fraction labelled t.
    """
    src = list(prompts)
    tgt = list(target_sets) if target_sets is not None else list(targets or lid.languages)
    rate = np.zeros((len(src), len(tgt)))
    texts: dict[tuple[str, str], list[str]] = {}
    for i, s in enumerate(src):
        for j, t in enumerate(tgt):
            if target_sets is None and j > 0:
                dec = texts[(s, tgt[0])]
            else:
                out = _generate(model, prompts[s], n_new, target_sets[t] if target_sets is not None else ())
                dec = [tokenizer.decode(r.tolist(), skip_special_tokens=True) for r in out]
            rate[i, j] = float(np.mean([p == t for p in lid.predict(dec)]))
            texts[(s, t)] = dec
    return rate, texts


# ------------------------------------------------------------------------------------------------ the study
@dataclass
class LanguageNeuronsResult:
    """Language-specific neurons of one model, with the effects of switching them off and on.

    Attributes
    ----------
    languages : language codes (order of every language axis)
    prob : ``[lang, layer, d_mlp]`` activation probability (``mlp.hook_pre > 0``) on the fit text
    entropy : ``[layer, d_mlp]`` LAPE (nats)
    mask : ``[lang, layer, d_mlp]`` language-specific neurons
    thresholds : the selection's quantile values (see `select_language_neurons`)
    base_loss : ``[eval]`` held-out loss (nats/token) of the unedited model
    off_loss : ``[off, eval]`` loss with language ``off``'s neurons set to zero
    random_off_loss : ``[seed, off, eval]`` loss with a random same-size, same-layer set set to zero
    switch_rate : ``[source, target]`` fraction of continuations labelled ``target`` with its neurons on
    switch_base : ``[source, target]`` the same without intervention
    switch_random : ``[seed, source, target]`` with random same-size neurons set to their target-language mean
    lid_accuracy : the language identifier's accuracy per language on held-out messages
    samples : a few continuations per (source, target)
    corpus, config : provenance and parameters
    """

    languages: list[str]
    prob: np.ndarray
    entropy: np.ndarray
    mask: np.ndarray
    thresholds: dict
    n_tokens: dict
    base_loss: np.ndarray
    off_loss: np.ndarray
    random_off_loss: np.ndarray
    switch_rate: np.ndarray
    switch_base: np.ndarray
    switch_random: np.ndarray
    lid_accuracy: dict
    samples: dict
    corpus: dict
    config: dict

    @property
    def delta_loss(self) -> np.ndarray:
        """``[off, eval]`` change in held-out loss (nats/token) from switching language ``off``'s neurons off."""
        return self.off_loss - self.base_loss[None]

    @property
    def random_delta_loss(self) -> np.ndarray:
        return self.random_off_loss - self.base_loss[None, None]

    def counts(self) -> dict:
        """Language-specific neurons per language (total and per layer)."""
        return {c: {"total": int(self.mask[i].sum()), "per_layer": self.mask[i].sum(1).astype(int).tolist()}
                for i, c in enumerate(self.languages)}

    def to_dict(self) -> dict:
        n = len(self.languages)
        d = self.delta_loss
        rd = self.random_delta_loss
        off_diag = ~np.eye(n, dtype=bool)
        sr = self.switch_rate[off_diag]
        rs = self.switch_random[:, off_diag]
        out = {
            "languages": self.languages,
            "corpus": self.corpus,
            "config": self.config,
            "n_tokens": self.n_tokens,
            "thresholds": self.thresholds,
            "language_neurons": self.counts(),
            "n_language_neurons_union": int(self.mask.any(0).sum()),
            "base_loss": dict(zip(self.languages, self.base_loss.round(4).tolist())),
            "delta_loss": {c: dict(zip(self.languages, d[i].round(4).tolist())) for i, c in enumerate(self.languages)},
            "random_delta_loss_mean": {c: dict(zip(self.languages, rd.mean(0)[i].round(4).tolist()))
                                       for i, c in enumerate(self.languages)},
            "random_delta_loss_sd": {c: dict(zip(self.languages, mean_sd(rd, axis=0)[1][i].round(4).tolist()))
                                     for i, c in enumerate(self.languages)},
            "diagonal_delta_loss": float(np.mean(np.diag(d))),
            "off_diagonal_delta_loss": float(d[off_diag].mean()),
            "random_diagonal_delta_loss": _ms([float(np.mean(np.diag(r))) for r in rd]),
            "switch_rate": {s: dict(zip(self.languages, self.switch_rate[i].round(4).tolist()))
                            for i, s in enumerate(self.languages)},
            "switch_rate_mean": float(sr.mean()),
            "switch_base_mean": float(self.switch_base[off_diag].mean()),
            "switch_random_mean": _ms([float(r.mean()) for r in rs]),
            "lid_accuracy": self.lid_accuracy,
            "samples": {f"{s}->{t}": v for (s, t), v in self.samples.items()},
        }
        parts = self.config.get("parts", ["off", "on"])
        drop = (["base_loss", "delta_loss", "random_delta_loss_mean", "random_delta_loss_sd", "diagonal_delta_loss",
                 "off_diagonal_delta_loss", "random_diagonal_delta_loss"] if "off" not in parts else [])
        drop += (["switch_rate", "switch_rate_mean", "switch_base_mean", "switch_random_mean", "samples"]
                 if "on" not in parts else [])
        return {k: v for k, v in out.items() if k not in drop}


def result_dataset(res: LanguageNeuronsResult):
    """The arrays of a `LanguageNeuronsResult` as an ``xarray.Dataset`` (the data behind the figure)."""
    import xarray as xr

    L = ("lang", "layer", "neuron")
    ds = xr.Dataset(
        {"activation_probability": (L, res.prob), "lape": (("layer", "neuron"), res.entropy),
         "language_specific": (L, res.mask.astype(np.int8)),
         "base_loss": (("eval",), res.base_loss), "off_loss": (("off", "eval"), res.off_loss),
         "random_off_loss": (("seed", "off", "eval"), res.random_off_loss),
         "switch_rate": (("source", "target"), res.switch_rate),
         "switch_base": (("source", "target"), res.switch_base),
         "switch_random": (("seed", "source", "target"), res.switch_random)},
        coords={"lang": res.languages, "eval": res.languages, "off": res.languages, "source": res.languages,
                "target": res.languages, "seed": list(res.config["seeds"])},
        attrs={"corpus": res.corpus, "config": res.config, "thresholds": res.thresholds, "loss_unit": "nats/token"},
    )
    return ds


def _ms(x) -> dict:
    from spinlens.verdict import mean_sd

    a = np.asarray(x, dtype=float)
    m, s = mean_sd(a)  # ddof 1, the one convention
    return {"mean": m, "sd": s, "values": a.round(5).tolist()}


def language_neurons_study(model, tokenizer, corpus: ParallelCorpus, *, n_ctx: int = 128, fit_tokens: int = 4096,
                           eval_tokens: int = 512, n_prompts: int = 8, prompt_tokens: int = 16, n_new: int = 16,
                           top_fraction: float = 0.01, filter_quantile: float = 0.95, bar_quantile: float = 0.95,
                           seeds: Sequence[int] = (0, 1, 2), batch_size: int = 4, parts: Sequence[str] = ("off", "on"),
                           progress=None) -> LanguageNeuronsResult:
    """The whole study (module docstring): statistics, LAPE selection, switching off and on, with controls.

    ``seeds[0]`` draws the fit/held-out split and the row order; every seed draws one random control set per
    language (switching off and on). ``parts``: which experiments run, ``"off"`` (the loss matrix) and/or ``"on"``
    (the language switch); the arrays of a part not run are NaN and its keys are left out of `to_dict`.
    ``progress(msg)`` is called with a short message per stage.
    """
    import torch

    check_int("n_ctx", n_ctx, low=8)
    check_int("fit_tokens", fit_tokens, low=n_ctx)
    check_int("eval_tokens", eval_tokens, low=n_ctx)
    check_int("n_prompts", n_prompts, low=1)
    check_int("prompt_tokens", prompt_tokens, low=2, high=n_ctx)
    check_int("n_new", n_new, low=1)
    check_int("batch_size", batch_size, low=1)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InvalidParameterError("The 'seeds' parameter must hold at least one seed. Got none.")
    parts = tuple(parts)
    if not parts or any(p not in ("off", "on") for p in parts):
        raise InvalidParameterError(f"The 'parts' parameter must hold 'off' and/or 'on'. Got {list(parts)}.")
    say = progress or (lambda msg: None)
    langs = list(corpus.languages)
    fit, held = corpus.split(seeds[0])
    fit_txt = {c: [corpus.texts[c][i] for i in fit] for c in langs}
    held_txt = {c: [corpus.texts[c][i] for i in held] for c in langs}
    lid = LanguageIdentifier().fit(fit_txt)
    lid_acc = lid.accuracy(held_txt)
    fit_rows = {c: token_rows(fit_txt[c], tokenizer, n_ctx=n_ctx, max_tokens=fit_tokens, seed=seeds[0]) for c in langs}
    eval_rows = {c: token_rows(held_txt[c], tokenizer, n_ctx=n_ctx, max_tokens=eval_tokens, seed=seeds[0]) for c in langs}
    say(f"activation statistics on {sum(r.numel() for r in fit_rows.values())} tokens")
    prob, mpost, ntok = activation_statistics(model, fit_rows, batch_size=batch_size)
    mask, H, thr = select_language_neurons(prob, top_fraction=top_fraction, filter_quantile=filter_quantile,
                                           bar_quantile=bar_quantile)
    union = mask.any(0)
    say("switching off: " + ", ".join(f"{c} {int(mask[i].sum())}" for i, c in enumerate(langs)) + " neurons")
    n = len(langs)
    rnd_masks = {s: {c: random_neurons_like(mask[i], exclude=union, seed=s * 1000 + i) for i, c in enumerate(langs)}
                 for s in seeds}
    base, off = np.full(n, np.nan), np.full((n, n), np.nan)
    rnd_off = np.full((len(seeds), n, n), np.nan)
    if "off" in parts:
        base, off = perplexity_matrix(model, eval_rows, {c: mask[i] for i, c in enumerate(langs)}, batch_size=batch_size)
        for si, s in enumerate(seeds):
            _, rnd_off[si] = perplexity_matrix(model, eval_rows, rnd_masks[s], batch_size=batch_size)
            say(f"random control, seed {s}")
    rate, base_rate = np.full((n, n), np.nan), np.full((n, n), np.nan)
    rnd_rate, texts = np.full((len(seeds), n, n), np.nan), {}
    if "on" in parts:
        prompts = {c: token_rows(held_txt[c], tokenizer, n_ctx=prompt_tokens, max_tokens=n_prompts * prompt_tokens,
                                 seed=seeds[0] + 1) for c in langs}
        with torch.inference_mode():
            on = {c: _neuron_interventions(mask[i], mpost[i]) for i, c in enumerate(langs)}
            rate, texts = language_switch(model, tokenizer, prompts, on, lid, n_new=n_new)
            say("switching on")
            base_rate, _ = language_switch(model, tokenizer, prompts, None, lid, n_new=n_new, targets=langs)
            for si, s in enumerate(seeds):
                ivs = {c: _neuron_interventions(rnd_masks[s][c], mpost[i]) for i, c in enumerate(langs)}
                rnd_rate[si], _ = language_switch(model, tokenizer, prompts, ivs, lid, n_new=n_new)
    samples = {k: v[:2] for k, v in texts.items()}
    config = dict(n_ctx=n_ctx, fit_tokens=fit_tokens, eval_tokens=eval_tokens, n_prompts=n_prompts,
                  prompt_tokens=prompt_tokens, n_new=n_new, top_fraction=top_fraction, filter_quantile=filter_quantile,
                  bar_quantile=bar_quantile, seeds=seeds, parts=list(parts), activation="mlp.hook_pre > 0 (act_fn(gate) > 0)",
                  off="mlp.hook_post := 0", on="mlp.hook_post := mean over the target language's fit tokens")
    return LanguageNeuronsResult(
        languages=langs, prob=prob, entropy=H, mask=mask, thresholds=thr,
        n_tokens={"fit": dict(zip(langs, ntok.tolist())),
                  "eval": {c: int(eval_rows[c][:, 1:].numel()) for c in langs}},
        base_loss=base, off_loss=off, random_off_loss=rnd_off, switch_rate=rate, switch_base=base_rate,
        switch_random=rnd_rate, lid_accuracy=lid_acc, samples=samples, corpus=dict(corpus.source), config=config)


def language_neurons_report(model: str, *, languages: Sequence[str] = DEFAULT_LANGUAGES, n_ctx: int = 128,
                            fit_tokens: int = 4096, eval_tokens: int = 512, n_prompts: int = 8, prompt_tokens: int = 16,
                            new_tokens: int = 16, top_fraction: float = 0.01, quantile: float = 0.95,
                            batch_size: int = 4, parts: Sequence[str] = ("off", "on"), seed: int = 0, n_seeds: int = 3,
                            progress=None) -> StudyReport:
    """``spinlens interp languages``: check the options, load ``model`` (a named pretrained model or a Hugging
    Face folder) and the Django corpus of ``languages``, run `language_neurons_study` (``quantile``: the filter
    and the bar quantile; random controls on seeds ``seed .. seed + n_seeds - 1``) and return its
    `spinlens.experiment.StudyReport` (``to_dict()`` with the model, the headline table, the figure and data
    ``language_neurons``)."""
    from spinlens.llm.tasks import load_model_and_tokenizer
    from spinlens.results import StudyReport

    check_int("seed", seed, low=0)
    n_seeds = check_int("n-seeds", n_seeds, low=1, high=100)
    for name, v in (("n-ctx", n_ctx), ("fit-tokens", fit_tokens), ("eval-tokens", eval_tokens),
                    ("n-prompts", n_prompts), ("prompt-tokens", prompt_tokens), ("new-tokens", new_tokens),
                    ("batch-size", batch_size)):
        check_int(name, v, low=1)
    check_float("top-fraction", top_fraction, low=0.0, high=1.0, low_open=True)
    check_float("quantile", quantile, low=0.0, high=1.0)
    corpus = django_corpus(languages)
    net, tok = load_model_and_tokenizer(model)
    res = language_neurons_study(
        net, tok, corpus, n_ctx=n_ctx, fit_tokens=fit_tokens, eval_tokens=eval_tokens, n_prompts=n_prompts,
        prompt_tokens=prompt_tokens, n_new=new_tokens, top_fraction=top_fraction, filter_quantile=quantile,
        bar_quantile=quantile, seeds=range(seed, seed + n_seeds), batch_size=batch_size, parts=parts,
        progress=progress)
    d = res.to_dict()
    d["model"] = str(model)
    f = lambda m: f"{m['mean']:.3f} ± {m['sd']:.3f}"  # noqa: E731
    rows = [("model", d["model"]), ("corpus", f"{d['corpus']['corpus']} (Django {d['corpus']['version']}, "
                                              f"{d['corpus']['n_messages']} aligned messages)"),
            ("language identifier accuracy", " ".join(f"{c} {a:.3f}" for c, a in d["lid_accuracy"].items())),
            ("language-specific neurons", " ".join(f"{c} {v['total']}" for c, v in d["language_neurons"].items()))]
    if "off" in parts:
        rows += [("Δ loss, own language off (mean of diagonal)", f"{d['diagonal_delta_loss']:.3f} nats/token"),
                 ("Δ loss, other languages (off-diagonal)", f"{d['off_diagonal_delta_loss']:.3f} nats/token"),
                 ("Δ loss, random neurons, diagonal", f(d["random_diagonal_delta_loss"]))]
    if "on" in parts:
        rows += [("switch rate, neurons on (off-diagonal)", f"{d['switch_rate_mean']:.3f}"),
                 ("switch rate, no intervention", f"{d['switch_base_mean']:.3f}"),
                 ("switch rate, random neurons on", f(d["switch_random_mean"]))]
    from spinlens.plotting.multilingual import plot_language_neurons

    return StudyReport("interp languages", d, rows, figures={"language_neurons": lambda: plot_language_neurons(res)},
                       data={"language_neurons": result_dataset(res)})
