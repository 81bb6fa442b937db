"""The settings of the edit commands (``steer``, ``pinpoint``, ``merge``, ``quantize``): their setting flags,
the dispatcher that resolves a command's setting (`spinlens.experiment.resolve_source`) and refuses another
setting's flags, and the language-model setting's run (one call to `spinlens.lm.experiments.run_edit`).
The regression handlers stay in `spinlens.cli.edit_cmd`; the pretrained-LLM ones in `_edit_llm` and
`_quantize_llm`.
"""

from __future__ import annotations

import argparse
from typing import Any

from spinlens.cli._common import write_experiment as _write

# ------------------------------------------------------------------------------------------------ settings
LM_EDIT_EXAMPLES = {
    "steer": "  spinlens steer --checkpoint runs/lm --out steer-lm          # a language model from 'spinlens lm'\n",
    "pinpoint": "  spinlens pinpoint --checkpoint runs/lm --domain stdlib-code --k 2 --steps 100 --out pin-lm\n",
    "merge": "  spinlens merge --checkpoint runs/lm --domains stdlib-code stdlib-comments --out merge-lm\n",
    "quantize": "  spinlens quantize --checkpoint runs/lm --budgets 3 3.4 4 --out quant-lm\n"
                "  spinlens quantize --model smollm2-135m --budgets 3 3.4 4 --out quant-smollm2   # a pretrained LLM\n",
}
SETTING_HELP = ("lm (default): a small language model on text, the default one of 'spinlens lm' trained here (cached in "
                "OUT/base) unless --checkpoint gives one; regression: the ICL-regression transformer (flags --D, "
                "--N, --target, --tasks, --spec, ...). A --checkpoint folder decides by what it holds; --model "
                "(a Hugging Face folder or a named pretrained model) is the hf setting")
# flags of both settings whose default differs: (language model, regression from the command's parser)
# (fine-tuning on text: 100 Adam steps at lr 1e-3, the defaults of `spinlens.lm.experiments.finetune`, keep the
# fine-tunes close to the base, where task vectors add up; docs/lm.md has 300 steps at 3e-3 too)
LM_DEFAULTS: dict[str, dict[str, Any]] = {"steer": {"strengths": [0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0]},
               "pinpoint": {"steps": 100, "lr": 1e-3, "k": 1}, "merge": {"steps": 100, "lr": 1e-3}}
_FLAGS: dict = {}  # (command, dest) -> its argparse action (the flag as the help spells it)


def _fmt(v):
    return " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def settings(p, name) -> None:
    """Declare the language-model setting's flags of one edit command and make `_dispatch` its handler.

    Flags that only one setting uses (`spinlens.experiment.SETTING_OPTIONS`) and flags whose default differs
    between settings get no default in the namespace, so that "given" is "present"; `_dispatch` fills the
    defaults of the resolved setting."""
    from spinlens.experiment import SETTING_OPTIONS

    opts = p._option_string_actions
    g = p.add_argument_group("language model (the default setting; --checkpoint DIR from 'spinlens lm')")
    g.add_argument("--setting", choices=("lm", "regression"), default=argparse.SUPPRESS, help=SETTING_HELP)
    if "--n-seeds" not in opts:
        g.add_argument("--n-seeds", type=int, default=argparse.SUPPRESS, help="language model: seeds --seed, --seed+1, "
                                                                             "... (>= 1, default 3)")
    if name == "steer":
        g.add_argument("--token-class", default=argparse.SUPPRESS, help="capitalised (default) | digit | newline")
    if name == "pinpoint":
        g.add_argument("--domain", default=argparse.SUPPRESS,
                       help="new text domain: a UTF-8 file or a built-in source (default stdlib-code)")
    if name == "merge":
        g.add_argument("--domains", nargs=2, default=argparse.SUPPRESS,
                       help="two text domains (files or built-in sources) to fine-tune on and merge (default "
                            "stdlib-code stdlib-comments)")
    p.epilog = (p.epilog or "") + LM_EDIT_EXAMPLES[name]
    reg_only, lm_only = SETTING_OPTIONS[name]["regression"], SETTING_OPTIONS[name]["lm"]
    defaults = {d: p.get_default(d) for d in (*reg_only, "base_steps")}
    defaults.update(n_seeds=3, token_class="capitalised", domain="stdlib-code",
                    domains=["stdlib-code", "stdlib-comments"])
    shared = LM_DEFAULTS.get(name, {})
    reg_shared = {d: p.get_default(d) for d in shared}
    for a in p._actions:
        if a.dest in shared:
            a.default = argparse.SUPPRESS
            a.help = (a.help or a.dest) + (f" (default: language model {_fmt(shared[a.dest])}; regression "
                                           f"{_fmt(reg_shared[a.dest])})")
        if a.dest in (*reg_only, "base_steps"):
            a.default = argparse.SUPPRESS
        if a.option_strings and a.dest in (*reg_only, *lm_only) and a.help != argparse.SUPPRESS:
            _FLAGS[(name, a.dest)] = a  # its spelling read at error time (the CLI renames some flags later)
        if a.dest in reg_only and defaults[a.dest] not in (None, False) and a.help:
            a.help += f" (regression setting; default {_fmt(defaults[a.dest])})"
        if a.dest == "base_steps":
            a.help = (f"training steps of the default base: the language model (default: 'spinlens lm' "
                      f"defaults) or the regression base (default {defaults['base_steps']})")
    p.set_defaults(func=_dispatch(p.get_default("func"), name, defaults, shared, reg_shared))


