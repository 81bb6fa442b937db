"""`spinlens train`: train the simplified linear attention (merged or separate) on prompts."""

from __future__ import annotations

from ._common import add_command, add_yes
from ._prompt_args import add_prompt_args

EXAMPLES = """  spinlens train --D 10 --N 100 --P 1000 --epochs 300 --lr 0.01 --out runs/train
  spinlens train --model separate --D 20 --N 100 --P 10000 --weight-decay 0.01 --lr 1e-3 --epochs 5000 --out runs/sep
  spinlens train --data prompts.npz --optimizer sgd --lr 0.05 --batch-size 256 --out runs/sgd
"""


def register(sub):
    p = add_command(sub, "train", "Train a simplified linear-attention model with Adam or SGD and save its weights.", EXAMPLES, run)
    add_prompt_args(p, P_default=1000)
    g = p.add_argument_group("training")
    g.add_argument("--model", default="merged", help="merged | separate")
    g.add_argument("--optimizer", default="adam", help="adam | sgd")
    g.add_argument("--lr", type=float, default=0.01, help="learning rate (> 0)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="torch weight decay λ₀ (>= 0); the Hamiltonian's λ = λ₀/2")
    g.add_argument("--epochs", type=int, default=300, help="epochs (>= 1)")
    g.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default: full batch)")
    g.add_argument("--test-prompts", type=int, default=1000, help="fresh test prompts (>= 1)")
    g.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    g.add_argument("--out", default="runs/train", help="output folder: the model (model.safetensors + config.json, "
                   "a spinlens model folder for --checkpoint), history.csv, run.json")
    g.add_argument("--force", action="store_true", help="write into an --out folder that holds files of another kind "
                                                         "(they are kept; same-named ones replaced)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress line")
    add_yes(g)


def run(args) -> int:
    from spinlens.errors import check_int
    from spinlens.random import spawn
    from spinlens.training import train_run

    from ._common import check_device, check_out_dir, convergence_exit, estimate_hook
    from ._prompt_args import prompts_from_args

    check_int("--seed", args.seed, low=0)
    check_out_dir("--out", args.out, kind="train", force=args.force)
    check_device("--device", args.device)
    dist, train = prompts_from_args(args, spawn(args.seed, 4)[0])
    summary = train_run(
        dist, train, args.out, kind=args.model, n_test=args.test_prompts, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
        seed=args.seed, progress=not args.no_progress, force=args.force, record_args=args,
        on_estimate=estimate_hook("spinlens train", args, what=f"spinlens train of {args.epochs} epochs at D={dist.d}, "
                                  f"N={dist.n_context}, P={train.n_prompts}",
                                  shrink="fewer --epochs, fewer prompts --P, or a larger --batch-size"))
    for k, v in ((k, v) for k, v in summary.items() if k != "message" and not isinstance(v, dict)):
        print(f"{k:<18} {v:.6g}" if isinstance(v, float) else f"{k:<18} {v}")
    print(f"wrote {args.out}/model.safetensors, config.json, history.csv, run.json")
    return convergence_exit("spinlens train", summary["converged"], summary["message"], what="training")
