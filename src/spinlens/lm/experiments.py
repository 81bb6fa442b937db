"""Acting on a trained LM, measured on held-out text: steering, pinpoint tuning, merging, mixed precision.

Each experiment returns an `xarray.Dataset` (one row per run, the seed a coordinate) so that the CLI writes
it as CSV + NetCDF + figure. Library functions reused: `spinlens.interp.steering` (interventions),
`spinlens.edit.components` (head masks), `spinlens.edit.merging` (task arithmetic, TIES),
`spinlens.edit.quantization` (fake quantization, measured costs, knapsack allocation).
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from spinlens.errors import InvalidParameterError, check_int
from spinlens.random import as_generator, spawn
from spinlens.vocabulary import act_name

if TYPE_CHECKING:
    from spinlens.models.source import ModelSource

# ------------------------------------------------------------------------------------------------ data


def domain_split(tokenizer, text: str, n_ctx: int, *, val_fraction: float = 0.2, max_windows: int = 48):
    """``(train_ids, val_windows)`` of a text domain, tokenized with the model's tokenizer."""
    from spinlens.lm.data import eval_windows, split_tokens
    from spinlens.lm.tokenizer import encode

    s = split_tokens(encode(tokenizer, text), val_fraction=val_fraction, n_ctx=n_ctx)
    return s.train, eval_windows(s.val, n_ctx, max_windows=max_windows)


def mean_loss(model, windows, hooks=()) -> float:
    from spinlens.lm.data import token_losses

    return float(token_losses(model, windows, hooks=hooks).mean())


def finetune(model, train_ids, *, components="all", steps: int = 100, lr: float = 1e-3, batch_size: int = 16,
             rng=None, diverged: list | None = None):
    """A copy of ``model`` fine-tuned on ``train_ids`` (next-token loss, Adam); only ``components`` change
    ("all", or a list of `spinlens.edit.components.Component` names such as ``"L1.H2"``). Returns
    ``(model, n_trainable)``.

    The divergence rule of every spinlens trainer (`spinlens.training.divergence_reason`) applies, with the
    loss of a uniform prediction, log V, as the reference: the reason is appended to ``diverged`` when given
    (the experiments then record ``converged: false`` and the command exits 3)."""
    from spinlens.edit.components import Component, all_masks, component_masks
    from spinlens.edit.pinpoint import masked_finetune
    from spinlens.lm.data import random_windows

    new = copy.deepcopy(model)
    new.train()
    masks = all_masks(new) if components == "all" else component_masks(new, [Component.parse(c) for c in components])
    g = as_generator(rng)
    n_ctx = new.cfg.max_pos
    V = new.cfg.d_vocab

    def batch_loss(m, step):
        w = random_windows(train_ids, batch_size, n_ctx, rng=g)
        return torch.nn.functional.cross_entropy(m(w[:, :-1]).reshape(-1, V).float(), w[:, 1:].reshape(-1))

    hist, n_trainable = masked_finetune(new, masks, batch_loss, steps=steps, lr=lr)
    new.eval()
    if diverged is not None and len(hist):
        import math

        from spinlens.training import divergence_reason

        reason = divergence_reason(float(hist[-1]), math.log(V))
        if reason is not None:
            diverged.append(f"fine-tuning: {reason} (--lr {lr:g})")
    return new, n_trainable


def _heads_by_induction(model, k: int, *, rng=0):
    from spinlens.lm.induction import induction_report

    rep = induction_report(model, n_seq=32, rng=rng)
    return [f"L{r['layer']}H{r['head']}" for r in rep.heads()[:k]], rep


# ------------------------------------------------------------------------------------------------ pinpoint


def heads_by_importance(model, train_ids, k: int, *, n_windows: int = 128, rng=None):
    """The ``k`` heads whose output matters most for the loss on ``train_ids`` (a text domain's training split):
    gradient × activation of the next-token loss per head (`spinlens.edit.importance.attribution_importance`,
    mean |first-order loss change on zero-ablating the head| over ``n_windows`` random windows).
    Returns ``(names, DataArray (layer, head))``."""
    from spinlens.edit.importance import attribution_importance
    from spinlens.lm.data import random_windows

    w = random_windows(train_ids, n_windows, model.cfg.max_pos, rng=as_generator(rng))
    imp = attribution_importance(model, w, None, kind="head")
    flat = np.argsort(-imp.values, axis=None, kind="stable")[:k]
    H = imp.shape[1]
    return [f"L{int(i) // H}H{int(i) % H}" for i in flat], imp


