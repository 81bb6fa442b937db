"""Scale: the solver interface, the matrix-free CG, TAP, streaming, memory estimates and the thread policy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from spinlens import PromptDistribution, build_hamiltonian
from spinlens.errors import InsufficientMemoryError, InvalidParameterError
from spinlens.features import spin_features, stream_features
from spinlens.solvers import SOLVERS, ExactSolver, LimitSolver, SolverResult, TapSolver, solve


def _H(d=4, n=12, P=600, lam=0.05, seed=0, **kw):
    dist = PromptDistribution(d=d, n_context=n, **kw)
    return dist, build_hamiltonian(dist.sample(P, rng=seed), l2_strength=lam)


# ---- one contract for every solver
SMALL_OPTS = {"exact": {}, "cavity": {"max_iter": 50}, "tap": {"max_iter": 50}, "sample": {"n_samples": 50},
              "langevin": {"n_steps": 50, "n_chains": 2}}


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_solver_contract(method):
    dist, H = _H(d=3, n=10, P=300)
    opts = {"distribution": dist} if method == "limit" else SMALL_OPTS[method]
    r = solve(H, method, beta=50.0, rng=1, warn=False, **opts)
    assert isinstance(r, SolverResult) and r.method == method and r.beta == 50.0
    assert r.m.shape == r.v.shape == (4, 4) and r.W is r.m
    assert np.all(np.isfinite(r.m)) and isinstance(r.converged, bool) and r.seconds >= 0
    assert r.n_prompts == (None if method == "limit" else 300)
    json.dumps(r.to_dict())  # JSON-friendly
    with pytest.raises(AttributeError):
        r.W = r.m  # read-only alias
    cls = SOLVERS[method]
    inst = cls(dist) if method == "limit" else cls(**opts)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InvalidParameterError, match="beta"):
            inst.solve(H, beta=bad)
    # same seed, same numbers
    r2 = solve(H, method, beta=50.0, rng=1, warn=False, **opts)
    np.testing.assert_allclose(r.m, r2.m, rtol=1e-12, atol=1e-15)


def test_solve_reaches_every_option():
    _, H = _H()
    r = solve(H, "langevin", n_steps=20, n_chains=2, compare_exact=False, warn=False, rng=0)  # too short to mix
    assert "mean_distance" not in r.extras
    r = solve(H, "cavity", compare_exact=False, warn=False, rng=0)
    assert "exact_distance" not in r.extras
    with pytest.warns(Warning):
        solve(H, "cavity", max_iter=2, rng=0)
    r = solve(H, "exact", backend="cg", preconditioner="jacobi", n_probes=0)
    assert r.extras["backend"] == "cg" and r.extras["preconditioner"] == "jacobi"


def test_limit_solver_is_the_closed_form_and_has_no_P():
    from spinlens import limit

    dist = PromptDistribution(d=6, n_context=30)
    r = LimitSolver(dist, l2_strength=0.02).solve(None, beta=10.0)
    np.testing.assert_array_equal(r.m, limit.infinite_diversity_solution(dist, 0.02))
    den = 0.02 + limit.moments(dist).ss_diag
    np.testing.assert_allclose(r.v, 1 / (10.0 * den))
    assert r.n_prompts is None and "n_prompts" in r.to_dict() and r.to_dict()["n_prompts"] is None
    with pytest.raises(InvalidParameterError, match="l2_strength"):
        LimitSolver(dist).solve(None)
    with pytest.raises(InvalidParameterError, match="corr"):
        LimitSolver(dist.replace(corr=0.3))


# ---- exact at scale: CG against Cholesky
@pytest.mark.parametrize("pre", ["kronecker", "jacobi", "none"])
@pytest.mark.parametrize("case", [dict(d=5, n=20, P=3000, lam=0.01), dict(d=3, n=4, P=200, lam=0.3, sigma_eps=0.5),
                                  dict(d=6, n=8, P=1500, lam=1e-3, corr=0.4), dict(d=4, n=9, P=900, lam=0.02, n_tasks=5)])
def test_cg_equals_cholesky(pre, case):
    case = dict(case)
    d, n, P, lam = case.pop("d"), case.pop("n"), case.pop("P"), case.pop("lam")
    _, H = _H(d=d, n=n, P=P, lam=lam, seed=3, **case)
    dense = ExactSolver(backend="dense").solve(H)
    cg = ExactSolver(backend="cg", preconditioner=pre, tol=1e-12, n_probes=0).solve(H)
    assert cg.converged and cg.extras["backend"] == "cg"
    assert np.max(np.abs(cg.m - dense.m)) / np.max(np.abs(dense.m)) < 1e-10


def test_kronecker_preconditioner_cuts_iterations():
    _, H = _H(d=12, n=12, P=20000, lam=1e-3, seed=1)
    its = {p: ExactSolver(backend="cg", preconditioner=p, n_probes=0).solve(H).n_iter for p in ("kronecker", "jacobi", "none")}
    # isotropic prompts: the Kronecker factors are nearly diagonal, so Kronecker ≈ Jacobi; both beat none
    assert its["kronecker"] <= its["jacobi"] < its["none"] / 1.5, its


def test_cg_variances_by_probes():
    _, H = _H(d=5, n=20, P=3000, lam=0.01, seed=2)
    dense = ExactSolver(backend="dense").solve(H, beta=7.0)
    cg = ExactSolver(backend="cg", n_probes=64).solve(H, beta=7.0, rng=0)
    rel = np.abs(cg.v / dense.v - 1)
    assert np.median(rel) < 0.02 and rel.max() < 0.2
    approx = ExactSolver(backend="cg", n_probes=0).solve(H, beta=7.0)
    assert "preconditioner's diagonal" in approx.message
    assert np.median(np.abs(approx.v / dense.v - 1)) > np.median(rel)  # the probes improve on diag(M⁻¹)


def test_cg_lambda_zero_mean_in_range():
    _, H = _H(d=3, n=10, P=2000, lam=0.0, seed=4)
    dense = ExactSolver(backend="dense").solve(H)
    cg = ExactSolver(backend="cg", n_probes=0, tol=1e-12).solve(H)
    np.testing.assert_allclose(cg.m, dense.m, atol=1e-8 * np.abs(dense.m).max())


def test_torch_cg_matches_numpy():
    pytest.importorskip("torch")
    _, H = _H(d=5, n=15, P=2500, lam=0.01, seed=5)
    a = ExactSolver(backend="cg", n_probes=4, tol=1e-12).solve(H, rng=0)
    b = ExactSolver(backend="cg", n_probes=4, tol=1e-12, device="torch-cpu").solve(H, rng=0)
    np.testing.assert_allclose(b.m, a.m, rtol=0, atol=1e-10 * np.abs(a.m).max())
    np.testing.assert_allclose(b.v, a.v, rtol=1e-6)


def test_torch_features_have_the_law_of_numpy():
    pytest.importorskip("torch")
    from spinlens import limit
    from spinlens.features import stream_features_torch

    dist = PromptDistribution(d=4, n_context=10, sigma_eps=0.3)
    fs = stream_features_torch(dist, 40000, seed=1, batch_size=7000)
    H = build_hamiltonian(fs.features, fs.y, l2_strength=0.0)
    mom = limit.moments(dist)
    np.testing.assert_allclose(H.h.reshape(5, 5), mom.ys, atol=0.02)
    np.testing.assert_allclose(H.gram_diag.reshape(5, 5), mom.ss_diag, rtol=0.1, atol=1e-3)
    # the features of the torch path are those of its prompts: check against spin_features on one prompt batch
    assert fs.features.Q[:, -1].max() == 0


# ---- TAP: the fixed point is the exact mean
@pytest.mark.parametrize("case", [dict(d=5, n=20, P=2000, lam=0.01), dict(d=1, n=1, P=3, lam=0.5),
                                  dict(d=2, n=3, P=5, lam=1.0), dict(d=3, n=6, P=400, lam=0.1, sigma_eps=1.0),
                                  dict(d=4, n=5, P=300, lam=1.0, corr=0.3)])
def test_tap_fixed_point_is_exact_mean(case):
    case = dict(case)
    d, n, P, lam = case.pop("d"), case.pop("n"), case.pop("P"), case.pop("lam")
    _, H = _H(d=d, n=n, P=P, lam=lam, seed=7, **case)
    r = TapSolver(tol=1e-24, max_iter=20000, damping=0.9).solve(H, beta=100.0, rng=0, warn=False)
    ex = ExactSolver(backend="dense").solve(H, beta=100.0)
    assert r.converged, r.message
    assert r.extras["exact_distance"] < 1e-8
    assert np.linalg.norm(r.m - ex.m) / np.linalg.norm(ex.m) < 1e-8


def test_tap_residual_identity():
    """At any (m, v), TAP's update minus m is the exact residual h − (λI − J)m scaled by 1/(λ_i − βΣJ²v)."""
    from spinlens.solvers.cavity import cavity_iterate

    _, H = _H(d=3, n=8, P=500, lam=0.1)
    g = np.random.default_rng(0)
    m, v = g.standard_normal(H.n_spins), np.abs(g.standard_normal(H.n_spins))
    st = cavity_iterate(H.gram(), H.h, H.lam_diag, beta=3.0, damping=0.0, max_iter=1, tol=1e-300, m0=m, v0=v, reaction=True)
    J0 = -H.gram().copy()
    np.fill_diagonal(J0, 0)
    scale = H.lam_diag - 3.0 * (J0 * J0) @ v
    np.testing.assert_allclose(st.m - m, (H.h - H.hessian_matvec(m)) / scale, rtol=1e-9, atol=1e-12)


