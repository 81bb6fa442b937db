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
    from spinlens.errors import InvalidParameterError, check_int
    from spinlens.random import spawn
    from spinlens.training_online import zoo_train_run

    from ._common import check_device, check_out_dir, convergence_exit, estimate_hook, print_json, print_table
    from ._prompt_args import distribution_from_args, prompts_from_args

    check_out_dir("--out", args.out, kind="zoo train", force=args.force)
    check_device("--device", args.device)
    seed = check_int("--seed", args.seed, low=0)
    if args.online and args.data:
        raise InvalidParameterError("--online and --data exclude each other (online training draws fresh prompts).")
    dist, data = (distribution_from_args(args),) * 2 if args.online else prompts_from_args(args, spawn(seed, 4)[0])
    cfg = {k: getattr(args, k) for k in ("arch", "n_heads", "d_head", "n_layers", "d_model", "d_mlp", "dtype")}
    run = zoo_train_run(
        {**cfg, "causal": bool(args.causal)}, dist, data, args.out, steps=args.steps, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule,
        n_test=args.test_prompts, device=args.device, seed=seed, progress=not args.no_progress and not args.json,
        force=args.force, record_args=args,
        on_estimate=estimate_hook("spinlens zoo train", args, what=f"spinlens zoo train --arch {args.arch} of "
                                  f"{args.steps} steps", shrink="fewer --steps, a smaller --batch-size or a smaller model"))
    if args.json:
        print_json(run.summary)
    elif run.out is not None:
        print_table([(k, v) for k, v in run.summary.items() if not isinstance(v, dict)] + [("out", str(run.out))])
    return convergence_exit("spinlens zoo train", run.converged, run.message, what="training")


def run_bridge(args) -> int:
    from spinlens.bridge import bridge_checkpoint
    from spinlens.errors import InvalidParameterError

    from ._common import print_json, print_table

    if args.checkpoint and args.checkpoint_flag:
        raise InvalidParameterError("Give the model folder once, under --checkpoint.")
    old = (f"'zoo bridge {args.checkpoint}': give the model folder as --checkpoint {args.checkpoint}"
           if args.checkpoint else None)
    path = args.checkpoint_flag or args.checkpoint
    if not path:
        raise InvalidParameterError("The '--checkpoint' parameter is required: a model folder written by "
                                    "`spinlens zoo train` or `spinlens train`.")
    rep = bridge_checkpoint(path, n_context=args.N, l2_strength=args.l2_strength, n_prompts=args.prompts,
                            rng=args.seed, deprecated=old).to_dict()
    if args.json:
        from spinlens.vocabulary import to_symbols

        print_json(to_symbols(rep))
    else:
        print_table(list(rep.items()))
    return 0


def run_figS8(args) -> int:
    from spinlens.reproduce import reproduce_run

    from ._common import print_json

    res = reproduce_run("figS8", args.out, quick=args.quick, seed=args.seed, echo=None if args.json else print,
                        force=args.force, announce=False, device=args.device)[0]
    if args.json:
        print_json({k: res[k] for k in ("summary", "out_dir", "elapsed_s", "max_deviation")})
    return 0