def pinpoint_experiment(model, tokenizer, base_val, target_text: str, *, k: int = 2, n_random: int = 3,
                        steps: int = 100, lr: float = 1e-3, batch_size: int = 16, seeds=(0, 1, 2), progress=False):
    """Tune only ``k`` heads on a new text domain; held-out loss on the new domain (``target_loss``, gain
    ``target_gain``) and on the training corpus (``general_loss``). Methods, per seed:

    * ``importance_heads``: the ``k`` heads with the largest gradient × activation of the new domain's loss
      (`heads_by_importance`, on training windows of the new domain drawn with the seed);
    * ``induction_heads``: the ``k`` heads with the highest induction score (not chosen for the domain);
    * ``random_heads``: ``k`` random heads (``n_random`` draws per seed);
    * ``full``: every parameter.
    """
    import xarray as xr

    from spinlens.edit.components import list_components

    heads, _ = _heads_by_induction(model, k)
    diverged: list = []
    all_heads = [str(c) for c in list_components(model, "head")]
    tr, tv = domain_split(tokenizer, target_text, model.cfg.max_pos)
    t0, g0 = mean_loss(model, tv), mean_loss(model, base_val)
    rows = [(-1, "before", "-", t0, g0, 0)]
    for seed in seeds:
        gs = spawn(seed, 4 + n_random)  # the first 2 + n_random streams as before importance selection was added
        imp_heads, _ = heads_by_importance(model, tr, k, rng=gs[2 + n_random])
        runs = [("importance_heads", imp_heads, gs[3 + n_random]), ("induction_heads", heads, gs[0]),
                ("full", "all", gs[1])]
        for r in range(n_random):
            pick = [all_heads[i] for i in as_generator(gs[2 + r]).choice(len(all_heads), k, replace=False)]
            runs.append(("random_heads", pick, gs[2 + r]))
        for name, comps, g in runs:
            m, ntr = finetune(model, tr, components=comps, steps=steps, lr=lr, batch_size=batch_size, rng=g,
                              diverged=diverged)
            rows.append((seed, name, ",".join(comps) if comps != "all" else "all", mean_loss(m, tv), mean_loss(m, base_val),
                         ntr))
            if progress:
                print(f"  pinpoint seed {seed} {name} {rows[-1][2]}: target {rows[-1][3]:.3f}", flush=True)
    col_seed, col_method, col_comps, col_tl, col_gl, col_ntr = zip(*rows)
    tl, gl = np.array(col_tl), np.array(col_gl)
    return xr.Dataset({"target_loss": ("run", tl), "general_loss": ("run", gl), "target_gain": ("run", t0 - tl),
                       "general_change": ("run", gl - g0), "n_trainable": ("run", np.array(col_ntr))},
                      coords={"run": np.arange(len(rows)), "seed": ("run", np.array(col_seed)),
                              "method": ("run", list(col_method)), "components": ("run", list(col_comps))},
                      attrs={"k": k, "steps": steps, "lr": lr, "heads": ",".join(heads), "loss": "nats/token",
                             "importance": "|grad x activation| of the new domain's next-token loss per head",
                             **_convergence(diverged)})


def _convergence(diverged: list) -> dict:
    """``converged`` (and the first ``divergence`` reason) of an experiment's fine-tunes, for its attrs."""
    return {"converged": not diverged, **({"divergence": diverged[0]} if diverged else {})}


# ------------------------------------------------------------------------------------------------ merging


def merging_experiment(model, tokenizer, base_val, text_a: str, text_b: str, *, steps: int = 100, lr: float = 1e-3,
                       batch_size: int = 16, density: float = 0.3, seeds=(0, 1, 2), names=("a", "b"), progress=False,
                       scales=(0.5, 0.75, 1.0), ties_scales=(1.0, 1.5)):
    """Fine-tune the LM on two text domains, merge the fine-tunes (task arithmetic base + λ Σ τ_i for each λ in
    ``scales``, method ``task_arithmetic_{λ}``; TIES with ``density`` and each λ in ``ties_scales``, method
    ``ties`` for λ = 1, else ``ties_{λ}``), and measure held-out loss on both domains and on the training
    corpus. ``recovered_a`` is the share of the domain-a fine-tune's gain that a model keeps:
    (before − loss) / (before − loss of the a fine-tune)."""
    import xarray as xr

    from spinlens.edit.merging import merge_models

    tra, va = domain_split(tokenizer, text_a, model.cfg.max_pos)
    trb, vb = domain_split(tokenizer, text_b, model.cfg.max_pos)
    rows = []
    diverged: list = []

    def ev(seed, name, m):
        rows.append((seed, name, mean_loss(m, va), mean_loss(m, vb), mean_loss(m, base_val)))

    ev(-1, "base", model)
    for seed in seeds:
        ga, gb = spawn(seed, 2)
        fa, _ = finetune(model, tra, steps=steps, lr=lr, batch_size=batch_size, rng=ga, diverged=diverged)
        fb, _ = finetune(model, trb, steps=steps, lr=lr, batch_size=batch_size, rng=gb, diverged=diverged)
        ev(seed, f"finetune_{names[0]}", fa)
        ev(seed, f"finetune_{names[1]}", fb)
        for lam in scales:
            ev(seed, f"task_arithmetic_{lam:g}", merge_models(model, [fa, fb], "task_arithmetic", scale=lam))
        for lam in ties_scales:
            ev(seed, "ties" if lam == 1 else f"ties_{lam:g}",
               merge_models(model, [fa, fb], "ties", density=density, scale=lam))
        if progress:
            print(f"  merge seed {seed}: " + ", ".join(f"{r[1]} {r[2]:.3f}/{r[3]:.3f}" for r in rows if r[0] == seed),
                  flush=True)
    seed, meth, la, lb, lg = (np.array(x) if i != 1 else list(x) for i, x in enumerate(zip(*rows)))
    a0, b0 = la[0], lb[0]
    fa_l = {s: la[i] for i, (s, m) in enumerate(zip(seed, meth)) if m == f"finetune_{names[0]}"}
    fb_l = {s: lb[i] for i, (s, m) in enumerate(zip(seed, meth)) if m == f"finetune_{names[1]}"}
    rec_a = np.array([(a0 - la[i]) / (a0 - fa_l[s]) if s in fa_l else np.nan for i, s in enumerate(seed)])
    rec_b = np.array([(b0 - lb[i]) / (b0 - fb_l[s]) if s in fb_l else np.nan for i, s in enumerate(seed)])
    return xr.Dataset({f"loss_{names[0]}": ("run", la), f"loss_{names[1]}": ("run", lb), "loss_general": ("run", lg),
                       f"recovered_{names[0]}": ("run", rec_a), f"recovered_{names[1]}": ("run", rec_b)},
                      coords={"run": np.arange(len(rows)), "seed": ("run", seed), "method": ("run", meth)},
                      attrs={"steps": steps, "lr": lr, "density": density, "domains": ",".join(names),
                             **_convergence(diverged)})


# ------------------------------------------------------------------------------------------------ quantization