# ---- streaming
@pytest.mark.parametrize("kw", [dict(), dict(n_tasks=7), dict(corr=0.3, sigma_eps=0.2)])
def test_streaming_equals_materialised(kw):
    dist = PromptDistribution(d=4, n_context=9, **kw)
    fs = stream_features(dist, 2500, rng=11, sampler="core", batch_size=700, keep_tasks=True)
    p = dist.sample_batched(2500, rng=11, batch_size=700)
    f = spin_features(p)
    np.testing.assert_allclose(fs.features.C, f.C, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fs.y, p.y)
    np.testing.assert_array_equal(fs.w, p.w)
    Hs = build_hamiltonian(fs.features, fs.y, l2_strength=0.1)
    Hm = build_hamiltonian(p, l2_strength=0.1)
    np.testing.assert_allclose(Hs.h, Hm.h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(Hs.J, Hm.J, rtol=0, atol=1e-12)
    # one batch = the unbatched sampler
    one = stream_features(dist, 300, rng=5, sampler="core")
    np.testing.assert_array_equal(one.y, dist.sample(300, rng=5).y)


def test_reduced_stream_law_and_sampler_rules():
    dist = PromptDistribution(d=3, n_context=6)
    fs = stream_features(dist, 30000, rng=0, sampler="reduced", batch_size=4000)
    from spinlens import limit

    H = build_hamiltonian(fs.features, fs.y, l2_strength=0.0)
    np.testing.assert_allclose(H.h.reshape(4, 4), limit.moments(dist).ys, atol=0.05)
    with pytest.raises(InvalidParameterError, match="corr"):
        stream_features(dist.replace(corr=0.2), 10, rng=0, sampler="reduced")


# ---- memory
def test_memory_estimate_vs_tracemalloc():
    from spinlens.memory import BASE_BYTES, estimate_memory

    for method, d, n, P, kw in [("exact", 12, 20, 30000, {"backend": "cg", "n_probes": 2}), ("exact", 8, 20, 5000, {}),
                                ("cavity", 8, 20, 3000, {}), ("tap", 8, 10, 2000, {}),
                                ("sample", 8, 10, 20000, {})]:  # the samples' energies dominate (chunked)
        dist = PromptDistribution(d=d, n_context=n)
        est = estimate_memory(method, d=d, n_context=n, n_prompts=P, sampler="core", **kw)
        tracemalloc.start()
        fs = stream_features(dist, P, rng=0, sampler="core")
        H = build_hamiltonian(fs.features, fs.y, l2_strength=0.01)
        opts = {"exact": {"backend": kw.get("backend", "auto"), "n_probes": kw.get("n_probes", 8)},
                "sample": {}}.get(method, {"max_iter": 20})
        solve(H, method, warn=False, rng=0, **opts)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        arrays = est.bytes - BASE_BYTES
        assert peak / 2 <= arrays <= 2 * peak + 2**20, (method, d, P, arrays, peak)


def test_memory_refusal_names_estimate_and_fix():
    from spinlens.memory import check_memory, estimate_memory

    est = estimate_memory("cavity", d=100, n_context=100, n_prompts=10**5)
    with pytest.raises(InsufficientMemoryError, match=r"GiB.*--method exact"):
        check_memory(est, available=2**30)
    est = estimate_memory("exact", d=300, n_context=10, n_prompts=10**7)
    assert est.backend == "cg"
    with pytest.raises(InsufficientMemoryError, match=r"smaller --P"):
        check_memory(est, available=2**30)
    assert check_memory(estimate_memory("limit", d=5, n_context=5, n_prompts=None), available=2**30).method == "limit"


def test_cli_refuses_a_job_100x_too_large_fast(tmp_path):
    import os

    save = tmp_path / "r.npz"
    env = {**os.environ, "SPINLENS_MEMORY_LIMIT_GIB": "1"}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "spinlens.cli.main", "solve", "--D", "100", "--N", "100", "--P", "100000",
                        "--method", "cavity", "--save", str(save)], capture_output=True, text=True, env=env)
    assert time.perf_counter() - t < 30  # seconds, not the hours of building a 0.8 GB Gram
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "GiB" in r.stderr and "Traceback" not in r.stderr
    assert not save.exists()


