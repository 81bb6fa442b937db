"""``spinlens pinpoint --model NAME|DIR --task arithmetic|icl``: precise tuning of a pretrained LM.

`attach_llm_edit` gives ``pinpoint`` and ``merge`` the flags of this setting; the edit commands' dispatcher
(`spinlens.cli.edit_cmd`) calls `run_hf` when ``--model`` is a named pretrained model (``smollm2-135m``,
``gemma3-270m``) or a Hugging Face folder (the ``hf`` setting of `spinlens.experiment`). The logic lives in `spinlens.llm.tuning`; this module parses, calls it
once, and reports (headline, ``--json``, files under ``--out``).
"""

from __future__ import annotations

LLM_PINPOINT_EXAMPLES = """
pretrained language model (--model NAME or a Hugging Face folder):
  spinlens pinpoint --model smollm2-135m --task arithmetic --out pin-arith    # located heads+MLPs vs random heads, full, LoRA
  spinlens pinpoint --model smollm2-135m --task arithmetic --methods located full --n-seeds 1 --steps 10 --json
  spinlens pinpoint --model smollm2-135m --task icl --methods located random full --out pin-icl
  spinlens pinpoint --model smollm2-135m --task arithmetic --components L20H3 L21.mlp --out pin-given
"""
LLM_MERGE_EXAMPLES = """
pretrained language model (--model NAME: the base; --models: tuned Hugging Face folders, e.g. from pinpoint):
  spinlens merge --model smollm2-135m --models pin-arith/models/full/seed0 pin-icl/models/full/seed0 --out merge-llm
  spinlens merge --model smollm2-135m --models A B --method ties --density 0.3 --save merged-ties --json
"""
# defaults of this setting (fine-tuning a 135M model on a shared 2-core CPU: short prompts, few steps)
DEFAULTS = {"steps": 30, "lr": 1e-4, "k": 6, "n_seeds": 3}


def attach_llm_edit(sub) -> None:
    """Add the pretrained-LM flags to ``pinpoint`` and route ``--model NAME|DIR`` runs to `run_pinpoint`."""
    p = sub.choices.get("pinpoint")
    if p is None:
        return
    g = p.add_argument_group("pretrained language model (--model NAME or HF folder): precise tuning")
    g.add_argument("--task", choices=("arithmetic", "icl"), default=None,
                   help="skill to tune (default arithmetic): arithmetic (2-digit addition; gain on held-out numbers "
                        "and a second prompt format) or icl (few-shot tasks; gain on held-out tasks)")
    g.add_argument("--methods", nargs="+", choices=("located", "random", "full", "lora"), default=None,
                   help="methods to compare (default all four; lora needs peft)")
    g.add_argument("--k-mlps", type=int, default=None, help="MLPs in the located set (default 2; --k: heads, default 6)")
    g.add_argument("--components", nargs="+", default=None,
                   help="the located set, given (e.g. L20H3 L21.mlp) instead of attribution importance")
    g.add_argument("--batch-size", type=int, default=None, help="prompts per step (default 8)")
    g.add_argument("--eval-every", type=int, default=None, help="evaluate gain and cost every N steps (default 10)")
    g.add_argument("--no-save-models", action="store_true", default=None,
                   help="do not write the tuned models (default: OUT/models/METHOD/seedS, Hugging Face folders)")
    p.epilog = (p.epilog or "") + LLM_PINPOINT_EXAMPLES
    for a in p._actions:
        if a.dest == "model":
            a.help = ("a named pretrained LM (smollm2-135m, gemma3-270m) or a Hugging Face folder: precise tuning "
                      "(--task); quantize: a Hugging Face causal-LM folder")
    p = sub.choices.get("merge")
    if p is not None:
        for a in p._actions:
            if a.dest == "method":
                a.choices = [*a.choices, "module"]
                a.help = ("task_arithmetic | ties | module (heads and MLPs whole from one expert; pretrained LMs "
                          "only); with --model NAME and no --method: all three")
        p.epilog = (p.epilog or "") + LLM_MERGE_EXAMPLES


