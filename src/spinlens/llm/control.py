"""Control of a pretrained LLM at four levels, measured without a judge model (issue: act on a pretrained LLM).

The behaviour is the *output language*: prompts in a source language (held-out messages of the parallel
corpus of `spinlens.llm.multilingual`) are continued greedily, and the effect is the fraction of continuations
that the corpus-trained `LanguageIdentifier` labels with the target language (the *switch rate*). Every
level is an intervention of `spinlens.interp.interventions`, swept over a strength:

* **token**: a prompt prefix of ``k`` target-language messages (fit half) between BOS and the prompt;
* **activation** (dense): the contrastive mean difference of ``blocks.L.hook_resid_pre`` (target minus source
  fit tokens, `function_vectors.difference_of_means`), added with strength α at every position;
* **neuron**: the target language's LAPE neurons (`multilingual.select_language_neurons`) set to ``m`` times
  their mean ``mlp.hook_post`` over the target's fit tokens; control: as many random neurons in the same layers,
  set to ``m`` times their own mean;
* **module** (sparse): the ``k`` attention heads whose mean output differs most between target and source
  (``|W_O[h]ᵀ Δz̄_h|``, the head's mean-difference contribution to the residual stream) get their own mean
  difference ``Δz̄_h`` added at ``attn.hook_z`` with strength α — head-level steering of a few located modules,
  as in sparse activation control (Xiao et al. 2024).

The cost is the change of the held-out loss (nats/token) of target-language text under the same intervention
(the prefix, for the token level, is prepended and its own tokens are not scored): control that makes the model
speak the target language should not make it model that language worse. `equal_effect_cost` interpolates each
method's cost at a common switch rate, so that sparse and dense control compare at equal effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from spinlens.errors import InvalidParameterError, check_float, check_int
from spinlens.llm import multilingual as ML
from spinlens.verdict import mean_sd

if TYPE_CHECKING:
    from spinlens.results import StudyReport

__all__ = ["ControlResult", "language_control_study", "language_control_report", "equal_effect_cost", "locate_heads"]

LEVELS = {"prefix": "token", "residual": "activation", "neurons": "neuron", "random_neurons": "neuron",
          "heads": "module", "none": "none"}


def locate_heads(model, target_rows, source_rows, *, k: int, batch_size: int = 4, extra_hooks: Sequence[str] = ()):
    """The ``k`` heads with the largest ``|W_O[h]ᵀ (z̄_h(target) − z̄_h(source))|`` and their ``Δz̄_h``.

    Means over every position after BOS. ``extra_hooks``: more hooks whose mean differences come out of the
    same two passes (returned in ``deltas`` under their names).

    Returns
    -------
    (heads [(layer, head)], deltas {(layer, head): tensor (d_head,), name: tensor}, scores [layer, head])
    """
    import torch

    from spinlens.interp.function_vectors import difference_of_means

    cfg = model.cfg
    zs = [f"blocks.{L}.attn.hook_z" for L in range(cfg.n_layers)]
    diff = difference_of_means(model, target_rows, source_rows, zs + list(extra_hooks), position=slice(1, None),
                               batch_size=batch_size)
    scores = np.zeros((cfg.n_layers, cfg.n_heads))
    with torch.no_grad():
        for L in range(cfg.n_layers):  # dz [head, d_head] through W_O [head, d_head, d_model]
            scores[L] = torch.linalg.vector_norm(torch.einsum("he,hem->hm", diff[zs[L]], model.W_O(L)), dim=-1).numpy()
    order = np.argsort(-scores.ravel(), kind="stable")[:k]
    heads = [(int(i // cfg.n_heads), int(i % cfg.n_heads)) for i in order]
    deltas: dict[tuple[int, int] | str, torch.Tensor] = {(L, h): diff[zs[L]][h] for L, h in heads}
    deltas.update({name: diff[name] for name in extra_hooks})
    return heads, deltas, scores


@dataclass
class ControlResult:
    """Effect and cost of every control method and strength, per seed.

    Attributes
    ----------
    source, target : language codes
    rows : list of dicts ``{method, level, strength, units, seed, switch_rate, delta_loss}``; ``units`` counts
        what the method touches (prefix tokens, residual dimensions, neurons, heads × d_head)
    base : per seed ``{switch_rate, loss}`` without intervention
    heads : the located heads (per seed) ; layer : the residual layer of the dense vector
    lid_accuracy : the language identifier's held-out accuracy ; corpus, config
    """

    source: str
    target: str
    rows: list
    base: list
    heads: list
    layer: int
    lid_accuracy: dict
    corpus: dict
    config: dict

    def table(self, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(strengths, switch rate [seed, strength], Δ loss [seed, strength]) of one method."""
        r = [x for x in self.rows if x["method"] == method]
        st = np.array(sorted({x["strength"] for x in r}), dtype=float)
        seeds = sorted({x["seed"] for x in r})
        eff = np.full((len(seeds), st.size), np.nan)
        cost = np.full_like(eff, np.nan)
        for x in r:
            i, j = seeds.index(x["seed"]), int(np.flatnonzero(st == x["strength"])[0])
            eff[i, j], cost[i, j] = x["switch_rate"], x["delta_loss"]
        return st, eff, cost

    def to_dict(self, effect_level: float = 0.5) -> dict:
        methods = list(dict.fromkeys(x["method"] for x in self.rows))
        out: dict[str, Any] = {"source": self.source, "target": self.target, "layer": self.layer, "heads": self.heads,
               "lid_accuracy": self.lid_accuracy, "corpus": self.corpus, "config": self.config,
               "base_switch_rate": ML._ms([b["switch_rate"] for b in self.base]),
               "effect_level": effect_level, "methods": {}}
        for m in methods:
            st, eff, cost = self.table(m)
            units = next(x["units"] for x in self.rows if x["method"] == m)
            at = equal_effect_cost(st, eff, cost, effect_level)
            out["methods"][m] = {
                "level": LEVELS.get(m, m), "units": units, "strengths": st.tolist(),
                "switch_rate_mean": np.nanmean(eff, 0).round(4).tolist(),
                "switch_rate_sd": mean_sd(eff, axis=0, skipna=True)[1].round(4).tolist(),
                "delta_loss_mean": np.nanmean(cost, 0).round(4).tolist(),
                "delta_loss_sd": mean_sd(cost, axis=0, skipna=True)[1].round(4).tolist(),
                "max_switch_rate": ML._ms(np.nanmax(eff, 1)),
                f"delta_loss_at_switch_{effect_level:g}": at,
            }
        return out