# ---- threads
def test_thread_policy(monkeypatch):
    from spinlens import threads

    for k in ("SPINLENS_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(k, raising=False)
    assert threads.choose_threads(441) == 1
    assert 1 <= threads.choose_threads(10201) <= threads.available_cores()
    assert threads.choose_threads(441, threads=2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose_threads(441) is None
    monkeypatch.setenv("SPINLENS_THREADS", "3")
    assert threads.choose_threads(441) == 3
    with pytest.raises(InvalidParameterError, match="threads"):
        threads.choose_threads(441, threads=0)
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    with threads.thread_policy(441, threads=1) as n:
        assert n == 1 and all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")


# ---- CLI
def _cli(args):
    from spinlens.cli.main import main

    return main(args)


def test_cli_tap_exact_distance_and_save_prompts(tmp_path, capsys):
    pr = tmp_path / "p.npz"
    assert _cli(["solve", "--D", "4", "--N", "10", "--P", "5000", "--method", "tap", "--tol", "1e-24", "--steps", "20000",
                 "--sampler", "core", "--save-prompts", str(pr), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert a["converged"] and a["exact_distance"] < 1e-8 and a["sampler"] == "core" and pr.exists()
    assert "memory_estimate_gib" in a and a["peak_memory_gib"] > 0
    # the saved prompts are the ones the streamed solve used: same Hamiltonian, same exact test error
    assert _cli(["solve", "--D", "4", "--N", "10", "--P", "5000", "--method", "exact", "--sampler", "core", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert _cli(["solve", "--data", str(pr), "--method", "exact", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)
    assert c["test_error"] == pytest.approx(b["test_error"], rel=1e-12, abs=0)
    assert a["test_error"] == pytest.approx(b["test_error"], rel=1e-8)


def test_cli_limit_reports_no_P(capsys):
    assert _cli(["solve", "--D", "5", "--N", "10", "--method", "limit", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert "P" not in d and "train_error" not in d


def test_cli_cg_backend_and_flags(capsys):
    assert _cli(["solve", "--D", "6", "--N", "10", "--P", "3000", "--exact-backend", "cg", "--probes", "0",
                 "--threads", "1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["backend"] == "cg" and d["threads"] == 1 and d["converged"]
    for args, flag in [(["--sampler", "magic"], "--sampler"), (["--threads", "0"], "--threads"),
                       (["--exact-backend", "qr"], "--exact-backend"), (["--device", "tpu"], "--device"),
                       (["--corr", "0.5", "--sampler", "reduced"], "reduced")]:
        assert _cli(["solve", *args]) == 2
        assert flag in capsys.readouterr().err


def test_solve_imports_no_torch():
    code = ("import sys; from spinlens.cli.main import main;"
            "main(['solve','--D','3','--N','5','--P','50','--json']);"
            "main(['solve','--D','60','--N','5','--P','6000','--probes','0','--json']);"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ---- reproduce targets of the scale work
def test_extrapolation_recovers_a_known_limit():
    from spinlens.reproduce.fss import extrapolate, mapped_point

    D = np.array([10, 20, 40, 80])
    e = 0.3 + 0.7 / D - 2.0 / D**2
    val, err, coef = extrapolate(D, e, np.full(4, 1e-3), np.full(4, 4))
    assert val == pytest.approx(0.3, abs=1e-9) and coef[0] == pytest.approx(0.7, abs=1e-7)
    # a model that does not fit (1/D² term, fitted with e∞ + a/D on 3 sizes): the error bar grows with the misfit
    _, tight, _ = extrapolate(D[:3], 0.3 + 0.7 / D[:3], np.full(3, 1e-3), np.full(3, 4))
    v3, loose, _ = extrapolate(D[:3], e[:3], np.full(3, 1e-3), np.full(3, 4))
    assert loose > 3 * tight and abs(v3 - 0.3) < 3 * loose  # the bar covers the truth (without the χ² scaling: 10 σ off)
    assert np.isnan(extrapolate(D[:2], e[:2], np.full(2, 1e-3), np.full(2, 4))[1])  # two sizes: no error bar
    from spinlens.conventions import to_lu

    for d in (10, 37, 160):
        N, P, lam = mapped_point(d, 1.0, 10.0, 1.0)
        lu = to_lu(d, N, P, lam)
        assert lu["alpha"] == pytest.approx(1.0) and lu["tau"] == pytest.approx(10.0) and lu["lam_lu"] == pytest.approx(1.0)


def test_fss_quick(tmp_path):
    from spinlens.reproduce import run_figure

    res = run_figure("fss", tmp_path, quick=True, seed=0)
    d = tmp_path / "fss"
    for f in ("fss.png", "fss.pdf", "data.nc", "gap_table.csv", "run.json"):
        assert (d / f).exists(), f
    rec = json.loads((d / "run.json").read_text())
    per = rec["summary"]["per_D"]
    assert set(per) == {"10", "20", "40"} and all(v["elapsed_s"] > 0 and v["peak_gib"] > 0 for v in per.values())
    th = rec["summary"]["theory_icl_error"]
    # the gap shrinks towards the theory and stays within 10 % at D = 40
    assert abs(per["40"]["gap"]) < 0.1 * th and abs(per["40"]["gap"]) < abs(per["10"]["gap"])
    assert rec["summary"]["tap_max_distance"] < 1e-7
    assert res["summary"]["extrapolated_icl_error"] == pytest.approx(th, rel=0.1)


def test_tapmap_quick(tmp_path):
    from spinlens.reproduce import run_figure

    run_figure("tapmap", tmp_path, quick=True, seed=0)
    rec = json.loads((tmp_path / "tapmap" / "run.json").read_text())
    s = rec["summary"]
    assert 0 < s["converged_fraction_cavity"] <= 1 and 0 < s["converged_fraction_tap_tight"] <= 1
    assert s["max_distance_tap_tight"] < 1e-7  # TAP's fixed points are the exact mean
    assert s["median_distance_cavity"] > 1e-3  # the paper's update's are not
    assert (tmp_path / "tapmap" / "tapmap.png").exists() and (tmp_path / "tapmap" / "tapmap.pdf").exists()


# ---- benchmarks: the plain NumPy pipeline computes the same numbers; the GPU script runs on the CPU
def test_plain_numpy_pipeline_matches_spinlens():
    from pathlib import Path

    from spinlens import observables as ob
    from spinlens.solvers import CavitySolver

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "plain_numpy_pipeline.py"
    for method in ("exact", "cavity"):
        r = subprocess.run([sys.executable, str(script), "--D", "3", "--N", "7", "--P", "400", "--lam", "0.05",
                            "--method", method, "--seed", "3"], capture_output=True, text=True, check=True)
        plain = json.loads(r.stdout)
        dist = PromptDistribution(d=3, n_context=7)
        g = np.random.default_rng(3)
        p = dist.sample(400, rng=g)  # same draws in the same order: tasks, then inputs
        H = build_hamiltonian(p, l2_strength=0.05)
        if method == "exact":
            m = ExactSolver(backend="dense").solve(H).m
        else:
            res = CavitySolver().solve(H, rng=g, warn=False)
            m = res.m
            assert plain["exact_distance"] == pytest.approx(res.extras["exact_distance"], rel=1e-8)
        assert plain["test_error"] == pytest.approx(ob.test_error(m, dist), rel=1e-10)
        assert plain["train_error"] == pytest.approx(ob.train_error(m, p), rel=1e-10)


def test_bench_gpu_smoke_on_cpu():
    pytest.importorskip("torch")
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"
    r = subprocess.run([sys.executable, str(script), "--device", "cpu", "--D", "8", "--P", "2000"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["converged"] and d["residual"] < 1e-9 and abs(d["relative_gap"]) < 0.3


def test_cli_device_torch_cpu_and_missing_cuda(capsys):
    torch = pytest.importorskip("torch")
    assert _cli(["solve", "--D", "4", "--N", "8", "--P", "800", "--device", "torch-cpu", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["backend"] == "cg" and d["converged"] and d["device"] == "torch-cpu"
    if not torch.cuda.is_available():
        assert _cli(["solve", "--D", "4", "--P", "100", "--device", "cuda"]) == 2
        assert "CUDA" in capsys.readouterr().err