def quantization_experiment(model, val_windows, *, budgets=(3.0, 3.4, 4.0), uniform_bits=(3, 4, 8), bits=(2, 3, 4, 8),
                            group_size: int = 32, granularity: str = "head", n_random: int = 2, seeds=(0, 1, 2),
                            n_calib: int = 16, progress: bool = False):
    """Held-out perplexity against average bits: uniform bits vs an allocation guided by the measured loss
    increase of each component (heads, MLPs) on calibration windows, vs random allocations at the same budget.

    Seeds draw the calibration windows (disjoint from the evaluation windows) and the random allocations.
    Embedding and unembedding stay in full precision (as in every allocation here).
    """
    import xarray as xr

    from spinlens.edit.components import component_size
    from spinlens.edit.quantization import (
        allocate_bits,
        measured_cost_table,
        quantization_components,
        quantize_model,
        random_allocation,
        uniform_allocation,
    )

    n = len(val_windows)
    if n < 4:
        raise InvalidParameterError(f"The held-out text must give at least 4 windows. Got {n}.")
    comps = quantization_components(model, granularity)
    sizes = {str(c): component_size(model, c) for c in comps}
    rows = []
    base = float(np.exp(mean_loss(model, val_windows)))
    rows.append((-1, "fp32", 32.0, 32.0, base, "{}"))
    from spinlens.progress import bar

    for seed in bar(seeds, desc="quantize (seeds)", enabled=None if progress else False):
        g = as_generator(seed)
        perm = g.permutation(n)
        calib, test = val_windows[perm[: min(n_calib, n // 2)]], val_windows[perm[min(n_calib, n // 2):]]

        def run(scheme, alloc):
            q = quantize_model(model, alloc.bits, group_size=group_size)
            rows.append((seed, scheme, alloc.average_bits, alloc.average_bits + 32 / group_size,
                         float(np.exp(mean_loss(q, test))), json.dumps(alloc.bits)))

        rows.append((seed, "fp32_test", 32.0, 32.0, float(np.exp(mean_loss(model, test))), "{}"))
        for b in uniform_bits:
            run(f"uniform_{b}", uniform_allocation(model, b, granularity=granularity, group_size=group_size))
        cost = measured_cost_table(model, comps, lambda m: mean_loss(m, calib), bits, group_size=group_size)
        for B in budgets:
            run(f"guided_{B:g}", allocate_bits(cost, sizes, B, method="dp", group_size=group_size))
            for r in range(n_random):
                run(f"random_{B:g}", random_allocation(model, B, bits, granularity=granularity,
                                                       rng=spawn(seed, n_random)[r], group_size=group_size))
    seed, scheme, avg, eff, ppl, bj = zip(*rows)
    return xr.Dataset({"average_bits": ("run", np.array(avg)), "effective_bits": ("run", np.array(eff)),
                       "perplexity": ("run", np.array(ppl)), "bits_json": ("run", list(bj))},
                      coords={"run": np.arange(len(rows)), "seed": ("run", np.array(seed)), "scheme": ("run", list(scheme))},
                      attrs={"group_size": group_size, "granularity": granularity, "fp_perplexity": base,
                             "sizes_json": json.dumps(sizes)})


# ------------------------------------------------------------------------------------------------ steering


def token_class(tokenizer, name: str) -> np.ndarray:
    """Boolean mask over the vocabulary: ``capitalised`` (the token's first letter is upper case),
    ``digit`` (starts with a digit), ``newline`` (contains a line break)."""
    V = tokenizer.get_vocab_size()
    out = np.zeros(V, dtype=bool)
    for i in range(V):
        s = tokenizer.decode([i]).lstrip(" ")
        if name == "capitalised":
            out[i] = bool(s) and s[0].isalpha() and s[0].isupper()
        elif name == "digit":
            out[i] = bool(s) and s[0].isdigit()
        elif name == "newline":
            out[i] = "\n" in tokenizer.decode([i])
        else:
            raise InvalidParameterError(f"The 'token class' must be one of capitalised, digit, newline. Got {name!r}.")
    return out


def _class_prob(model, windows, mask, hooks=()) -> tuple[float, float]:
    """Mean probability mass on the token class over all positions, and the mean loss, under ``hooks``."""
    m = torch.as_tensor(mask)
    with torch.no_grad(), model.hooks(list(hooks)):
        logits = model(windows[:, :-1]).float()
    p = torch.softmax(logits, -1)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
    return float(p[..., m].sum(-1).mean()), float(ce)


def steering_experiment(model, tokenizer, val_windows, *, token_class_name: str = "capitalised",
                        strengths=(0, 1, 2, 4, 8), layer: int | None = None, seeds=(0, 1, 2), n_fit: int = 16,
                        progress: bool = False):
    """Steering with readable effects on held-out text.

    * activation level: difference of means (ActAdd/CAA) of the residual stream before ``layer`` between
      positions whose next token is in the class and the others, added at every position with each strength;
      effect: the probability mass the model puts on the class (``class_prob``) and the loss;
    * module level: the induction heads (score ≥ 0.3, else the top one) mean-ablated, and scaled by 2;
      effect: loss on the repeat of repeated random tokens (``repeat_loss``) and held-out loss;
    * neuron level (models with MLPs): the ``8`` MLP neurons of ``layer - 1`` whose activation best separates
      the two position sets set to their class mean × strength; control (``neuron_random``): 8 random other
      neurons of the same layer set to the same value; ``top_context_class_share``: the share of each neuron's
      20 top-activating fit positions whose next token is in the class (mean over the 8 neurons);
    * token level: the held-out windows with their first half replaced by a copy of the second half's start
      (a repeated context), effect on the loss of the repeated part.

    Seeds draw the windows used to fit the vectors (disjoint from the evaluated windows).
    """
    import xarray as xr

    from spinlens.interp.steering import AddVector, Scale, SetNeurons, hook_fns
    from spinlens.lm.induction import ablation_hooks, induction_report, repeated_loss, repeated_tokens

    cfg = model.cfg
    L = cfg.n_layers - 1 if layer is None else check_int("layer", layer, low=0, high=cfg.n_layers - 1)
    hook = act_name("resid_pre", L)
    mask = token_class(tokenizer, token_class_name)
    rep = induction_report(model, n_seq=32, rng=0)
    ind_heads = rep.induction_heads(0.3) or [(rep.heads()[0]["layer"], rep.heads()[0]["head"])]
    rows = []
    share_at = {}  # neuron rows: share of the neurons' top-activating positions whose next token is in the class
    n = len(val_windows)
    from spinlens.progress import bar

    for seed in bar(seeds, desc="steer (seeds)", enabled=None if progress else False):
        g = as_generator(seed)
        perm = g.permutation(n)
        fit, ev = val_windows[perm[: min(n_fit, n // 2)]], val_windows[perm[min(n_fit, n // 2):]]
        with torch.no_grad():
            _, cache = model.run_with_cache(fit[:, :-1], names_filter=[hook])
        act = cache[hook].reshape(-1, cfg.d_model)
        nxt = torch.as_tensor(mask)[fit[:, 1:].reshape(-1)]
        if not 0 < int(nxt.sum()) < len(nxt):  # a difference of means needs both position sets (else NaN vectors)
            raise InvalidParameterError(f"The token class {token_class_name!r} follows {int(nxt.sum())} of the "
                                        f"{len(nxt)} positions of the fit windows of seed {seed}; it must follow some "
                                        "but not all. Use another class or more held-out text.")
        vec = act[nxt].mean(0) - act[~nxt].mean(0)
        vec = vec / vec.norm() * act.norm(dim=-1).mean()  # unit direction × typical residual norm
        for s in strengths:
            cp, loss = _class_prob(model, ev, mask, hook_fns([AddVector(hook, vec, strength=float(s))]))
            rows.append((seed, "activation", f"add {token_class_name} direction at {hook}", float(s), cp, loss, np.nan))
        nh = act_name("mlp_post", max(L - 1, 0))
        if nh in model.hook_points:
            with torch.no_grad():
                _, c2 = model.run_with_cache(fit[:, :-1], names_filter=[nh])
            a = c2[nh].reshape(-1, c2[nh].shape[-1])
            diff = a[nxt].mean(0) - a[~nxt].mean(0)
            top = torch.argsort(-diff)[:8]
            # control: 8 random neurons (not among the chosen ones) set to the same value
            rest = np.setdiff1d(np.arange(a.shape[-1]), top.numpy())
            rand = as_generator(spawn(seed, 1)[0]).choice(rest, size=min(8, len(rest)), replace=False)
            k_top = min(20, a.shape[0])  # share of each neuron's top-20 activating positions followed by the class

            def top_share(idx):
                return float(np.mean([float(nxt[torch.topk(a[:, int(i)], k_top).indices].float().mean()) for i in idx]))

            shares = {"neuron": top_share(top), "neuron_random": top_share(rand)}
            for s in strengths:
                val = float(a[nxt][:, top].mean()) * float(s)
                for lv, idx, what in (("neuron", top, f"set 8 {token_class_name} neurons of {nh}"),
                                      ("neuron_random", rand, f"set 8 random neurons of {nh}")):
                    share_at[len(rows)] = shares[lv]
                    iv = SetNeurons(nh, [int(i) for i in idx], value=val) if s else None
                    cp, loss = _class_prob(model, ev, mask, hook_fns([iv]) if iv else ())
                    rows.append((seed, lv, what, float(s), cp, loss, np.nan))
        toks = repeated_tokens(32, min(32, cfg.max_pos // 2), cfg.d_vocab, rng=g)
        ref = repeated_tokens(32, min(32, cfg.max_pos // 2), cfg.d_vocab, rng=g)
        for name, hks in (("none", []), ("ablate induction heads", ablation_hooks(model, ind_heads, mode="mean", reference=ref)),
                          ("scale induction heads x2", hook_fns([Scale(act_name("z", int(Lh)), 2.0, head=int(h))
                                                                 for Lh, h in ind_heads]))):
            rl = repeated_loss(model, toks, hooks=hks)
            cp, loss = _class_prob(model, ev, mask, hks)
            rows.append((seed, "module", name, np.nan, cp, loss, rl["repeat"]))
        # token level: repeat the context (the second half of each window shows its first half again)
        T = ev.shape[1] // 2
        rep_w = torch.cat([ev[:, :T], ev[:, :T], ev[:, -1:]], 1)[:, : ev.shape[1]]
        from spinlens.lm.data import token_losses

        l_orig = float(token_losses(model, ev)[:, T:].mean())
        l_rep = float(token_losses(model, rep_w)[:, T:].mean())
        rows.append((seed, "token", "original text (second half)", np.nan, np.nan, l_orig, np.nan))
        rows.append((seed, "token", "first half repeated (second half)", np.nan, np.nan, l_rep, np.nan))
    col_seed, col_level, col_what, col_strength, col_cp, col_loss, col_rl = zip(*rows)
    share_col = np.full(len(rows), np.nan)
    share_col[list(share_at)] = list(share_at.values())
    return xr.Dataset({"strength": ("run", np.array(col_strength, dtype=float)),
                       "class_prob": ("run", np.array(col_cp, dtype=float)),
                       "loss": ("run", np.array(col_loss, dtype=float)), "repeat_loss": ("run", np.array(col_rl, dtype=float)),
                       "top_context_class_share": ("run", share_col)},
                      coords={"run": np.arange(len(rows)), "seed": ("run", np.array(col_seed)),
                              "level": ("run", list(col_level)), "intervention": ("run", list(col_what))},
                      attrs={"token_class": token_class_name, "hook": hook,
                             "induction_heads": ",".join(f"{a}.{b}" for a, b in ind_heads),
                             "class_base_rate": float(mask.mean())})


def summarise(ds, by=("method",), var="target_loss") -> list[dict]:
    """Mean ± sd over seeds (ddof 1, `spinlens.verdict.mean_sd`) of ``var`` grouped by the coordinates ``by``
    (rows for tables and docs: the keys of ``by``, ``mean``, ``sd``, ``n``)."""
    from spinlens.verdict import mean_sd_dict

    df = ds.to_dataframe().reset_index()
    g = df.groupby(list(by))[var]
    return [{**dict(zip(by, k if isinstance(k, tuple) else (k,))), **mean_sd_dict(v.to_numpy())} for k, v in g]


# ------------------------------------------------------------------------------------------------ headlines


def _ms(v) -> dict:
    from spinlens.verdict import mean_sd_dict

    v = np.asarray(v, dtype=float)
    return mean_sd_dict(v[np.isfinite(v)])


def _pm(d, fmt=".3f", scale=1.0) -> str:
    return f"{d['mean'] * scale:{fmt}} ± {d['sd'] * scale:{fmt.lstrip('+')}}"


def headline(name: str, ds, *, max_loss_increase: float = 0.5) -> dict:
    """One-line result of an LM edit experiment, computed from its dataset (mean ± sample std over the runs).

    * ``steer``: P(next token in the class) with the activation-level vector at the chosen strength — the
      largest strength whose mean held-out loss rises by at most ``max_loss_increase`` nats (else the smallest
      non-zero one) — against strength 0 (the unsteered model);
    * ``pinpoint``: held-out gain on the new domain of the importance-chosen heads, the induction heads, random
      heads (every draw of every seed) and full fine-tuning; ``beats_random``: the importance heads gain more than
      that seed's random heads (their mean) on every seed;
    * ``merge``: for each merge, the share of each domain's fine-tuning gain it keeps; ``best``: the merge with
      the largest smaller share;
    * ``quantize``: at the budget 3.4 (else the first guided budget), perplexity of the guided allocation vs
      random allocations at the same budget vs uniform bits at the budget rounded down (when run).

    The dict holds the numbers, ``text``, the line printed by the CLI, and ``verdict`` where the experiment has an
    uninformed baseline (`spinlens.verdict.compare`: the method against the unsteered model, random heads, a
    fine-tune alone, random bits; its ``line`` is printed after ``text``).
    """
    from spinlens.verdict import compare

    g = ds.to_dataframe().reset_index()
    if name == "steer":
        tc = ds.attrs.get("token_class", "class")
        a = g[g["level"] == "activation"]
        by = {float(s): d for s, d in a.groupby("strength")}
        if 0.0 not in by:
            raise InvalidParameterError("The steering headline needs strength 0 (the unsteered model).")
        base_loss = by[0.0]["loss"].mean()
        nonzero = sorted(s for s in by if s != 0)
        ok = [s for s in nonzero if by[s]["loss"].mean() - base_loss <= max_loss_increase]
        s = max(ok) if ok else (min(nonzero, key=abs) if nonzero else 0.0)
        out: dict[str, Any] = {"strength": s, "class_prob": _ms(by[s]["class_prob"]), "base_class_prob": _ms(by[0.0]["class_prob"]),
               "loss": _ms(by[s]["loss"]), "base_loss": _ms(by[0.0]["loss"]),
               "class_base_rate": float(ds.attrs.get("class_base_rate", np.nan))}
        out["text"] = (f"steer: P(next token {tc}) {_pm(out['base_class_prob'])} unsteered -> {_pm(out['class_prob'])} "
                       f"at strength {s:g} (held-out loss {out['base_loss']['mean']:.2f} -> {out['loss']['mean']:.2f} "
                       f"nats; n = {out['class_prob']['n']} seeds)")
        out["verdict"] = compare(by[s]["class_prob"], by[0.0]["class_prob"], what=f"P(next token {tc})",
                                 method=f"steered (strength {s:g})", baseline="unsteered model",
                                 better="higher").to_dict()
        return out
    if name == "pinpoint":
        m = {k: _ms(d["target_gain"]) for k, d in g[g["method"] != "before"].groupby("method")}
        out = {"k": int(ds.attrs.get("k", 0)), "target_gain": m}
        if "importance_heads" in m and "random_heads" in m:
            r = g[g["method"] == "random_heads"].groupby("seed")["target_gain"].mean()
            i = g[g["method"] == "importance_heads"].set_index("seed")["target_gain"]
            diff = (i - r.reindex(i.index)).to_numpy()
            out["importance_minus_random"] = _ms(diff)
            out["beats_random"] = bool(np.all(diff > 0))
        parts = [f"{lab} {_pm(m[k])}" for k, lab in (("importance_heads", "importance-chosen heads"),
                                                      ("random_heads", "random heads"),
                                                      ("induction_heads", "induction heads"),
                                                      ("full", "full fine-tuning")) if k in m]
        verdict = ("" if "beats_random" not in out else
                   "; importance heads beat random heads on every seed" if out["beats_random"] else
                   "; importance heads do NOT beat random heads on every seed")
        out["text"] = (f"pinpoint: held-out gain on the new domain (nats/token), {out['k']} head{'' if out['k'] == 1 else 's'}: " + ", ".join(parts)
                       + verdict)
        if "importance_heads" in m and "random_heads" in m:
            out["verdict"] = compare(g[g["method"] == "importance_heads"]["target_gain"],
                                     g[g["method"] == "random_heads"]["target_gain"], what="held-out gain on the new domain",
                                     method="importance-chosen heads", baseline="random heads",
                                     better="higher").to_dict()
        return out
    if name == "merge":
        a, b = ds.attrs["domains"].split(",")
        merges = [k for k in dict.fromkeys(g["method"]) if k != "base" and not k.startswith("finetune_")]
        shares = {k: {a: _ms(g[g["method"] == k][f"recovered_{a}"]), b: _ms(g[g["method"] == k][f"recovered_{b}"])}
                  for k in merges}
        best = max(merges, key=lambda k: min(shares[k][a]["mean"], shares[k][b]["mean"]))
        single = {k: {a: _ms(g[g["method"] == k][f"recovered_{a}"]), b: _ms(g[g["method"] == k][f"recovered_{b}"])}
                  for k in dict.fromkeys(g["method"]) if k.startswith("finetune_")}
        worst = {k: min(v[a]["mean"], v[b]["mean"]) for k, v in single.items()}
        out = {"domains": [a, b], "share_kept": shares, "fine_tunes": single, "best": best,
               "keeps_half_of_both": bool(min(shares[best][a]["mean"], shares[best][b]["mean"]) >= 0.5),
               # the control: one fine-tune alone keeps all of its own gain and loses on the other domain
               "beats_single_fine_tunes": bool(min(shares[best][a]["mean"], shares[best][b]["mean"])
                                               > max(worst.values(), default=np.inf))}
        out["text"] = (f"merge: share of each domain's fine-tuning gain kept ({a} / {b}): "
                       + ", ".join(f"{k} {shares[k][a]['mean']:.0%} / {shares[k][b]['mean']:.0%}" for k in merges)
                       + f"; best {best}: {_pm(shares[best][a], '.0f', 100)} % / {_pm(shares[best][b], '.0f', 100)} % "
                       + "(one fine-tune alone: " + ", ".join(f"{k} {v[a]['mean']:.0%} / {v[b]['mean']:.0%}"
                                                              for k, v in single.items()) + ")"
                       + ("" if out["keeps_half_of_both"] else "; no merge keeps half of both domains' gains"))
        if single:  # the smaller share kept, per run: the best merge vs each fine-tune alone
            low = lambda k: np.minimum(g[g["method"] == k][f"recovered_{a}"].to_numpy(),  # noqa: E731
                                       g[g["method"] == k][f"recovered_{b}"].to_numpy())
            out["verdict"] = compare(low(best), np.concatenate([low(k) for k in single]),
                                     what="smaller share of a domain's gain kept", method=f"merge {best}",
                                     baseline="one fine-tune alone", better="higher").to_dict()
        return out
    if name == "quantize":
        sch = list(dict.fromkeys(g["scheme"]))
        budgets = [float(s.split("_", 1)[1]) for s in sch if s.startswith("guided_")]
        if not budgets:
            raise InvalidParameterError("The quantization headline needs a guided allocation.")
        B = 3.4 if any(abs(x - 3.4) < 1e-9 for x in budgets) else budgets[0]
        ppl = {s: _ms(g[g["scheme"] == s]["perplexity"]) for s in sch}
        out = {"budget": B, "fp_perplexity": float(ds.attrs["fp_perplexity"]), "guided": ppl[f"guided_{B:g}"]}
        parts = [f"guided {B:g}-bit {_pm(out['guided'], '.2f')}"]
        if f"random_{B:g}" in ppl:
            out["random"] = ppl[f"random_{B:g}"]
            parts.append(f"random {B:g}-bit {_pm(out['random'], '.2f')}")
        ub = int(np.floor(B))
        if f"uniform_{ub}" in ppl:
            out["uniform_bits"], out["uniform"] = ub, ppl[f"uniform_{ub}"]
            parts.append(f"uniform {ub}-bit {_pm(out['uniform'], '.2f')}")
        gs = g[g["scheme"] == f"guided_{B:g}"].groupby("seed")["perplexity"].mean()
        for key, sch_ in (("random", f"random_{B:g}"), ("uniform", f"uniform_{ub}")):
            if key in out:  # paired per seed (same calibration/test split): guided minus the baseline
                other = g[g["scheme"] == sch_].groupby("seed")["perplexity"].mean()
                out[f"guided_minus_{key}"] = _ms((gs - other.reindex(gs.index)).to_numpy())
        diffs = [out[f"guided_minus_{k}"] for k in ("uniform", "random") if f"guided_minus_{k}" in out]
        out["beats_baselines"] = bool(diffs) and all(
            np.all((gs - g[g["scheme"] == sch_].groupby("seed")["perplexity"].mean().reindex(gs.index)).to_numpy() < 0)
            for k, sch_ in (("uniform", f"uniform_{ub}"), ("random", f"random_{B:g}")) if f"guided_minus_{k}" in out)
        paired = "".join(f"; guided − {k} per seed {_pm(out[f'guided_minus_{k}'], '+.2f')}"
                         for k in ("uniform", "random") if f"guided_minus_{k}" in out)
        out["text"] = ("quantize: held-out perplexity, " + " vs ".join(parts)
                       + f" (full precision {out['fp_perplexity']:.2f}; n = {out['guided']['n']} seeds{paired})"
                       + ("; guided is lower on every seed" if out["beats_baselines"] else
                          "; guided is NOT lower on every seed" if diffs else ""))
        if "random" in out:
            out["verdict"] = compare(g[g["scheme"] == f"guided_{B:g}"]["perplexity"],
                                     g[g["scheme"] == f"random_{B:g}"]["perplexity"], what=f"perplexity at {B:g} bits",
                                     method="guided bits", baseline="random bits", better="lower").to_dict()
        return out
    raise InvalidParameterError(f"The 'name' parameter must be steer, pinpoint, merge or quantize. Got {name!r}.")


# ------------------------------------------------------------------------------------------------ one call per command


def default_lm(base=None, *, base_steps: int | None = None, seed: int = 0, progress: bool = False):
    """The default language model of the LM setting: ``spinlens lm``'s defaults (`spinlens.lm.config.LMConfig`,
    corpus ``stdlib-docs``), ``base_steps`` steps when given, seed ``seed``; cached in the folder ``base`` (reused
    when its config and corpus match) or, with ``base=None``, trained in memory. Returns
    ``(model, tokenizer, held-out windows, folder or None, reused)``."""
    from pathlib import Path

    from spinlens.lm.analysis import heldout_windows
    from spinlens.lm.config import LMConfig
    from spinlens.lm.corpus import DEFAULT_MAX_CHARS, load_corpus, text_digest
    from spinlens.lm.data import eval_windows
    from spinlens.lm.train import load_lm, train_lm
    from spinlens.models.checkpoint import folder_kind

    d = LMConfig()
    cfg = LMConfig(steps=d.steps if base_steps is None else base_steps, seed=seed)
    corpus = "stdlib-docs"
    text = load_corpus(corpus, max_chars=DEFAULT_MAX_CHARS)  # this Python's docs: a cache of another text is stale
    base = Path(base) if base is not None else None
    if base is not None and folder_kind(base) == "lm":
        try:
            model, tok, meta = load_lm(base)
        except Exception:  # noqa: BLE001 - a broken cache is retrained
            meta = {}
        if meta.get("lm_config") == cfg.to_dict() and meta.get("corpus") == corpus \
                and meta.get("corpus_sha256") == text_digest(text):
            val = heldout_windows(model, tok, base)
            if val is not None:
                return model, tok, val, base, True
    # OUT/base is spinlens' own cache: a stale one is replaced as a whole (one transaction), whatever it held
    from spinlens.io import without_manifest

    legacy = base is not None and without_manifest(base)  # written before manifests: replaced in place
    res = train_lm(text, cfg, out=base, corpus_name=corpus, progress=progress, force=legacy)
    # the windows `heldout_windows` reads from the folder (64 of the held-out split)
    assert res.heldout is not None  # train_lm keeps its held-out split
    return res.model, res.tokenizer, eval_windows(res.heldout, cfg.n_ctx, max_windows=64), base, False


#: the figure of each command's LM experiment (`spinlens.plotting.lm`) and the stem of its files
EDIT_OUTPUTS = {"steer": ("plot_lm_steering", "steer_lm"), "pinpoint": ("plot_lm_pinpoint", "pinpoint_lm"),
                "merge": ("plot_lm_merging", "merge_lm"), "quantize": ("plot_lm_quantization", "quantize_lm")}


def run_edit(name: str, model, tokenizer, val, *, seeds, texts=(), token_class_name: str = "capitalised",
             strengths=(0.0, 0.5, 1.0), k: int = 1, n_random: int = 3, steps: int = 100, lr: float = 1e-3,
             density: float = 0.3, domains=(), budgets=(3.4,), uniform_bits=(3, 4, 8), bits=(2, 3, 4, 8),
             group_size: int = 32, granularity: str = "head", progress: bool = False):
    """The language-model experiment of one edit command: ``(dataset, summary)``.

    ``name``: steer | pinpoint | merge | quantize. ``texts``: the new domain's text (pinpoint) or the two domains'
    texts (merge). The summary holds the per-method means ± sd over ``seeds`` and the one-line `headline`.
    """
    seeds = tuple(seeds)
    if name == "steer":
        strengths = tuple(dict.fromkeys([0.0, *map(float, strengths)]))  # 0: the unsteered model, the reference
        ds = steering_experiment(model, tokenizer, val, token_class_name=token_class_name, strengths=strengths,
                                 seeds=seeds, progress=progress)

        def lvl(level):
            return ds.where(ds.level == level, drop=True)

        summary = {"token_class": token_class_name, "class_base_rate": ds.attrs["class_base_rate"],
                   "activation_class_prob": summarise(lvl("activation"), ("strength",), "class_prob"),
                   "activation_loss": summarise(lvl("activation"), ("strength",), "loss"),
                   "module_repeat_loss": summarise(lvl("module"), ("intervention",), "repeat_loss"),
                   "token_level_loss": summarise(lvl("token"), ("intervention",), "loss"),
                   "induction_heads": ds.attrs["induction_heads"], "seeds": list(seeds)}
        if (ds.level == "neuron").any():
            summary["neuron_class_prob"] = summarise(lvl("neuron"), ("strength",), "class_prob")
            summary["neuron_loss"] = summarise(lvl("neuron"), ("strength",), "loss")
            summary["neuron_random_class_prob"] = summarise(lvl("neuron_random"), ("strength",), "class_prob")
            summary["neuron_random_loss"] = summarise(lvl("neuron_random"), ("strength",), "loss")
            summary["neuron_top_context_class_share"] = summarise(
                ds.where(ds.level.isin(["neuron", "neuron_random"]) & (ds.strength == ds.strength.max()), drop=True),
                ("level",), "top_context_class_share")
    elif name == "pinpoint":
        ds = pinpoint_experiment(model, tokenizer, val, texts[0], k=k, n_random=n_random, steps=steps, lr=lr,
                                 seeds=seeds, progress=progress)
        imp = ds.where(ds.method == "importance_heads", drop=True)
        summary = {"domain": str(domains[0]) if domains else None, "heads": ds.attrs["heads"],
                   "importance_heads": {str(int(s)): str(c) for s, c in zip(imp.seed.values, imp.components.values)},
                   "before_target_loss": float(ds.target_loss[0]),
                   "target_gain": summarise(ds, ("method",), "target_gain"),
                   "general_change": summarise(ds, ("method",), "general_change"), "seeds": list(seeds)}
    elif name == "merge":
        from pathlib import Path

        names = tuple(Path(str(d)).stem.replace("-", "_").replace("stdlib_", "") for d in domains)
        ds = merging_experiment(model, tokenizer, val, texts[0], texts[1], steps=steps, lr=lr, density=density,
                                seeds=seeds, names=names, progress=progress)
        summary = {"domains": [str(d) for d in domains], "seeds": list(seeds)}
        for v in ds.data_vars:
            summary[v] = summarise(ds, ("method",), v)
    elif name == "quantize":
        ds = quantization_experiment(model, val, budgets=tuple(budgets), uniform_bits=tuple(uniform_bits),
                                     bits=tuple(bits), group_size=group_size, granularity=granularity,
                                     n_random=n_random, seeds=seeds, progress=progress)
        summary = {"fp_perplexity": ds.attrs["fp_perplexity"], "perplexity": summarise(ds, ("scheme",), "perplexity"),
                   "average_bits": summarise(ds, ("scheme",), "average_bits"), "seeds": list(seeds)}
    else:
        raise InvalidParameterError(f"The 'name' parameter must be steer, pinpoint, merge or quantize. Got {name!r}.")
    return ds, {"headline": headline(name, ds), "setting": "lm", **summary}


def check_edit_options(name: str, opts) -> None:
    """The options of the language-model setting of edit command ``name``, checked before any training (nothing
    is written when this raises); ``quantize`` fills ``opts.group_size``."""
    from spinlens.edit.experiments import check_edit_options as check_shared
    from spinlens.edit.experiments import check_quantize_options
    from spinlens.errors import check_choice

    check_int("seed", opts.seed, low=0)
    check_int("n-seeds", opts.n_seeds, low=1, high=100)
    if opts.base_steps is not None:
        check_int("base-steps", opts.base_steps, low=1, high=10**7)
    check_shared(name, opts)  # the options both settings share
    if name == "steer":
        check_choice("token-class", opts.token_class, ("capitalised", "digit", "newline"))
    if name == "merge" and opts.domains[0] == opts.domains[1]:
        raise InvalidParameterError(f"The 'domains' parameter must name two different domains. Got {opts.domains}.")
    if name == "quantize":
        check_quantize_options(opts, "lm")


def summary_text(name: str, summary: dict) -> str:
    """The lines printed for the summary of an LM edit experiment (without its headline)."""
    lines = [f"spinlens {name} (language model {summary['model']}), seeds {summary['seeds']}:"]
    for k, v in summary.items():
        if k in ("headline", "setting", "model"):
            continue
        if isinstance(v, list) and v and isinstance(v[0], dict):
            lines.append(f"  {k}:")
            for r in v:
                key = ", ".join(f"{a}={b}" for a, b in r.items() if a not in ("mean", "sd", "n"))
                lines.append(f"    {key}: {r['mean']:.4g} ± {r['sd']:.2g} (n={r['n']})")
        elif k != "seeds":
            lines.append(f"  {k}: {v}")
    return "\n".join(lines)


def run_edit_command(name: str, opts):
    """The language-model setting of edit command ``name``: check the options (`check_edit_options`), open the
    model (`open_lm`: ``--checkpoint`` or the default LM, cached in ``OUT/base``), run
    `run_edit` over the seeds ``seed, ..., seed + n_seeds - 1``; a `spinlens.experiment.EditResult` (``opts``: see
    `spinlens.experiment.run_edit_command`)."""
    from pathlib import Path

    from spinlens.io import check_out_dir
    from spinlens.lm.corpus import BUILTIN, load_corpus
    from spinlens.plotting import lm as S
    from spinlens.results import EditResult

    check_edit_options(name, opts)
    seeds = tuple(range(opts.seed, opts.seed + opts.n_seeds))
    check_out_dir("out", opts.out)
    domains = [opts.domain] if name == "pinpoint" else opts.domains if name == "merge" else []
    # 400000 characters of a built-in domain, a file whole; a bad file fails before any training
    texts = [load_corpus(d, max_chars=400_000 if d in BUILTIN else None) for d in domains]
    progress = not opts.no_progress and not opts.json
    src = opts.source
    if src.path is None:
        if name == "pinpoint":
            from spinlens.lm.config import LMConfig

            c = LMConfig()
            check_int("k", opts.k, low=1, high=c.n_layers * c.n_heads)
        if opts.out:
            Path(opts.out).mkdir(parents=True, exist_ok=True)
    model, tok, val, label, reused = open_lm(src, out=opts.out, base_steps=opts.base_steps, seed=opts.seed,
                                             progress=progress)
    if src.path is None and not opts.json:
        print(f"spinlens {name}: {'reused' if reused else 'trained'} the default language model"
              + (f" in {label}" if opts.out else " (in memory; --out caches it in OUT/base)"), flush=True)
    if name == "pinpoint":
        check_int("k", opts.k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    if name == "steer":
        kw: dict[str, Any] = dict(token_class_name=opts.token_class, strengths=opts.strengths)
    elif name == "pinpoint":
        kw = dict(k=opts.k, n_random=opts.n_random, steps=opts.steps, lr=opts.lr)
    elif name == "merge":
        kw = dict(steps=opts.steps, lr=opts.lr, density=opts.density)
    else:
        kw = dict(budgets=tuple(opts.budgets) if opts.budget is None else (opts.budget,),
                  uniform_bits=tuple(opts.uniform_bits), bits=tuple(opts.bits), group_size=opts.group_size,
                  granularity=opts.granularity or "head", n_random=opts.n_random)
    ds, summary = run_edit(name, model, tok, val, seeds=seeds, texts=texts, domains=domains, progress=progress, **kw)
    summary = {"headline": summary.pop("headline"), "setting": "lm", "model": label, **summary}
    if "converged" in ds.attrs:  # the fine-tunes of pinpoint and merge follow the divergence rule
        summary["converged"] = bool(ds.attrs["converged"])
    if opts.out:
        Path(opts.out).mkdir(parents=True, exist_ok=True)
    plot_name, stem = EDIT_OUTPUTS[name]
    return EditResult(name, "lm", summary, summary["headline"], text=summary_text(name, summary), dataset=ds,
                      figure=getattr(S, plot_name)(ds)[0], stem=stem, record={"summary": summary, "checkpoint": label},
                      converged=summary.get("converged") is not False, divergence=ds.attrs.get("divergence", ""))


def open_lm(source: ModelSource, *, out=None, base_steps: int | None = None, seed: int = 0, progress: bool = False):
    """``(model, tokenizer, held-out windows, label, reused)`` of the language-model setting: the ``--checkpoint``
    folder of ``spinlens lm``, or the default LM (`default_lm`, cached in ``OUT/base``)."""
    from pathlib import Path

    if source.path is None:
        base = Path(out) / "base" if out else None
        model, tok, val, folder, reused = default_lm(base, base_steps=base_steps, seed=seed, progress=progress)
        label = str(folder) if folder is not None else "default language model (in memory)"
        return model, tok, val, label, reused
    from spinlens.lm.analysis import heldout_windows
    from spinlens.lm.train import load_lm

    model, tok, _ = load_lm(source.path)
    val = heldout_windows(model, tok, source.path)
    if val is None:
        raise InvalidParameterError(f"The checkpoint {source.path!r} has no held-out tokens (heldout_tokens.npy).")
    return model, tok, val, str(source.path), True
