"""The LM study's analysis: induction circuit (scores, ablation, K-composition), logit lens on real text,
unit descriptions with top-k text snippets. `induction_study_report` is ``spinlens interp induction``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from spinlens.errors import InvalidParameterError
from spinlens.lm.data import ICL_WINDOWS  # noqa: F401  (re-exported)
from spinlens.random import as_generator

if TYPE_CHECKING:
    from spinlens.results import StudyReport


def heldout_windows(model, tokenizer, folder, *, text_file=None, max_windows: int = 64):
    """Held-out windows ``(n, n_ctx + 1)``: from ``text_file`` (tokenized) or the split saved with the model."""
    from spinlens.lm.corpus import read_text_file
    from spinlens.lm.data import eval_windows
    from spinlens.lm.tokenizer import encode
    from spinlens.lm.train import load_heldout

    n_ctx = model.cfg.max_pos
    if text_file is not None:
        ids = encode(tokenizer, read_text_file(text_file))
        if len(ids) < n_ctx + 1:
            raise InvalidParameterError(f"The 'text' file has {len(ids)} tokens, fewer than n_ctx + 1 = {n_ctx + 1}.")
    else:
        ids = load_heldout(folder, vocab_size=model.cfg.d_vocab)
        if ids is None:
            return None
    return eval_windows(ids, n_ctx, max_windows=max_windows)


def ablation_study(model, heads, *, n_seq: int = 64, half: int = 32, n_random: int = 5, val=None, exclude=(),
                   rng=0) -> dict:
    """Mean-ablate ``heads`` (and, as a control, ``n_random`` random sets of as many other heads, never those in
    ``exclude``, e.g. the previous-token heads of the circuit): repeated loss and ICL score with and without.
    The repeat advantage is ``first - repeat``."""
    from spinlens.lm.induction import ablation_hooks, icl_score, repeated_loss, repeated_tokens

    cfg = model.cfg
    g = as_generator(rng)
    tokens = repeated_tokens(n_seq, half, cfg.d_vocab, rng=g)
    ref = repeated_tokens(n_seq, half, cfg.d_vocab, rng=g)
    base = repeated_loss(model, tokens)
    hk = ablation_hooks(model, heads, mode="mean", reference=ref)
    abl = repeated_loss(model, tokens, hooks=hk)
    others = [(L, h) for L in range(cfg.n_layers) for h in range(cfg.n_heads) if (L, h) not in set(heads) | set(exclude)]
    rand = []
    for _ in range(n_random if len(others) >= len(heads) else 0):
        pick = [others[i] for i in g.choice(len(others), len(heads), replace=False)]
        rand.append(repeated_loss(model, tokens, hooks=ablation_hooks(model, pick, mode="mean", reference=ref)))
    out = {"heads": [f"{L}.{h}" for L, h in heads], "repeated_loss_before": base, "repeated_loss": abl,
           "repeat_advantage_before": base["first"] - base["repeat"], "repeat_advantage": abl["first"] - abl["repeat"],
           "random_repeat_advantage": [r["first"] - r["repeat"] for r in rand],
           "random_repeat_mean": float(np.mean([r["repeat"] for r in rand])) if rand else float("nan")}
    if val is not None:
        out["icl_score_before"] = icl_score(model, val)["icl_score"]
        out["icl_score"] = icl_score(model, val, hooks=hk)["icl_score"]
    return out


def _snippet(tokenizer, window, pos, before: int = 12, after: int = 2) -> str:
    """The text of ``window[pos-before : pos+after]`` with the token at ``pos`` marked ⟦like this⟧."""
    w = [int(t) for t in window]
    left = tokenizer.decode(w[max(0, pos - before):pos])
    mid = tokenizer.decode([w[pos]])
    right = tokenizer.decode(w[pos + 1:pos + 1 + after])
    return (left + "⟦" + mid + "⟧" + right).replace("\n", "⏎")


def seen_before(windows: torch.Tensor) -> np.ndarray:
    """``(n, pos)`` 1.0 where the token already occurred earlier in its window."""
    w = windows.numpy()
    out = np.zeros(w.shape)
    for i, row in enumerate(w):
        seen = set()
        for j, t in enumerate(row):
            out[i, j] = t in seen
            seen.add(t)
    return out


def head_roles(rep, *, threshold: float = 0.15) -> dict:
    """Templated role of each head from its scores: ``{"L1.H2": "induction head (induction score 0.24)", ...}``."""
    roles = {}
    for r in rep.heads():
        u = f"L{r['layer']}.H{r['head']}"
        if r["induction_score"] >= threshold:
            roles[u] = f"induction head (induction score {r['induction_score']:.2f})"
        elif r["prev_token_score"] >= threshold:
            roles[u] = f"previous-token head (previous-token score {r['prev_token_score']:.2f})"
    return roles


def describe_lm_units(model, tokenizer, windows: torch.Tensor, *, top_k: int = 5, max_units: int = 64,
                      roles: dict | None = None):
    """Heads and MLP neurons described on real text: templated descriptions (`spinlens.interp.describe_units`
    against token identity, previous token, position, and whether the token occurred before) and the top-k
    text snippets where each unit is most active. Returns a list of rows (one per unit and rank)."""
    from spinlens.interp.neurons import describe_units

    x = windows[:, :-1]
    n, T = x.shape
    pos = np.broadcast_to(np.arange(T), (n, T)).reshape(-1).astype(float)
    prev = np.concatenate([np.full((n, 1), -1), x[:, :-1].numpy()], 1).reshape(-1)
    rep = describe_units(model, x, {"position": pos, "token_seen_before": seen_before(x).reshape(-1)},
                         position=None, categorical={"token": x.reshape(-1).numpy(), "previous_token": prev},
                         top_k=top_k)
    order = [i for i in range(len(rep.units)) if ".H" in rep.units[i]]
    order += [i for i in np.argsort(-np.abs(rep.best_r)) if ".N" in rep.units[i]][: max(0, max_units - len(order))]
    rows = []
    for i in order:
        for rank, s in enumerate(rep.top_prompts[i]):
            p, t = divmod(int(s), T)
            desc = rep.description[i]
            if roles and rep.units[i] in roles:
                desc = f"{rep.units[i]}: {roles[rep.units[i]]}; " + desc.split(": ", 1)[-1]
            rows.append({"unit": rep.units[i], "description": desc, "rank": rank + 1,
                         "activation": float(rep.activations[s, i]), "snippet": _snippet(tokenizer, x[p], t)})
    return rows


def lens_on_text(model, windows: torch.Tensor, *, n_positions: int = 8):
    """Logit lens on held-out text: probability and rank of the true next token decoded from every stage,
    averaged over ``n_positions`` positions spread along the context. Returns rows per stage."""
    from spinlens.interp.lens import logit_lens

    T = windows.shape[1] - 1
    acc: dict[str, dict[str, list[float]]] = {}
    for p in np.unique(np.linspace(T // 8, T - 1, n_positions).astype(int)):
        res = logit_lens(model, windows[:, :-1], target=windows[:, p + 1], position=int(p))
        for st in res.summary.coords["stage"].values:
            a = acc.setdefault(str(st), {"prob": [], "rank": []})
            a["prob"].append(float(res.summary["prob"].sel(stage=st)))
            a["rank"].append(float(res.summary["rank"].sel(stage=st)))
    return [{"stage": s, "prob_true_next": float(np.mean(v["prob"])), "rank_true_next": float(np.mean(v["rank"]))}
            for s, v in acc.items()]


def write_analysis(out, model, tok, rep, summary, val, *, top_k: int = 5, icl_windows=None) -> list[str]:
    """Figures and tables of one model's analysis under ``out`` (for ``spinlens report``).

    ``loss_by_position`` is drawn from ``icl_windows`` (the windows of ``summary["icl_score"]``) when given, else
    from ``val``; its title is the ICL score of the windows it draws."""
    from spinlens.io import save_figure
    from spinlens.lm.study import write_csv
    from spinlens.plotting import lm as P

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [str(write_csv(out / "heads.csv", rep.heads()))]
    fig, _ = P.plot_head_scores(rep.induction, rep.prev_token)
    files += save_figure(fig, out, "head_scores", bbox_inches="tight", dpi=150)
    if "k_composition" in summary:
        kc = summary["k_composition"]
        rows = []
        for inp in ("k", "q", "v"):
            s = np.asarray(kc["scores"][inp], dtype=float)
            for h in range(s.shape[1]):
                rows.append({"receiver": kc["receiver"], "input": inp, "sender": f"0.{h}", "path_score": float(s[0, h])})
        files.append(str(write_csv(out / "k_composition.csv", rows)))
    if val is not None:
        from spinlens.lm.induction import icl_score_of_losses, loss_by_position

        lbp = loss_by_position(model, val if icl_windows is None else icl_windows)
        files.append(str(write_csv(out / "loss_by_position.csv",
                                   [{"position": i, "loss": float(v)} for i, v in enumerate(lbp)])))
        fig, _ = P.plot_loss_by_position(lbp, icl_score=icl_score_of_losses(lbp)["icl_score"])
        files += save_figure(fig, out, "loss_by_position", bbox_inches="tight", dpi=150)
        lens = lens_on_text(model, val)
        files.append(str(write_csv(out / "logit_lens.csv", lens)))
        fig, _ = P.plot_lm_lens([r["stage"] for r in lens], [r["prob_true_next"] for r in lens])
        files += save_figure(fig, out, "logit_lens", bbox_inches="tight", dpi=150)
        units = describe_lm_units(model, tok, val[:32], top_k=top_k, roles=head_roles(rep))
        files.append(str(write_csv(out / "unit_snippets.csv", units)))
    return files


def induction_study_report(checkpoint=None, model=None, *, n_seq: int = 64, half: int | None = None, text=None,
                           threshold: float = 0.1, prev_threshold: float = 0.3, ablation: bool = True,
                           path: bool = True, top_k: int = 5, seed: int = 0, device: str = "cpu",
                           out=None) -> StudyReport:
    """``spinlens interp induction``: induction and previous-token scores, repeated-token loss, ICL score,
    ablation of the heads with induction score >= ``threshold`` against random heads (``ablation``) and
    K-composition path patching (``path``) of one language model as a `spinlens.experiment.StudyReport`.

    ``checkpoint``: a folder of ``spinlens lm`` (``half`` default n_ctx/2, at most 64; held-out text: the saved
    split, or ``text``); ``model``: a named pretrained model or a Hugging Face folder (``half`` default 64; ICL
    score only with ``text``; no K-composition). Exactly one of them. ``out``: the figures, CSVs and snippets of
    `write_analysis` are written there (listed in ``summary["files"]``).
    """
    from spinlens.errors import check_device, check_float, check_int

    t0 = time.perf_counter()
    if (model is None) == (checkpoint is None):
        raise InvalidParameterError("Give exactly one of --checkpoint (a language model from 'spinlens lm') and "
                                    "--model (a named pretrained model or a Hugging Face folder).")
    check_int("n-seq", n_seq, low=1, high=100_000)
    check_int("seed", seed, low=0)
    if model is None:
        check_int("top-k", top_k, low=1, high=100)
    check_float("threshold", threshold, low=0.0, high=1.0)
    check_float("prev-threshold", prev_threshold, low=0.0, high=1.0)
    check_device("device", device)
    if model is not None:
        summary = _hf_induction(model, n_seq=n_seq, half=half, text=text, threshold=threshold,
                                prev_threshold=prev_threshold, ablation=ablation, top_k=top_k, seed=seed,
                                device=device, out=out)
    else:
        summary = _lm_induction(checkpoint, n_seq=n_seq, half=half, text=text, threshold=threshold,
                                prev_threshold=prev_threshold, ablation=ablation, path=path, top_k=top_k, seed=seed,
                                device=device, out=out)
    summary["elapsed_s"] = time.perf_counter() - t0
    from spinlens.results import StudyReport

    return StudyReport("interp induction", summary, lines=_induction_headline(summary, checkpoint or model),
                       result_json=False, files_key="files")


def _lm_induction(checkpoint, *, n_seq, half, text, threshold, prev_threshold, ablation, path, top_k, seed, device,
                  out) -> dict:
    from spinlens.errors import check_int
    from spinlens.lm.induction import induction_report, k_composition
    from spinlens.lm.train import load_lm
    from spinlens.progress import bar

    # six stages of a few seconds each (terminal only): load, held-out windows, scores, ablation, K-composition, files
    stages = bar(total=6, desc="interp induction", unit="stage")
    model, tok, meta = load_lm(checkpoint, device=device)
    stages.update(1)
    cfg = model.cfg
    half = half if half is not None else max(2, min(64, cfg.max_pos // 2))
    check_int("half", half, low=2, high=cfg.max_pos // 2)
    val = heldout_windows(model, tok, checkpoint, text_file=text)
    icl_val = heldout_windows(model, tok, checkpoint, text_file=text, max_windows=ICL_WINDOWS)
    stages.update(1)
    rep = induction_report(model, val_windows=icl_val, n_seq=n_seq, half=half, rng=seed)
    stages.update(1)
    summary = rep.to_dict()
    summary["checkpoint"] = str(checkpoint)
    summary["step"] = meta.get("step")
    heads = rep.induction_heads(threshold) or [(rep.heads()[0]["layer"], rep.heads()[0]["head"])]
    if ablation:
        prev = [(r["layer"], r["head"]) for r in rep.heads() if r["prev_token_score"] >= prev_threshold]
        summary["ablation"] = ablation_study(model, heads, n_seq=n_seq, half=half, val=icl_val, exclude=prev, rng=seed)
    stages.update(1)
    if path and cfg.n_layers >= 2:
        top = [h for h in rep.heads() if h["layer"] >= 1][0]
        kc = k_composition(model, n_seq=min(n_seq, 64), half=half, receivers=[(top["layer"], top["head"])], rng=seed)
        summary["k_composition"] = {"receiver": f"{top['layer']}.{top['head']}",
                                    **{inp: {"sender": f"{L}.{H}", "score": s} for inp, (L, H, s) in kc["top"].items()},
                                    "scores": {inp: v.tolist() for inp, v in kc["scores"].items()}}
    stages.update(1)
    if out is not None:
        summary["files"] = write_analysis(Path(out), model, tok, rep, summary, val, top_k=top_k, icl_windows=icl_val)
    stages.update(1)
    stages.close()
    return summary


def _hf_windows(tok, path, n_ctx: int, max_windows: int):
    """Held-out windows ``(n, n_ctx + 1)`` of a UTF-8 text file under a Hugging Face tokenizer."""
    from spinlens.io import check_regular_file

    check_regular_file("text", path)  # a FIFO would block the read
    with open(path, encoding="utf-8") as f:
        ids = tok(f.read(), add_special_tokens=False)["input_ids"]
    n = min(max_windows, len(ids) // (n_ctx + 1))
    if n < 1:
        raise InvalidParameterError(f"The 'text' parameter: {path!r} has {len(ids)} tokens, fewer than one window of "
                                    f"{n_ctx + 1}.")
    return torch.as_tensor(ids[: n * (n_ctx + 1)]).reshape(n, n_ctx + 1)


def _hf_induction(name, *, n_seq, half, text, threshold, prev_threshold, ablation, top_k, seed, device, out) -> dict:
    """The same report on a pretrained Hugging Face causal LM (induction and previous-token scores, repeated
    loss, mean ablation against random heads; ICL score with ``text``; no K-composition path patching, which on
    a 30-layer model is a long run)."""
    from transformers import AutoTokenizer

    from spinlens.errors import check_int
    from spinlens.interp.hf import load_hf
    from spinlens.lm.induction import induction_report
    from spinlens.models.pretrained import resolve_model

    half = check_int("half", half if half is not None else 64, low=2, high=1024)
    model = load_hf(name, device=device)
    tok = AutoTokenizer.from_pretrained(str(resolve_model(name)), local_files_only=True)
    val = _hf_windows(tok, text, 2 * half, 32) if text else None
    rep = induction_report(model, val_windows=val, n_seq=n_seq, half=half, rng=seed,
                           exclude=tuple(tok.all_special_ids) or (0,))
    summary = rep.to_dict()
    summary["model"] = str(name)
    heads = rep.induction_heads(threshold) or [(rep.heads()[0]["layer"], rep.heads()[0]["head"])]
    if ablation:
        prev = [(r["layer"], r["head"]) for r in rep.heads() if r["prev_token_score"] >= prev_threshold]
        summary["ablation"] = ablation_study(model, heads, n_seq=n_seq, half=half, val=val, exclude=prev, rng=seed)
    if out is not None:
        summary["files"] = write_analysis(Path(out), model, tok, rep, summary, val, top_k=top_k)
    return summary


def _induction_headline(summary: dict, source) -> list[str]:
    lines = [f"spinlens interp induction: {source}"]
    for r in summary["heads"][:6]:
        lines.append(f"  head {r['layer']}.{r['head']}: induction_score {r['induction_score']:.3f}, "
                     f"prev_token_score {r['prev_token_score']:.3f}")
    rl = summary["repeated_loss"]
    lines.append(f"  repeated_loss first {rl['first']:.3f}, repeat {rl['repeat']:.3f} (nats)")
    lines.append(f"  induction head formed: {'yes' if summary['induction_head_formed'] else 'no'} (top score >= 0.1, "
                 f"uniform attention gives {summary['uniform_baseline']:.3f}; repeat advantage >= 1 nat)")
    if summary.get("icl_score") is not None:
        lines.append(f"  icl_score {summary['icl_score']:+.3f} (late minus early held-out loss; negative: uses context)")
    if "ablation" in summary:
        a = summary["ablation"]
        lines.append(f"  ablating {a['heads']}: repeat loss {a['repeated_loss']['repeat']:.3f} "
                     f"(first {a['repeated_loss']['first']:.3f}); random heads: repeat {a['random_repeat_mean']:.3f}")
    if "k_composition" in summary:
        k = summary["k_composition"]
        lines.append(f"  path patching into {k['receiver']}: via k {k['k']['score']:.3f} from {k['k']['sender']}, "
                     f"via q {k['q']['score']:.3f}, via v {k['v']['score']:.3f}")
    return lines
