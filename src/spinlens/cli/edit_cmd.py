"""``spinlens steer | pinpoint | merge | quantize``: act on what interpretability found.

Each command is parse → one library call → report, through the one experiment layer (`spinlens.experiment`):
`resolve_source` decides the setting from the model arguments — ``lm`` (the default: the language-model
experiments of `spinlens.lm.experiments.run_edit` on held-out text of ``--checkpoint DIR`` from ``spinlens lm``
or of the default LM trained here), ``regression`` (the ICL-regression transformer of `spinlens.edit.experiments`:
``--checkpoint DIR`` or a base trained here in seconds, cached in ``OUT/base``), or ``hf`` (``--model DIR|NAME``:
a Hugging Face causal LM or a named pretrained model) — and `check_setting_options` refuses, in one line, the
flags of another setting. Heavy imports happen inside the command functions.
"""

from __future__ import annotations

import argparse

from spinlens.cli._common import add_command

STEER_EXAMPLES = """  spinlens steer --out steer-out                      # default LM (trained once, cached in steer-out/base): steering on held-out text
  spinlens steer --setting regression --out steer-reg # ICL-regression transformer: function/task vectors
  spinlens steer --setting regression --spec spec.yaml --out steer-spec --json   # apply a spec file of interventions
  # spec.yaml:
  #   interventions:
  #     - {type: add, hook: blocks.1.hook_resid_pre, vector: v.npy, strength: 2.0, positions: -1}
  #     - {type: ablate, hook: blocks.0.attn.hook_result, head: 1, mode: mean}
  #     - {type: neurons, hook: blocks.0.mlp.hook_post, neurons: [3, 7], scale: 0}
  #     - {type: tokens, op: shuffle_labels}
"""
PINPOINT_EXAMPLES = """  spinlens pinpoint --out pin-out                     # default LM: 2 heads chosen by importance on stdlib-code vs induction / random heads vs full
  spinlens pinpoint --setting regression --out pin-reg  # regression: top-2 heads vs random vs bottom vs full fine-tuning
  spinlens pinpoint --setting regression --target noisy --k 1 --importance attribution --steps 200 --out pin-noisy
  spinlens pinpoint --setting regression --importance-file scores.nc --out pin-custom   # DataArray (layer, head)
"""
MERGE_EXAMPLES = """  spinlens merge --out merge-out                      # default LM: fine-tune on stdlib-code and stdlib-comments, merge (task arithmetic λ, TIES)
  spinlens merge --setting regression --out merge-reg # regression: two task families, merged 4 ways
  spinlens merge --setting regression --tasks corr noisy --density 0.5 --out merge-cn
  spinlens merge --checkpoint runs/base --models runs/ft-a runs/ft-b --method ties --save runs/merged
"""
QUANTIZE_EXAMPLES = """  spinlens quantize --out quant-out                   # default LM: held-out perplexity vs average bits, guided vs uniform vs random
  spinlens quantize --budgets 3 3.4 4 --group-size 16 --out quant-g16
  spinlens quantize --setting regression --out quant-reg   # the ICL-regression transformer: MSE vs average bits
  spinlens quantize --setting regression --budget 3.4 --json --out quant-one    # one guided allocation, as JSON
  spinlens quantize --setting regression --granularity layer --out quant-layer  # one bit width per block
  # a local Hugging Face causal LM (save_pretrained folder): one bit width per Linear per layer,
  # costs = measured KL increase on 8 random-token sequences (or --calib-text / --calib-tokens)
  spinlens quantize --model ./tiny-gpt2 --budgets 3 3.4 4 --out quant-hf
  spinlens quantize --model ./tiny-gpt2 --budget 3.4 --json --save ./tiny-gpt2-q3.4   # guided bits, saved model
  spinlens quantize --model ./tiny-gpt2 --granularity module --importance fisher --calib-tokens ids.npy --out quant-hf2
  spinlens quantize --model ./tiny-llama --crosscheck torchao hqq --json   # our RTN vs torchao / HQQ (if installed)
  spinlens quantize --model smollm2-135m --study --out runs/q-smol    # pretrained LLM: guided 3.4 vs uniform, random, HQQ, torchao
"""