def run_hf(args, name: str) -> int:
    """The ``hf`` setting of ``pinpoint`` / ``merge`` (called by the edit commands' dispatcher)."""
    return run_pinpoint(args) if name == "pinpoint" else run_merge(args)


def _get(args, dest, default):
    v = getattr(args, dest, None)
    return default if v is None else v


def _fmt(ms, digits=3):
    m, s = ms
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def run_pinpoint(args) -> int:
    from pathlib import Path

    from spinlens.cli._common import check_out_dir, print_json
    from spinlens.errors import check_int

    task = args.task or "arithmetic"
    steps = check_int("steps", _get(args, "steps", DEFAULTS["steps"]), low=1)
    n_seeds = check_int("n_seeds", _get(args, "n_seeds", DEFAULTS["n_seeds"]), low=1)
    seed = check_int("seed", _get(args, "seed", 0), low=0)
    k = check_int("k", _get(args, "k", DEFAULTS["k"]), low=0)
    k_mlps = check_int("k_mlps", _get(args, "k_mlps", 2), low=0)
    batch_size = check_int("batch_size", _get(args, "batch_size", 8), low=1)
    eval_every = check_int("eval_every", _get(args, "eval_every", 10), low=1)
    lr = _get(args, "lr", DEFAULTS["lr"])
    methods = tuple(args.methods or ("located", "random", "full", "lora"))
    check_out_dir("out", args.out)
    say = (lambda s: None) if args.no_progress else (lambda s: print(f"spinlens pinpoint: {s}", flush=True,
                                                                      file=__import__("sys").stderr))
    from transformers import AutoTokenizer

    from spinlens.interp.hf import load_hf
    from spinlens.llm import tuning
    from spinlens.models.pretrained import resolve_model

    path = resolve_model(args.model)
    say(f"loading {args.model}")
    model = load_hf(args.model, allow_pickle_weights=bool(getattr(args, "allow_pickle_weights", False)))
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    data = tuning.arithmetic_data(seed=0) if task == "arithmetic" else tuning.icl_data(seed=0)
    out = Path(args.out) if args.out else None
    from spinlens.io import run_record

    record = run_record("pinpoint", args=args, seed=seed, model=str(args.model), task=task)
    res = tuning.precise_tuning(
        model, tok, data, methods=methods, seeds=list(range(seed, seed + n_seeds)), steps=steps, lr=lr,
        batch_size=batch_size, eval_every=eval_every, k_heads=k, k_mlps=k_mlps, components=args.components,
        save_dir=None if (out is None or bool(args.no_save_models)) else out / "models", record=record, progress=say)
    summary = summarize(res)
    if out is not None:
        write_outputs(res, out, record, summary)
    if args.json:
        print_json(summary)
    else:
        print(headline(res))
    return 0


def summarize(res) -> dict:
    """``--json``: per method the target metrics (gain keys) and every general-ability metric, mean and sd."""
    gk = res.settings["general_keys"]
    methods = {}
    for m, fin in res.final.items():
        keys = [k for k in fin if k.startswith(("gain_", "accuracy_"))] + list(gk) + [f"d_{k}" for k in gk]
        methods[m] = {k: {"mean": fin[k][0], "sd": fin[k][1]} for k in keys if k in fin}
        methods[m]["n_trainable"] = res.n_trainable[m]
        methods[m]["step_time"] = res.step_time[m]
    return {"skill": res.skill, "before": res.before, "methods": methods, "matched": res.matched,
            "verdict": res.verdict, "settings": res.settings, "components": res.components, "saved": res.saved}


