"""Peak-memory estimates per solver, the memory available, and the up-front refusal of jobs that do not fit.

Every solver of spinlens allocates a few large arrays whose sizes follow from (D, N, P) and the method;
`estimate_memory` adds them up (float64, 8 bytes a number) before any of them exists, `available_memory`
reads what the machine (and its cgroup) can still give, and `check_memory` refuses a job whose estimate does
not fit with one line naming the estimate in GiB and what to change. The CLI calls them before any work;
the Python API is meant for other commands too::

    >>> from spinlens.memory import estimate_memory, check_memory
    >>> est = estimate_memory("exact", d=20, n_context=100, n_prompts=10_000)  # ExactSolver's defaults: 8 probes
    >>> est.backend, round(est.gib, 3) < 1
    ('dense', True)
    >>> estimate_memory("exact", d=20, n_context=100, n_prompts=10_000, n_probes=0).backend  # mean only: CG is cheaper
    'cg'
    >>> check_memory(est, available=2**40)  # fits: returns the estimate
    MemoryEstimate(method='exact', backend='dense', ...)

Sizes (K = (D+1)² spins, D1 = D+1, B = prompts per batch):

======================  ============================================================================
part                    bytes
======================  ============================================================================
prompt batch (core)     3·B·D1·(N+1)·8 (the batch, its inputs and the einsum temporary)
prompt batch (reduced)  8·B·D1·8
features C, Q, y        (2·D1 + 1)·P·8 (the streamed features; the prompts are never all held)
dense exact             3.25·K²·8 (Gram and its pair form, Hessian/Cholesky factor, its inverse)
CG exact                (6·k)·K·8 + 3·b·D1·k·8 (block CG vectors, k = 1 + probes; row chunk b)
cavity / tap            3.25·K²·8 (Gram, J₀, J₀∘J₀) plus the exact mean for ``exact_distance``
sample                  3.25·K²·8 + 4·n_samples·K·8 + 3·min(2²², P·max(K, 2·n_samples))·8 (sample energies, in blocks)
langevin                (2·n_chains)·K·8·(3 + n_steps/thin)
limit                   O(D²)
======================  ============================================================================

plus a fixed 0.15 GiB for the interpreter and libraries. The estimate is checked against
tracemalloc in the test suite (within a factor of two of the measured array peak).
"""

from __future__ import annotations

import dataclasses
import math
import os

from .errors import InsufficientMemoryError, check_choice, check_int

GIB = 1024**3
#: interpreter, numpy/scipy and their libraries (RSS of a bare ``spinlens solve`` is about 0.15 GiB)
BASE_BYTES = int(0.15 * GIB)
#: environment variable capping the memory spinlens may use (GiB), e.g. for a shared machine
LIMIT_ENV = "SPINLENS_MEMORY_LIMIT_GIB"
#: a job must fit in this fraction of the available memory (other processes grow while it runs)
SAFETY = 0.8

