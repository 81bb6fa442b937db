"""One solve of the spin glass from a prompt distribution: prompts → features → Hamiltonian → solver → errors.

`solve_run` is what ``spinlens solve`` does: it validates the options, checks memory and time before any large
allocation (`spinlens.memory`, `spinlens.progress`), streams the features (at most one batch of prompts exists at a
time), solves, and returns the summary of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int

__all__ = ["solve_run"]


def solve_run(dist, method: str = "exact", *, prompts=None, n_prompts=None, sampler: str = "auto",
              l2_strength: float = 0.01, beta: float = 100.0, damping: float = 0.9, steps: int = 100,
              tol: float = 1e-6, n_samples: int = 1000, backend: str = "auto", preconditioner: str = "kronecker",
              n_probes: int | None = None, threads: int | None = None, device: str = "cpu", seed: int = 0,
              n_mc: int = 20000, save=None, save_couplings: bool = False, save_prompts=None, n_tasks_given=False,
              yes: bool = False, progress: bool = False, on_estimate: Callable | None = None,
              t_start: float | None = None) -> dict:
    """Solve the spin glass of ``dist`` (``P = n_prompts`` prompts drawn here, or the loaded ``prompts``).

    Parameters
    ----------
    dist : PromptDistribution
    method : str
        ``exact``, ``cavity``, ``tap``, ``sample``, ``langevin`` or ``limit`` (the P → ∞ closed form).
    sampler : str
        ``auto``, ``core`` or ``reduced`` (`spinlens.features.resolve_sampler`); ``"file"`` with ``prompts``.
    l2_strength, beta, damping, steps, tol, n_samples, backend, preconditioner, n_probes, threads, device
        The solver's options (`spinlens.solvers`); messages name them by their flags (``--lam``, ``--steps``).
    seed : int
        Spawns the prompts', the solver's and the evaluation's generators.
    n_mc : int
        Fresh prompts of the Monte-Carlo errors where no closed form applies.
    save, save_couplings, save_prompts
        ``RESULT.npz`` for ``W, m, v, h`` (and ``J``); ``PROMPTS.npz`` for the prompts (drawn with the core sampler).
    n_tasks_given : bool
        Whether a task pool K was asked for (refused with ``limit``).
    yes : bool
        Run a job estimated beyond an hour.
    progress : bool
        Progress lines on stderr.
    on_estimate : callable, optional
        ``on_estimate(time_estimate, memory_estimate)`` once both are known, before the work.
    t_start : float, optional
        ``time.perf_counter()`` when the command started (the time so far counts in the estimate and elapsed_s).

    Returns
    -------
    dict
        ``method, D, N`` (``P, lam, beta, sampler``), ``test_error``, ``test_error_kind``, ``train_error``,
        ``contrast_ratio``, ``converged``, ``n_iter``, ``solve_elapsed_s``, ``message``, the solver's scalar extras,
        ``pool_error`` (with a pool), ``threads``, ``features_elapsed_s``, ``saved``/``saved_prompts``, the memory
        and time estimates, ``peak_memory_gib``, ``elapsed_s``. A non-finite answer is never ``converged``.
    """
    from spinlens import observables as ob
    from spinlens.features import resolve_sampler, spin_features, stream_features
    from spinlens.hamiltonian import build_hamiltonian
    from spinlens.memory import check_memory, estimate_memory
    from spinlens.progress import ProgressLine, check_duration, estimate_solve_time
    from spinlens.prompts import Prompts
    from spinlens.random import spawn
    from spinlens.solvers import METHODS, SOLVERS
    from spinlens.solvers.base import BETA_MIN
    from spinlens.threads import thread_policy

    t_start = time.perf_counter() if t_start is None else t_start
    check_int("--seed", seed, low=0)
    method = check_choice("--method", method, METHODS)
    lam = check_float("--lam", l2_strength, low=0)
    beta = check_float("--beta", beta, low=BETA_MIN)
    if method in ("sample", "langevin") and not lam > 0:
        raise InvalidParameterError(f"The '--lam' parameter must be > 0 with --method {method}: at --lam 0 the Boltzmann "
                                    f"measure is improper (zero modes) and cannot be sampled. Got {l2_strength!r} instead.")
    damping = check_float("--damping", damping, low=0, high=1, high_open=True)
    steps = check_int("--steps", steps, low=1, high=10**7)
    tol = check_float("--tol", tol, low=0, low_open=True)
    samples = check_int("--samples", n_samples, low=2)
    mc = check_int("--mc-prompts", n_mc, low=2)
    backend = check_choice("--exact-backend", backend, ("auto", "dense", "cg"))
    precond = check_choice("--preconditioner", preconditioner, ("kronecker", "jacobi", "none"))
    threads = None if threads is None else check_int("--threads", threads, low=1)
    device = str(device)
    if device != "cpu" and not (device == "torch-cpu" or device.startswith("cuda")):
        raise InvalidParameterError(f"The '--device' parameter must be cpu, torch-cpu, cuda or cuda:N. Got {device!r} instead.")
    if device != "cpu" and method != "exact":
        raise InvalidParameterError(f"'--device {device}' runs the matrix-free CG: use it with --method exact (got --method {method}).")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InvalidParameterError(f"'--device {device}': torch {torch.__version__} sees no CUDA device here; use --device cpu.")
    if method == "limit" and n_tasks_given:
        raise InvalidParameterError("The '--K' parameter has no effect with --method limit (the P → ∞ closed form "
                                    "assumes a fresh task per prompt); drop --K or choose another method.")
    r_prompts, r_solve, r_eval = spawn(seed, 3)
    if prompts is not None:
        P, sampler = prompts.n_prompts, "file"
    else:
        P = check_int("--P", n_prompts, low=1)
        sampler = check_choice("--sampler", sampler, ("auto", "core", "reduced"))
        if save_prompts and sampler == "reduced":
            raise InvalidParameterError("'--save-prompts' needs the prompts themselves: use --sampler core (the reduced sampler draws only features).")
        sampler = "core" if save_prompts else resolve_sampler(sampler, dist)
        if device != "cpu":
            sampler = "core (torch)"  # the prompts are drawn in torch on the device
    K = (dist.d + 1) ** 2
    n_probes = (8 if K < 10_000 else 0) if n_probes is None else check_int("--probes", n_probes, low=0)

    kind = "reduced" if sampler == "reduced" else "core"
    est = estimate_memory(method, d=dist.d, n_context=dist.n_context, n_prompts=P, sampler=kind, backend=backend,
                          n_probes=n_probes, n_samples=samples, n_steps=steps, save_prompts=bool(save_prompts))
    if prompts is not None:  # the features come from the loaded prompts, not from streamed batches
        est.parts.pop("prompt_batch", None)
        est.parts["loaded_prompts"] = prompts.Z.nbytes + prompts.y.nbytes
    what = f"spinlens solve --method {method} at D={dist.d}, N={dist.n_context}" + ("" if method == "limit" else f", P={P}")
    check_memory(est, what=what)
    t_est = estimate_solve_time(method, d=dist.d, n_context=dist.n_context, n_prompts=None if method == "limit" else P,
                                sampler=kind, backend=est.backend or "dense", n_probes=n_probes, n_samples=samples,
                                n_steps=steps, max_iter=steps,
                                overhead_s=time.perf_counter() - t_start + 0.3)  # so far + evaluation
    check_duration(t_est, yes=yes, what=what,
                   shrink="fewer prompts --P, a smaller --D, fewer --steps, or --method exact with --exact-backend cg")
    if on_estimate is not None:
        on_estimate(t_est, est)
    line = ProgressLine(f"solve {method}", total={"cavity": steps, "tap": steps, "langevin": steps + steps // 2}.get(method),
                        enabled=progress)

    out: dict = {"method": method, "D": dist.d, "N": dist.n_context}
    error_kind = "exact" if dist.isotropic else f"monte-carlo ({mc} prompts)"
    H = None
    if method == "limit":
        from spinlens.solvers import LimitSolver

        r = LimitSolver(dist, l2_strength=lam).solve(None, beta=beta)
        out.update(lam=lam, beta=beta, test_error=ob.test_error(r.m, dist, rng=r_eval, n_mc=mc),
                   test_error_kind=error_kind, contrast_ratio=ob.contrast_ratio(r.m), converged=True, n_iter=0,
                   solve_elapsed_s=r.seconds, message=r.message)
    else:
        t0 = time.perf_counter()
        if prompts is not None:
            feats, y, pool = spin_features(prompts), prompts.y, prompts.pool
        elif device != "cpu":
            from spinlens.features import stream_features_torch

            fs = stream_features_torch(dist, P, seed=int(r_prompts.integers(2**62)),
                                       device="cpu" if device == "torch-cpu" else device)
            feats, y, pool = fs.features, fs.y, fs.pool
        else:
            batches: list[Prompts] | None = [] if save_prompts else None
            fs = stream_features(dist, P, rng=r_prompts, sampler=sampler,
                                 on_batch=None if batches is None else batches.append,
                                 progress=P >= 200_000 and progress)
            feats, y, pool = fs.features, fs.y, fs.pool
            if batches is not None:
                Prompts.concatenate(batches).save(save_prompts)
                del batches
        t_features = time.perf_counter() - t0
        H = build_hamiltonian(feats, y, l2_strength=lam)
        opts = {
            "exact": dict(backend=backend, n_probes=n_probes, preconditioner=precond, device=device),
            "cavity": dict(damping=damping, max_iter=steps, tol=tol),
            "tap": dict(damping=damping, max_iter=steps, tol=tol),
            "sample": dict(n_samples=samples),
            "langevin": dict(n_steps=steps),
        }[method]
        with thread_policy(K, threads=threads) as n_threads:
            if method in ("cavity", "tap", "sample") and K >= 4000 and progress:
                H.gram(progress=True)  # the dense couplings: the long part at large D
            step_name = {"exact": "residual"}.get(method, "change")
            with line:
                r = SOLVERS[method](**opts).solve(H, beta=beta, rng=r_solve, warn=False,
                                                  progress=lambda i, v: line(i, v, step_name))
            W = r.m
            out.update(P=P, lam=lam, beta=beta, sampler=sampler, test_error=ob.test_error(W, dist, rng=r_eval, n_mc=mc),
                       test_error_kind=error_kind, train_error=float(np.mean((y - feats.predict(W)) ** 2)),
                       contrast_ratio=ob.contrast_ratio(W), converged=bool(r.converged), n_iter=int(r.n_iter),
                       solve_elapsed_s=float(r.seconds), message=r.message,
                       **{k: v for k, v in r.extras.items() if np.ndim(v) == 0})
            if pool is not None:
                out["pool_error"] = ob.pool_error(W, dist, pool, rng=r_eval, n_mc=mc)
        out["threads"] = n_threads
        out["features_elapsed_s"] = t_features
    if save:
        arrays = {"W": r.m, "m": r.m, "v": r.v}
        if H is not None:
            arrays["h"] = H.h
            if save_couplings:
                arrays["J"] = H.J
        from spinlens.io import atomic_savez

        atomic_savez(save, **arrays)
        out["saved"] = save
    if save_prompts:
        out["saved_prompts"] = save_prompts
    out.update(est.to_dict())
    out.update(t_est.to_dict())
    out["peak_memory_gib"] = _peak_rss_gib()
    out["elapsed_s"] = time.perf_counter() - t_start
    answer = [r.m] + [out[k] for k in ("test_error", "train_error", "pool_error") if out.get(k) is not None]
    if out["converged"] and not all(np.isfinite(np.asarray(x, dtype=float)).all() for x in answer):
        out["converged"] = False  # a non-finite answer is never a converged one
        out["message"] = ("non-finite result (test/train error or W is inf/NaN): the prompts or parameters "
                          "overflow float64; rescale the data or choose smaller sizes")
    return out


def _peak_rss_gib() -> float:
    """Peak resident memory of this process so far (ru_maxrss), GiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3

