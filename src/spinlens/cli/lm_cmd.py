"""``spinlens lm``: train a small causal language model on real text (a file or a built-in offline source).

Writes a model folder (spinlens' transformer format + ``tokenizer.json``) that ``spinlens interp ...
--checkpoint DIR`` and the edit commands take, checkpoints along training, the held-out loss and
perplexity curves (PNG, PDF, CSV), the induction scores over the checkpoints (the phase change) and run.json.
"""

from __future__ import annotations

import sys

from ._common import add_command

EXAMPLES = """  spinlens lm --out runs/lm                               # stdlib docs, attention-only, 2 layers (a few CPU minutes)
  spinlens lm --variant mlp --out runs/lm-mlp             # blocks with MLPs
  spinlens lm --corpus notes.txt --n-ctx 64 --steps 500 --out runs/lm-notes
  spinlens lm --device cuda --steps 3000 --batch-size 128 --d-model 256 --out runs/lm-gpu
  spinlens interp induction --checkpoint runs/lm --json   # then: find its induction heads
"""


def register(sub) -> None:
    from spinlens.lm.config import LMConfig

    d = LMConfig()
    p = add_command(sub, "lm", "Train a small causal LM on text (BPE tokenizer, checkpoints, loss curves, induction scores).",
                    EXAMPLES, _run)
    g = p.add_argument_group("data")
    g.add_argument("--corpus", default="stdlib-docs",
                   help="UTF-8 text file, or a built-in offline source: stdlib-docs (pydoc topics + stdlib docstrings) "
                        "| pydoc-topics")
    g.add_argument("--max-chars", type=int, default=None, help="characters of the corpus to use (>= 1000; default: "
                                                                "1000000 of a built-in source, a file whole)")
    g.add_argument("--vocab-size", type=int, default=d.vocab_size, help="BPE vocabulary trained on the corpus (>= 257)")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction, help="held-out share of the corpus, (0, 0.5]")
    g = p.add_argument_group("model")
    g.add_argument("--variant", default=d.variant, help="attn-only | mlp")
    g.add_argument("--n-layers", type=int, default=d.n_layers)
    g.add_argument("--n-heads", type=int, default=d.n_heads)
    g.add_argument("--d-model", type=int, default=d.d_model)
    g.add_argument("--n-ctx", type=int, default=d.n_ctx, help="context length (tokens)")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=d.steps)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between held-out evaluations")
    g.add_argument("--n-checkpoints", type=int, default=d.n_checkpoints, help="model folders saved along training")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:0, mps")
    g.add_argument("--max-memory-gb", type=float, default=4.0, help="refuse settings whose estimated memory exceeds this")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="runs/lm", help="model folder (model.safetensors, config.json, tokenizer.json, "
                                                      "checkpoints/, curves.csv/png/pdf, run.json)")
    g.add_argument("--force", action="store_true", help="write into an --out folder that holds files of another kind "
                                                         "(they are kept; same-named ones replaced)")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.add_argument("--no-progress", action="store_true")