def equal_effect_cost(strengths, effect, cost, level: float) -> dict:
    """Per seed: the cost where the effect first reaches ``level`` along increasing strength (linear
    interpolation between the two strengths around the crossing); NaN where it never does.

    Returns ``{"mean", "sd", "values", "reached"}`` over the seeds that reach the level.
    """
    vals = []
    for e, c in zip(np.asarray(effect, float), np.asarray(cost, float)):
        v = float("nan")
        prev_e, prev_c = 0.0, 0.0
        for j in range(len(strengths)):
            if e[j] >= level:
                v = c[j] if j == 0 or e[j] == prev_e else prev_c + (c[j] - prev_c) * (level - prev_e) / (e[j] - prev_e)
                break
            prev_e, prev_c = e[j], c[j]
        vals.append(float(v))
    ok = [v for v in vals if v == v]
    m, s = mean_sd(ok)  # NaN, NaN where no seed reaches the level
    return {"mean": m, "sd": s,
            "values": [round(v, 5) for v in vals], "reached": len(ok)}


def _with_prefix(rows, prefix):
    """Rows ``[BOS] + prefix + row[1:]`` (the prefix between BOS and each row)."""
    import torch

    p = torch.as_tensor(prefix, dtype=rows.dtype)[None].expand(rows.shape[0], -1)
    return torch.cat([rows[:, :1], p, rows[:, 1:]], 1)


def _prefixed_nll(model, rows, prefix, *, batch_size: int) -> float:
    """Mean loss of ``rows``' own tokens (after BOS) with the prefix before them; the prefix is not scored."""
    import torch
    import torch.nn.functional as F

    x = _with_prefix(rows, prefix)
    k = len(prefix)
    tot, n = 0.0, 0
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            b = x[i: i + batch_size]
            logits = model(b)[:, k:-1]
            tgt = b[:, k + 1:]
            tot += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt.reshape(-1), reduction="sum"))
            n += tgt.numel()
    return tot / n


