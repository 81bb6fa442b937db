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
    import time
    from pathlib import Path

    from spinlens import io
    from spinlens import observables as ob
    from spinlens.errors import check_choice, check_int

    check_int("--seed", args.seed, low=0)
    from spinlens.models.checkpoint import save_model
    from spinlens.models.linear_attention import MergedLinearAttention, SeparateLinearAttention
    from spinlens.random import spawn
    from spinlens.training import train_model

    from ._common import check_device, check_out_dir, convergence_exit, estimate_hook
    from ._prompt_args import prompts_from_args

    kind = check_choice("--model", args.model, ("merged", "separate"))
    n_test = check_int("--test-prompts", args.test_prompts, low=1)
    check_out_dir("--out", args.out, kind="train", force=args.force)
    check_device("--device", args.device)
    r_prompts, r_test, r_init, r_train = spawn(args.seed, 4)
    dist, train = prompts_from_args(args, r_prompts)
    test = dist.replace(n_tasks=None).sample(n_test, rng=r_test)
    Model = MergedLinearAttention if kind == "merged" else SeparateLinearAttention
    model = Model(dist.d, rng=r_init)
    t0 = time.perf_counter()
    check_int("--epochs", args.epochs, low=1, high=10**9)
    if args.batch_size is not None:
        check_int("--batch-size", args.batch_size, low=1, high=max(1, train.n_prompts))
    res = train_model(
        model, train, test, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
        epochs=args.epochs, batch_size=args.batch_size, device=args.device, rng=r_train, progress=not args.no_progress,
        on_estimate=estimate_hook("spinlens train", args, what=f"spinlens train of {args.epochs} epochs at D={dist.d}, "
                                  f"N={dist.n_context}, P={train.n_prompts}",
                                  shrink="fewer --epochs, fewer prompts --P, or a larger --batch-size"),
    )
    out = Path(args.out)
    # the folder is one transaction (spinlens.io.folder_transaction): an error or a kill leaves it as it was
    with io.folder_transaction(out, kind="train", force=args.force) as stage:
        dist_info = {k: getattr(dist, k) for k in ("d", "n_context", "sigma_x", "sigma_w", "sigma_eps", "corr",
                                                   "n_tasks")}
        # OUT is a spinlens model folder (the zoo's "sla" / "sla-separate"): --checkpoint OUT works everywhere
        save_model(res.model.to("cpu"), stage, metadata={
            "command": "train", "distribution": dist_info, "seed": args.seed, "optimizer": args.optimizer,
            "weight_decay": args.weight_decay, "n_prompts": train.n_prompts})
        io.save_dataframe(res.history.to_dataframe(), stage, "history")
        import numpy as np

        from spinlens.training import divergence_reason

        diverged = divergence_reason(res.final_train_loss, float(np.mean(np.asarray(train.y, dtype=float) ** 2)))
        summary = {
            "converged": diverged is None,
            "final_train_loss": res.final_train_loss,
            "final_test_loss": res.final_test_loss,
            "test_error_exact": ob.test_error(res.W, dist) if dist.isotropic else None,
            "contrast_ratio": ob.contrast_ratio(res.W),
            "elapsed_s": time.perf_counter() - t0,
            "train_elapsed_s": res.seconds,
            **res.time_estimate.to_dict(),
        }
        run_info = {"model": kind, "D": dist.d, "N": dist.n_context, "P": train.n_prompts,
                    **{k: v for k, v in res.config.items() if k != "seed"}, "summary": summary}
        io.write_run_json(stage, io.run_record("train", args=args, seed=args.seed, **run_info))
    for k, v in ((k, v) for k, v in summary.items() if not isinstance(v, dict)):
        print(f"{k:<18} {v:.6g}" if isinstance(v, float) else f"{k:<18} {v}")
    print(f"wrote {out}/model.safetensors, config.json, history.csv, run.json")
    return convergence_exit("spinlens train", diverged is None, diverged or "", what="training")
