"""`spinlens zoo`: attention architectures on the paper's prompts (list, train, bridge, figS8)."""

from __future__ import annotations

import argparse

from ._common import Formatter, add_command, add_yes

EXAMPLES = """  spinlens zoo list
  spinlens zoo train --arch fla --D 20 --N 100 --P 10000 --steps 1000 --out runs/fla
  spinlens zoo train --arch tf --D 10 --N 40 --online --steps 2000 --n-layers 2 --d-model 32 --json --out runs/tf
  spinlens zoo bridge --checkpoint runs/fla --json
  spinlens zoo figS8 --quick --out runs/figS8
"""

TRAIN_EXAMPLES = """  spinlens zoo train --arch fla --D 20 --N 100 --P 10000 --steps 1000 --out runs/fla
  spinlens zoo train --arch mhla --n-heads 4 --D 10 --N 50 --online --steps 500 --lr 0.01 --json --out runs/mhla
  spinlens zoo train --arch tf --D 10 --N 40 --online --steps 2000 --n-layers 2 --d-model 32 --device cuda --out runs/tf
"""

FIG_EXAMPLES = """  spinlens zoo figS8 --quick --out runs/figS8
  spinlens zoo figS8 --full --seed 1 --out runs/figS8-full
"""

BRIDGE_EXAMPLES = """  spinlens zoo bridge --checkpoint runs/fla
  spinlens zoo bridge --checkpoint runs/fla --N 100 --lam 0.005 --json
  spinlens zoo bridge --checkpoint runs/train      # a model folder written by `spinlens train`
"""


def register(sub):
    p = add_command(sub, "zoo", "Attention architectures (SLA, FLA, MHLA, SA, TF) trained on the same prompts.",
                    EXAMPLES, None)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    zsub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    zsub.required = False

    q = zsub.add_parser("list", help="list the architectures", description="List the zoo's architectures.",
                        epilog="examples:\n  spinlens zoo list\n  spinlens zoo list --json\n", formatter_class=Formatter)
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_list)

    t = zsub.add_parser("train", help="train one architecture and save a checkpoint",
                        description="Train one zoo architecture on a fixed pretraining set (--P) or online (--online) "
                        "and save it as a spinlens model folder (OUT/model.safetensors + OUT/config.json, for "
                        "--checkpoint OUT), the loss curves (CSV, NetCDF, PNG, PDF) and run.json.",
                        epilog="examples:\n" + TRAIN_EXAMPLES, formatter_class=Formatter)
    from ._prompt_args import add_prompt_args

    add_prompt_args(t, data=True, P_default=10000)
    g = t.add_argument_group("model")
    g.add_argument("--arch", default="fla", help="sla | sla-separate | fla | mhla | sa | tf")
    g.add_argument("--n-heads", type=int, default=None, help="heads (default: 1 fla/sa, 4 mhla, 2 tf)")
    g.add_argument("--d-head", type=int, default=None, help="head width (default D+1; tf: d_model // n_heads)")
    g.add_argument("--n-layers", type=int, default=None, help="tf: layers (default 2)")
    g.add_argument("--d-model", type=int, default=None, help="tf: residual width (default 32)")
    g.add_argument("--d-mlp", type=int, default=None, help="tf: MLP width (default 4 d_model; 0 = no MLP)")
    g.add_argument("--causal", action="store_true", help="sa/tf: causal mask")
    g.add_argument("--dtype", default="float32", help="float32 | float64")
    g = t.add_argument_group("training")
    g.add_argument("--online", action="store_true", help="fresh prompts every step (P → ∞) instead of a fixed set of --P")
    g.add_argument("--steps", type=int, default=1000, help="optimizer steps (>= 1)")
    g.add_argument("--batch-size", type=int, default=None, help="prompts per step (default: 256, or P when fewer)")
    g.add_argument("--optimizer", default="adam", help="adam | adamw | sgd")
    g.add_argument("--lr", type=float, default=1e-2, help="learning rate (> 0)")
    g.add_argument("--weight-decay", type=float, default=0.0,
                   help="weight decay λ₀ (>= 0; coupled for adam/sgd: the merged model's λ = λ₀/2)")
    g.add_argument("--schedule", default="cosine", help="constant | cosine")
    g.add_argument("--test-prompts", type=int, default=4096, help="fresh test prompts (>= 1)")
    g.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    g.add_argument("--out", default="runs/zoo", help="output directory")
    g.add_argument("--force", action="store_true", help="write into an --out folder that holds files of another kind "
                                                         "(they are kept; same-named ones replaced)")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    g.add_argument("--no-progress", action="store_true", help="hide the progress line")
    add_yes(g)
    t.set_defaults(func=run_train)

    b = zsub.add_parser("bridge", help="compare a trained linear model with W* and one GD step",
                        description="Mechanistic bridge (von Oswald et al. 2023) for a checkpoint of a linear model "
                        "(sla, sla-separate, fla, mhla): cosine of W_eff with W*(N, D, λ) and with the optimal "
                        "one-step GD predictor, and agreement of predictions on fresh prompts.",
                        epilog="examples:\n" + BRIDGE_EXAMPLES, formatter_class=Formatter)
    b.add_argument("--checkpoint", dest="checkpoint_flag", default=None,
                   help="spinlens model folder of a linear model (`spinlens zoo train --out DIR` or `spinlens train`)")
    b.add_argument("checkpoint", nargs="?", default=None, help=argparse.SUPPRESS)  # old positional spelling
    b.add_argument("--N", "--context-length", type=int, default=None, help="context length (default: the one stored in the checkpoint)")
    b.add_argument("--lam", "--ridge", dest="l2_strength", type=float, default=None,
                   help="λ of W* (default: the checkpoint's weight decay / 2)")
    b.add_argument("--prompts", type=int, default=4096, help="fresh prompts for the comparison")
    b.add_argument("--seed", type=int, default=0, help="seed of the fresh prompts")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(func=run_bridge)

    f = zsub.add_parser("figS8", help="reproduce Fig S8 (test error vs N across architectures)",
                        description="Test error vs N (D=20) for the cavity solution, SLA, FLA, MHLA, SA and TF trained "
                        "on the same prompts, plus the bridge table. Writes DIR/figS8/: figS8.png/.pdf, data.csv, "
                        "data.nc, bridge.csv, paper_vs_ours.csv, run.json.",
                        epilog="examples:\n" + FIG_EXAMPLES, formatter_class=Formatter)
    mode = f.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="4 values of N, short training (a few minutes on 2 CPU cores)")
    mode.add_argument("--full", dest="quick", action="store_false", help="10 values of N, 3 repeats, longer training")
    f.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    f.add_argument("--force", action="store_true", help="write into an OUT/FIG folder that holds files the figure did not write (they are kept)")
    f.add_argument("--device", default="cpu", help="torch device of the training (cpu, cuda, ...)")
    f.add_argument("--out", default="runs", help="parent output directory (the figure goes to OUT/figS8/)")
    f.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    f.set_defaults(func=run_figS8)
    return p


