"""Honest long runs: a time estimate before the work, one updating progress line while it runs.

* `ProgressLine`: one line on a terminal (stderr), rewritten in place (``\\r``), at most every 0.2 s; nothing at
  all when stderr is not a terminal (logs, pipes, ``--json`` runs stay clean). Every long command uses it:
  ``with ProgressLine("solve cavity", total=100) as p: p.update(step, change=err)``.
* `machine_rates`: this machine's speed, measured once per process in ~50 ms: dense matrix products
  (flop/s), streaming a symmetric matrix through a matrix-vector product (bytes/s), normal draws (/s).
* `TimeEstimate` and the estimators `estimate_solve_time`, `estimate_sweep_time`: a flop (and byte) count of
  the job, from its sizes, divided by the calibrated rates. The count of each method is in its function.
* `estimate_training_time`: the same for a training run (`spinlens.training.fit`): the matrix-product flops,
  the number of torch operations and the bytes they write in one forward and backward pass, counted on one
  probe batch (torch's flop counter), times the steps, over the rates of `torch_rates` (torch's own GEMM
  speed in the model's dtype and the cost of one torch function call, measured once per process).
* `bar`: a tqdm bar over an iterable (or ``total`` steps) for loops that are not iterative solvers (reproduce
  targets, phase maps, LM training inside the edit commands, examples); same rule: shown only on a terminal.
* `check_duration`: the rule for jobs estimated beyond an hour: refused unless ``yes`` (``--yes``), with one
  line that says the estimate and how to shrink the job.

The estimates are meant to land within a factor of 3 of the measured time (``benchmarks/bench_estimate.py``
measures it, docs/performance.md has the ratios).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from typing import IO, Any

__all__ = ["ProgressLine", "bar", "TimeEstimate", "check_duration", "estimate_solve_time", "estimate_sweep_time",
           "estimate_training_time", "count_step", "torch_rates", "format_seconds", "machine_rates", "LONG_JOB_S", "BYTE_CLASSES"]

#: jobs estimated beyond this many seconds need ``yes=True`` (``--yes``)
LONG_JOB_S = 3600.0


def format_seconds(s: float) -> str:
    """'0.42 s', '37 s', '4.2 min', '2.1 h'."""
    if not math.isfinite(s):
        return str(s)
    if s < 10:
        return f"{s:.2g} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class ProgressLine:
    """One progress line on a terminal, rewritten in place; silent when the stream is not a terminal.

    Parameters
    ----------
    label : str
        What runs, e.g. ``"solve cavity"``.
    total : int, optional
        The number of steps, if known (shown as ``done/total`` with a time-left guess).
    stream : file, optional
        Default ``sys.stderr``.
    enabled : bool, optional
        Default: whether ``stream`` is a terminal.
    min_interval : float
        Seconds between two redraws.

    Examples
    --------
    >>> import io
    >>> with ProgressLine("demo", total=3, stream=io.StringIO()) as p:  # not a terminal: prints nothing
    ...     for i in range(3):
    ...         p.update(i + 1, change=1e-3)
    >>> p.done
    3
    """

    def __init__(self, label: str, *, total: int | None = None, stream: IO[str] | None = None,
                 enabled: bool | None = None, min_interval: float = 0.2):
        self.label = label
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty()) if callable(isatty) else False
        self.enabled = enabled
        self.min_interval = float(min_interval)
        self.t0 = time.perf_counter()
        self._last = -math.inf
        self._width = 0
        self.done = 0
        self.fields: dict = {}

    def render(self) -> str:
        """The current line (without the carriage return)."""
        el = time.perf_counter() - self.t0
        head = f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else "")
        parts = [head]
        for k, v in self.fields.items():
            parts.append(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}")
        tail = format_seconds(el)
        if self.total and 0 < self.done < self.total:
            tail += f", ~{format_seconds(el * (self.total - self.done) / self.done)} left"
        return ", ".join(parts) + f" [{tail}]"

    def update(self, done: int | None = None, **fields) -> None:
        """Set the steps done (and named values: change, residual, ...); redraw if due."""
        if done is not None:
            self.done = int(done)
        self.fields.update(fields)
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < self.min_interval:
            return
        self._last = now
        self._draw()

    def _draw(self) -> None:
        line = self.render()
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line (terminal only)."""
        if self.enabled and self._width >= 0:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._width = -1

    def __call__(self, step: int, value: float | None = None, name: str = "change") -> None:
        """Callback form for the solvers: ``p(step, value)``."""
        if value is None or not math.isfinite(value):
            self.update(step)
        else:
            self.update(step, **{name: float(value)})

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@functools.lru_cache(maxsize=1)
def machine_rates() -> dict:
    """This machine's speed, measured once per process (~0.25 s): ``gemm_flops`` (dense products, flop/s, one
    thread of the current BLAS setting), ``stream_bytes`` (a symmetric matrix-vector product over a matrix
    larger than the caches, bytes/s), ``normals`` (standard normal draws/s), each times ``share``: CPU time
    over wall time of 0.2 s of work, the part of a core this process gets while others run too."""
    import numpy as np
    from scipy.linalg.blas import dsymv
    from threadpoolctl import threadpool_limits

    g = np.random.default_rng(0)
    with threadpool_limits(1):  # one thread: a loaded machine makes threaded BLAS erratic
        rates = _measure_rates(np, dsymv, g)
    # the part of a core this process gets now (CPU time over wall time of ~0.2 s of work): a long job on a
    # busy machine runs at that share of the machine's speed
    w0, c0 = time.perf_counter(), time.process_time()
    n = 256
    A = g.standard_normal((n, n))
    with threadpool_limits(1):
        while time.perf_counter() - w0 < 0.2:
            A @ A
    share = min(1.0, max(0.02, (time.process_time() - c0) / (time.perf_counter() - w0)))
    rates = {k: v * share for k, v in rates.items()}
    rates["share"] = share
    return rates


