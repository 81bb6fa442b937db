"""spinlens.progress: the progress line, the time estimate and the long-job rule."""

from __future__ import annotations

import io
import json

import pytest

from spinlens import PromptDistribution, build_hamiltonian, solve
from spinlens.errors import InvalidParameterError
from spinlens.progress import ProgressLine, TimeEstimate, check_duration, estimate_solve_time, estimate_sweep_time


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_is_one_updating_line_on_a_terminal_only():
    tty = _Tty()
    with ProgressLine("solve cavity", total=10, stream=tty, min_interval=0.0) as p:
        for i in range(10):
            p(i + 1, 10.0 ** -i)
    text = tty.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") == 11
    assert "solve cavity: 10/10" in text and "change 1e-09" in text
    pipe = io.StringIO()
    with ProgressLine("x", total=3, stream=pipe) as p:
        p.update(3)
    assert pipe.getvalue() == ""


def test_solvers_report_progress():
    H = build_hamiltonian(PromptDistribution(d=3, n_context=10).sample(2000, rng=0), l2_strength=0.1)
    seen = []
    r = solve(H, "cavity", rng=0, progress=lambda i, v: seen.append((i, v)), warn=False)
    assert [i for i, _ in seen] == list(range(1, r.n_iter + 1))
    assert seen[-1][1] == pytest.approx(r.residual)
    seen.clear()
    solve(H, "exact", backend="cg", n_probes=0, progress=lambda i, v: seen.append((i, v)))
    assert seen and all(b < a for (_, a), (_, b) in zip(seen, seen[1:]))  # the residual falls


def test_estimates_scale_with_the_work():
    rates = {"gemm_flops": 1e10, "stream_bytes": 1e10, "normals": 1e8}
    small = estimate_solve_time("cavity", d=20, n_context=100, n_prompts=10_000, rates=rates)
    big = estimate_solve_time("cavity", d=20, n_context=100, n_prompts=100_000, rates=rates)
    assert big.parts["gram"] == pytest.approx(10 * small.parts["gram"], rel=0.01)
    # the pair Gram: P·231·210 multiply-adds at D = 20
    assert small.parts["gram"] > 2 * 10_000 * 231 * 210 / 1e10
    sweep = estimate_sweep_time([{"D": 20, "N": 10, "P": 1000}] * 4, jobs=2, rates=rates)
    one = estimate_solve_time("cavity", d=20, n_context=10, n_prompts=1000, compare_exact=False, rates=rates)
    assert sweep.parts["points"] == pytest.approx(2 * one.seconds)
    assert json.dumps(small.to_dict())


def test_long_jobs_need_yes():
    long = TimeEstimate({"work": 7200.0})
    with pytest.raises(InvalidParameterError, match=r"estimated at 2.0 h .*--yes.*fewer prompts"):
        check_duration(long, yes=False, what="spinlens solve", shrink="fewer prompts")
    check_duration(long, yes=True, what="spinlens solve", shrink="fewer prompts")
    check_duration(TimeEstimate({"work": 1.0}), yes=False, what="x", shrink="y")


def test_solve_cli_refuses_a_job_of_hours_and_carries_the_estimate(capsys):
    from spinlens.cli.main import main

    rc = main(["solve", "--D", "60", "--N", "10", "--P", "1000", "--method", "cavity", "--steps", "10000000"])
    err = capsys.readouterr().err
    assert rc == 2 and "--yes" in err and "estimated at" in err
    rc = main(["solve", "--D", "3", "--N", "10", "--P", "200", "--method", "exact", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["time_estimate_s"] > 0 and out["elapsed_s"] > 0