def run_list(args) -> int:
    from spinlens.models.zoo import ARCH_DESCRIPTIONS

    from ._common import print_json, print_table

    if args.json:
        print_json(ARCH_DESCRIPTIONS)
    else:
        print_table(list(ARCH_DESCRIPTIONS.items()))
    return 0


def run_train(args) -> int:
    import time
    from pathlib import Path

    import numpy as np

    from spinlens import io
    from spinlens.errors import check_int
    from spinlens.models.checkpoint import save_model
    from spinlens.models.zoo import ZooConfig, build_model
    from spinlens.plotting.curves import plot_training_history
    from spinlens.random import seed_from, spawn
    from spinlens.training_online import train_online

    from ._common import check_device, check_out_dir, convergence_exit, estimate_hook, print_json, print_table
    from ._prompt_args import distribution_from_args, prompts_from_args

    check_out_dir("--out", args.out, kind="zoo train", force=args.force)
    check_device("--device", args.device)

    seed = check_int("--seed", args.seed, low=0)
    r_prompts, r_test, r_init, r_train = spawn(seed, 4)
    if args.online:
        if args.data:
            from spinlens.errors import InvalidParameterError

            raise InvalidParameterError("--online and --data exclude each other (online training draws fresh prompts).")
        dist = distribution_from_args(args)
        data = dist
    else:
        dist, data = prompts_from_args(args, r_prompts)
    n_test = check_int("--test-prompts", args.test_prompts, low=1, high=10**7)
    check_int("--steps", args.steps, low=1, high=10**8)
    # a batch is drawn from the P stored prompts (or fresh ones online); more than P would silently mean P
    max_batch = 10**6 if args.online else data.n_prompts
    if args.batch_size is None:
        args.batch_size = min(256, max_batch)
    check_int("--batch-size", args.batch_size, low=1, high=max_batch)
    test = dist.replace(n_tasks=None).sample(n_test, rng=r_test)
    cfg = ZooConfig(arch=args.arch, d=dist.d, n_heads=args.n_heads, d_head=args.d_head, n_layers=args.n_layers,
                    d_model=args.d_model, d_mlp=args.d_mlp, causal=bool(args.causal), dtype=args.dtype,
                    max_pos=max(512, dist.n_context + 1))
    model = build_model(cfg, rng=r_init)
    t0 = time.perf_counter()
    try:
        res = train_online(model, data, test, n_steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer,
                           lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule, device=args.device,
                           rng=seed_from(r_train), progress=not args.no_progress and not args.json,
                           on_estimate=estimate_hook("spinlens zoo train", args,
                                                     what=f"spinlens zoo train --arch {cfg.arch} of {args.steps} steps",
                                                     shrink="fewer --steps, a smaller --batch-size or a smaller model"))
    except FloatingPointError as exc:  # the loss became non-finite: nothing worth saving
        if args.json:
            print_json({"arch": cfg.arch, "converged": False, "message": str(exc)})
        return convergence_exit("spinlens zoo train", False, f"{exc} (nothing written)", what="training")
    from spinlens.training import divergence_reason

    zero_loss = float(np.mean(test.y ** 2))
    diverged = divergence_reason(res.train_loss, zero_loss)
    out = Path(args.out)
    # the folder is one transaction (spinlens.io.folder_transaction): an error or a kill leaves it as it was
    with io.folder_transaction(out, kind="zoo train", force=args.force) as stage:
        summary = {
            "arch": cfg.arch,
            "D": dist.d,
            "N": dist.n_context,
            "P": None if args.online else data.n_prompts,
            "n_params": int(sum(p.numel() for p in model.parameters())),
            "converged": diverged is None,
            "baseline_zero_prediction": zero_loss,
            **res.to_dict(),
            **res.time_estimate.to_dict(),
            "seed": seed,
        }
        dist_info = {k: getattr(dist, k) for k in ("d", "n_context", "sigma_x", "sigma_w", "sigma_eps", "corr",
                                                   "n_tasks")}
        # OUT itself is the model folder (--checkpoint OUT in every command)
        save_model(model.to("cpu"), stage, metadata={**summary, "distribution": dist_info, "seed": seed})
        hist = res.history
        io.save_dataset(hist, stage, "history")
        io.save_columns({"step": hist.step.values, "train_loss": hist.train_loss.values, "lr": hist.lr.values},
                        stage, "train_loss")
        io.save_columns({"step": hist.eval_step.values, "test_loss": hist.test_loss.values}, stage, "test_loss")
        import matplotlib

        matplotlib.use("Agg")
        fig, _ = plot_training_history(hist, title=f"{cfg.arch}: D={dist.d}, N={dist.n_context}")
        io.save_figure(fig, stage, "loss")
        from spinlens.vocabulary import to_symbols

        io.write_run_json(stage, io.run_record("zoo train", args=args, seed=seed, config=cfg.to_dict(),
                                               distribution=to_symbols(dist_info), summary=summary,
                                               elapsed_s=time.perf_counter() - t0))
    if args.json:
        print_json(summary)
    else:
        print_table([(k, v) for k, v in summary.items() if not isinstance(v, dict)] + [("out", str(out))])
    return convergence_exit("spinlens zoo train", diverged is None, diverged or "", what="training")