def language_control_study(model, tokenizer, corpus: ML.ParallelCorpus, *, source: str = "en", target: str = "fr",
                           layer: int | None = None, n_heads: int = 4, alphas: Sequence[float] = (0.5, 1, 2, 4),
                           head_alphas: Sequence[float] = (1, 2, 4, 8), neuron_scales: Sequence[float] = (1, 2, 4),
                           prefix_messages: Sequence[int] = (1, 2, 4), n_ctx: int = 64, fit_tokens: int = 512,
                           eval_tokens: int = 128, n_prompts: int = 4, prompt_tokens: int = 8, n_new: int = 10,
                           seeds: Sequence[int] = (0, 1, 2), batch_size: int = 4, progress=None) -> ControlResult:
    """Output-language control of ``model`` from ``source`` to ``target`` at four levels (module docstring).

    Each seed draws the fit/held-out split of the corpus, the rows, the prompts, the prefix messages and the
    random neurons; the vectors, heads and neurons are found again on that seed's fit half.
    """
    from spinlens.interp.interventions import AddVector

    langs = list(corpus.languages)
    for name, c in (("source", source), ("target", target)):
        if c not in langs:
            raise InvalidParameterError(f"The '{name}' parameter must be one of the corpus languages {langs}. Got {c!r}.")
    if source == target:
        raise InvalidParameterError(f"The 'target' parameter must differ from the source. Got {target!r} for both.")
    n_layers = model.cfg.n_layers
    layer = n_layers // 3 if layer is None else check_int("layer", layer, low=0, high=n_layers - 1)
    check_int("n_heads", n_heads, low=1, high=n_layers * model.cfg.n_heads)
    seeds = [int(s) for s in seeds]
    say = progress or (lambda m: None)
    rows, base, heads_out = [], [], []
    lid_acc = None
    for seed in seeds:
        fit, held = corpus.split(seed)
        fit_txt = {c: [corpus.texts[c][i] for i in fit] for c in langs}
        held_txt = {c: [corpus.texts[c][i] for i in held] for c in langs}
        lid = ML.LanguageIdentifier().fit(fit_txt)
        if lid_acc is None:
            lid_acc = lid.accuracy(held_txt)
        fit_rows = {c: ML.token_rows(fit_txt[c], tokenizer, n_ctx=n_ctx, max_tokens=fit_tokens, seed=seed) for c in langs}
        ev = ML.token_rows(held_txt[target], tokenizer, n_ctx=n_ctx, max_tokens=eval_tokens, seed=seed)
        prompts = ML.token_rows(held_txt[source], tokenizer, n_ctx=prompt_tokens, max_tokens=n_prompts * prompt_tokens,
                                seed=seed + 1)

        def measure(method, strength, units, ivs=(), prefix=None):
            p = prompts if prefix is None else _with_prefix(prompts, prefix)
            out = ML._generate(model, p, n_new, ivs)
            dec = [tokenizer.decode(r.tolist(), skip_special_tokens=True) for r in out]
            rate = float(np.mean([x == target for x in lid.predict(dec)]))
            loss = (ML.mean_nll(model, ev, ivs, batch_size=batch_size) if prefix is None
                    else _prefixed_nll(model, ev, prefix, batch_size=batch_size))
            return {"method": method, "level": LEVELS.get(method, method), "strength": float(strength),
                    "units": int(units), "seed": seed, "switch_rate": rate, "loss": loss, "sample": dec[0]}

        b = measure("none", 0.0, 0)
        base.append({"seed": seed, "switch_rate": b["switch_rate"], "loss": b["loss"]})
        say(f"seed {seed}: no intervention, switch rate {b['switch_rate']:.2f}")
        # token level: a prefix of k target-language messages
        order = np.random.default_rng(seed + 2).permutation(len(fit_txt[target]))
        for k in prefix_messages:
            ids = tokenizer.encode("\n".join(fit_txt[target][i] for i in order[:k]) + "\n", add_special_tokens=False)
            rows.append(measure("prefix", k, len(ids), prefix=ids))
        # activation level: dense residual mean difference (from the same passes that locate the heads)
        resid = f"blocks.{layer}.hook_resid_pre"
        heads, deltas, _ = locate_heads(model, fit_rows[target], fit_rows[source], k=n_heads, batch_size=batch_size,
                                        extra_hooks=[resid])
        v = deltas[resid]
        for a in alphas:
            rows.append(measure("residual", a, v.numel(), [AddVector(f"blocks.{layer}.hook_resid_pre", v, float(a))]))
        # neuron level: LAPE neurons of the target on at m x their mean; random neurons as control
        prob, mpost, _ = ML.activation_statistics(model, fit_rows, batch_size=batch_size)
        mask, _, _ = ML.select_language_neurons(prob)
        ti = langs.index(target)
        rnd = ML.random_neurons_like(mask[ti], exclude=mask.any(0), seed=seed)
        for m in neuron_scales:
            rows.append(measure("neurons", m, mask[ti].sum(), ML._neuron_interventions(mask[ti], m * mpost[ti])))
            rows.append(measure("random_neurons", m, rnd.sum(), ML._neuron_interventions(rnd, m * mpost[ti])))
        # module level: a few located heads, each steered by its own mean difference
        heads_out.append([f"{L}.{h}" for L, h in heads])
        for a in head_alphas:
            ivs = [AddVector(f"blocks.{L}.attn.hook_z", deltas[(L, h)], float(a), head=h) for L, h in heads]
            rows.append(measure("heads", a, len(heads) * model.cfg.d_head, ivs))
        say(f"seed {seed} done")
    base_loss = {b["seed"]: b["loss"] for b in base}
    for r in rows:
        r["delta_loss"] = r["loss"] - base_loss[r["seed"]]
    config = dict(layer=layer, n_heads=n_heads, alphas=list(alphas), head_alphas=list(head_alphas),
                  neuron_scales=list(neuron_scales), prefix_messages=list(prefix_messages), n_ctx=n_ctx,
                  fit_tokens=fit_tokens, eval_tokens=eval_tokens, n_prompts=n_prompts, prompt_tokens=prompt_tokens,
                  n_new=n_new, seeds=seeds, cost="Δ held-out loss (nats/token) of target-language text")
    return ControlResult(source, target, rows, base, heads_out, layer, lid_acc or {}, dict(corpus.source), config)


