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
