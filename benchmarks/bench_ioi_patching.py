"""Benchmark: activation patching of every head of SmolLM2-135M (30 layers x 9 heads = 270) on IOI prompts,
against nnsight on the same model and prompts; attribution patching of every head.

Prompts: `spinlens.llm.ioi.ioi_task` from one template (so that all prompts have one token length), the first
``--n-prompts`` of the most common length; metric: logit(IO) - logit(S) at the last position (denoising:
clean z into the ABC-corrupted run). spinlens batches the 270 variants x prompts along the batch dimension and
starts each variant at its patched layer from the base run's cached residual stream (`HookedHF.forward_from`).
nnsight (optional extra ``crosscheck``) runs one trace per head, writing the head's slice of ``o_proj``'s input.

    SPINLENS_CACHE=/work/cache OMP_NUM_THREADS=2 python benchmarks/bench_ioi_patching.py --n-prompts 64
    python benchmarks/bench_ioi_patching.py --n-prompts 8 --layers 0,10,20,29    # a sample of layers

Prints one JSON object: times (s), peak RSS (MiB, the whole process), the machine's load average, the
largest |spinlens - nnsight| score difference, and attribution-vs-exact agreement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prompts(tok, n: int, seed: int):
    from spinlens.llm.ioi import TEMPLATES, ioi_task
    from spinlens.llm.tasks import tokenize_task

    t = ioi_task(max(4 * n, 64), tok, templates=TEMPLATES[:1], rng=seed)
    b = max(tokenize_task(t, tok).batches, key=len)
    if len(b) < n:
        raise SystemExit(f"only {len(b)} prompts of one length; lower --n-prompts")
    return b.clean[:n], b.corrupt[:n], b.answer[:n], b.wrong[:n]


def nnsight_patch(hf, clean, corrupt, io, s, layers, n_heads, d_head):
    from nnsight import NNsight

    nm = NNsight(hf)

    def ld(logits):
        lg = logits[:, -1]
        return (lg.gather(-1, io[:, None]) - lg.gather(-1, s[:, None]))[:, 0].mean()

    zs = {}
    with torch.no_grad():
        with nm.trace(clean):
            for L in layers:
                zs[L] = nm.model.layers[L].self_attn.o_proj.input.save()
            lc = nm.lm_head.output.save()
        with nm.trace(corrupt):
            lb = nm.lm_head.output.save()
        m_s, m_b = float(ld(lc)), float(ld(lb))
        out = np.zeros((len(layers), n_heads))
        for i, L in enumerate(layers):
            for h in range(n_heads):
                sl = slice(h * d_head, (h + 1) * d_head)
                with nm.trace(corrupt):
                    nm.model.layers[L].self_attn.o_proj.input[:, :, sl] = zs[L][:, :, sl]
                    lg = nm.lm_head.output.save()
                out[i, h] = (float(ld(lg)) - m_b) / (m_s - m_b)
    return out


def _layers(text: str) -> list[int]:
    """'0-3,10,29' -> [0, 1, 2, 3, 10, 29]."""
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return sorted(set(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n-prompts", type=int, default=64)
    ap.add_argument("--layers", default=None, help="layers to patch, e.g. '0-3,10,29' (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-batch", type=int, default=512)
    ap.add_argument("--no-nnsight", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from spinlens.interp.attribution import head_attribution
    from spinlens.interp.metrics import logit_diff_metric
    from spinlens.interp.patching import _hook_name, _index, _variant_means, run_variants
    from spinlens.llm.tasks import load_model_and_tokenizer

    t0 = time.perf_counter()
    model, tok = load_model_and_tokenizer(args.model)
    rec = {"load_s": time.perf_counter() - t0, "rss_after_load_mib": _rss_mib(), "loadavg_start": os.getloadavg()}
    clean, corrupt, io, s = prompts(tok, args.n_prompts, args.seed)
    nL, nH = model.cfg.n_layers, model.cfg.n_heads
    layers = list(range(nL)) if args.layers is None else _layers(args.layers)
    metric = logit_diff_metric(io, s)
    rec.update(n_prompts=int(clean.shape[0]), seq_len=int(clean.shape[1]), n_heads_patched=len(layers) * nH,
               threads=args.threads)

    # spinlens: activation_patch's machinery restricted to the chosen layers (all layers = activation_patch)
    t0 = time.perf_counter()
    with torch.no_grad():
        m_b = float(metric(model(corrupt)).mean())
        m_s = float(metric(model(clean)).mean())
        names = [_hook_name("z", L) for L in layers]
        _, cache = model.run_with_cache(clean, names_filter=names)
        variants = [[(_hook_name("z", L), _index("z", h, None), cache[_hook_name("z", L)])] for L in layers for h in range(nH)]
        outs, _ = run_variants(model, corrupt, variants, max_batch=args.max_batch, reduce=metric)
        sp = ((_variant_means(outs) - m_b) / (m_s - m_b)).reshape(len(layers), nH)
    rec["spinlens_s"] = time.perf_counter() - t0
    rec["rss_after_spinlens_mib"] = _rss_mib()
    rec["logit_diff_clean"], rec["logit_diff_corrupt"] = m_s, m_b

    t0 = time.perf_counter()
    at = head_attribution(model, clean, corrupt, metric=metric).scores.values[layers]
    rec["attribution_s"] = time.perf_counter() - t0
    rec["attribution_vs_exact_corr"] = float(np.corrcoef(at.ravel(), sp.ravel())[0, 1])
    top = np.argsort(-np.abs(sp.ravel()))[:10]
    rec["top_heads"] = [[layers[i // nH], int(i % nH), float(sp.ravel()[i]), float(at.ravel()[i])] for i in top]

    if not args.no_nnsight:
        t0 = time.perf_counter()
        from spinlens.interp.hf import load_hf_model

        plain = load_hf_model(args.model)  # a fresh plain transformers model, no spinlens hooks on it
        nn_scores = nnsight_patch(plain, clean, corrupt, io, s, layers, nH, model.cfg.d_head)
        rec["nnsight_s"] = time.perf_counter() - t0
        rec["max_abs_diff_vs_nnsight"] = float(np.abs(nn_scores - sp).max())
        rec["speedup_vs_nnsight"] = rec["nnsight_s"] / rec["spinlens_s"]
    rec["peak_rss_mib"] = _rss_mib()
    rec["loadavg_end"] = os.getloadavg()
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