METHODS = ("exact", "cavity", "tap", "sample", "langevin", "limit")


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of one job.

    Attributes
    ----------
    method : str
        The solver.
    backend : str or None
        "dense" or "cg" for the exact solver (the one `spinlens.solvers.exact.choose_backend` picks).
    parts : dict of str to int
        Bytes of each large allocation (see the module docstring); ``base`` is the fixed overhead.
    """

    method: str
    backend: str | None
    parts: dict

    @property
    def bytes(self) -> int:
        return int(sum(self.parts.values()))

    @property
    def gib(self) -> float:
        return self.bytes / GIB

    def to_dict(self) -> dict:
        """JSON-friendly: ``{"memory_estimate_gib": ..., "memory_parts_gib": {...}}``."""
        return {"memory_estimate_gib": round(self.gib, 4),
                "memory_parts_gib": {k: round(v / GIB, 4) for k, v in self.parts.items()}}

    def __repr__(self) -> str:
        return f"MemoryEstimate(method={self.method!r}, backend={self.backend!r}, gib={self.gib:.3f}, ...)"


def estimate_memory(method: str, *, d: int, n_context: int, n_prompts: int | None, sampler: str = "core",
                    batch_size: int = 4096, backend: str = "auto", n_probes: int = 8, n_samples: int = 1000,
                    n_chains: int = 16, n_steps: int = 2000, thin: int = 10, compare_exact: bool = True,
                    save_prompts: bool = False, dense_max: int = 6000) -> MemoryEstimate:
    """Peak memory of solving the spin glass of (D, N, P) with ``method`` (sizes in the module docstring).

    Parameters
    ----------
    method : {"exact", "cavity", "tap", "sample", "langevin", "limit"}
    d, n_context, n_prompts : int
        D, N and P (P is ignored, and may be None, for "limit").
    sampler : {"core", "reduced"}
        How the features are streamed (`spinlens.features.stream_features`).
    batch_size : int
        Prompts per streamed batch.
    backend : {"auto", "dense", "cg"}
        Exact solver backend; "auto" resolves with `spinlens.solvers.exact.choose_backend`.
    n_probes : int
        Probe vectors of the CG variance estimate.
    n_samples, n_chains, n_steps, thin : sampler sizes (see `spinlens.solvers`).
    compare_exact : bool
        Whether cavity/tap/langevin also compute the exact mean.
    save_prompts : bool
        The prompts are materialised to be written (``--save-prompts``): P·D1·(N+1)·8 more.
    """
    method = check_choice("method", method, METHODS, owner="estimate_memory")
    d = check_int("d", d, low=1, owner="estimate_memory")
    n_context = check_int("n_context", n_context, low=1, owner="estimate_memory")
    D1, K, f = d + 1, (d + 1) ** 2, 8
    parts: dict = {"base": BASE_BYTES}
    if method == "limit":
        parts["closed_form"] = 4 * K * f
        return MemoryEstimate(method, None, parts)
    P = check_int("n_prompts", n_prompts, low=1, owner="estimate_memory")
    B = min(P, batch_size)
    parts["prompt_batch"] = (3 * B * D1 * (n_context + 1) if sampler == "core" else 8 * B * D1) * f
    parts["features"] = (2 * D1 + 1) * P * f
    if save_prompts:
        parts["saved_prompts"] = P * D1 * (n_context + 1) * f
    be = None
    if method == "exact":
        from .solvers.exact import choose_backend

        be = choose_backend(backend, n_spins=K, n_prompts=P, n_probes=n_probes, dense_max=dense_max)
        if be == "dense":
            parts["dense"] = 3 * K * K * f + K * K * f // 4 + min(P, 2048) * K * f
        else:
            k = 1 + n_probes
            parts["cg"] = 6 * k * K * f + 3 * min(P, 2048) * D1 * k * f
    elif method in ("cavity", "tap"):
        parts["couplings"] = 3 * K * K * f + K * K * f // 4 + min(P, 2048) * K * f
        if compare_exact:
            from .solvers.exact import choose_backend

            if choose_backend("auto", n_spins=K, n_prompts=P, dense_max=dense_max, gram_cached=True) == "dense":
                parts["exact_reference"] = 2 * K * K * f
            else:
                parts["exact_reference"] = 6 * K * f
    elif method == "sample":
        from .hamiltonian import ENERGY_CHUNK_NUMBERS

        parts["dense"] = 3 * K * K * f + K * K * f // 4 + min(P, 2048) * K * f
        parts["samples"] = 4 * n_samples * K * f
        # the energy of every sample (`Hamiltonian.energy`): a block of spin features and two of residuals
        parts["sample_energies"] = 3 * min(ENERGY_CHUNK_NUMBERS, P * max(K, 2 * n_samples)) * f
    elif method == "langevin":
        parts["chains"] = 2 * n_chains * K * f * (3 + math.ceil(n_steps / thin))
        if compare_exact:
            parts["exact_reference"] = 3 * K * K * f
    return MemoryEstimate(method, be, parts)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_available() -> int | None:
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_f) as fh:
                raw = fh.read().strip()
            if raw == "max":
                return None
            limit = int(raw)
            with open(usage_f) as fh:
                usage = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit >= 2**60:
            return None
        return max(limit - usage, 0)
    return None


def available_memory() -> int:
    """Bytes this process may still allocate: the least of MemAvailable (psutil or /proc/meminfo), the
    cgroup's limit minus its usage, and ``$SPINLENS_MEMORY_LIMIT_GIB``; 2⁶³ when none is known."""
    vals = []
    try:
        import psutil  # optional

        vals.append(int(psutil.virtual_memory().available))
    except Exception:
        m = _meminfo_available()
        if m is not None:
            vals.append(m)
    cg = _cgroup_available()
    if cg is not None:
        vals.append(cg)
    env = os.environ.get(LIMIT_ENV)
    if env:
        try:
            vals.append(int(float(env) * GIB))
        except ValueError:
            raise InsufficientMemoryError(f"${LIMIT_ENV} must be a number of GiB; got {env!r}.") from None
    return min(vals) if vals else 2**63


_HINTS = {
    "dense": "use the matrix-free CG backend (--exact-backend cg), a smaller --D, or fewer prompts",
    "cg": "use a smaller --P (the features take (2D+3)·P numbers), fewer --probes, or a larger machine "
          "(--device cuda for the CG on a GPU)",
    "couplings": "the dense couplings of cavity/tap need (D+1)^4 numbers: use a smaller --D, or --method exact "
                 "(matrix-free CG)",
    "prompts": "use a smaller --P, or drop --save-prompts",
    "train": "use a smaller --batch-size, a smaller model, or fewer prompts --P",
}


def check_memory(estimate: MemoryEstimate, *, available: int | None = None, what: str = "this job") -> MemoryEstimate:
    """Return ``estimate`` if it fits in `SAFETY` (80 %) of ``available`` bytes (default `available_memory`), else
    raise `InsufficientMemoryError` with one line: the estimate and the available memory in GiB and what to change."""
    avail = available_memory() if available is None else int(available)
    if estimate.bytes <= SAFETY * avail:
        return estimate
    big = max((k for k in estimate.parts if k != "base"), key=lambda k: estimate.parts[k])
    if estimate.method == "train":  # a training run (spinlens.progress.estimate_training_time)
        hint = _HINTS["train"]
    elif big in ("dense", "exact_reference") and estimate.method == "exact":
        hint = _HINTS["dense"]
    elif big in ("couplings", "exact_reference", "dense"):
        hint = _HINTS["couplings"] if estimate.method in ("cavity", "tap") else _HINTS["dense"]
    elif big == "saved_prompts":
        hint = _HINTS["prompts"]
    else:
        hint = _HINTS["cg"]
    raise InsufficientMemoryError(
        f"{what} needs about {estimate.gib:.2f} GiB ({estimate.method}"
        f"{', ' + estimate.backend if estimate.backend else ''}; largest part: {big} "
        f"{estimate.parts[big] / GIB:.2f} GiB) but only {avail / GIB:.2f} GiB is available (a job may use "
        f"{SAFETY:.0%} of it): {hint}."
    )