def language_control_report(model: str, *, languages: Sequence[str] = ("en", "fr", "ru", "zh"), source: str = "en",
                            target: str = "fr", layer: int | None = None, n_heads: int = 4,
                            alphas: Sequence[float] = (1, 2, 4), head_alphas: Sequence[float] = (2, 4, 8),
                            neuron_scales: Sequence[float] = (1, 4), prefix_messages: Sequence[int] = (1, 3),
                            n_ctx: int = 64, fit_tokens: int = 512, eval_tokens: int = 64, n_prompts: int = 4,
                            prompt_tokens: int = 8, new_tokens: int = 8, effect: float = 0.5, batch_size: int = 4,
                            seed: int = 0, n_seeds: int = 3, progress=None) -> StudyReport:
    """``spinlens interp control``: check the options, load ``model`` (a named pretrained model or a Hugging Face
    folder) and the Django corpus of ``languages``, run `language_control_study` on seeds
    ``seed .. seed + n_seeds - 1`` and return its `spinlens.experiment.StudyReport` (``to_dict(effect)`` with the
    model, the headline table, the figure and the CSV rows ``language_control``)."""
    from spinlens.llm.tasks import load_model_and_tokenizer
    from spinlens.results import StudyReport

    check_int("seed", seed, low=0)
    n_seeds = check_int("n-seeds", n_seeds, low=1, high=100)
    for name, v in (("n-ctx", n_ctx), ("fit-tokens", fit_tokens), ("eval-tokens", eval_tokens),
                    ("n-prompts", n_prompts), ("prompt-tokens", prompt_tokens), ("new-tokens", new_tokens),
                    ("batch-size", batch_size), ("n-heads", n_heads)):
        check_int(name, v, low=1)
    for k in prefix_messages:
        check_int("prefix-messages", k, low=1)
    for a in [*alphas, *head_alphas, *neuron_scales]:
        check_float("alphas", a)
    check_float("effect", effect, low=0.0, high=1.0)
    corpus = ML.django_corpus(languages)
    for name, code in (("source", source), ("target", target)):
        if code not in corpus.languages:
            raise InvalidParameterError(f"The '{name}' parameter must be one of --languages {list(corpus.languages)}. "
                                        f"Got {code!r}.")
    net, tok = load_model_and_tokenizer(model)
    res = language_control_study(
        net, tok, corpus, source=source, target=target, layer=layer, n_heads=n_heads, alphas=alphas,
        head_alphas=head_alphas, neuron_scales=neuron_scales, prefix_messages=prefix_messages, n_ctx=n_ctx,
        fit_tokens=fit_tokens, eval_tokens=eval_tokens, n_prompts=n_prompts, prompt_tokens=prompt_tokens,
        n_new=new_tokens, seeds=range(seed, seed + n_seeds), batch_size=batch_size, progress=progress)
    d = res.to_dict(effect)
    d["model"] = str(model)
    key = f"delta_loss_at_switch_{effect:g}"
    rows = [("model", d["model"]), ("behaviour", f"output language {source} → {target}"),
            ("switch rate, no intervention", f"{d['base_switch_rate']['mean']:.3f} ± {d['base_switch_rate']['sd']:.3f}")]
    for m, e in d["methods"].items():
        at = e[key]
        rows.append((f"{m} ({e['level']}, {e['units']} units): max switch rate",
                     f"{e['max_switch_rate']['mean']:.3f} ± {e['max_switch_rate']['sd']:.3f}"))
        rows.append((f"{m}: Δ loss at switch rate {effect:g}",
                     f"{at['mean']:.3f} ± {at['sd']:.3f} ({at['reached']} seeds reach it)"))
    keys = ["method", "level", "strength", "units", "seed", "switch_rate", "loss", "delta_loss", "sample"]
    from spinlens.plotting.multilingual import plot_language_control

    return StudyReport("interp control", d, rows,
                       figures={"language_control": lambda: plot_language_control(res, effect)},
                       data={"language_control": {k: [r[k] for r in res.rows] for k in keys}})
