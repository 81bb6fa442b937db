"""Knowledge editing on SmolLM2-135M (docs/llm.md, "Knowledge editing"): rewrite known capitals by tuning the
MLPs that causal tracing located, as many MLPs elsewhere, or every parameter.

    SPINLENS_CACHE=... .venv/bin/python benchmarks/llm_editing.py --layers 0 1 2 --other-layers 24 25 26 \
        --n-cases 3 --seed 0 --out runs/llm-editing

Cases: ``--n-cases`` known capitals (template "The capital of {} is", drawn with ``--seed``), each rewritten to
another country's capital; paraphrases: the other capital templates; neighbours: 10 other known capitals;
perplexity: 8 windows of 128 tokens of the standard library's documentation (`spinlens.lm.corpus`).
"""

from __future__ import annotations

import argparse
import json
import os


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, nargs="+", required=True, help="located MLP layers (causal tracing)")
    ap.add_argument("--other-layers", type=int, nargs="+", required=True, help="control MLP layers")
    ap.add_argument("--n-cases", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/llm-editing")
    a = ap.parse_args()

    import numpy as np
    from transformers import AutoTokenizer

    from spinlens import io
    from spinlens.interp.hf import load_hf
    from spinlens.llm import facts as F
    from spinlens.llm.editing import EditCase, editing_study
    from spinlens.llm.recall import known_facts
    from spinlens.models.pretrained import resolve_model

    model = load_hf("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m")), local_files_only=True)
    facts = F.country_facts(("capital",))
    t0 = F.TEMPLATES["capital"][0]
    task = F.recall_task(facts, templates={"capital": (t0,)})
    ok = known_facts(model, tok, task)
    known = [f for f, k in zip(facts, ok) if k]
    g = np.random.default_rng(a.seed)
    pick = g.choice(len(known), size=a.n_cases + 10, replace=False)
    cases = []
    for i in pick[: a.n_cases]:
        f = known[i]
        other = known[int(g.choice([j for j in range(len(known)) if j != i]))]
        cases.append(EditCase(t0.format(f.subject), " " + f.object, " " + other.object,
                              [t.format(f.subject) for t in F.TEMPLATES["capital"][1:]],
                              [(t0.format(known[j].subject), " " + known[j].object) for j in pick[a.n_cases:]]))
    res = editing_study(model, tok, cases, layers=a.layers, other_layers=a.other_layers, max_steps=a.max_steps,
                        progress=True)
    os.makedirs(a.out, exist_ok=True)
    d = res.to_dict()
    d.update(n_known=len(known), n_facts=len(facts), source=F.facts_source(), seed=a.seed)
    io.write_json(os.path.join(a.out, "result.json"), d)
    print(json.dumps(d["summary"], indent=1))


if __name__ == "__main__":
    main()
