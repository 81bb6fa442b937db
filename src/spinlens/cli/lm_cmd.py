"""``spinlens lm``: train a small causal language model on real text (a file or a built-in offline source).

Writes a model folder (spinlens' transformer format + ``tokenizer.json``) that ``spinlens interp ...
--checkpoint DIR`` and the edit commands take, checkpoints along training, the held-out loss and
perplexity curves (PNG, PDF, CSV), the induction scores over the checkpoints (the phase change) and run.json.
"""

from __future__ import annotations

import sys

from ._common import add_command, add_yes

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
    add_yes(g)


def _run(args) -> int:
    import time

    import torch

    from spinlens.errors import InvalidParameterError, check_float, check_int
    from spinlens.io import folder_transaction
    from spinlens.lm.corpus import load_corpus
    from spinlens.lm.study import induction_warning, study_text, write_study_files
    from spinlens.lm.train import LM_KIND, LMConfig, train_lm

    from ._common import check_device, check_out_dir, estimate_hook, print_json

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
                       progress=not args.no_progress and not args.json,
                       on_estimate=estimate_hook("spinlens lm", args, what=f"spinlens lm of {cfg.steps} steps",
                                                 shrink="fewer --steps, a smaller --batch-size, --n-ctx or --d-model"))
        summary = write_study_files(stage, res, cfg, device=args.device)
        summary.update(seconds_total=time.perf_counter() - t0, threads=torch.get_num_threads())
        from spinlens import io

        io.write_run_json(stage, io.run_record("lm", args=args, seed=cfg.seed, device=args.device,
                                               config=cfg.to_dict(), summary=summary))
    warning = induction_warning(summary)
    if warning:
        print(warning, file=sys.stderr)
    if args.json:
        print_json(summary)
    else:
        print(study_text(summary, cfg, out, device=args.device))
    return 0
