"""In-context learning in a pretrained LLM: function vectors (Todd et al. 2023, arXiv 2310.15213) on word
tasks from offline data, and the heads that carry them.

Tasks (`word_tasks`; data with provenance, `spinlens.llm.facts`):

====================  ==========================================  =========================================
task                  example                                     source
====================  ==========================================  =========================================
``capital``           France → Paris                              countryinfo (capital)
``continent``         France → Europe                             countryinfo (region / subregion)
``translate_fr``      Germany → Allemagne                         countryinfo (the country's French name)
``translate_de``      France → Frankreich                         countryinfo (German name)
``translate_es``      Germany → Alemania                          countryinfo (Spanish name)
``past``              walk → walked                               lemminflect (VBD of a verb lemma)
``plural``            house → houses                              lemminflect (NNS of a noun)
``uppercase``         walk → WALK                                 rule (on the ``past`` task's verbs)
====================  ==========================================  =========================================

No antonym list installs offline with provenance (WordNet's data are a separate download), so antonyms are
not among the tasks.

A prompt is ``n_pairs`` demonstrations and a query, `` France: Paris\\n Spain: Madrid\\n Italy:`` (template of
`spinlens.lm.icl_tasks`), scored by the answer's first token. The pipeline is the one of `spinlens.lm`'s
language model (`spinlens.lm.icl_tasks.text_fv_experiment` → `spinlens.interp.function_vectors`): per seed
the task's words split into two halves; the first chooses the heads (causal indirect effect with
shuffled-label prompts) and builds the FV, the second measures few-shot, zero-shot and shuffled accuracy,
with and without the FV added to the residual stream.

`locate_fv_heads` returns the heads with the largest causal indirect effect averaged over tasks and seeds:
the input of precise tuning for in-context learning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from spinlens.errors import InvalidParameterError, check_int

if TYPE_CHECKING:
    import xarray as xr

    from spinlens.results import StudyReport

__all__ = ["WORD_TASKS", "word_tasks", "FVStudyResult", "fv_study", "LocatedHeads", "locate_fv_heads",
           "fv_report"]

WORD_TASKS = ("capital", "continent", "translate_fr", "translate_de", "translate_es", "past", "plural", "uppercase")
_COUNTRY = {"capital": "capital", "continent": "continent", "translate_fr": "name_fr", "translate_de": "name_de",
            "translate_es": "name_es"}


def word_tasks(tokenizer, names=WORD_TASKS) -> dict:
    """``{name: WordTask}`` for the tasks ``names`` (`WORD_TASKS`), from their offline sources."""
    from spinlens.llm import facts as F
    from spinlens.lm.icl_tasks import WordTask

    names = [str(n) for n in names]
    bad = [n for n in names if n not in WORD_TASKS]
    if bad or not names:
        raise InvalidParameterError(f"The 'task' parameter must be among {{{', '.join(WORD_TASKS)}}}. "
                                    f"Got {', '.join(bad) or 'none'}.")
    out = {}
    for n in names:
        if n in _COUNTRY:
            fs = F.country_facts((_COUNTRY[n],))
            out[n] = WordTask(n, {f.subject: f.object for f in fs}, F.facts_source())
        elif n in ("past", "plural"):
            out[n] = WordTask(n, F.inflection_pairs(tokenizer, n), f"{F.source_version('lemminflect')} (MIT)")
        else:  # uppercase: a rule on the verbs of the past-tense task
            out[n] = WordTask(n, F.uppercase_pairs(F.inflection_pairs(tokenizer, "past")),
                              f"rule (str.upper) on the verbs of {F.source_version('lemminflect')}")
    return out


def _ms(a) -> dict:
    from spinlens.verdict import mean_sd_dict

    return mean_sd_dict(a)  # mean ± sd over seeds, ddof 1 (the one convention)


@dataclass
class FVStudyResult:
    """Result of `fv_study`.

    Attributes
    ----------
    datasets : dict
        Per task, the `xarray.Dataset` of `spinlens.lm.icl_tasks.text_fv_experiment` (dims ``seed``,
        ``condition``, ``layer``, ``ie_layer``, ``head``).
    summaries : dict
        Per task, `spinlens.lm.icl_tasks.summarise_fv` plus ``best_layer`` (where the FV's zero-shot gain,
        averaged over seeds, is largest) and ``zero_shot_fv`` (accuracy and gain there).
    indirect_effect : xarray.DataArray ``(layer, head)``
        The causal indirect effect averaged over tasks and seeds.
    heads : list of (layer, head)
        The ``top_k`` heads of ``indirect_effect``, largest first.
    skipped : dict
        Tasks left out, with the reason (too few usable words, no correct few-shot answer).
    """

    datasets: dict
    summaries: dict
    indirect_effect: xr.DataArray
    heads: list
    skipped: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        ie = self.indirect_effect
        return {"tasks": self.summaries, "skipped": self.skipped,
                "heads": [{"layer": int(L), "head": int(h), "indirect_effect": float(ie.values[L, h])}
                          for L, h in self.heads], **self.settings}


def fv_study(model, tokenizer, tasks=("capital", "translate_fr", "past", "uppercase"), *, n_prompts: int = 32,
             n_pairs: int = 5, top_k: int = 10, fv_heads: int = 10, seeds=(0, 1, 2), layers=None,
             progress: bool = False) -> FVStudyResult:
    """Function vectors on the word ``tasks`` of a pretrained LM, over ``seeds``.

    ``fv_heads`` heads (the task's own top heads by causal indirect effect, per seed) build each FV; ``top_k``
    heads of the indirect effect averaged over tasks and seeds are `FVStudyResult.heads`. A task with too few
    usable words, or whose few-shot prompts the model never answers right, is skipped with its reason (one
    line each, no NaN); if every task is skipped, raises `InvalidParameterError`.
    """
    import xarray as xr

    from spinlens.interp.function_vectors import top_heads
    from spinlens.lm.icl_tasks import summarise_fv, text_fv_experiment

    n_heads = model.cfg.n_layers * model.cfg.n_heads
    top_k = check_int("top_k", top_k, low=1, high=n_heads)
    fv_heads = check_int("fv_heads", fv_heads, low=1, high=n_heads)
    wt = word_tasks(tokenizer, tasks)
    datasets, summaries, skipped = {}, {}, {}
    for name, task in wt.items():
        try:
            ds, _ = text_fv_experiment(model, tokenizer, None, task, n_prompts=n_prompts, n_pairs=n_pairs,
                                       n_words=len(task.pairs), top_k=fv_heads, seeds=seeds, layers=layers,
                                       progress=progress)
        except InvalidParameterError as exc:
            skipped[name] = str(exc)
            continue
        if float(ds.clean_accuracy.max()) == 0.0:
            skipped[name] = f"the model answers none of the few-shot prompts of {name!r} correctly"
            continue
        s = summarise_fv(ds)
        s["source"] = task.source
        by_layer = s.get("zero_shot_fv") or {}
        s["best_layer"], s["zero_shot_fv"] = None, None
        if ds.sizes["layer"]:
            gain = ds.gain.sel(condition="zero_shot").mean("seed")
            Lb = int(ds.layer.values[int(np.argmax(gain.values))])
            s["best_layer"], s["zero_shot_fv"] = Lb, by_layer[Lb]
        datasets[name], summaries[name] = ds, s
    if not datasets:
        raise InvalidParameterError("No task is usable: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    ie = np.mean([ds.indirect_effect.mean("seed").values for ds in datasets.values()], axis=0)
    ie = xr.DataArray(ie, dims=("layer", "head"), coords={"layer": np.arange(ie.shape[0]), "head": np.arange(ie.shape[1])},
                      name="indirect_effect", attrs={"long_name": "causal indirect effect (mean over tasks and seeds)",
                                                     "units": "probability"})
    heads = top_heads(ie.values, top_k)
    return FVStudyResult(datasets, summaries, ie, heads, skipped,
                         {"n_prompts": int(n_prompts), "n_pairs": int(n_pairs), "fv_heads": int(fv_heads),
                          "seeds": [int(s) for s in seeds]})


@dataclass
class LocatedHeads:
    """The heads that carry in-context tasks: ``heads`` [(layer, head)] largest causal indirect effect first,
    ``indirect_effect`` ``(layer, head)`` (mean over ``tasks`` and ``seeds``), and ``study`` (the full
    `FVStudyResult`)."""

    heads: list
    indirect_effect: xr.DataArray
    tasks: list
    seeds: list
    study: FVStudyResult | None = None

    def to_dict(self) -> dict:
        return {"heads": [[int(L), int(h)] for L, h in self.heads], "tasks": self.tasks, "seeds": self.seeds,
                "indirect_effect": [float(self.indirect_effect.values[L, h]) for L, h in self.heads]}


def locate_fv_heads(model, tokenizer, tasks=("capital", "translate_fr", "past", "uppercase"), *, top_k: int = 10,
                    n_prompts: int = 32, n_pairs: int = 5, seeds=(0, 1, 2), layers=()) -> LocatedHeads:
    """The ``top_k`` attention heads with the largest causal indirect effect on in-context word tasks
    (Todd et al. 2023), averaged over ``tasks`` and ``seeds`` (`fv_study`; ``layers=()`` skips the FV
    evaluation sweep, pass ``None`` to run it at every layer).

    Example (on the real model, minutes on 2 cores): ``located = locate_fv_heads(load_hf("smollm2-135m"),
    tokenizer)``; ``located.heads[:3]`` is a list of ``(layer, head)``.
    """
    st = fv_study(model, tokenizer, tasks, n_prompts=n_prompts, n_pairs=n_pairs, top_k=top_k, fv_heads=top_k,
                  seeds=seeds, layers=layers)
    return LocatedHeads(st.heads, st.indirect_effect, list(st.summaries), [int(s) for s in seeds], st)


def fv_report(model: str, *, task: str | None = None, n_prompts: int = 256, n_pairs: int | None = None,
              top_k: int = 3, corruption: str = "shuffled", seed: int = 0, n_seeds: int = 3,
              progress: bool = True) -> StudyReport:
    """``spinlens interp fv --model NAME|DIR --task T[,T...]``: `fv_study` on the word tasks ``task``
    (comma-separated; default capital, translate_fr, past, uppercase) of a named pretrained model or a Hugging
    Face folder, ``top_k`` heads, seeds ``seed .. seed + n_seeds - 1``, as a `spinlens.experiment.StudyReport`
    (``to_dict()`` with the model, the headline table, per task the figure and data ``function_vectors_TASK``,
    and the mean ``indirect_effect``)."""
    from functools import partial

    import torch

    from spinlens.llm.tasks import load_model_and_tokenizer
    from spinlens.results import StudyReport

    tasks = [t.strip() for t in (task or "capital,translate_fr,past,uppercase").split(",") if t.strip()]
    bad = [t for t in tasks if t not in WORD_TASKS]
    if bad or not tasks:
        raise InvalidParameterError(f"The 'task' parameter must list word tasks among {{{', '.join(WORD_TASKS)}}}. "
                                    f"Got {task!r}.")
    if corruption != "shuffled":
        raise InvalidParameterError(f"The 'corruption' parameter must be shuffled for word tasks. Got {corruption!r}.")
    n_seeds = check_int("n-seeds", n_seeds, low=1, high=100)
    n_pairs = check_int("n-pairs", n_pairs if n_pairs is not None else 5, low=1, high=50)
    net, tok = load_model_and_tokenizer(model)
    check_int("top-k", top_k, low=1, high=net.cfg.n_layers * net.cfg.n_heads)
    seeds = tuple(range(seed, seed + n_seeds))
    with torch.no_grad():
        res = fv_study(net, tok, tasks, n_prompts=n_prompts, n_pairs=n_pairs, top_k=top_k, fv_heads=top_k,
                       seeds=seeds, progress=progress)
    d = res.to_dict()
    d["model"] = str(model)
    f = lambda m: f"{m['mean']:.3f} ± {m['sd']:.3f}"  # noqa: E731
    rows = [("model", d["model"]), ("seeds", " ".join(map(str, seeds)))]
    for name, s in d["tasks"].items():
        rows.append((f"{name}: few-shot / zero-shot accuracy", f"{f(s['few_shot_accuracy'])} / {f(s['zero_shot_accuracy'])}"))
        if s["zero_shot_fv"] is not None:
            z = s["zero_shot_fv"]
            rows.append((f"{name}: zero-shot + FV before layer {s['best_layer']}: accuracy / gain",
                         f"{f(z['accuracy'])} / {f(z['gain'])}"))
    for name, why in d["skipped"].items():
        rows.append((f"{name}: skipped", why))
    rows.append(("heads (largest indirect effect, mean over tasks)",
                 " ".join(f"{h['layer']}.{h['head']}" for h in d["heads"])))
    from spinlens.plotting.interp import plot_heatmap
    from spinlens.plotting.lm import plot_lm_function_vectors

    figures: dict[str, Callable[[], object]] = {f"function_vectors_{name}": partial(plot_lm_function_vectors, ds)
                                                for name, ds in res.datasets.items()}
    figures["indirect_effect"] = lambda: plot_heatmap(res.indirect_effect, title="causal indirect effect, mean over tasks",
                                                      annotate=False)
    data = {f"function_vectors_{name}": ds for name, ds in res.datasets.items()}
    data["indirect_effect"] = res.indirect_effect
    return StudyReport("interp fv", d, rows, figures=figures, data=data)
