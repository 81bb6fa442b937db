"""The settings of the edit commands (``steer``, ``pinpoint``, ``merge``, ``quantize``): their setting flags,
and the one handler of every command: resolve the setting (`spinlens.experiment.resolve_source`), refuse another
setting's flags, one library call (`spinlens.experiment.run_edit_command`), report (`report`).
"""

from __future__ import annotations

import argparse
from typing import Any

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
    p.set_defaults(func=_dispatch(name, defaults, shared, reg_shared))


def _dispatch(name, defaults, shared, reg_shared):
    """parse → resolve the setting (`spinlens.experiment`) → its one library call (`run_edit_command`) → report."""

    def func(args):
        from spinlens.experiment import SETTING_OPTIONS, check_setting_options, resolve_source, run_edit_command

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
        if not (src.setting == "hf" and name in ("pinpoint", "merge")):  # a pretrained LM: its own defaults
            for d in shared:
                if getattr(args, d) is None:
                    v = (shared if src.setting == "lm" else reg_shared)[d]
                    setattr(args, d, list(v) if isinstance(v, (list, tuple)) else v)
            for d, v in defaults.items():
                if getattr(args, d, None) is None and (d != "base_steps" or src.setting != "lm"):
                    setattr(args, d, v)
        return report(run_edit_command(name, args), args)

    return func


def report(res, args) -> int:
    """Write an `spinlens.experiment.EditResult` under ``--out`` and print it (``--json``: its summary); exit 3
    when a fine-tune diverged."""
    from pathlib import Path

    from spinlens.cli._common import convergence_exit, print_headline, print_json, print_table

    res.write(Path(args.out) if args.out else None, args)
    if args.json:
        print_json(res.summary)
    else:
        if res.rows:
            print_table(res.rows)
        if res.text:
            print(res.text)
        if res.headline:
            print_headline(res.headline)
    if not res.converged:
        return convergence_exit(f"spinlens {res.command}", False, res.divergence, what="fine-tuning")
    return 0