def _common(p, *, steps_default=300):
    p.add_argument("--checkpoint", help="spinlens model folder: a language model from `spinlens lm`, or a regression "
                   "Transformer (e.g. from `spinlens zoo train --arch tf --out DIR`); default: train the base of "
                   "the setting, cached in OUT/base")
    p.add_argument("--model", help="quantize: a Hugging Face causal-LM folder (a spinlens model here is deprecated: "
                                    "use --checkpoint)")
    p.add_argument("--allow-pickle-weights", action="store_true",
                   help="also load pickled PyTorch .bin weights of a Hugging Face --model folder (default: "
                        ".safetensors only; a pickle can run code, so only for folders you trust)")
    p.add_argument("--D", "--token-dim", dest="d", type=int, default=5, help="token dimension D of the default base")
    p.add_argument("--N", "--context-length", dest="n_context", type=int, default=10, help="context length N of the default base")
    p.add_argument("--base-steps", type=int, default=2000, help="training steps of the default base")  # help: lm_cmd
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (figures PNG+PDF, data, run.json)")
    p.add_argument("--json", action="store_true", help="print the main result as one JSON line")
    p.add_argument("--no-progress", action="store_true")


def register(sub) -> None:
    p = add_command(sub, "steer", "Steer a model: token/activation/neuron/module interventions, function vectors",
                    STEER_EXAMPLES, _steer)
    _common(p)
    p.add_argument("--spec", help="JSON/YAML intervention spec; without it, run the function-vector experiment")
    p.add_argument("--strengths", type=float, nargs="+", default=[0, 0.5, 1, 2, 3, 4])
    p.add_argument("--n-top-heads", type=int, default=3)
    p.add_argument("--n-prompts", type=int, default=256)

    p = add_command(sub, "pinpoint", "Pinpoint tuning of important heads vs random heads vs full fine-tuning",
                    PINPOINT_EXAMPLES, _pinpoint)
    _common(p)
    p.add_argument("--target", choices=["corr", "noisy", "aniso"], default="corr",
                   help="shifted task: positions correlated (corr 0.7), noisy context labels (σ 0.5), anisotropic task prior")
    p.add_argument("--k", type=int, default=2, help="number of heads to tune")
    p.add_argument("--n-random", type=int, default=3, help="random draws of k heads")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--importance", choices=["patching", "attribution"], default="patching")
    p.add_argument("--importance-file", help="NetCDF DataArray (layer, head) of importance scores")

    p = add_command(sub, "merge", "Merge fine-tunes of one base: task arithmetic, TIES, neuron-level merge",
                    MERGE_EXAMPLES, _merge)
    _common(p)
    p.add_argument("--tasks", nargs=2, choices=["corr", "noisy", "aniso"], default=["corr", "aniso"])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--density", type=float, default=0.3, help="TIES: fraction of each task vector kept")
    p.add_argument("--base", help=argparse.SUPPRESS)  # deprecated spelling of --checkpoint
    p.add_argument("--models", nargs="+", help="fine-tuned spinlens model folders to merge into --checkpoint (the base)")
    p.add_argument("--method", choices=["task_arithmetic", "ties"], default="task_arithmetic")
    p.add_argument("--scale", type=float, default=None, help="λ (default 1/T for task arithmetic, 1 for TIES)")
    p.add_argument("--save", help="with --models: folder for the merged model")

    p = add_command(sub, "quantize", "Importance-guided mixed-precision fake quantization vs uniform bits",
                    QUANTIZE_EXAMPLES, _quantize)
    _common(p)
    p.add_argument("--budgets", type=float, nargs="+", default=[2.5, 3.0, 3.4, 4.0, 5.0])
    p.add_argument("--budget", type=float, help="only this budget: print its guided allocation (with --json)")
    p.add_argument("--uniform-bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8])
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8], help="bit widths to choose from")
    p.add_argument("--group-size", type=int, default=None,
                   help="weights per quantization group (default: 32; with --study 48, off the published models' "
                        "4-bit grid of 32)")
    p.add_argument("--granularity", choices=["head", "module", "layer", "linear"], default=None,
                   help="components: heads + MLPs (default), attention layers + MLPs, or blocks; for an HF "
                        "model: each Linear per layer (default), attention + MLP per layer, or layers")
    p.add_argument("--n-random", type=int, default=3)
    hf = p.add_argument_group("Hugging Face models (--model DIR)")
    hf.add_argument("--importance", choices=["measured", "fisher"], default="measured",
                    help="cost per (component, bits): measured metric increase, or empirical-Fisher estimate")
    hf.add_argument("--metric", choices=["kl", "loss"], default="kl",
                    help="measured cost and evaluation: KL to the full-precision model, or the LM loss")
    hf.add_argument("--calib-text", help="text file, tokenized by the tokenizer saved with the model")
    hf.add_argument("--calib-tokens", help="token ids: .npy or whitespace-separated integers")
    hf.add_argument("--n-seq", type=int, default=8, help="calibration (and evaluation) sequences")
    hf.add_argument("--seq-len", type=int, default=32, help="tokens per sequence")
    hf.add_argument("--save", help="write the model fake-quantized with the guided allocation at the first budget "
                                   "(save_pretrained folder + spinlens_quantization.json)")
    hf.add_argument("--crosscheck", nargs="+", choices=["torchao", "hqq", "hqq-opt"],
                    help="only compare our RTN with these libraries at --bits/--group-size (optional packages; "
                         "hqq-opt: HQQ with its half-quadratic optimisation)")

    from spinlens.cli._edit_llm import (
        attach_llm_edit,  # --model NAME|DIR: precise tuning / merging (spinlens.llm.tuning)
    )

    attach_llm_edit(sub)

    from spinlens.cli._quantize_llm import add_study_args  # --model NAME --study: pretrained LLM, own module

    add_study_args(sub.choices["quantize"])
    from spinlens.cli._edit_settings import settings  # the settings (lm / regression / hf) and the dispatcher

    for name in ("steer", "pinpoint", "merge", "quantize"):
        settings(sub.choices[name], name)