def _run(args) -> int:
    import time

    import torch

    from spinlens.errors import InvalidParameterError, check_float, check_int
    from spinlens.io import folder_transaction
    from spinlens.lm.corpus import load_corpus
    from spinlens.lm.train import LM_KIND, LMConfig, train_lm

    from ._common import check_device, check_out_dir, print_json

    cfg = LMConfig(variant=args.variant, n_layers=args.n_layers, n_heads=args.n_heads, d_model=args.d_model,
                   n_ctx=args.n_ctx, vocab_size=args.vocab_size, steps=args.steps, batch_size=args.batch_size,
                   lr=args.lr, weight_decay=args.weight_decay, val_fraction=args.val_fraction,
                   eval_every=args.eval_every, n_checkpoints=args.n_checkpoints, seed=args.seed)
    if args.max_chars is not None:
        check_int("max-chars", args.max_chars, low=1000)
    check_device("device", args.device)
    out = check_out_dir("out", args.out, kind=LM_KIND, force=args.force)
    check_float("max-memory-gb", args.max_memory_gb, low=0.0, low_open=True)
    est = cfg.memory_estimate_bytes() / 2**30
    if est > args.max_memory_gb:
        raise InvalidParameterError(f"The settings need about {est:.1f} GiB (> --max-memory-gb {args.max_memory_gb}); "
                                    "lower --batch-size, --n-ctx, --d-model or --vocab-size.")
    t0 = time.perf_counter()
    text = load_corpus(args.corpus, max_chars=args.max_chars)
    # the whole folder is one transaction: an error, Ctrl-C or a kill leaves it as it was
    with folder_transaction(out, kind=LM_KIND, force=args.force) as stage:
        res = train_lm(text, cfg, out=stage, device=args.device, corpus_name=str(args.corpus),
                       progress=not args.no_progress and not args.json)
        summary = write_study_files(stage, res, cfg, device=args.device)
        summary.update(seconds_total=time.perf_counter() - t0, threads=torch.get_num_threads())
        from spinlens import io

        io.write_run_json(stage, io.run_record("lm", args=args, seed=cfg.seed, device=args.device,
                                               config=cfg.to_dict(), summary=summary))
    if not summary["induction_head_formed"]:
        from spinlens.lm.induction import FORMED_ADVANTAGE, FORMED_SCORE

        rl = summary["repeated_loss"]
        print(f"warning: no induction head formed (top induction score {summary['top_head']['induction_score']:.3f}, "
              f"needs >= {FORMED_SCORE}; repeat advantage {rl['first'] - rl['repeat']:.2f} nats, needs >= "
              f"{FORMED_ADVANTAGE}): train longer (--steps) or try another --seed", file=sys.stderr)
    if args.json:
        print_json(summary)
    else:
        print(f"spinlens lm: {summary['corpus']} ({summary['n_train_tokens']} train / {summary['n_val_tokens']} held-out "
              f"tokens), {cfg.variant}, {cfg.n_layers}x{cfg.n_heads} heads, {summary['n_params']} parameters")
        print(f"  trained {cfg.steps} steps in {summary['train_seconds']:.1f} s on {args.device}; held-out loss "
              f"{summary['val_loss']:.3f} (perplexity {summary['val_ppl']:.1f})")
        h = summary["top_head"]
        print(f"  top induction head {h['layer']}.{h['head']}: induction score {h['induction_score']:.3f}, repeated loss "
              f"first {summary['repeated_loss']['first']:.2f} / repeat {summary['repeated_loss']['repeat']:.2f}, "
              f"icl_score {summary['icl_score']:+.3f}")
        if summary["phase_change_step"] is not None:
            print(f"  induction head formed by step {summary['phase_change_step']} (first checkpoint with induction "
                  "score >= 0.1 and repeat advantage >= 1 nat)")
        print(f"  wrote {out}/ (model, tokenizer.json, checkpoints/, curves.csv/png/pdf, induction_curve.csv/png/pdf)")
    return 0


def write_study_files(out, res, cfg, *, device="cpu") -> dict:
    """Curves and the induction scores over the checkpoints, written next to the model; returns the summary."""
    from spinlens.io import save_figure
    from spinlens.lm.study import checkpoint_curve, write_csv
    from spinlens.plotting.lm import plot_lm_curves, plot_phase_change

    write_csv(out / "curves.csv", res.history)
    save_figure(plot_lm_curves(res.history)[0], out, "curves", bbox_inches="tight", dpi=150)
    curve, final = checkpoint_curve(out, device=device)
    write_csv(out / "induction_curve.csv", curve)
    save_figure(plot_phase_change(curve)[0], out, "induction_curve", bbox_inches="tight", dpi=150)
    top = final.heads()[0]
    from spinlens.lm.induction import induction_formed

    formed_at = [r["step"] for r in curve if induction_formed(r["max_induction_score"], {
        "first": r["repeated_loss_first"], "repeat": r["repeated_loss_repeat"]})]
    return {"corpus": res.metadata["corpus"], "n_train_tokens": res.n_train_tokens, "n_val_tokens": res.n_val_tokens,
            "n_params": int(res.model.n_params()), "train_seconds": res.seconds,
            "val_loss": res.history[-1]["val_loss"], "val_ppl": res.history[-1]["val_ppl"],
            "top_head": top, "repeated_loss": final.repeated_loss, "icl_score": final.icl["icl_score"],
            "induction_head_formed": final.formed, "phase_change_step": formed_at[0] if formed_at else None,
            "n_checkpoints": len(res.checkpoints)}