def _dispatch(inner, name, defaults, shared, reg_shared):
    """parse → resolve the setting (`spinlens.experiment`) → the setting's one library call → report."""

    def func(args):
        from spinlens.experiment import SETTING_OPTIONS, check_setting_options, resolve_source

        own = tuple(dict.fromkeys(d for opts in SETTING_OPTIONS[name].values() for d in opts))
        for d in ("setting", *own, *defaults, *shared):
            if not hasattr(args, d):
                setattr(args, d, None)
        src = resolve_source(name, checkpoint=args.checkpoint, model=args.model, base=getattr(args, "base", None),
                             setting=args.setting, base_steps=args.base_steps)
        args.source, args.setting = src, src.setting

        def spell(dest):
            act = _FLAGS.get((name, dest))
            return act.option_strings[0] if act is not None else "--" + dest.replace("_", "-")

        check_setting_options(name, src.setting, {d: getattr(args, d, None) for d in own}, spell=spell)
        if src.setting == "hf" and name in ("pinpoint", "merge"):  # a pretrained LM: its own defaults
            from spinlens.cli._edit_llm import run_hf

            return run_hf(args, name)
        for d in shared:
            if getattr(args, d) is None:
                v = (shared if src.setting == "lm" else reg_shared)[d]
                setattr(args, d, list(v) if isinstance(v, (list, tuple)) else v)
        for d, v in defaults.items():
            if getattr(args, d, None) is None and d != "base_steps":
                setattr(args, d, v)
        if src.setting == "lm":
            return _run_lm(args, name)
        if args.base_steps is None:
            args.base_steps = defaults["base_steps"]
        if src.setting == "hf" and name != "quantize":
            from spinlens.errors import InvalidParameterError

            if name == "steer":
                raise InvalidParameterError(
                    "The '--model' parameter (a pretrained LM) is steered by 'spinlens interp control --model "
                    f"{args.model}' (a prompt prefix, a residual vector, neurons, located heads; effect and cost); "
                    "'steer' takes spinlens models (--checkpoint, --setting).")
            raise InvalidParameterError(f"The '--model' parameter (a Hugging Face model) is not supported by "
                                        f"'{name}'; give a spinlens model folder under --checkpoint.")
        return inner(args)

    return func


def _check_lm_args(args, name) -> None:
    """The flags of the LM experiments, before any training (nothing is written when this raises)."""
    from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int

    check_int("seed", args.seed, low=0)
    check_int("n-seeds", args.n_seeds, low=1, high=100)
    if args.base_steps is not None:
        check_int("base-steps", args.base_steps, low=1, high=10**7)
    if name == "steer":
        for s in args.strengths:
            check_float("strengths", s)
        check_choice("token-class", args.token_class, ("capitalised", "digit", "newline"))
    if name in ("pinpoint", "merge"):
        check_int("steps", args.steps, low=1)
        check_float("lr", args.lr, low=0, low_open=True)
    if name == "pinpoint":
        check_int("k", args.k, low=1)
        check_int("n_random", args.n_random, low=1)
    if name == "merge":
        check_float("density", args.density, low=0, high=1, low_open=True)
        if args.domains[0] == args.domains[1]:
            raise InvalidParameterError(f"The 'domains' parameter must name two different domains. Got {args.domains}.")
    if name == "quantize":
        from spinlens.cli._common import check_hf_only_flags

        check_hf_only_flags(args, "language model")
        if args.group_size is None:
            args.group_size = 32
        check_int("group_size", args.group_size, low=1, high=1 << 20)
        check_int("n_random", args.n_random, low=0)
        for b in args.bits + args.uniform_bits:
            check_int("bits", b, low=1, high=16)
        if len(set(args.bits)) != len(args.bits):
            raise InvalidParameterError(f"The 'bits' parameter must not repeat values. Got {args.bits}.")
        for b in [args.budget] if args.budget is not None else args.budgets:
            check_float("budget", b, low=min(args.bits), high=max(args.bits))
        if args.granularity not in (None, "head", "module", "layer"):
            raise InvalidParameterError(f"The 'granularity' parameter must be head, module or layer for a spinlens "
                                        f"language model. Got {args.granularity!r}.")


