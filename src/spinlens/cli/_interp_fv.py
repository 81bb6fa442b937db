"""``spinlens interp fv``: function vectors (Todd et al. 2023) on a token model with fixed in-context tasks.

Registered by `spinlens.cli.interp_cmd` (kept in its own module so the interp CLI stays small).
"""

from __future__ import annotations

import argparse
import os

from ._common import Formatter, check_out_dir, print_json, print_table

HELP = "Function vectors: head indirect effects, FV from the top heads, FV added to zero-shot/shuffled prompts."
EXAMPLES = (
    "  spinlens interp fv --planted --out runs/fv-planted\n"
    "  spinlens interp fv --planted --corruption other_task --top-k 1 --json\n"
    "  spinlens interp fv --checkpoint runs/icl_circuit_tokens_fv/model --top-k 3 --out runs/fv\n"
    "  (the checkpoint's metadata must hold the task table 'tasks', as written by\n"
    "   examples/icl_circuit_tokens_fv.py)\n"
    "  spinlens interp fv --checkpoint runs/lm --task capitalise --n-seeds 3 --out runs/fv-lm\n"
    "  (a language model from 'spinlens lm': word tasks copy | capitalise | lowercase on words of its\n"
    "   held-out text, prompts ' file: File\\n value: Value\\n ... return:')\n"
    "  spinlens interp fv --model smollm2-135m --task capital,translate_fr,past,uppercase --n-prompts 32 --out runs/fv-smol\n"
    "  (a pretrained LLM: word tasks from offline data, see spinlens.llm.icl; the heads with the largest indirect\n"
    "   effect over all tasks are listed, as spinlens.llm.icl.locate_fv_heads returns them)\n"
)


def register_fv(isub) -> None:
    q = isub.add_parser("fv", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES, formatter_class=Formatter)
    g = q.add_argument_group("model (one of)")
    g.add_argument("--checkpoint", default=None, help="spinlens token Transformer folder whose metadata has 'tasks', "
                   "or a language model folder from 'spinlens lm' (with --task)")
    g.add_argument("--planted", action="store_true", help="hand-built model where head (0,1) carries the task "
                   "(default when no checkpoint is given)")
    g.add_argument("--model", default=None, help="a named pretrained model (smollm2-135m, gemma3-270m) or a Hugging "
                   "Face causal LM folder; with --task NAME[,NAME...] among the word tasks of spinlens.llm.icl")
    g = q.add_argument_group("method")
    g.add_argument("--n-prompts", type=int, default=256, help="prompts for choosing heads, and again for evaluation (>= 8)")
    g.add_argument("--n-pairs", type=int, default=None, help="demonstrations per prompt (default: the checkpoint's, or 3; "
                   "a language model: 4)")
    g.add_argument("--top-k", type=int, default=3, help="heads summed into the FV (>= 1)")
    g.add_argument("--corruption", default="shuffled", help="base prompts for the indirect effect: shuffled | other_task")
    g.add_argument("--strength", type=float, default=1.0, help="multiplier of the added FV")
    g.add_argument("--seed", type=int, default=0, help="seed of the prompts")
    g = q.add_argument_group("language model (--checkpoint DIR from 'spinlens lm')")
    g.add_argument("--task", default=None, help="natural-language task: copy | capitalise | lowercase; a language model without "
                   "--task runs copy")
    g.add_argument("--n-seeds", type=int, default=3, help="language model: seeds --seed, --seed+1, ... (1..100); each "
                   "splits the words into heads/FV words and evaluation words and draws the prompts")
    g = q.add_argument_group("output")
    g.add_argument("--out", default=None, help="folder for function_vectors.png/.pdf, NetCDF data, result.json, run.json")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_fv, method="fv")


def run_fv(args: argparse.Namespace) -> int:
    import torch

    with torch.no_grad():  # local: a CLI call run in-process must not switch autograd off for its caller
        return _run_fv(args)


