"""``spinlens interp recall``: factual recall by causal tracing (Meng et al. 2022) on a pretrained causal LM.

Registered by `spinlens.cli.interp_cmd` (one line); the study is `spinlens.llm.recall`.
"""

from __future__ import annotations

import argparse
import os

from ._common import Formatter, check_out_dir, print_json, print_table

HELP = ("Factual recall by causal tracing: corrupt the subject, restore single states and MLP/attention windows, "
        "indirect effect by layer and position over the facts the model knows.")
EXAMPLES = (
    "  spinlens interp recall --model smollm2-135m --out runs/recall\n"
    "  spinlens interp recall --model smollm2-135m --relations capital,continent --n-facts 20 --json\n"
    "  spinlens interp recall --model path/to/hf-model --n-seeds 5 --noise 3 --window 10 --out runs/recall-hf\n"
    "  (facts: the countryinfo package's country data, installed by pip install 'spinlens[facts]')\n"
)


def register_recall(isub) -> None:
    q = isub.add_parser("recall", help=HELP, description=HELP, epilog="examples:\n" + EXAMPLES,
                        formatter_class=Formatter)
    q.add_argument("--model", required=True, help="named pretrained model (smollm2-135m, gemma3-270m) or a local "
                   "Hugging Face causal LM folder")
    q.add_argument("--relations", default="capital", help="comma-separated: capital, continent, demonym")
    q.add_argument("--n-facts", type=int, default=40, help="known facts (prompts) traced, drawn with --seed (>= 1)")
    q.add_argument("--n-seeds", type=int, default=3, help="noise draws per fact (1..100); the spread is over these")
    q.add_argument("--noise", type=float, default=3.0, help="noise standard deviation in units of the subject "
                   "embeddings' standard deviation (>= 0; the paper: 3)")
    q.add_argument("--window", type=int, default=None, help="layers restored together for mlp/attn (default: the "
                   "paper's 10 of 48 layers scaled to the model's depth)")
    q.add_argument("--seed", type=int, default=0, help="seed of the fact draw and the noise")
    q.add_argument("--out", default=None, help="folder for causal_trace.png/.pdf, causal_trace.nc, result.json, run.json")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_recall, method="recall")


def run_recall(args: argparse.Namespace) -> int:
    import torch

    with torch.no_grad():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from spinlens.errors import check_float, check_int
    from spinlens.interp.hf import load_hf
    from spinlens.llm import facts as F
    from spinlens.llm.recall import recall_study
    from spinlens.models.pretrained import resolve_model

    check_int("n-facts", args.n_facts, low=1)
    check_int("n-seeds", args.n_seeds, low=1, high=100)
    check_float("noise", args.noise, low=0.0)
    check_int("seed", args.seed, low=0)
    if args.window is not None:
        check_int("window", args.window, low=1)
    check_out_dir("out", args.out)
    rels = [r.strip() for r in args.relations.split(",") if r.strip()]
    from spinlens.errors import InvalidParameterError

    bad = [r for r in rels if r not in F.TEMPLATES]
    if bad or not rels:
        raise InvalidParameterError(f"The 'relations' parameter must list some of {{{', '.join(F.TEMPLATES)}}}. "
                                    f"Got {args.relations!r}.")
    task = F.recall_task(F.country_facts(rels))
    model = load_hf(args.model)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(resolve_model(args.model)), local_files_only=True)
    if args.window is not None:
        check_int("window", args.window, low=1, high=model.cfg.n_layers)
    res = recall_study(model, tok, task, n_facts=args.n_facts, noise=args.noise, n_seeds=args.n_seeds,
                       window=args.window, rng=args.seed, progress=not args.json)
    d = res.to_dict()
    d["model"] = str(args.model)
    if args.out:
        from spinlens import io
        from spinlens.plotting.interp import plot_causal_trace, save_data, save_figure

        os.makedirs(args.out, exist_ok=True)
        save_figure(plot_causal_trace(res.indirect_effect), args.out, "causal_trace")
        save_data(res.indirect_effect, args.out, "causal_trace")
        io.write_json(os.path.join(args.out, "result.json"), d)
        io.write_run_json(args.out, io.run_record("interp recall", args=args, seed=args.seed, summary=d))
    if args.json:
        print_json(d)
        return 0
    k = d["known"]
    rows = [("model", d["model"]), ("facts", d["source"]),
            ("known facts", f"{k['n_known']} of {k['n_prompts']} prompts ({k['accuracy']:.3f})"),
            ("traced", f"{d['n_facts_traced']} facts x {d['n_seeds']} noise seeds, noise {d['noise']} x "
                       f"sigma {d['sigma']:.4f}, window {d['window']}"),
            ("p(answer) clean / corrupted", f"{d['p_clean']:.3f} / {d['p_corrupt']['mean']:.3f} ± "
                                            f"{d['p_corrupt']['sd']:.3f}")]
    for kind, p in d["peaks"].items():
        ie = p["indirect_effect"]
        rows.append((f"{kind} peak ({p['category']})", f"layer {p['layer']} of {d['n_layers']} (per seed "
                     f"{p['layer_by_seed']}), indirect effect {ie['mean']:.3f} ± {ie['sd']:.3f}"))
    print_table(rows)
    if args.out:
        print(f"wrote {args.out}")
    return 0