def _best_time(f, n: int = 3) -> float:
    """The shortest of ``n`` timed calls of ``f`` (seconds, at least 1e-9): a machine rate's measurement."""
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return max(min(ts), 1e-9)


def _measure_rates(np, dsymv, g) -> dict:

    best = _best_time

    n = 384
    A, B = g.standard_normal((n, n)), g.standard_normal((n, n))
    gemm = 2.0 * n**3 / best(lambda: A @ B)
    k = 1500
    S = g.standard_normal((k, k))
    S = np.asfortranarray(S + S.T)
    x = g.standard_normal(k)
    stream = (k * k / 2 * 8) / best(lambda: dsymv(1.0, S, x))
    normals = 2**18 / best(lambda: g.standard_normal(2**18))
    return {"gemm_flops": gemm, "stream_bytes": stream, "normals": normals}


@dataclasses.dataclass(frozen=True)
class TimeEstimate:
    """Estimated seconds of a job, by part (``parts``: name -> seconds); ``memory``: the job's
    `spinlens.memory.MemoryEstimate` when the estimator makes one (training does)."""

    parts: dict
    memory: Any = None

    @property
    def seconds(self) -> float:
        return float(sum(self.parts.values()))

    def to_dict(self) -> dict:
        """JSON-friendly: ``{"time_estimate_s": ..., "time_parts_s": {...}}`` (and the memory estimate's keys)."""
        return {"time_estimate_s": round(self.seconds, 4),
                "time_parts_s": {k: round(v, 4) for k, v in self.parts.items()},
                **(self.memory.to_dict() if self.memory is not None else {})}

    def describe(self) -> str:
        mem = f", {self.memory.gib:.2g} GiB" if self.memory is not None else ""
        return f"about {format_seconds(self.seconds)}{mem}"


def _features_s(d: int, n_context: int, n_prompts: int, sampler: str, r: dict) -> float:
    D1 = d + 1
    if sampler == "reduced":
        draws, flops = (3 * d + 4) * n_prompts, 30 * D1 * n_prompts
    else:
        draws, flops = d * (n_context + 2) * n_prompts, 6 * D1 * (n_context + 1) * n_prompts
    return draws / r["normals"] + flops / (0.05 * r["gemm_flops"])  # elementwise numpy: ~5 % of GEMM speed


def _pair_gram_s(d: int, n_prompts: int, r: dict) -> float:
    """P·(D1(D1+1)/2)·(D(D+1)/2) multiply-adds (`Hamiltonian.gram`) plus the gather of K² entries."""
    D1 = d + 1
    npc, npq = D1 * (D1 + 1) // 2, d * (d + 1) // 2
    K = D1 * D1
    return 2.0 * n_prompts * npc * npq / r["gemm_flops"] + 3 * K * K * 8 / r["stream_bytes"]


