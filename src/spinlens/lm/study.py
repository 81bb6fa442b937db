"""Files of the LM study: CSV tables and the induction scores over the training checkpoints (phase change).

The figures live in `spinlens.plotting.lm`; they are written (PNG + PDF) through `spinlens.io.save_figure`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_csv(path, rows: list[dict]) -> Path:
    """Write a list of flat dicts as CSV atomically (columns: the keys of the first row)."""
    from spinlens.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [])
            w.writeheader()
            for r in rows:
                w.writerow(r)
    return path


def checkpoint_curve(folder, *, device: str = "cpu", n_seq: int | None = None, seed: int = 0):
    """Induction / previous-token scores, repeated loss and ICL score of every checkpoint of a run folder.

    Returns ``(rows, final_report)``: one row per checkpoint (the final model last) and the final model's
    `InductionReport`, from the standard evaluation (``n_seq`` = `spinlens.lm.induction.N_SEQ` repeated
    sequences, `ICL_WINDOWS` held-out windows, seed ``seed``) that `spinlens interp induction` also runs.
    """
    from spinlens.lm.data import ICL_WINDOWS, eval_windows
    from spinlens.lm.induction import N_SEQ, induction_report
    from spinlens.lm.train import list_checkpoints, load_heldout, load_lm

    n_seq = N_SEQ if n_seq is None else n_seq  # the standard evaluation, as `spinlens interp induction`
    folder = Path(folder)
    from spinlens.models.checkpoint import read_checkpoint

    heldout = load_heldout(folder, vocab_size=read_checkpoint(folder).config.get("d_vocab"))
    rows, rep = [], None
    items = list_checkpoints(folder) + [(None, folder)]
    for step, d in items:
        model, _, meta = load_lm(d, device=device)
        val = eval_windows(heldout, model.cfg.max_pos, max_windows=ICL_WINDOWS) if heldout is not None else None
        rep = induction_report(model, val_windows=val, n_seq=n_seq, rng=seed)
        ind, prev = rep.induction, rep.prev_token
        L, H = np.unravel_index(np.argmax(ind), ind.shape)
        rows.append({"step": int(meta.get("step", step or 0)), "val_loss": meta.get("val_loss"),
                     "max_induction_score": float(ind.max()), "max_induction_head": f"{L}.{H}",
                     "max_prev_token_score": float(prev.max()),
                     "repeated_loss_first": rep.repeated_loss["first"], "repeated_loss_repeat": rep.repeated_loss["repeat"],
                     "icl_score": rep.icl["icl_score"] if rep.icl else float("nan")})
    if len(rows) > 1 and rows[-1]["step"] == rows[-2]["step"]:
        rows.pop(-2)  # the last checkpoint is the final model
    return rows, rep


def write_study_files(out, res, cfg, *, device="cpu") -> dict:
    """Write the curves of a `spinlens.lm.train.train_lm` result ``res`` and the induction scores over its
    checkpoints (`checkpoint_curve`) next to the model in ``out`` (CSV + figures); returns the study's summary."""
    from spinlens.io import save_figure
    from spinlens.plotting.lm import plot_lm_curves, plot_phase_change

    write_csv(out / "curves.csv", res.history)
    save_figure(plot_lm_curves(res.history)[0], out, "curves", bbox_inches="tight", dpi=150)
    curve, final = checkpoint_curve(out, device=device)
    write_csv(out / "induction_curve.csv", curve)
    save_figure(plot_phase_change(curve)[0], out, "induction_curve", bbox_inches="tight", dpi=150)
    top = final.heads()[0]
    from spinlens.lm.induction import induction_formed

    formed_at = [r["step"] for r in curve if induction_formed(r["max_induction_score"], {
        "first": r["repeated_loss_first"], "repeat": r["repeated_loss_repeat"]})]
    return {"corpus": res.metadata["corpus"], "n_train_tokens": res.n_train_tokens, "n_val_tokens": res.n_val_tokens,
            "n_params": int(res.model.n_params()), "train_elapsed_s": res.seconds,
            "val_loss": res.history[-1]["val_loss"], "val_ppl": res.history[-1]["val_ppl"],
            "top_head": top, "repeated_loss": final.repeated_loss, "icl_score": final.icl["icl_score"],
            "induction_head_formed": final.formed, "phase_change_step": formed_at[0] if formed_at else None,
            "n_checkpoints": len(res.checkpoints),
            **(res.time_estimate.to_dict() if res.time_estimate is not None else {})}


def induction_warning(summary: dict) -> str | None:
    """The warning line when no induction head formed in a study (`write_study_files` summary), else None."""
    if summary["induction_head_formed"]:
        return None
    from spinlens.lm.induction import FORMED_ADVANTAGE, FORMED_SCORE

    rl = summary["repeated_loss"]
    return (f"warning: no induction head formed (top induction score {summary['top_head']['induction_score']:.3f}, "
            f"needs >= {FORMED_SCORE}; repeat advantage {rl['first'] - rl['repeat']:.2f} nats, needs >= "
            f"{FORMED_ADVANTAGE}): train longer (--steps) or try another --seed")


def study_text(summary: dict, cfg, out, *, device: str = "cpu") -> str:
    """The lines ``spinlens lm`` prints for a study's summary (`write_study_files`) of a run of ``cfg`` in ``out``."""
    h, rl = summary["top_head"], summary["repeated_loss"]
    lines = [f"spinlens lm: {summary['corpus']} ({summary['n_train_tokens']} train / {summary['n_val_tokens']} "
             f"held-out tokens), {cfg.variant}, {cfg.n_layers}x{cfg.n_heads} heads, {summary['n_params']} parameters",
             f"  trained {cfg.steps} steps in {summary['train_elapsed_s']:.1f} s on {device}; held-out loss "
             f"{summary['val_loss']:.3f} (perplexity {summary['val_ppl']:.1f})",
             f"  top induction head {h['layer']}.{h['head']}: induction score {h['induction_score']:.3f}, repeated "
             f"loss first {rl['first']:.2f} / repeat {rl['repeat']:.2f}, icl_score {summary['icl_score']:+.3f}"]
    if summary["phase_change_step"] is not None:
        lines.append(f"  induction head formed by step {summary['phase_change_step']} (first checkpoint with "
                     "induction score >= 0.1 and repeat advantage >= 1 nat)")
    lines.append(f"  wrote {out}/ (model, tokenizer.json, checkpoints/, curves.csv/png/pdf, "
                 "induction_curve.csv/png/pdf)")
    return "\n".join(lines)