def headline(res) -> str:
    s = res.settings
    gains = [k for k in next(iter(res.final.values())) if k.startswith("gain_")]
    lines = [f"precise tuning: {res.skill}, {s['steps']} steps, lr {s['lr']:g}, batch {s['batch_size']}, "
             f"seeds {s['seeds']} (mean ± sd); located: {', '.join(s['located'])}",
             "before: " + ", ".join(f"{k} {v:.3f}" for k, v in res.before.items())]
    for m, fin in res.final.items():
        lines.append(f"{m:8s} ({res.n_trainable[m]:,} params, {res.step_time[m]:.2f} s/step): "
                     + ", ".join(f"{g} {_fmt(fin[g])}" for g in gains) + " | "
                     + ", ".join(f"{k} {_fmt(fin[k])}" for k in s["general_keys"]))
    mt = res.matched
    if mt["levels"]:
        lines.append(f"cost at matched {mt['gain_key']} (levels {', '.join(f'{x:.3f}' for x in mt['levels'])}):")
        for m, per in mt["costs"].items():
            lines.append(f"  {m:8s} d_heldout_loss " + "  ".join(
                f"{a:+.4f}±{sd:.4f} (n={n})" for a, sd, n in per["d_heldout_loss"]))
    lines.append("verdict: " + res.verdict)
    return "\n".join(lines)


def write_outputs(res, out, record, summary) -> None:
    from spinlens import io
    from spinlens.plotting.edit import plot_precise_tuning

    out.mkdir(parents=True, exist_ok=True)
    keys = list(res.curves[0])
    io.save_columns({k: [r.get(k) for r in res.curves] for k in keys}, out, "pinpoint_curves")
    fig, _ = plot_precise_tuning(res.curves, gain_key=res.matched["gain_key"], matched=res.matched)
    io.save_figure(fig, out, "pinpoint_cost_vs_gain", dpi=150)
    io.write_run_json(out, {**record, "summary": summary})


def _skill_data(folder):
    """The skill an expert folder was tuned for (its run.json ``skill``), as SkillData; None if unknown."""
    import json
    from pathlib import Path

    from spinlens.llm import tuning

    try:
        skill = json.loads((Path(folder) / "run.json").read_text()).get("skill")
    except (OSError, ValueError, AttributeError):
        return None
    return {"arithmetic": tuning.arithmetic_data, "icl": tuning.icl_data}.get(skill, lambda **k: None)(seed=0)


def run_merge(args) -> int:
    from pathlib import Path

    from spinlens.cli._common import check_out_dir, print_json
    from spinlens.errors import InvalidParameterError

    if not args.models or len(args.models) < 2:
        raise InvalidParameterError("The '--models' parameter must name at least two tuned Hugging Face folders "
                                    "(the experts to merge into --model).")
    check_out_dir("out", args.out)
    if args.save:
        check_out_dir("save", args.save)
    from transformers import AutoTokenizer

    from spinlens.interp.hf import load_hf, load_hf_model
    from spinlens.llm.tuning import merge_experts
    from spinlens.models.pretrained import resolve_model

    base = load_hf(args.model)
    experts = [load_hf_model(m) for m in args.models]  # a folder that is no HF model fails here, in one line
    tok = AutoTokenizer.from_pretrained(str(resolve_model(args.model)), local_files_only=True)
    methods = [args.method] if getattr(args, "method", None) else ["task_arithmetic", "ties", "module"]
    skills = [_skill_data(m) for m in args.models]
    res = merge_experts(base, experts, tok, methods=methods, skills=skills, density=args.density or 0.3,
                        scale=args.scale, expert_names=[str(m) for m in args.models])
    out = Path(args.out) if args.out else None
    saved = {}
    from spinlens.io import run_record, write_run_json
    from spinlens.llm.tuning import save_hf_model

    record = run_record("merge", args=args, seed=getattr(args, "seed", None), model=str(args.model))
    for m, model in res.pop("models").items():
        target = Path(args.save) if (args.save and len(methods) == 1) else (out / "models" / f"merge-{m}" if out else None)
        if target is not None:
            saved[m] = save_hf_model(model, tok, target, {**record, "merge_method": m, "experts": list(args.models),
                                                           "metrics": res["methods"][m]})
    res["saved"] = saved
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_run_json(out, {**record, "summary": res})
    if args.json:
        print_json(res)
    else:
        for m, r in res["methods"].items():
            kept = ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k.startswith("kept_"))
            gen = ", ".join(f"{k} {r[k]:.3f}" for k in ("perplexity", "ioi_logit_diff", "recall_accuracy", "icl_accuracy"))
            print(f"{m:16s} kept: {kept or '-'} | {gen}")
    return 0
