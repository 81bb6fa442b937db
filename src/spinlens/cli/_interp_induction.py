"""``spinlens interp induction``: the CLI glue around `spinlens.lm.induction` and `spinlens.lm.analysis`."""

from __future__ import annotations

import time

from spinlens.errors import check_float, check_int


def induction_command(args) -> dict:
    """Induction scores, ablation, K-composition and the text analysis of one LM folder; writes ``--out`` files."""
    from spinlens.lm.analysis import ICL_WINDOWS, ablation_study, heldout_windows, write_analysis
    from spinlens.lm.induction import induction_report, k_composition
    from spinlens.lm.train import load_lm

    from ._common import check_device, check_out_dir

    t0 = time.perf_counter()
    if (getattr(args, "model", None) is None) == (args.checkpoint is None):
        from spinlens.errors import InvalidParameterError

        raise InvalidParameterError("Give exactly one of --checkpoint (a language model from 'spinlens lm') and "
                                    "--model (a named pretrained model or a Hugging Face folder).")
    if args.model is not None:
        return _hf_induction(args, t0)
    check_int("n-seq", args.n_seq, low=1, high=100_000)
    check_int("seed", args.seed, low=0)
    check_int("top-k", args.top_k, low=1, high=100)
    check_float("threshold", args.threshold, low=0.0, high=1.0)
    check_float("prev-threshold", args.prev_threshold, low=0.0, high=1.0)
    check_device("device", args.device)
    out = check_out_dir("out", args.out)
    from spinlens.progress import bar

    # six stages of a few seconds each (terminal only): load, held-out windows, scores, ablation, K-composition, files
    stages = bar(total=6, desc="interp induction", unit="stage")
    model, tok, meta = load_lm(args.checkpoint, device=args.device)
    stages.update(1)
    cfg = model.cfg
    half = args.half if args.half is not None else max(2, min(64, cfg.max_pos // 2))
    check_int("half", half, low=2, high=cfg.max_pos // 2)
    val = heldout_windows(model, tok, args.checkpoint, text_file=args.text)
    icl_val = heldout_windows(model, tok, args.checkpoint, text_file=args.text, max_windows=ICL_WINDOWS)
    stages.update(1)
    rep = induction_report(model, val_windows=icl_val, n_seq=args.n_seq, half=half, rng=args.seed)
    stages.update(1)
    summary = rep.to_dict()
    summary["checkpoint"] = str(args.checkpoint)
    summary["step"] = meta.get("step")
    heads = rep.induction_heads(args.threshold) or [(rep.heads()[0]["layer"], rep.heads()[0]["head"])]
    if not args.no_ablation:
        prev = [(r["layer"], r["head"]) for r in rep.heads() if r["prev_token_score"] >= args.prev_threshold]
        summary["ablation"] = ablation_study(model, heads, n_seq=args.n_seq, half=half, val=icl_val, exclude=prev,
                                             rng=args.seed)
    stages.update(1)
    if not args.no_path and cfg.n_layers >= 2:
        top = [h for h in rep.heads() if h["layer"] >= 1][0]
        kc = k_composition(model, n_seq=min(args.n_seq, 64), half=half, receivers=[(top["layer"], top["head"])],
                           rng=args.seed)
        summary["k_composition"] = {"receiver": f"{top['layer']}.{top['head']}",
                                    **{inp: {"sender": f"{L}.{H}", "score": s} for inp, (L, H, s) in kc["top"].items()},
                                    "scores": {inp: v.tolist() for inp, v in kc["scores"].items()}}
    stages.update(1)
    if out is not None:
        summary["files"] = write_analysis(out, model, tok, rep, summary, val, top_k=args.top_k, icl_windows=icl_val)
    stages.update(1)
    stages.close()
    summary["elapsed_s"] = time.perf_counter() - t0
    if out is not None:
        from spinlens import io

        io.write_run_json(out, io.run_record("interp induction", args=args, seed=args.seed, summary=summary))
    return summary


def _hf_windows(tok, path, n_ctx: int, max_windows: int):
    """Held-out windows ``(n, n_ctx + 1)`` of a UTF-8 text file under a Hugging Face tokenizer."""
    import torch

    from spinlens.errors import InvalidParameterError
    from spinlens.io import check_regular_file

    check_regular_file("text", path)  # a FIFO would block the read
    with open(path, encoding="utf-8") as f:
        ids = tok(f.read(), add_special_tokens=False)["input_ids"]
    n = min(max_windows, len(ids) // (n_ctx + 1))
    if n < 1:
        raise InvalidParameterError(f"The 'text' parameter: {path!r} has {len(ids)} tokens, fewer than one window of "
                                    f"{n_ctx + 1}.")
    return torch.as_tensor(ids[: n * (n_ctx + 1)]).reshape(n, n_ctx + 1)


def _hf_induction(args, t0: float) -> dict:
    """``interp induction --model NAME|DIR``: the same report on a pretrained Hugging Face causal LM (induction and
    previous-token scores, repeated loss, mean ablation against random heads; ICL score with --text; no
    K-composition path patching, which on a 30-layer model is a long run)."""
    from transformers import AutoTokenizer

    from spinlens.interp.hf import load_hf
    from spinlens.lm.analysis import ablation_study, write_analysis
    from spinlens.lm.induction import induction_report
    from spinlens.models.pretrained import resolve_model

    from ._common import check_device, check_out_dir

    check_int("n-seq", args.n_seq, low=1, high=100_000)
    check_int("seed", args.seed, low=0)
    check_float("threshold", args.threshold, low=0.0, high=1.0)
    check_float("prev-threshold", args.prev_threshold, low=0.0, high=1.0)
    check_device("device", args.device)
    out = check_out_dir("out", args.out)
    half = check_int("half", args.half if args.half is not None else 64, low=2, high=1024)
    model = load_hf(args.model, device=args.device)
    tok = AutoTokenizer.from_pretrained(str(resolve_model(args.model)), local_files_only=True)
    val = _hf_windows(tok, args.text, 2 * half, 32) if args.text else None
    rep = induction_report(model, val_windows=val, n_seq=args.n_seq, half=half, rng=args.seed,
                           exclude=tuple(tok.all_special_ids) or (0,))
    summary = rep.to_dict()
    summary["model"] = str(args.model)
    heads = rep.induction_heads(args.threshold) or [(rep.heads()[0]["layer"], rep.heads()[0]["head"])]
    if not args.no_ablation:
        prev = [(r["layer"], r["head"]) for r in rep.heads() if r["prev_token_score"] >= args.prev_threshold]
        summary["ablation"] = ablation_study(model, heads, n_seq=args.n_seq, half=half, val=val, exclude=prev,
                                             rng=args.seed)
    if out is not None:
        summary["files"] = write_analysis(out, model, tok, rep, summary, val, top_k=args.top_k)
    summary["elapsed_s"] = time.perf_counter() - t0
    if out is not None:
        from spinlens import io

        io.write_run_json(out, io.run_record("interp induction", args=args, seed=args.seed, summary=summary))
    return summary