# ------------------------------------------------------------------------------------------------ helpers


def _check_common(args):
    """Validate the shared flags before any work (nothing is written when this raises)."""
    from spinlens.cli._common import check_out_dir
    from spinlens.errors import check_int

    check_int("d", args.d, low=1, high=64)
    check_int("n_context", args.n_context, low=1, high=512)
    check_int("base_steps", args.base_steps, low=0, high=10**6)
    check_int("seed", args.seed, low=0)
    check_out_dir("out", args.out)


def _setup(args):
    """The regression setting's model (``--checkpoint`` or the base trained here) and the output folder."""
    from pathlib import Path

    from spinlens.experiment import open_regression

    _check_common(args)
    src = _source(args)
    out = Path(args.out) if args.out else None
    if out and src.path is None:
        out.mkdir(parents=True, exist_ok=True)
    model, args.d, args.n_context = open_regression(src, d=args.d, n_context=args.n_context, out=out,
                                                    base_steps=args.base_steps, seed=args.seed,
                                                    progress=not args.no_progress)
    if out:  # a bad --checkpoint fails before OUT is created
        out.mkdir(parents=True, exist_ok=True)
    return model, out


def _source(args):
    """The `spinlens.experiment.ModelSource` the dispatcher resolved (resolved here for a direct call)."""
    src = getattr(args, "source", None)
    if src is None:
        from spinlens.experiment import resolve_source

        src = resolve_source("", checkpoint=getattr(args, "checkpoint", None), model=getattr(args, "model", None),
                             base=getattr(args, "base", None))
        args.source = src
    return src


# the writer of every edit experiment (also used by the language-model experiments)
from spinlens.cli._common import write_experiment as _write  # noqa: E402

# ----------------------------------------------------------------------------------------------- commands