# ------------------------------------------------------------------------------------------------ edit commands
LM_EDIT_EXAMPLES = {
    "steer": "  spinlens steer --checkpoint runs/lm --out steer-lm          # a language model from 'spinlens lm'\n",
    "pinpoint": "  spinlens pinpoint --checkpoint runs/lm --domain stdlib-code --k 2 --steps 100 --out pin-lm\n",
    "merge": "  spinlens merge --checkpoint runs/lm --domains stdlib-code stdlib-comments --out merge-lm\n",
    "quantize": "  spinlens quantize --checkpoint runs/lm --budgets 3 3.4 4 --out quant-lm\n",
}
SETTING_HELP = ("lm (default): a small language model on text, the default one of 'spinlens lm' trained here (cached in "
                "OUT/base) unless --checkpoint gives one; regression: the ICL-regression transformer (flags --D, "
                "--N, --target, --tasks, --spec, ...). A --checkpoint folder decides by what it holds")
# flags of the regression setting only (argparse dest), per command; given with the language-model setting they
# are refused with a one-line error that names '--setting regression'
REGRESSION_ONLY = {
    "steer": ("d", "n_context", "spec", "n_prompts", "n_top_heads"),
    "pinpoint": ("d", "n_context", "target", "importance", "importance_file"),
    "merge": ("d", "n_context", "tasks", "models", "method", "scale", "save"),
    "quantize": ("d", "n_context"),
}
# flags of both settings whose default differs: (language model, regression from the command's parser)
# (fine-tuning on text: 100 Adam steps at lr 1e-3, the defaults of `spinlens.lm.experiments.finetune`, keep the
# fine-tunes close to the base, where task vectors add up; docs/lm.md has 300 steps at 3e-3 too)
LM_DEFAULTS = {"steer": {"strengths": [0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0]},
               "pinpoint": {"steps": 100, "lr": 1e-3, "k": 1}, "merge": {"steps": 100, "lr": 1e-3}}
# pinpoint k = 1 of the 8 heads of the default model (2 heads are a quarter of them; docs/lm.md has both)
LM_ONLY = {"steer": ("token_class", "n_seeds"), "pinpoint": ("domain", "n_seeds"), "merge": ("domains", "n_seeds"),
           "quantize": ("n_seeds",)}