def _run_lm(args, name) -> int:
    """The LM setting: validate, open the model, one library call (`spinlens.lm.experiments.run_edit`), report."""
    from pathlib import Path

    from spinlens.cli._common import check_out_dir, print_json
    from spinlens.errors import check_int
    from spinlens.experiment import open_lm
    from spinlens.lm import experiments as E
    from spinlens.lm.corpus import load_corpus
    from spinlens.plotting import lm as S

    _check_lm_args(args, name)
    seeds = tuple(range(args.seed, args.seed + args.n_seeds))
    check_out_dir("out", args.out)
    domains = [args.domain] if name == "pinpoint" else args.domains if name == "merge" else []
    from spinlens.lm.corpus import BUILTIN

    # 400000 characters of a built-in domain, a file whole; a bad file fails before any training
    texts = [load_corpus(d, max_chars=400_000 if d in BUILTIN else None) for d in domains]
    progress = not args.no_progress and not args.json
    src = args.source
    if src.path is None:
        if name == "pinpoint":
            from spinlens.lm.config import LMConfig

            c = LMConfig()
            check_int("k", args.k, low=1, high=c.n_layers * c.n_heads)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
    model, tok, val, label, reused = open_lm(src, out=args.out, base_steps=args.base_steps, seed=args.seed,
                                             progress=progress)
    if src.path is None and not args.json:
        print(f"spinlens {name}: {'reused' if reused else 'trained'} the default language model"
              + (f" in {label}" if args.out else " (in memory; --out caches it in OUT/base)"), flush=True)
    if name == "pinpoint":
        check_int("k", args.k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    if name == "steer":
        kw = dict(token_class_name=args.token_class, strengths=args.strengths)
    elif name == "pinpoint":
        kw = dict(k=args.k, n_random=args.n_random, steps=args.steps, lr=args.lr)
    elif name == "merge":
        kw = dict(steps=args.steps, lr=args.lr, density=args.density)
    else:
        kw = dict(budgets=tuple(args.budgets) if args.budget is None else (args.budget,),
                  uniform_bits=tuple(args.uniform_bits), bits=tuple(args.bits), group_size=args.group_size,
                  granularity=args.granularity or "head", n_random=args.n_random)
    ds, summary = E.run_edit(name, model, tok, val, seeds=seeds, texts=texts, domains=domains, progress=progress, **kw)
    summary = {"headline": summary.pop("headline"), "setting": "lm", "model": label, **summary}
    if "converged" in ds.attrs:  # the fine-tunes of pinpoint and merge follow the divergence rule
        summary["converged"] = bool(ds.attrs["converged"])
    plot_name, stem = E.EDIT_OUTPUTS[name]
    fig, _ = getattr(S, plot_name)(ds)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    _write(out, stem, ds, fig, args, {"summary": summary, "checkpoint": label})
    if args.json:
        print_json(summary)
    else:
        _print_lm_summary(name, summary)
    if summary.get("converged") is False:
        from spinlens.cli._common import convergence_exit

        return convergence_exit(f"spinlens {name}", False, ds.attrs.get("divergence", ""), what="fine-tuning")
    return 0


def _print_lm_summary(name, s) -> None:
    print(f"spinlens {name} (language model {s['model']}), seeds {s['seeds']}:")
    for k, v in s.items():
        if k in ("headline", "setting", "model"):
            continue
        if isinstance(v, list) and v and isinstance(v[0], dict):
            print(f"  {k}:")
            for r in v:
                key = ", ".join(f"{a}={b}" for a, b in r.items() if a not in ("mean", "sd", "n"))
                print(f"    {key}: {r['mean']:.4g} ± {r['sd']:.2g} (n={r['n']})")
        elif k != "seeds":
            print(f"  {k}: {v}")
    from spinlens.cli._common import print_headline

    print_headline(s["headline"])