def run_bridge(args) -> int:
    from spinlens.bridge import bridge_report
    from spinlens.errors import InvalidParameterError, check_float, check_int
    from spinlens.prompts import PromptDistribution

    from ._common import load_checkpoint_arg, print_json, print_table

    if args.checkpoint and args.checkpoint_flag:
        raise InvalidParameterError("Give the model folder once, under --checkpoint.")
    old = (f"'zoo bridge {args.checkpoint}': give the model folder as --checkpoint {args.checkpoint}"
           if args.checkpoint else None)
    path = args.checkpoint_flag or args.checkpoint
    if not path:
        raise InvalidParameterError("The '--checkpoint' parameter is required: a model folder written by "
                                    "`spinlens zoo train` or `spinlens train`.")
    model, ck = load_checkpoint_arg(path, transformer=False, deprecated=old)
    meta = ck.metadata
    dist_info = dict(meta.get("distribution") or {})
    N = args.N if args.N is not None else dist_info.get("n_context")
    if N is None:
        raise InvalidParameterError("The '--N' parameter is required: the checkpoint does not store its context length.")
    dist_info.update(d=model.config.d, n_context=check_int("--N", N, low=1))
    dist_info["n_tasks"] = None
    dist = PromptDistribution(**dist_info)
    if args.l2_strength is None:
        wd = float(meta.get("weight_decay", 0.0) or 0.0)
        lam = wd / 2 if meta.get("optimizer", "adam") != "adamw" else 0.0
    else:
        lam = check_float("--lam", args.l2_strength, low=0)
    rep = bridge_report(model, dist, l2_strength=lam, n_prompts=check_int("--prompts", args.prompts, low=10),
                        rng=check_int("--seed", args.seed, low=0))
    if args.json:
        from spinlens.vocabulary import to_symbols

        print_json(to_symbols(rep.to_dict()))
    else:
        print_table(list(rep.to_dict().items()))
    return 0


def run_figS8(args) -> int:
    from pathlib import Path

    from spinlens.errors import check_int
    from spinlens.reproduce import figS8, run_figure

    from ._common import check_device, check_out_dir, print_json

    seed = check_int("--seed", args.seed, low=0)
    check_out_dir("--out", args.out)
    check_out_dir("--out", Path(args.out) / "figS8", kind="reproduce", force=args.force)
    check_device("--device", args.device)
    figS8.DEFAULT_DEVICE = args.device
    res = run_figure("figS8", args.out, quick=args.quick, seed=seed, echo=None if args.json else print,
                     force=args.force)
    if args.json:
        print_json({"summary": res.get("summary", {}), "out_dir": res["out_dir"], "elapsed_s": res["elapsed_s"],
                    "max_deviation": res.get("max_deviation")})
    return 0