def attach_lm_edit(sub) -> None:
    """Give ``steer``, ``pinpoint``, ``merge`` and ``quantize`` the language-model setting (the default):
    ``--setting {lm,regression}``; with ``lm`` the experiment of `spinlens.lm.experiments` runs on held-out text
    of ``--checkpoint DIR`` (a folder of ``spinlens lm``) or of the default language model, trained here and
    cached in ``OUT/base``. ``--setting regression`` (or a regression ``--checkpoint``) runs the command's
    regression experiment as before; ``quantize --model DIR`` (Hugging Face) is unchanged."""
    import argparse

    for name in ("steer", "pinpoint", "merge", "quantize"):
        p = sub.choices.get(name)
        if p is None:
            continue
        opts = p._option_string_actions
        g = p.add_argument_group("language model (the default setting; --checkpoint DIR from 'spinlens lm')")
        g.add_argument("--setting", choices=("lm", "regression"), default=argparse.SUPPRESS, help=SETTING_HELP)
        owned = "--checkpoint" not in opts  # the command has no --checkpoint of its own: only LM folders here
        if owned:
            g.add_argument("--checkpoint", default=None, help="model folder; a language model from 'spinlens lm' runs "
                                                              "the experiment on held-out text")
        if "--n-seeds" not in opts:
            g.add_argument("--n-seeds", type=int, default=argparse.SUPPRESS, help="language model: seeds --seed, --seed+1, ... "
                                                                     "(>= 1, default 3)")
        if name == "steer":
            g.add_argument("--token-class", default=argparse.SUPPRESS, help="capitalised (default) | digit | newline")
        if name == "pinpoint":
            g.add_argument("--domain", default=argparse.SUPPRESS,
                           help="new text domain: a UTF-8 file or a built-in source (default stdlib-code)")
        if name == "merge":
            g.add_argument("--domains", nargs=2, default=argparse.SUPPRESS, help="two text domains (files or built-in sources) to "
                                                                    "fine-tune on and merge (default stdlib-code "
                                                                    "stdlib-comments)")
        p.epilog = (p.epilog or "") + LM_EDIT_EXAMPLES[name]
        defaults = {d: p.get_default(d) for d in (*REGRESSION_ONLY[name], "base_steps")}
        defaults.update(n_seeds=3, token_class="capitalised", domain="stdlib-code",
                        domains=["stdlib-code", "stdlib-comments"])
        shared = LM_DEFAULTS.get(name, {})
        reg_shared = {d: p.get_default(d) for d in shared}
        for a in p._actions:
            if a.dest in shared:
                a.default = argparse.SUPPRESS
                a.help = (a.help or a.dest) + (f" (default: language model {_fmt(shared[a.dest])}; regression "
                                               f"{_fmt(reg_shared[a.dest])})")
            if a.dest in (*REGRESSION_ONLY[name], "base_steps"):
                # no default in the namespace: a flag is "given" when its attribute is there (the help shows defaults)
                a.default = argparse.SUPPRESS
            if a.option_strings and a.dest in (*REGRESSION_ONLY[name], *LM_ONLY[name]) and a.help != argparse.SUPPRESS:
                _FLAGS[(name, a.dest)] = a  # its spelling read at error time (the CLI renames some flags later)
            # the help shows the regression defaults ("default: ..." of the regression setting)
            if a.dest in REGRESSION_ONLY[name] and defaults[a.dest] not in (None, False) and a.help:
                a.help += f" (regression setting; default {_fmt(defaults[a.dest])})"
            if a.dest == "base_steps":
                a.help = (f"training steps of the default base: the language model (default: 'spinlens lm' "
                          f"defaults) or the regression base (default {defaults['base_steps']})")
        inner = p.get_default("func")
        p.set_defaults(func=_lm_or(inner, name, owned, defaults, shared, reg_shared))


_FLAGS: dict = {}  # (command, dest) -> its argparse action (the flag as the help spells it)