def _dense_exact_s(K: int, r: dict) -> float:
    """Cholesky (K³/3 flops) and the inverse (dpotri, 2K³/3 flops) at about half the GEMM rate."""
    return (K**3 / 3 + 2 * K**3 / 3) / (0.5 * r["gemm_flops"])


def _factored_eff(D1: int) -> float:
    """Fraction of the GEMM rate the factored products SᵀSv (`spinlens.solvers._cg.GramOperator`) reach:
    their matrices are P × D1, so small D1 runs far below it (measured: ~1 at D = 60, ~0.2 at D = 10)."""
    return min(1.0, D1 / 64)


def _energies_s(n_samples: int, n_prompts: int, D1: int, r: dict) -> float:
    """E(W) of n samples from the factored features: 2·n·P·D1² flops (`Hamiltonian.energy`)."""
    return 2.0 * n_samples * n_prompts * D1 * D1 / r["gemm_flops"] + 2 * n_samples * n_prompts * D1 * 8 / r["stream_bytes"]


def estimate_solve_time(method: str, *, d: int, n_context: int, n_prompts: int | None, sampler: str = "reduced",
                        backend: str = "dense", n_probes: int = 8, n_samples: int = 1000, n_chains: int = 16,
                        n_steps: int = 2000, n_burn: int | None = None, thin: int = 10, max_iter: int = 100,
                        compare_exact: bool = True, cg_iter: int = 20, overhead_s: float = 0.0,
                        rates: dict | None = None) -> TimeEstimate:
    """Seconds to solve the spin glass of (D, N, P) with ``method`` (one thread), by part.

    Counts (K = (D+1)² spins, D1 = D+1): features as `_features_s`; the pair Gram P·K²/4 multiply-adds;
    dense exact: Cholesky and inverse ~K³; CG exact: ``cg_iter`` (measured flat at 15–20) iterations of
    4·P·D1²·(1 + probes) flops, twice with probes; cavity/tap: ``max_iter`` steps (an upper bound; the
    paper's rule stops earlier when it converges) of two symmetric products streaming K²·8 bytes; sample:
    Cholesky plus 2·n_samples triangular solves of K² each; langevin: (burn-in + steps + 50) products
    4·P·D1²·2n_chains; both samplers then take the energy of every sample, 2·P·D1² flops each.
    ``overhead_s``: fixed seconds to add (the caller's start-up and evaluation).
    """
    r = machine_rates() if rates is None else rates
    parts: dict = {"overhead": float(overhead_s)} if overhead_s else {}
    K, D1 = (d + 1) ** 2, d + 1
    if method == "limit":
        return TimeEstimate({**parts, "closed_form": 1e-3})
    assert n_prompts is not None
    parts["features"] = _features_s(d, n_context, n_prompts, sampler, r)
    if method == "exact":
        if backend == "dense":
            parts["gram"] = _pair_gram_s(d, n_prompts, r)
            parts["cholesky"] = _dense_exact_s(K, r)
        else:
            per = 4.0 * n_prompts * D1 * D1 / (_factored_eff(D1) * r["gemm_flops"]) + 4 * n_prompts * D1 * 8 / r["stream_bytes"]
            parts["cg"] = cg_iter * per
            if n_probes:
                parts["cg_probes"] = cg_iter / 2 * (4.0 * n_prompts * D1 * D1 * n_probes / (_factored_eff(D1) * r["gemm_flops"])
                                                    + 4 * n_prompts * D1 * 8 / r["stream_bytes"])
    elif method in ("cavity", "tap"):
        parts["gram"] = _pair_gram_s(d, n_prompts, r)
        parts["cavity_steps"] = max_iter * 2 * (K * K * 8 / 2) / r["stream_bytes"]
        if compare_exact:
            parts["exact_reference"] = _dense_exact_s(K, r) / 3
    elif method == "sample":
        parts["gram"] = _pair_gram_s(d, n_prompts, r)
        parts["cholesky"] = _dense_exact_s(K, r) / 3
        parts["draws"] = 2 * n_samples * K * K / (0.5 * r["gemm_flops"])
        parts["energies"] = _energies_s(2 * n_samples, n_prompts, D1, r)
    elif method == "langevin":
        burn = n_steps // 2 if n_burn is None else n_burn
        c = 2 * n_chains
        parts["steps"] = (burn + n_steps + 50) * (4.0 * n_prompts * D1 * D1 * c / (_factored_eff(D1) * r["gemm_flops"])
                                                  + 4 * n_prompts * D1 * 8 / r["stream_bytes"])
        parts["energies"] = _energies_s(c * math.ceil(n_steps / thin), n_prompts, D1, r)
        if compare_exact:
            parts["exact_reference"] = _pair_gram_s(d, n_prompts, r) + _dense_exact_s(K, r) / 3
    return TimeEstimate(parts)


