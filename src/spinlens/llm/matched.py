"""Comparing methods at matched effect: each method's costs where its gain first reaches common levels.

Used by precise tuning (`spinlens.llm.tuning.precise_tuning`: gain in accuracy on the skill, costs in general
ability) and sycophancy tuning (`spinlens.llm.sycophancy.sycophancy_tuning`: gain = fall of the flip rate). A
run is a curve of evaluations along training; `matched_costs` reads each run's costs at the levels,
`matched_verdict` says in one line whether the located method's cost curve lies below the others'.
"""

from __future__ import annotations

import numpy as np

__all__ = ["matched_costs", "matched_verdict", "finite_mean_sd"]


def finite_mean_sd(xs):
    """Mean and sd (ddof 1) of the finite entries of ``xs`` (None and NaN left out)."""
    from spinlens.verdict import mean_sd

    return mean_sd([x for x in xs if x is not None and np.isfinite(x)])


def _cost_at(gains, costs, level):
    """Cost when the gain first reaches ``level`` along a run (linear between evaluations); None if never."""
    for i, g1 in enumerate(gains):
        if g1 >= level:
            if i == 0:
                return costs[0]
            g0 = gains[i - 1]  # < level
            return costs[i - 1] + (level - g0) / (g1 - g0) * (costs[i] - costs[i - 1])
    return None


def matched_costs(curves, *, gain_key: str, cost_keys, fractions=(0.25, 0.5, 0.75, 1.0)) -> dict:
    """Each method's costs at matched gains.

    The levels are ``fractions`` of the smallest, over methods, of the mean (over seeds) of the best gain a run
    reached; so every method reaches the top level on average. For each run, the cost at a level is read
    where its gain first reaches the level (linear interpolation between evaluations, from the untuned
    point (gain 0, cost 0)). Returns ``{"gain_key", "levels", "costs": {method: {cost_key: [(mean, sd, n)]}}}``;
    ``levels`` is empty when some method never gains.
    """
    runs: dict = {}
    for r in curves:
        runs.setdefault((r["method"], r["seed"]), []).append(r)
    best: dict = {}
    for (m, _), rows in runs.items():
        best.setdefault(m, []).append(max(x[gain_key] for x in rows))
    top = min(float(np.mean(v)) for v in best.values()) if best else 0.0
    levels = [float(f * top) for f in fractions] if top > 0 else []
    out: dict = {"gain_key": gain_key, "levels": levels, "best_gain": {m: finite_mean_sd(v) for m, v in best.items()},
                 "costs": {}}
    for m in best:
        per = {}
        for ck in cost_keys:
            vals = []
            for lv in levels:
                at = []
                for (mm, _), rows in runs.items():
                    if mm != m:
                        continue
                    rows = sorted(rows, key=lambda x: x["step"])
                    at.append(_cost_at([x[gain_key] for x in rows], [x[ck] for x in rows], lv))
                got = [a for a in at if a is not None]
                ms = finite_mean_sd(got)
                vals.append((ms[0], ms[1], len(got)))
            per[ck] = vals
        out["costs"][m] = per
    return out


def matched_verdict(matched, cost_key: str, located: str = "located") -> str:
    """One line comparing the ``located`` method's cost curve (``cost_key`` of `matched_costs`) with every
    other method's: below / ABOVE at all matched gains (mean ± sd apart), or not separated."""
    levels = matched["levels"]
    costs = matched["costs"]
    if not levels or located not in costs:
        return "no matched comparison: some method gained nothing"
    lo = costs[located][cost_key]
    parts = []
    for m, per in costs.items():
        if m == located:
            continue
        c = per[cost_key]
        below = above = 0
        for (a, sa, na), (b, sb, nb) in zip(lo, c):
            if na == 0 or nb == 0 or not (np.isfinite(a) and np.isfinite(b)):
                continue
            if a + sa < b - sb:
                below += 1
            elif a - sa > b + sb:
                above += 1
        n = sum(1 for (_, _, na), (_, _, nb) in zip(lo, c) if na and nb)
        if n == 0:
            parts.append(f"vs {m}: not comparable")
        elif below == n:
            parts.append(f"vs {m}: below at all {n} matched gains")
        elif above == n:
            parts.append(f"vs {m}: ABOVE at all {n} matched gains")
        else:
            parts.append(f"vs {m}: not separated (below at {below}, above at {above} of {n} matched gains, mean ± sd)")
    return f"located cost curve ({cost_key}): " + "; ".join(parts)