def _run_fv(args: argparse.Namespace) -> int:
    import numpy as np

    from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
    from spinlens.interp import function_vectors as FV

    n = check_int("n-prompts", args.n_prompts, low=8)
    check_int("--seed", args.seed, low=0)
    if args.n_pairs is not None:
        check_int("n-pairs", args.n_pairs, low=1)
    check_int("top-k", args.top_k, low=1)
    check_int("n-seeds", args.n_seeds, low=1, high=100)
    check_choice("corruption", args.corruption, ("shuffled", "other_task"))
    check_float("strength", args.strength)
    check_out_dir("out", args.out)
    if sum(bool(x) for x in (args.checkpoint, args.planted, getattr(args, "model", None))) > 1:
        raise InvalidParameterError("Give at most one of --checkpoint, --planted, --model.")
    if getattr(args, "model", None):
        return _run_fv_hf(args)
    from spinlens.experiment import folder_kind

    if args.checkpoint and folder_kind(args.checkpoint) == "lm":
        return _run_fv_lm(args)
    if args.task is not None:
        raise InvalidParameterError("The 'task' parameter needs --checkpoint DIR of a language model from 'spinlens lm'. "
                                    f"Got --task {args.task!r} without one.")
    if args.checkpoint:
        from ._common import load_checkpoint_arg

        model, ck = load_checkpoint_arg(args.checkpoint)
        meta = ck.metadata
        if "tasks" not in meta or getattr(model.cfg, "input_kind", "") != "tokens":
            raise InvalidParameterError(
                "The 'checkpoint' parameter must be a token Transformer whose config.json metadata holds the task "
                f"table 'tasks' (see examples/icl_circuit_tokens_fv.py). Got {args.checkpoint!r}."
            )
        tasks = np.asarray(meta["tasks"], dtype=np.int64)
        n_pairs = args.n_pairs if args.n_pairs is not None else int(meta.get("n_pairs", 3))
        source = f"checkpoint:{args.checkpoint}"
    else:
        from spinlens.interp.planted import planted_task_model

        n_pairs = args.n_pairs if args.n_pairs is not None else 3
        model, tasks = planted_task_model(n_pairs=check_int("n-pairs", n_pairs, low=1, high=3))
        source = "planted:task"
    check_int("n-pairs", n_pairs, low=1, high=min(tasks.shape[1] - 1, (model.cfg.max_pos - 1) // 2))
    n_heads_total = model.cfg.n_layers * model.cfg.n_heads
    check_int("top-k", args.top_k, low=1, high=n_heads_total)
    model.eval()
    res = FV.function_vector_experiment(model, tasks, n_prompts=n, n_pairs=n_pairs, top_k=args.top_k,
                                        corruption=args.corruption, strength=args.strength, rng=args.seed)
    d = res.to_dict()
    d["source"] = source
    d["verdict"] = FV.fv_verdict(res)
    if args.out:
        from spinlens.plotting import interp as P

        os.makedirs(args.out, exist_ok=True)
        P.save_figure(P.plot_function_vectors(res), args.out, "function_vectors")
        P.save_data(res.evaluation, args.out, "function_vectors_eval")
        P.save_data(res.indirect_effect, args.out, "function_vectors_indirect_effect")
        from spinlens import io

        io.write_json(os.path.join(args.out, "result.json"), d)
        io.write_run_json(args.out, io.run_record("interp fv", args=args, seed=args.seed, summary=d))
    if args.json:
        print_json(d)
    else:
        rows = [("source", source), ("heads", " ".join(f"{L}.{h}" for L, h in res.heads)),
                ("clean accuracy", d["clean_accuracy"])]
        for c in ("zero_shot", "shuffled"):
            rows.append((f"{c} accuracy (no FV)", d[c]["base_accuracy"]))
            for L, a in d[c]["accuracy_by_layer"].items():
                where = f"before layer {L}" if L < model.cfg.n_layers else "after the last layer"
                rows.append((f"{c} accuracy, FV {where}", a))
        print_table(rows)
        print(d["verdict"]["line"])
        if args.out:
            print(f"wrote {args.out}")
    return 0


def _run_fv_lm(args: argparse.Namespace) -> int:
    """``interp fv --checkpoint LMDIR --task T``: function vectors on a natural-language task, over seeds."""
    from spinlens.errors import InvalidParameterError, check_choice, check_int
    from spinlens.lm import icl_tasks as IT
    from spinlens.lm.train import load_lm

    task = check_choice("task", args.task or "copy", tuple(IT.TEXT_TASKS))
    n_seeds = check_int("n-seeds", args.n_seeds, low=1, high=100)
    if args.corruption != "shuffled":
        raise InvalidParameterError(f"The 'corruption' parameter must be shuffled for a language model task. Got {args.corruption!r}.")
    model, tok, _ = load_lm(args.checkpoint)
    n_pairs = check_int("n-pairs", args.n_pairs if args.n_pairs is not None else 4, low=1, high=(model.cfg.max_pos - 2) // 3)
    check_int("top-k", args.top_k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    text = IT.heldout_text(args.checkpoint, tok)
    seeds = tuple(range(args.seed, args.seed + n_seeds))
    ds, _ = IT.text_fv_experiment(model, tok, text, task, n_prompts=args.n_prompts, n_pairs=n_pairs, top_k=args.top_k,
                                  strength=args.strength, seeds=seeds, progress=not args.json)
    d = IT.summarise_fv(ds)
    d["source"] = f"checkpoint:{args.checkpoint}"
    d["verdict"] = IT.fv_verdict(ds)
    if args.out:
        from spinlens import io
        from spinlens.plotting import lm as S

        os.makedirs(args.out, exist_ok=True)
        fig, _ = S.plot_lm_function_vectors(ds)
        io.save_figure(fig, args.out, "function_vectors_lm", bbox_inches="tight", dpi=150)
        io.save_dataset(ds, args.out, "function_vectors_lm")
        io.write_json(os.path.join(args.out, "result.json"), d)
        io.write_run_json(args.out, io.run_record("interp fv", args=args, seed=args.seed, summary=d))
    if args.json:
        print_json(d)
    else:
        f = lambda m: f"{m['mean']:.3f} ± {m['sd']:.3f}"  # noqa: E731
        rows = [("source", d["source"]), ("task", task), ("seeds", " ".join(map(str, d["seeds"]))),
                ("heads (per seed)", " | ".join(d["heads"])), ("few-shot accuracy", f(d["few_shot_accuracy"])),
                ("most frequent answer token (no-mapping baseline)", f(d["majority_accuracy"]))]
        for c in ("zero_shot", "shuffled"):
            rows.append((f"{c} accuracy (no FV)", f(d[f"{c}_accuracy"])))
            for L, e in d[f"{c}_fv"].items():
                where = f"before layer {L}" if L < model.cfg.n_layers else "after the last layer"
                rows.append((f"{c} + FV {where}: accuracy / gain", f"{f(e['accuracy'])} / {f(e['gain'])}"))
        print_table(rows)
        print(d["verdict"]["line"])
        if args.out:
            print(f"wrote {args.out}")
    return 0


def _run_fv_hf(args: argparse.Namespace) -> int:
    """``interp fv --model NAME|DIR --task T[,T...]``: function vectors on word tasks of a pretrained LLM."""
    from transformers import AutoTokenizer

    from spinlens.errors import InvalidParameterError, check_int
    from spinlens.interp.hf import load_hf
    from spinlens.llm.icl import WORD_TASKS, fv_study
    from spinlens.models.pretrained import resolve_model

    tasks = [t.strip() for t in (args.task or "capital,translate_fr,past,uppercase").split(",") if t.strip()]
    bad = [t for t in tasks if t not in WORD_TASKS]
    if bad or not tasks:
        raise InvalidParameterError(f"The 'task' parameter must list word tasks among {{{', '.join(WORD_TASKS)}}}. "
                                    f"Got {args.task!r}.")
    if args.corruption != "shuffled":
        raise InvalidParameterError(f"The 'corruption' parameter must be shuffled for word tasks. Got {args.corruption!r}.")
    n_seeds = check_int("n-seeds", args.n_seeds, low=1, high=100)
    n_pairs = check_int("n-pairs", args.n_pairs if args.n_pairs is not None else 5, low=1, high=50)
    model = load_hf(args.model)
    tok = AutoTokenizer.from_pretrained(str(resolve_model(args.model)), local_files_only=True)
    check_int("top-k", args.top_k, low=1, high=model.cfg.n_layers * model.cfg.n_heads)
    seeds = tuple(range(args.seed, args.seed + n_seeds))
    res = fv_study(model, tok, tasks, n_prompts=args.n_prompts, n_pairs=n_pairs, top_k=args.top_k,
                   fv_heads=args.top_k, seeds=seeds, progress=not args.json)
    d = res.to_dict()
    d["model"] = str(args.model)
    if args.out:
        from spinlens import io
        from spinlens.plotting import lm as S
        from spinlens.plotting.interp import plot_heatmap, save_data, save_figure

        os.makedirs(args.out, exist_ok=True)
        for name, ds in res.datasets.items():
            fig, _ = S.plot_lm_function_vectors(ds)
            io.save_figure(fig, args.out, f"function_vectors_{name}", bbox_inches="tight", dpi=150)
            io.save_dataset(ds, args.out, f"function_vectors_{name}")
        save_figure(plot_heatmap(res.indirect_effect, title="causal indirect effect, mean over tasks", annotate=False),
                    args.out, "indirect_effect")
        save_data(res.indirect_effect, args.out, "indirect_effect")
        io.write_json(os.path.join(args.out, "result.json"), d)
        io.write_run_json(args.out, io.run_record("interp fv", args=args, seed=args.seed, summary=d))
    if args.json:
        print_json(d)
        return 0
    f = lambda m: f"{m['mean']:.3f} ± {m['sd']:.3f}"  # noqa: E731
    rows = [("model", d["model"]), ("seeds", " ".join(map(str, seeds)))]
    for name, s in d["tasks"].items():
        rows.append((f"{name}: few-shot / zero-shot accuracy", f"{f(s['few_shot_accuracy'])} / {f(s['zero_shot_accuracy'])}"))
        if s["zero_shot_fv"] is not None:
            z = s["zero_shot_fv"]
            rows.append((f"{name}: zero-shot + FV before layer {s['best_layer']}: accuracy / gain",
                         f"{f(z['accuracy'])} / {f(z['gain'])}"))
    for name, why in d["skipped"].items():
        rows.append((f"{name}: skipped", why))
    rows.append(("heads (largest indirect effect, mean over tasks)",
                 " ".join(f"{h['layer']}.{h['head']}" for h in d["heads"])))
    print_table(rows)
    if args.out:
        print(f"wrote {args.out}")
    return 0