def _fmt(v):
    return " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _is_lm_folder(path) -> bool:
    import json
    from pathlib import Path

    try:
        meta = json.loads((Path(path) / "config.json").read_text()).get("metadata", {})
    except (OSError, ValueError, AttributeError, RecursionError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == "lm"


def resolve_setting(args, name) -> str:
    """``"lm"`` or ``"regression"``: ``--model`` (quantize: a Hugging Face folder) keeps the command's own path,
    a ``--checkpoint`` folder decides by what it holds, else ``--setting`` (default ``lm``). Flags of the other
    setting, or a ``--setting`` that contradicts the checkpoint, raise a one-line error."""
    from spinlens.errors import InvalidParameterError

    ck = getattr(args, "checkpoint", None) or getattr(args, "base", None)
    if getattr(args, "model", None):
        setting = "regression"  # the command's own path: HF folders (quantize) or the old --model spelling
    elif ck is not None:
        setting = "lm" if _is_lm_folder(ck) else "regression"
        if args.setting is not None and args.setting != setting:
            raise InvalidParameterError(f"The '--setting {args.setting}' option contradicts --checkpoint {str(ck)!r}, "
                                        f"which holds a {'language' if setting == 'lm' else 'regression'} model; "
                                        "drop --setting (the checkpoint decides).")
    else:
        setting = args.setting or "lm"
    if (ck is not None or getattr(args, "model", None)) and getattr(args, "base_steps", None) is not None:
        raise InvalidParameterError("The '--base-steps' option sets how long the default base model trains; a given "
                                    "model (--checkpoint / --model) is not trained again: drop --base-steps.")
    own = REGRESSION_ONLY[name] if setting == "lm" else LM_ONLY[name]
    given = [d for d in own if getattr(args, d, None) is not None]
    if given:
        act = _FLAGS.get((name, given[0]))
        flag = act.option_strings[0] if act is not None else "--" + given[0].replace("_", "-")
        if setting == "lm":
            why = (f"--checkpoint {str(ck)!r} is a language model" if ck is not None
                   else "add '--setting regression' (the default setting is a language model)")
            raise InvalidParameterError(f"The '{flag}' option is for the regression setting; {why}.")
        raise InvalidParameterError(f"The '{flag}' option is for the language-model setting (the default); "
                                    "drop it, or drop '--setting regression' / the regression --checkpoint.")
    return setting


def _lm_or(inner, name, owned, defaults, shared=None, reg_shared=None):
    def func(args):
        for d in ("setting", *REGRESSION_ONLY[name], *LM_ONLY[name], *defaults, *(shared or {})):
            if not hasattr(args, d):
                setattr(args, d, None)
        setting = resolve_setting(args, name)
        for d in shared or {}:
            if getattr(args, d) is None:
                v = (shared if setting == "lm" else reg_shared)[d]
                setattr(args, d, list(v) if isinstance(v, (list, tuple)) else v)
        for d, v in defaults.items():
            if getattr(args, d, None) is None and d != "base_steps":
                setattr(args, d, v)
        args.setting = setting
        if setting == "lm":
            return run_lm_edit(args, name)
        if args.base_steps is None:
            args.base_steps = defaults["base_steps"]
        ck = getattr(args, "checkpoint", None)
        if ck is not None and owned:
            from spinlens.lm.train import load_lm

            load_lm(ck)  # raises the one-line "not a language model" error
        return inner(args)

    return func


def default_lm(args, *, progress=False):
    """The default language model of the LM setting: ``spinlens lm``'s defaults (`spinlens.lm.config.LMConfig`,
    corpus ``stdlib-docs``), ``--base-steps`` steps when given, seed ``--seed``; cached in ``OUT/base`` (reused
    when its config and corpus match) or, without ``--out``, trained in memory. Returns
    ``(model, tokenizer, held-out windows, folder or None, reused)``."""
    from pathlib import Path

    from spinlens.lm.analysis import heldout_windows
    from spinlens.lm.config import LMConfig
    from spinlens.lm.corpus import DEFAULT_MAX_CHARS, load_corpus, text_digest
    from spinlens.lm.train import load_lm, train_lm

    d = LMConfig()
    cfg = LMConfig(steps=d.steps if args.base_steps is None else args.base_steps, seed=args.seed)
    corpus = "stdlib-docs"
    text = load_corpus(corpus, max_chars=DEFAULT_MAX_CHARS)  # this Python's docs: a cache of another text is stale
    base = Path(args.out) / "base" if args.out else None
    if base is not None and _is_lm_folder(base):
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
    from spinlens.lm.data import eval_windows

    legacy = base is not None and without_manifest(base)  # written before manifests: replaced in place
    res = train_lm(text, cfg, out=base, corpus_name=corpus, progress=progress, force=legacy)
    # the windows `heldout_windows` reads from the folder (64 of the held-out split)
    return res.model, res.tokenizer, eval_windows(res.heldout, cfg.n_ctx, max_windows=64), base, False


def _check_lm_args(args, name) -> None:
    """The flags of the LM experiments, before any training (nothing is written when this raises)."""
    from spinlens.errors import InvalidParameterError, check_float, check_int

    check_int("seed", args.seed, low=0)
    check_int("n-seeds", args.n_seeds, low=1, high=100)
    if args.base_steps is not None:
        check_int("base-steps", args.base_steps, low=1, high=10**7)
    if name == "steer":
        for s in args.strengths:
            check_float("strengths", s)
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


def run_lm_edit(args, name) -> int:
    """The LM experiment of one edit command; files via the edit commands' writer."""
    from pathlib import Path

    from spinlens.cli._common import check_out_dir, print_json
    from spinlens.cli._common import write_experiment as _write
    from spinlens.errors import check_int
    from spinlens.lm import experiments as E
    from spinlens.lm.analysis import heldout_windows
    from spinlens.lm.corpus import load_corpus
    from spinlens.lm.train import load_lm
    from spinlens.plotting import lm as S

    _check_lm_args(args, name)
    n_seeds = args.n_seeds
    seeds = tuple(range(args.seed, args.seed + n_seeds))
    check_out_dir("out", args.out)
    # the domains' text before any model is trained or loaded (a bad file fails first)
    from spinlens.lm.corpus import BUILTIN

    # 400000 characters of a built-in domain; a file whole, as before
    texts = [load_corpus(d, max_chars=400_000 if d in BUILTIN else None)
             for d in ([args.domain] if name == "pinpoint" else args.domains if name == "merge" else [])]
    if name == "steer":
        from spinlens.errors import check_choice

        check_choice("token-class", args.token_class, ("capitalised", "digit", "newline"))
    progress = not args.no_progress and not args.json
    if args.checkpoint is None:
        if name == "pinpoint":
            from spinlens.lm.config import LMConfig

            c = LMConfig()
            check_int("k", args.k, low=1, high=c.n_layers * c.n_heads)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        model, tok, val, base, reused = default_lm(args, progress=progress)
        source = str(base) if base is not None else "default language model (in memory)"
        if not args.json:
            print(f"spinlens {name}: {'reused' if reused else 'trained'} the default language model"
                  + (f" in {base}" if base is not None else " (in memory; --out caches it in OUT/base)"), flush=True)
    else:
        model, tok, meta = load_lm(args.checkpoint)
        val = heldout_windows(model, tok, args.checkpoint)
        source = str(args.checkpoint)
        if val is None:
            from spinlens.errors import InvalidParameterError

            raise InvalidParameterError(f"The checkpoint {args.checkpoint!r} has no held-out tokens (heldout_tokens.npy).")
    if name == "pinpoint":
        check_int("k", args.k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    if name == "steer":
        strengths = tuple(dict.fromkeys([0.0, *map(float, args.strengths)]))  # 0: the unsteered model, the reference
        ds = E.steering_experiment(model, tok, val, token_class_name=args.token_class, strengths=strengths, seeds=seeds)
        fig, _ = S.plot_lm_steering(ds)
        act = E.summarise(ds.where(ds.level == "activation", drop=True), ("strength",), "class_prob")
        mod = E.summarise(ds.where(ds.level == "module", drop=True), ("intervention",), "repeat_loss")
        tokl = E.summarise(ds.where(ds.level == "token", drop=True), ("intervention",), "loss")
        summary = {"token_class": args.token_class, "class_base_rate": ds.attrs["class_base_rate"],
                   "activation_class_prob": act,
                   "activation_loss": E.summarise(ds.where(ds.level == "activation", drop=True), ("strength",), "loss"),
                   "module_repeat_loss": mod, "token_level_loss": tokl,
                   "induction_heads": ds.attrs["induction_heads"], "seeds": list(seeds)}
        if (ds.level == "neuron").any():
            summary["neuron_class_prob"] = E.summarise(ds.where(ds.level == "neuron", drop=True), ("strength",), "class_prob")
            summary["neuron_loss"] = E.summarise(ds.where(ds.level == "neuron", drop=True), ("strength",), "loss")
            summary["neuron_random_class_prob"] = E.summarise(ds.where(ds.level == "neuron_random", drop=True),
                                                              ("strength",), "class_prob")
            summary["neuron_random_loss"] = E.summarise(ds.where(ds.level == "neuron_random", drop=True), ("strength",),
                                                        "loss")
            summary["neuron_top_context_class_share"] = E.summarise(
                ds.where(ds.level.isin(["neuron", "neuron_random"]) & (ds.strength == ds.strength.max()), drop=True),
                ("level",), "top_context_class_share")
        stem = "steer_lm"
    elif name == "pinpoint":
        ds = E.pinpoint_experiment(model, tok, val, texts[0], k=args.k, n_random=args.n_random, steps=args.steps, lr=args.lr,
                                   seeds=seeds, progress=progress)
        fig, _ = S.plot_lm_pinpoint(ds)
        imp = ds.where(ds.method == "importance_heads", drop=True)
        summary = {"domain": str(args.domain), "heads": ds.attrs["heads"],
                   "importance_heads": {str(int(s)): str(c) for s, c in zip(imp.seed.values, imp.components.values)},
                   "before_target_loss": float(ds.target_loss[0]),
                   "target_gain": E.summarise(ds, ("method",), "target_gain"),
                   "general_change": E.summarise(ds, ("method",), "general_change"), "seeds": list(seeds)}
        stem = "pinpoint_lm"
    elif name == "merge":
        ta, tb = texts
        names = tuple(Path(d).stem.replace("-", "_").replace("stdlib_", "") for d in args.domains)
        ds = E.merging_experiment(model, tok, val, ta, tb, steps=args.steps, lr=args.lr, density=args.density, seeds=seeds,
                                  names=names, progress=progress)
        fig, _ = S.plot_lm_merging(ds)
        summary = {"domains": list(args.domains), "seeds": list(seeds)}
        for v in ds.data_vars:
            summary[v] = E.summarise(ds, ("method",), v)
        stem = "merge_lm"
    else:
        budgets = tuple(args.budgets) if args.budget is None else (args.budget,)
        ds = E.quantization_experiment(model, val, budgets=budgets, uniform_bits=tuple(args.uniform_bits),
                                       bits=tuple(args.bits), group_size=args.group_size,
                                       granularity=args.granularity or "head", n_random=args.n_random, seeds=seeds)
        fig, _ = S.plot_lm_quantization(ds)
        summary = {"fp_perplexity": ds.attrs["fp_perplexity"], "perplexity": E.summarise(ds, ("scheme",), "perplexity"),
                   "average_bits": E.summarise(ds, ("scheme",), "average_bits"), "seeds": list(seeds)}
        stem = "quantize_lm"
    summary = {"headline": E.headline(name, ds), "setting": "lm", "model": source, **summary}
    if "converged" in ds.attrs:  # the fine-tunes of pinpoint and merge follow the divergence rule
        summary["converged"] = bool(ds.attrs["converged"])
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write(out, stem, ds, fig, args, {"summary": summary, "checkpoint": source})
    import matplotlib.pyplot as plt

    plt.close(fig)
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
                key = ", ".join(f"{a}={b}" for a, b in r.items() if a not in ("mean", "std", "n"))
                print(f"    {key}: {r['mean']:.4g} ± {r['std']:.2g} (n={r['n']})")
        elif k != "seeds":
            print(f"  {k}: {v}")
    print(s["headline"]["text"])