def estimate_sweep_time(points, *, method: str = "cavity", max_iter: int = 100, jobs: int = 1,
                        rates: dict | None = None) -> TimeEstimate:
    """Seconds of a sweep over ``points`` (dicts with D, N, P) on ``jobs`` workers: the sum of the points'
    `estimate_solve_time` (reduced sampler, no exact reference) over the workers, plus 5 ms a point of
    bookkeeping (one point file each)."""
    r = machine_rates() if rates is None else rates
    total, n = 0.0, 0
    cache: dict = {}
    for p in points:
        key = (int(p["D"]), int(p["N"]), int(p["P"]))
        if key not in cache:
            cache[key] = estimate_solve_time(method, d=key[0], n_context=key[1], n_prompts=key[2], max_iter=max_iter,
                                             backend="dense", n_probes=0, compare_exact=False, rates=r).seconds
        total += cache[key]
        n += 1
    return TimeEstimate({"points": total / max(1, jobs), "bookkeeping": 0.005 * n})


@functools.lru_cache(maxsize=4)
def torch_rates(dtype: str = "float32") -> dict:
    """Torch's speed on this machine, measured once per process and dtype (~0.1 s), at its current thread
    setting: ``gemm_flops`` (a 256² matrix product, flop/s), ``op_s`` (seconds per torch function call of a
    tiny forward and backward pass: the Python and dispatch overhead that dominates small models) and
    ``stream_bytes`` (bytes/s of an elementwise operation writing fresh memory, for outputs of 1, 6 and 24 MB,
    the classes of `BYTE_CLASSES`: cached, heap, fresh pages), ``tensor_step_s`` (seconds of an Adam
    step per small parameter tensor), ``matrix_s`` (seconds per small product of a batched product), each times the share of a core this process gets (`machine_rates`)."""
    import torch

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)

    best = _best_time

    n = 256
    A, B = torch.randn(n, n, generator=g, dtype=dt), torch.randn(n, n, generator=g, dtype=dt)
    gemm = 2.0 * n**3 / best(lambda: A @ B)
    stream = []  # bytes/s read and written by an elementwise operation into fresh memory, by output size
    for nbytes in (1 << 20, 6 << 20, 24 << 20):
        x = torch.ones(nbytes // torch.empty((), dtype=dt).element_size(), dtype=dt)
        stream.append(2 * nbytes / best(lambda: torch.mul(x, 1.5), n=4))
    w = torch.randn(4, 4, generator=g, dtype=dt, requires_grad=True)
    z = torch.randn(2, 4, generator=g, dtype=dt)

    def tiny():
        for _ in range(20):
            torch.softmax(torch.tanh(z @ w) * 2.0 + 1.0, -1)[:, 0].mean().backward()

    n_ops = count_step(lambda: torch.softmax(torch.tanh(z @ w) * 2.0 + 1.0, -1)[:, 0].mean())["calls"]
    op_s = best(tiny) / (20 * n_ops)  # seconds per function call of the forward pass, backward included
    w.grad = None
    ps = [torch.zeros(4, 4, dtype=dt, requires_grad=True) for _ in range(16)]
    for p in ps:
        p.grad = torch.ones_like(p)
    opt = torch.optim.Adam(ps, lr=1e-3)
    opt.step()
    step_s = best(lambda: [opt.step() for _ in range(5)]) / (5 * len(ps))
    a, b = torch.randn(4096, 2, 6, generator=g, dtype=dt), torch.randn(4096, 6, 8, generator=g, dtype=dt)
    mat_s = best(lambda: torch.bmm(a, b), n=5) / 4096
    share = machine_rates()["share"]
    return {"gemm_flops": gemm * share, "stream_bytes": [b * share for b in stream], "op_s": op_s / share,
            "tensor_step_s": step_s / share, "matrix_s": mat_s / share}


def _product_cost(name: str, args, out) -> tuple:
    """``(flops, matrices)`` of a torch matrix-product function call (2 flops per multiply-add; matrices: how
    many separate products a batched call makes, each with a fixed overhead), else ``(0, 0)``."""
    import torch

    if name in ("matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "linear", "addmm", "baddbmm", "addbmm"):
        a = args[1] if name in ("addmm", "baddbmm", "addbmm", "__rmatmul__") else args[0]
        if isinstance(a, torch.Tensor) and isinstance(out, torch.Tensor) and a.dim():
            mats = math.prod(out.shape[:-2]) if out.dim() > 2 and name not in ("linear", "addmm") else 1
            return 2.0 * out.numel() * a.shape[-1], mats
        return 0.0, 0
    if name == "einsum":
        eq = args[0].replace(" ", "")
        ops = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
        terms = eq.split("->")
        if len(terms) != 2 or "..." in eq or not all(isinstance(t, torch.Tensor) for t in ops):
            return (2.0 * out.numel(), 1) if isinstance(out, torch.Tensor) else (0.0, 0)
        sizes: dict = {}
        for term, t in zip(terms[0].split(","), ops):
            sizes.update(zip(term, t.shape))
        ins = [set(t) for t in terms[0].split(",")]
        batch = set(terms[1]).intersection(*ins) if len(ins) > 1 else set()
        return 2.0 * math.prod(sizes.values()), math.prod(sizes[c] for c in batch) if batch else 1
    if name == "scaled_dot_product_attention":
        q, k = args[0], args[1]
        return 4.0 * math.prod(q.shape[:-1]) * k.shape[-2] * q.shape[-1], 2 * math.prod(q.shape[:-2])
    return 0.0, 0


#: output sizes (bytes) that split the bytes a step writes into three classes with their own measured rates:
#: in cache, fresh memory from the heap, and fresh pages from the system (page faults)
BYTE_CLASSES = (2 << 20, 12 << 20)


def count_step(forward) -> dict:
    """What one training step costs, whose forward pass is ``forward()`` (returning a tensor): ``flops``, the
    matrix-product flops of the forward pass (matmul, linear, einsum, bmm, attention; 2 per multiply-add)
    times 3 (the backward pass takes two products per product); ``calls``, the torch function calls of the
    forward pass; ``bytes``, the bytes they write times 3, by output size (``BYTE_CLASSES``: a list of three);
    ``matrices``, the separate products of batched products times 3; ``sizes``, the bytes of each output of
    the forward pass (for evaluations at another batch size, `estimate_training_time`). The backward pass of the output's sum is
    run (its gradients are the caller's to clear). Counted with a `torch.overrides.TorchFunctionMode`."""
    import torch
    from torch.overrides import TorchFunctionMode

    count: dict = {"flops": 0.0, "calls": 0, "bytes": [0.0, 0.0, 0.0], "matrices": 0, "sizes": []}

    class _Count(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            count["calls"] += 1
            flops, mats = _product_cost(getattr(func, "__name__", ""), args, out)
            count["flops"] += flops
            count["matrices"] += mats
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    nb = t.numel() * t.element_size()
                    count["bytes"][sum(nb >= c for c in BYTE_CLASSES)] += nb
                    count["sizes"].append(nb)
            return out

    with _Count():
        out = forward()
    if out.requires_grad:
        out.float().sum().backward()
    return {"flops": 3 * count["flops"], "calls": count["calls"], "bytes": [3 * b for b in count["bytes"]],
            "matrices": 3 * count["matrices"], "sizes": count["sizes"]}


def estimate_training_time(model, probe, *, steps: int, eval_inputs: int = 0, eval_every: int | None = None,
                           n_batch: int | None = None, eval_batch: int | None = None, data_bytes: int = 0,
                           overhead_s: float = 0.0, rates: dict | None = None) -> TimeEstimate:
    """Seconds (and peak memory) of ``steps`` training steps of ``model`` (`spinlens.training.fit`), by part.

    ``probe``: one training batch of inputs (``model(probe)``), or a callable ``model -> output`` that draws
    nothing at random. One forward and backward pass of it is counted (`count_step`, in eval mode, so that
    no dropout draws from torch's generator; gradients cleared after): per step, matrix-product flops over
    torch's GEMM rate, torch function calls times the cost of one (forward and backward), the bytes they
    write over the streaming rate of their size class, and the separate products of batched products times
    the cost of one; plus the optimiser, ~12 passes over the trained entries and the measured cost of an
    Adam step per parameter tensor. ``eval_inputs``: rows of evaluation every ``eval_every`` steps, in
    forward passes of ``eval_batch`` rows (default ``n_batch``): the counted forward pass scaled to that
    size, its outputs rated by their scaled sizes; ``n_batch``: rows of the probe (default its first
    dimension). Memory (``.memory``): the parameters, and for the trained ones a gradient and two optimiser
    moments, the activations the forward pass writes, and
    ``data_bytes`` of training data.
    """
    import torch

    from .memory import BASE_BYTES, MemoryEstimate

    was = model.training if isinstance(model, torch.nn.Module) else None
    every = list(model.parameters())
    params = [p for p in every if p.requires_grad]
    dtype = str(params[0].dtype).replace("torch.", "") if params else "float32"
    r = torch_rates(dtype) if rates is None else rates
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        fwd = (lambda: probe(model)) if callable(probe) and not isinstance(probe, torch.Tensor) else (lambda: model(probe))
        c = count_step(fwd)
    finally:
        for p in params:
            p.grad = None
        if was is not None:
            model.train(was)
    if n_batch is None:
        n_batch = int(probe.shape[0]) if isinstance(probe, torch.Tensor) else 1
    n_params = sum(p.numel() for p in params)
    per_step = (c["flops"] / r["gemm_flops"] + c["calls"] * r["op_s"] + c["matrices"] * r["matrix_s"]
                + sum(b / rate for b, rate in zip(c["bytes"], r["stream_bytes"])))
    size = params[0].element_size() if params else 4
    opt_s = 12 * n_params * size / r["stream_bytes"][0] + len(params) * r["tensor_step_s"]
    parts = {"steps": steps * per_step, "optimizer": steps * opt_s}
    if eval_inputs and eval_every:  # forward passes of eval_batch rows: the counted forward pass, scaled
        n_eval = steps // max(1, eval_every) + 1
        rows = min(eval_inputs, eval_batch or n_batch)
        x = rows / max(1, n_batch)
        fwd = (x * c["flops"] / 3 / r["gemm_flops"] + c["calls"] * r["op_s"] / 3 + x * c["matrices"] / 3 * r["matrix_s"]
               + sum(x * b / r["stream_bytes"][sum(x * b >= k for k in BYTE_CLASSES)] for b in c["sizes"]))
        parts["evaluation"] = n_eval * math.ceil(eval_inputs / rows) * fwd
    if overhead_s:
        parts["overhead"] = float(overhead_s)
    mem = {"base": BASE_BYTES, "parameters": sum(p.numel() * p.element_size() for p in every),
           "gradients_and_moments": 3 * n_params * size, "activations": int(sum(c["bytes"]) / 3)}
    if data_bytes:
        mem["data"] = int(data_bytes)
    return TimeEstimate(parts, MemoryEstimate("train", None, mem))


def check_duration(est: TimeEstimate, *, yes: bool, what: str, shrink: str, limit_s: float = LONG_JOB_S) -> None:
    """Refuse a job estimated beyond ``limit_s`` (an hour) unless ``yes``: raises `InvalidParameterError`
    with one line giving the estimate, ``--yes`` and how to shrink the job (``shrink``)."""
    from .errors import InvalidParameterError

    if est.seconds > limit_s and not yes:
        raise InvalidParameterError(
            f"{what} is estimated at {format_seconds(est.seconds)} (> {format_seconds(limit_s)}): pass --yes to run "
            f"it, or shrink it ({shrink})."
        )


def bar(iterable=None, *, desc: str, total: int | None = None, enabled: bool | None = None, unit: str = "it",
        leave: bool = False):
    """A tqdm progress bar over ``iterable`` (or ``total`` steps) on stderr, leaving no line behind.

    enabled : None (default: only when stderr is a terminal), True (always) or False (never).

    Examples
    --------
    >>> for _ in bar(range(3), desc="demo", enabled=False):
    ...     pass
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=None if enabled is None else not enabled, unit=unit,
                leave=leave)