def _steer(args):
    import numpy as np

    from spinlens.cli._common import print_json, print_table
    from spinlens.edit.experiments import apply_spec, checked_spec
    from spinlens.errors import check_float, check_int

    _check_common(args)
    check_int("n_prompts", args.n_prompts, low=1, high=10**6)
    check_int("n_top_heads", args.n_top_heads, low=1, high=10**4)
    for s in args.strengths:
        check_float("strengths", s)
    spec = checked_spec(args.spec) if args.spec else None  # every entry checked before any model is trained
    model, out = _setup(args)
    if spec is not None:
        res, cols = apply_spec(model, spec, n_prompts=args.n_prompts, n_context=args.n_context, seed=args.seed,
                               name=args.spec)
        if out:
            from spinlens import io

            io.save_columns(cols, out, "steered")
            io.write_run_json(out, io.run_record("steer", args=args, seed=args.seed, result=res))
        print_json(res) if args.json else print_table(list(res.items()))
        return 0
    from spinlens.cli._common import print_headline
    from spinlens.edit.experiments import headline, steering_experiment
    from spinlens.plotting.edit import plot_steering

    check_int("n_top_heads", args.n_top_heads, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    ds = steering_experiment(model, n_context=args.n_context, strengths=args.strengths, n_top_heads=args.n_top_heads, n_prompts=args.n_prompts,
                             rng=args.seed)
    fig, _ = plot_steering(ds)
    head = headline("steer", ds)
    _write(out, "steering", ds, fig, args, {"headline": head})
    best = np.unravel_index(np.argmax(ds["recovery"].values), ds["recovery"].shape)
    res = {"recovery_icl": ds.attrs["recovery_icl"], "best_function_vector_recovery": float(ds["recovery"].values[best]),
           "best_layer": str(ds["layer"].values[best[0]]), "best_strength": float(ds["strength"].values[best[1]]),
           "best_mean_diff_recovery": float(ds["recovery_mean_diff"].values.max()),
           "best_task_vector_recovery": float(ds["recovery_task_vector"].values.max()), "fv_heads": ds.attrs["fv_heads"]}
    if args.json:
        print_json({**res, "headline": head})
    else:
        print_table(list(res.items()))
        print_headline(head)
    return 0


def _pinpoint(args):
    from spinlens.cli._common import print_headline, print_json
    from spinlens.edit.experiments import headline, pinpoint_experiment
    from spinlens.errors import InvalidParameterError, check_float, check_int
    from spinlens.plotting.edit import plot_pinpoint

    _check_common(args)
    check_int("k", args.k, low=1)
    check_int("steps", args.steps, low=1)
    check_int("n_random", args.n_random, low=1)  # the uninformed baseline is part of the result
    check_float("lr", args.lr, low=0, low_open=True)
    imp = args.importance
    imp_da = None
    if args.importance_file:
        import xarray as xr

        from spinlens.io import check_regular_file

        check_regular_file("importance_file", args.importance_file)  # a FIFO would block the read
        try:
            imp_da = xr.open_dataarray(args.importance_file)
        except (OSError, ValueError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidParameterError(f"The 'importance_file' parameter must be a NetCDF file holding one DataArray "
                                        f"(layer, head): cannot read {args.importance_file!r}: {msg}") from None
        if imp_da.ndim != 2:
            raise InvalidParameterError(f"The 'importance_file' parameter must hold a 2-d DataArray (layer, head). "
                                        f"Got dims {imp_da.dims}.")
    model, out = _setup(args)
    check_int("k", args.k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    if imp_da is not None:
        shape = (model.cfg.n_layers, model.cfg.n_heads)
        if tuple(imp_da.shape) != shape:
            raise InvalidParameterError(f"The 'importance_file' parameter must hold a (layer, head) = {shape} array "
                                        f"for this model. Got shape {tuple(imp_da.shape)}.")
        ds = _pinpoint_with(model, imp_da, args)
    else:
        ds = pinpoint_experiment(model, n_context=args.n_context, target=args.target, k=args.k, n_random=args.n_random, steps=args.steps,
                                 lr=args.lr, importance=imp, rng=args.seed, progress=not args.no_progress)
    fig, _ = plot_pinpoint(ds)
    head = headline("pinpoint", ds)
    extra = {"headline": head}
    if out:
        extra["delta"] = _save_top_delta(model, ds, args, out)
    _write(out, "pinpoint", ds, fig, args, extra)
    df = ds[["method", "components", "target_mse", "general_mse", "target_gain", "general_change", "n_trainable"]]
    df = df.drop_vars([v for v in ("imp_layer", "head") if v in df.coords]).to_dataframe()
    if args.json:
        print_json({**df.reset_index().to_dict(orient="list"), "headline": head})
    else:
        print(df.to_string(float_format=lambda x: f"{x:.4g}"))
        print_headline(head)
    return 0


def _pinpoint_with(model, imp_da, args):
    from spinlens.edit._data import sample_regression_prompts
    from spinlens.edit.experiments import _task_kwargs
    from spinlens.edit.pinpoint import pinpoint_comparison
    from spinlens.random import spawn

    d, n = model.cfg.d_in - 1, args.n_context
    g = spawn(args.seed, 4)
    kw = _task_kwargs(args.target, d)
    Ztr, ytr, _ = sample_regression_prompts(8192, d, n, rng=g[0], **kw)
    Zte, yte, _ = sample_regression_prompts(2048, d, n, rng=g[1], **kw)
    Zg, yg, _ = sample_regression_prompts(2048, d, n, rng=g[2])
    ds = pinpoint_comparison(model, (Ztr, ytr, Zte, yte), (Zg, yg), importance=imp_da, kind="head", k=args.k,
                             n_random=args.n_random, lr=args.lr, steps=args.steps, rng=g[3])
    ds["importance"] = (("imp_layer", "head"), imp_da.values)
    ds.attrs.update(target=args.target, importance=str(args.importance_file), k=args.k)
    return ds


def _save_top_delta(model, ds, args, out):
    from spinlens.edit._data import sample_regression_prompts
    from spinlens.edit.experiments import _task_kwargs
    from spinlens.edit.pinpoint import pinpoint_tune, save_delta

    comps = str(ds["components"].values[list(ds["method"].values).index("importance")]).split(",")
    d, n = model.cfg.d_in - 1, args.n_context
    Z, y, _ = sample_regression_prompts(8192, d, n, rng=args.seed, **_task_kwargs(args.target, d))
    res = pinpoint_tune(model, comps, Z, y, lr=args.lr, steps=args.steps, rng=args.seed)
    n_saved = save_delta(out / "pinpoint_delta.safetensors", model, res.model, res.masks,
                         metadata={"components": comps, "target": args.target})
    return {"file": "pinpoint_delta.safetensors", "components": comps, "n_entries": n_saved}


def _merge(args):
    from spinlens.cli._common import print_json
    from spinlens.errors import InvalidParameterError, check_float, check_int

    check_float("density", args.density, low=0, high=1, low_open=True)
    check_int("steps", args.steps, low=1)
    check_float("lr", args.lr, low=0, low_open=True)
    if args.scale is not None:
        check_float("scale", args.scale)
    from spinlens.cli._common import check_out_dir, load_checkpoint_arg, warn_deprecated
    from spinlens.experiment import load_spinlens_model

    src = _source(args)
    if args.models:
        from spinlens.edit.merging import merge_models
        from spinlens.models.checkpoint import save_model

        if src.path is None or not args.save:
            raise InvalidParameterError("Merging saved models needs --checkpoint (the base) and --save (a folder).")
        check_out_dir("save", args.save)
        base, ck = load_spinlens_model(src)
        models = [load_checkpoint_arg(p, flag="models")[0] for p in args.models]
        if args.save.endswith(".safetensors"):
            warn_deprecated(f"--save {args.save}: the merged model is written as a model folder")
        kw = {"density": args.density, "scale": 1.0 if args.scale is None else args.scale} if args.method == "ties" \
            else {"scale": args.scale}
        merged = merge_models(base, models, args.method, **kw)
        save_model(merged, args.save, metadata={**ck.metadata, "merge": {"method": args.method, **kw,
                                                                          "models": list(args.models)}})
        print_json({"saved": args.save, "method": args.method, **kw}) if args.json else print(f"saved {args.save}")
        return 0
    from spinlens.cli._common import print_headline
    from spinlens.edit.experiments import headline, merging_experiment
    from spinlens.plotting.edit import plot_merging

    if args.tasks[0] == args.tasks[1]:
        raise InvalidParameterError(f"The 'tasks' parameter must name two different task families. Got {args.tasks}.")
    if args.save:
        raise InvalidParameterError("The '--save' option needs '--models' (fine-tuned models to merge).")
    model, out = _setup(args)
    ds = merging_experiment(model, n_context=args.n_context, tasks=tuple(args.tasks), steps=args.steps, lr=args.lr, density=args.density,
                            rng=args.seed, progress=not args.no_progress)
    fig, _ = plot_merging(ds)
    head = headline("merge", ds)
    _write(out, "merging", ds, fig, args, {"headline": head})
    table = ds["mse"].to_pandas()
    if args.json:
        print_json({m: dict(zip(table.columns, table.loc[m].tolist())) for m in table.index})
    else:
        print(table.to_string(float_format=lambda x: f"{x:.4g}"))
        print_headline(head)
    return 0


def _quantize(args):
    import json

    from spinlens.cli._common import check_out_dir, print_json
    from spinlens.edit.experiments import headline, quantization_experiment
    from spinlens.errors import InvalidParameterError, check_float, check_int
    from spinlens.plotting.edit import plot_quantization

    study = bool(getattr(args, "study", False))
    if args.group_size is None:
        args.group_size = 48 if study else 32  # the study: off the published models' 4-bit grid of 32
    check_int("group_size", args.group_size, low=1, high=1 << 20)
    check_int("n_random", args.n_random, low=0)  # 0: no random baseline (e.g. only --save a quantized model)
    check_int("n_seq", args.n_seq, low=1, high=4096)
    check_int("seq_len", args.seq_len, low=2)
    _check_common(args)
    check_out_dir("save", args.save)
    src = _source(args)
    for b in args.bits + args.uniform_bits:
        check_int("bits", b, low=1, high=16)
    budgets = [args.budget] if args.budget is not None else args.budgets
    for b in budgets:
        check_float("budget", b, low=min(args.bits), high=max(args.bits))
    if len(set(args.bits)) != len(args.bits):
        raise InvalidParameterError(f"The 'bits' parameter must not repeat values. Got {args.bits}.")
    if study:
        from spinlens.cli._quantize_llm import run_study

        return run_study(args)
    if src.setting == "hf":
        args.model = src.path
        return _quantize_hf(args, budgets)
    from spinlens.cli._common import check_hf_only_flags

    check_hf_only_flags(args)
    if args.granularity == "linear":
        raise InvalidParameterError("The 'granularity' parameter 'linear' is for Hugging Face models; use head, module or layer.")
    args.granularity = args.granularity or "head"
    model, out = _setup(args)
    ds = quantization_experiment(model, n_context=args.n_context, budgets=budgets, uniform_bits=args.uniform_bits, bits=sorted(args.bits),
                                 group_size=args.group_size, n_random=args.n_random, granularity=args.granularity,
                                 rng=args.seed,
                                 progress=not args.no_progress)
    fig, _ = plot_quantization(ds)
    head = headline("quantize", ds) if args.n_random else None  # the verdict needs the random baseline
    _write(out, "quantization", ds, fig, args, {"headline": head} if head else None)
    df = ds.drop_vars("bits_json").to_dataframe()
    if args.budget is not None and args.json:
        sel = (ds["scheme"].values == "guided_ablation")
        i = int(sel.nonzero()[0][0])
        print_json({"budget": args.budget, "average_bits": float(ds["average_bits"].values[i]),
                    "mse": float(ds["mse"].values[i]), "fp_mse": ds.attrs["fp_mse"],
                    "bits": json.loads(str(ds["bits_json"].values[i]))})
    elif args.json:
        print_json({**df.reset_index().to_dict(orient="list"), **({"headline": head} if head else {})})
    else:
        print(df.to_string(float_format=lambda x: f"{x:.4g}"))
        if head:
            from spinlens.cli._common import print_headline

            print_headline(head)
    return 0


def _calib_tokens(args, model, rng):
    from pathlib import Path

    import numpy as np

    from spinlens.edit.hf_quantization import calibration_tokens
    from spinlens.errors import InvalidParameterError

    n = 2 * args.n_seq  # first half calibrates, second half evaluates
    if args.calib_text:
        p = Path(args.calib_text)
        if not p.is_file():
            raise InvalidParameterError(f"The 'calib_text' parameter must be an existing text file. Got {str(p)!r}.")
        ids = calibration_tokens(model, n, args.seq_len, text=p.read_text())
    elif args.calib_tokens:
        p = Path(args.calib_tokens)
        if not p.is_file():
            raise InvalidParameterError(f"The 'calib_tokens' parameter must be an existing file. Got {str(p)!r}.")
        try:
            arr = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, dtype=np.int64).reshape(-1)
        except ValueError as exc:
            raise InvalidParameterError(f"Cannot read token ids from {str(p)!r}: {exc}") from None
        ids = calibration_tokens(model, n, args.seq_len, tokens=arr)
    else:
        ids = calibration_tokens(model, n, args.seq_len, rng=rng)
    if ids.shape[0] < 2:
        raise InvalidParameterError(f"Need at least {2 * args.seq_len} calibration tokens (2 sequences of --seq-len).")
    h = ids.shape[0] // 2
    return ids[:h], ids[h:]


def _quantize_hf(args, budgets):
    """``spinlens quantize --model DIR``: per-module mixed precision of a local HF causal LM."""
    import json
    from pathlib import Path

    from spinlens.cli._common import check_out_dir, print_json
    from spinlens.edit import hf_quantization as H
    from spinlens.errors import InvalidParameterError, check_int
    from spinlens.plotting.edit import plot_quantization

    check_int("n_seq", args.n_seq, low=1, high=4096)
    check_int("seq_len", args.seq_len, low=2)
    gran = args.granularity or "linear"
    if gran == "head":
        raise InvalidParameterError("The 'granularity' parameter must be linear, module or layer for a Hugging Face model.")
    model = H.load_hf_causal_lm(args.model, allow_pickle_weights=getattr(args, "allow_pickle_weights", False))
    calib, test = _calib_tokens(args, model, args.seed)
    if args.crosscheck:
        res = {}
        for lib in args.crosscheck:
            fn = H.torchao_crosscheck if lib == "torchao" else H.hqq_crosscheck
            kw = {"optimize": True} if lib == "hqq-opt" else {}
            try:
                res[lib] = [fn(model, b, group_size=args.group_size, ids=test, **kw) for b in sorted(args.bits)]
            except ImportError as exc:
                raise InvalidParameterError(f"--crosscheck {lib} needs the optional package: {exc}") from None
        if args.json:
            print_json(res)
        else:
            for lib, rows in res.items():
                for r in rows:
                    print(lib, " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
        return 0
    out = Path(args.out) if args.out else None
    if out:
        check_out_dir("out", out)
        out.mkdir(parents=True, exist_ok=True)
    ds = H.hf_quantization_experiment(model, calib, test, budgets=budgets, uniform_bits=args.uniform_bits,
                                      bits=sorted(args.bits), granularity=gran, importance=args.importance,
                                      metric=args.metric, group_size=args.group_size, n_random=args.n_random,
                                      rng=args.seed, progress=not args.no_progress)
    fig, _ = plot_quantization(ds)
    from spinlens.models.pretrained import resolve_model

    _write(out, "quantization", ds, fig, args, extra={"model_dir": str(Path(resolve_model(args.model)).resolve())})
    i = int((ds["scheme"].values == f"guided_{args.importance}").nonzero()[0][0])  # guided, first budget
    guided = json.loads(str(ds["bits_json"].values[i]))
    if args.save:
        q = H.quantize_hf(model, guided, granularity=gran, group_size=args.group_size)
        q.save_pretrained(args.save)
        from spinlens.io import write_json

        write_json(Path(args.save, "spinlens_quantization.json"),
                   {"bits": guided, "granularity": gran, "group_size": args.group_size, "budget": budgets[0],
                    "average_bits": float(ds["average_bits"].values[i]), "note": "fake-quantized float weights"},
                   indent=1)
    df = ds.drop_vars("bits_json").to_dataframe()
    if args.budget is not None and args.json:
        print_json({"budget": args.budget, "average_bits": float(ds["average_bits"].values[i]),
                    "kl": float(ds["kl"].values[i]), "loss": float(ds["loss"].values[i]),
                    "fp_loss": ds.attrs["fp_loss"], "bits": guided})
    elif args.json:
        print_json(df.reset_index().to_dict(orient="list"))
    else:
        print(df.to_string(float_format=lambda x: f"{x:.4g}"))
    return 0
