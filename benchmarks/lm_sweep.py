"""Sweep `spinlens lm` training settings over seeds; record when and how strongly induction heads form.

Each run trains with `spinlens.lm.train_lm` and, every ``--every`` steps, records the largest induction score,
the repeated-token loss (first occurrence, repeat) and the held-out loss. Runs go to a process pool (one torch
thread each); on a GPU machine they share the GPU. One JSON line per run is appended to ``OUT/runs.jsonl``.

    python benchmarks/lm_sweep.py --out /tmp/lm-sweep --seeds 0 1 2 \
        --grid '{"name": "default"}' '{"name": "steps6k", "steps": 6000}'
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed


def run_one(job: dict) -> dict:
    import torch

    torch.set_num_threads(job.get("threads", 1))
    from spinlens.lm.config import LMConfig
    from spinlens.lm.corpus import load_corpus
    from spinlens.lm.induction import induction_report
    from spinlens.lm.train import train_lm

    over = {k: v for k, v in job["config"].items() if k not in ("name", "corpus", "max_chars")}
    cfg = LMConfig(seed=job["seed"], **over)
    text = load_corpus(job["config"].get("corpus", "stdlib-docs"), max_chars=job["config"].get("max_chars", 1_000_000))
    traj = []
    every = job["every"]

    def cb(step, model):
        if step % every and step != cfg.steps:
            return
        rep = induction_report(model, n_seq=32, rng=0)
        L, H = divmod(int(rep.induction.argmax()), rep.induction.shape[1])
        traj.append({"step": step, "ind": round(float(rep.induction.max()), 4), "head": f"{L}.{H}",
                     "prev": round(float(rep.prev_token.max()), 4),
                     "first": round(rep.repeated_loss["first"], 3), "repeat": round(rep.repeated_loss["repeat"], 3)})

    t0 = time.perf_counter()
    res = train_lm(text, cfg, device=job["device"], corpus_name="sweep", callback=cb)
    rep = induction_report(res.model, n_seq=64, rng=1)
    return {"name": job["config"].get("name"), "seed": job["seed"], "config": job["config"],
            "seconds": time.perf_counter() - t0, "n_train_tokens": res.n_train_tokens,
            "val_ppl": res.history[-1]["val_ppl"], "final_ind": float(rep.induction.max()),
            "final_rep": rep.repeated_loss, "traj": traj}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--grid", nargs="+", required=True, help="JSON objects: LMConfig overrides (+ name, corpus, max_chars)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=max(1, len(os.sched_getaffinity(0))))
    ap.add_argument("--every", type=int, default=500)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    jobs = [{"config": json.loads(g), "seed": s, "device": a.device, "every": a.every} for g in a.grid for s in a.seeds]
    with ProcessPoolExecutor(a.workers) as pool, open(os.path.join(a.out, "runs.jsonl"), "a") as fh:
        futs = [pool.submit(run_one, j) for j in jobs]
        for f in as_completed(futs):
            try:
                r = f.result()
            except Exception as exc:  # noqa: BLE001 - a failed setting is a result of the sweep
                r = {"error": repr(exc)}
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            print(json.dumps({k: r.get(k) for k in ("name", "seed", "seconds", "final_ind", "final_rep", "val_ppl", "error")}),
                  flush=True)


if __name__ == "__main__":
    main()
