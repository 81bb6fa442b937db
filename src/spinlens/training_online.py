"""Training of any spinlens model ``Z -> ŷ`` on mini-batches: fresh prompts every step (online) or a fixed set.

The loss of `train_online` on the one training loop, `spinlens.training.fit`.

`train_online` is the zoo's trainer (Fig S8). With a `spinlens.prompts.PromptDistribution` as data, every
step draws ``batch_size`` fresh prompts (fresh tasks, or tasks from one finite pool drawn once when the
distribution has ``n_tasks``): the infinite-diversity limit P → ∞ of the paper. With `Prompts` as data it
cycles through the fixed pretraining set in shuffled mini-batches (``batch_size=None``: full batch).

Loss: torch mean squared error (no ½), as in the paper. ``optimizer="adam"`` and ``"sgd"`` use torch's
coupled weight decay λ₀, so that for the merged linear attention a fixed point minimises E(W) with
λ = λ₀/2 (`spinlens.conventions.l2_strength_from_weight_decay`); ``"adamw"`` decouples it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int
from spinlens.random import RNGLike, as_generator, seed_from, spawn

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class OnlineTrainResult:
    """Outcome of `train_online`.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (the same object that was passed in, trained in place), in eval mode.
    history : xarray.Dataset
        ``train_loss`` (dim ``step``, the mini-batch loss of each step), ``lr`` (dim ``step``) and
        ``test_loss`` (dim ``eval_step``: the steps at which the test set was evaluated, 0 = before
        training).
    train_loss : float
        Mean mini-batch loss over the last 10 % of the steps.
    test_loss : float
        Mean squared error on the test prompts after training (NaN without test prompts).
    n_steps, batch_size : int
    seconds : float
        Wall time of the training loop.
    seed : int or None
        The ``rng`` seed when an int was given.
    settings : dict
        Optimizer, lr, weight decay, schedule, device, online or fixed data, ...
    time_estimate : spinlens.progress.TimeEstimate
        The estimate made before the start (`spinlens.progress.estimate_training_time`).
    """

    model: object
    history: object
    train_loss: float
    test_loss: float
    n_steps: int
    batch_size: int
    seconds: float
    seed: int | None
    settings: dict
    time_estimate: object = None

    def to_dict(self) -> dict:
        """JSON-friendly summary (without the model and the history)."""
        return {
            "train_loss": self.train_loss,
            "test_loss": self.test_loss,
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "elapsed_s": self.seconds,
            "seed": self.seed,
            **self.settings,
        }

    def __repr__(self) -> str:
        return (
            f"OnlineTrainResult(test_loss={self.test_loss:.4g}, train_loss={self.train_loss:.4g}, "
            f"n_steps={self.n_steps}, batch_size={self.batch_size}, seconds={self.seconds:.1f}, "
            f"model={type(self.model).__name__})"
        )


def mse(model, prompts, *, batch_size: int = 4096, device="cpu") -> float:
    """Mean squared error of ``model`` on `Prompts` (evaluated without gradients, in chunks)."""
    import torch

    dtype = next(model.parameters()).dtype
    total, n = 0.0, prompts.n_prompts
    model.eval()
    with torch.no_grad():
        for i in range(0, n, batch_size):
            Z = torch.as_tensor(prompts.Z[i : i + batch_size], dtype=dtype, device=device)
            y = torch.as_tensor(prompts.y[i : i + batch_size], dtype=dtype, device=device)
            total += float(((model(Z) - y) ** 2).sum())
    return total / n


def predict(model, prompts, *, batch_size: int = 4096, device="cpu") -> np.ndarray:
    """Predictions ``(n_prompts,)`` of ``model`` on `Prompts` as a float64 numpy array."""
    import torch

    dtype = next(model.parameters()).dtype
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, prompts.n_prompts, batch_size):
            Z = torch.as_tensor(prompts.Z[i : i + batch_size], dtype=dtype, device=device)
            out.append(model(Z).double().cpu().numpy())
    return np.concatenate(out)


def train_online(
    model,
    data,
    test=None,
    *,
    n_steps: int = 1000,
    batch_size: int | None = 256,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    grad_clip: float | None = None,
    n_test: int = 2048,
    eval_every: int | None = None,
    device: str = "cpu",
    rng: RNGLike = None,
    progress: bool = False,
    on_estimate=None,
):
    """Train ``model`` (``Z -> ŷ``) by mini-batch gradient descent on the mean squared error.

    Parameters
    ----------
    model : torch.nn.Module
        Any spinlens model: ``forward(Z)`` with ``Z (batch, D+1, N+1)`` returns ``(batch,)``. Trained in place.
    data : PromptDistribution or Prompts
        A distribution: fresh prompts every step (online). `Prompts`: a fixed pretraining set, cycled in
        shuffled mini-batches.
    test : Prompts, optional
        Test prompts. Default with a distribution: ``n_test`` fresh prompts with fresh tasks (the ICL error);
        with a fixed set: no test loss.
    n_steps : int >= 1
        Optimizer steps.
    batch_size : int >= 1 or None
        Prompts per step; None = the whole fixed set (full batch; needs ``data`` to be `Prompts`).
    optimizer : {"adam", "adamw", "sgd"}
    lr : float > 0
    weight_decay : float >= 0
        λ₀ (coupled for adam and sgd, as in the paper; decoupled for adamw).
    schedule : {"constant", "cosine"}
        Learning rate schedule (cosine: decays to 0 at the last step, after ``warmup_steps`` linear warm-up).
    grad_clip : float > 0 or None
        Clip the gradient norm.
    n_test : int >= 1
        Size of the default fresh test set.
    eval_every : int or None
        Evaluate the test loss every this many steps (default: 20 evaluations per run).
    device : str
        Torch device ("cpu", "cuda", ...).
    rng : None, int or Generator, keyword-only
        Seeds the data stream, the test set and the shuffling (not the model's initialisation, which is the
        ``rng`` of `spinlens.models.zoo.build_model`).
    progress : bool
        Show one updating progress line on a terminal.
    on_estimate : callable, optional
        Called with the time (and memory) estimate before the start (`spinlens.training.fit`).

    Returns
    -------
    OnlineTrainResult

    Examples
    --------
    >>> from spinlens.prompts import PromptDistribution
    >>> from spinlens.models.zoo import ZooConfig, build_model
    >>> res = train_online(build_model(ZooConfig("fla", d=3), rng=0), PromptDistribution(3, 10), n_steps=5, rng=0)
    >>> res.history.train_loss.shape
    (5,)
    """
    import torch
    import xarray as xr

    from spinlens.prompts import PromptDistribution, Prompts
    from spinlens.training import fit

    own = "train_online"
    n_steps = check_int("n_steps", n_steps, low=1, owner=own)
    online = isinstance(data, PromptDistribution)
    if not online and not isinstance(data, Prompts):
        raise InvalidParameterError(
            f"The 'data' parameter of {own} must be a PromptDistribution (online) or Prompts (fixed set). "
            f"Got {type(data).__name__} instead."
        )
    if batch_size is None:
        if online:
            raise InvalidParameterError(
                f"The 'batch_size' parameter of {own} must be an integer >= 1 for online training. Got None instead."
            )
        batch_size = data.n_prompts
    batch_size = check_int("batch_size", batch_size, low=1, owner=own)
    check_choice("optimizer", optimizer, OPTIMIZERS, owner=own)
    # torch keeps lr and weight decay as float32 for float32 models: larger values cannot be represented
    f32_max = 3.4028234663852886e38
    lr = check_float("lr", lr, low=0, low_open=True, high=f32_max, owner=own)
    weight_decay = check_float("weight_decay", weight_decay, low=0, high=f32_max, owner=own)
    check_choice("schedule", schedule, SCHEDULES, owner=own)
    warmup_steps = check_int("warmup_steps", warmup_steps, low=0, high=n_steps - 1, owner=own)
    if grad_clip is not None:
        grad_clip = check_float("grad_clip", grad_clip, low=0, low_open=True, owner=own)
    n_test = check_int("n_test", n_test, low=1, owner=own)
    if eval_every is None:
        eval_every = max(1, n_steps // 20)
    eval_every = check_int("eval_every", eval_every, low=1, owner=own)
    if test is not None and not isinstance(test, Prompts):
        raise InvalidParameterError(f"The 'test' parameter of {own} must be Prompts or None. Got {type(test).__name__}.")
    d = data.d
    for name, p in (("data", data), ("test", test)):
        if p is not None and p.d != d:
            raise InvalidParameterError(f"The '{name}' prompts have d={p.d}; expected d={d}.")

    seed = rng if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) else None
    g_data, g_test, g_shuffle = spawn(as_generator(rng), 3)
    if test is None and online:
        test = data.replace(n_tasks=None).sample(n_test, rng=g_test)
    pool = data.sample_pool(rng=g_data) if online and data.n_tasks is not None else None

    model = model.to(device)
    dtype = next(model.parameters()).dtype

    def lr_at(step: int) -> float:  # step = 0 .. n_steps-1
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        if schedule == "constant":
            return lr
        t = (step - warmup_steps) / max(1, n_steps - warmup_steps)
        return lr * 0.5 * (1.0 + math.cos(math.pi * t))

    if not online:
        Z_all = torch.as_tensor(data.Z, dtype=dtype, device=device)
        y_all = torch.as_tensor(data.y, dtype=dtype, device=device)
        torch_gen = torch.Generator().manual_seed(seed_from(g_shuffle))
        order = [torch.randperm(data.n_prompts, generator=torch_gen), 0]

    eval_steps, test_losses = [], []

    def evaluate(step: int) -> None:
        if test is not None:
            eval_steps.append(step)
            test_losses.append(mse(model, test, device=device))
            model.train()

    def batch_loss(m, step):
        if step == 0:  # the test loss before training (after the estimate: nothing runs before it)
            evaluate(0)
            m.train()
        if online:
            batch = data.sample(batch_size, rng=g_data, pool=pool)
            Z = torch.as_tensor(batch.Z, dtype=dtype, device=device)
            y = torch.as_tensor(batch.y, dtype=dtype, device=device)
        else:
            if order[1] + batch_size > data.n_prompts:
                order[:] = [torch.randperm(data.n_prompts, generator=torch_gen), 0]
            idx = order[0][order[1] : order[1] + batch_size].to(device)
            order[1] += batch_size
            Z, y = Z_all[idx], y_all[idx]
        return torch.mean((m(Z) - y) ** 2)

    def on_step(m, step, value):
        if step % eval_every == 0 or step == n_steps:
            evaluate(step)

    from spinlens.progress import estimate_training_time

    D1, N1 = d + 1, (data.n_context if online else data.Z.shape[2] - 1) + 1
    est = estimate_training_time(model, torch.zeros(batch_size, D1, N1, dtype=dtype, device=device), steps=n_steps,
                                 eval_inputs=0 if test is None else test.n_prompts, eval_every=eval_every,
                                 eval_batch=4096,
                                 data_bytes=0 if online else 2 * data.Z.nbytes)
    model.train()
    res = fit(model, batch_loss, steps=n_steps, optimizer=optimizer, lr=lr, weight_decay=weight_decay, lr_at=lr_at,
              grad_clip=grad_clip, on_step=on_step, progress=progress, label=f"train {type(model).__name__}",
              time_estimate=est, on_estimate=on_estimate)
    if not res.converged:
        raise FloatingPointError(f"{res.message}.")
    train_losses = res.losses
    lrs = np.array([lr_at(s) for s in range(n_steps)])
    seconds = res.seconds
    model.eval()

    steps = np.arange(1, n_steps + 1)
    history = xr.Dataset(
        {
            "train_loss": ("step", train_losses, {"long_name": "mini-batch loss (MSE)", "units": ""}),
            "lr": ("step", lrs, {"long_name": "learning rate", "units": ""}),
            "test_loss": ("eval_step", np.asarray(test_losses, float), {"long_name": "test loss (MSE)", "units": ""}),
        },
        coords={"step": steps, "eval_step": np.asarray(eval_steps, int)},
    )
    tail = max(1, n_steps // 10)
    from spinlens.conventions import l2_strength_from_weight_decay

    settings = {
        "online": online,
        "optimizer": optimizer,
        "lr": lr,
        "weight_decay": weight_decay,
        "l2_strength_if_merged": l2_strength_from_weight_decay(weight_decay) if optimizer != "adamw" else None,
        "schedule": schedule,
        "warmup_steps": warmup_steps,
        "grad_clip": grad_clip,
        "device": str(device),
        "n_test": 0 if test is None else test.n_prompts,
        "n_train_prompts": None if online else data.n_prompts,
    }
    return OnlineTrainResult(
        model=model,
        history=history,
        train_loss=float(train_losses[-tail:].mean()),
        test_loss=float(test_losses[-1]) if test_losses else float("nan"),
        n_steps=n_steps,
        batch_size=batch_size,
        seconds=seconds,
        seed=None if seed is None else int(seed),
        settings=settings,
        time_estimate=est,
    )


@dataclasses.dataclass
class ZooTrainRun:
    """The result of `zoo_train_run`.

    Attributes
    ----------
    summary : dict
        ``arch, D, N, P`` (None online), ``n_params``, ``converged``, ``baseline_zero_prediction``, the
        `OnlineTrainResult` summary, the time estimate and ``seed``; after a non-finite loss only ``arch``,
        ``converged`` (False) and ``message``.
    converged : bool
    message : str
        Why not converged (the divergence rule, or the non-finite loss: then nothing was written).
    out : Path or None
        The folder written (None when nothing was).
    """

    summary: dict
    converged: bool
    message: str
    out: object = None


def zoo_train_run(cfg_kwargs: dict, dist, data, out, *, steps: int = 1000, batch_size: int | None = None,
                  optimizer: str = "adam", lr: float = 1e-2, weight_decay: float = 0.0, schedule: str = "cosine",
                  n_test: int = 4096, device: str = "cpu", seed: int = 0, progress: bool = False, on_estimate=None,
                  force: bool = False, record_args=None) -> ZooTrainRun:
    """What ``spinlens zoo train`` does: build the zoo model of ``ZooConfig(**cfg_kwargs, d=dist.d)``, train it
    with `train_online` on ``data`` (the distribution: online; `Prompts`: a fixed set; default batch
    ``min(256, P)``), test on ``n_test`` fresh prompts, and write ``out`` as one transaction: the spinlens model
    folder, ``history.nc``, ``train_loss.csv``, ``test_loss.csv``, ``loss.png/.pdf`` and run.json
    (``record_args``: the command's arguments)."""
    import time
    from pathlib import Path

    from spinlens import io
    from spinlens.models.checkpoint import save_model
    from spinlens.models.zoo import ZooConfig, build_model
    from spinlens.training import distribution_info, divergence_reason
    from spinlens.vocabulary import to_symbols

    online = not hasattr(data, "n_prompts")
    _, r_test, r_init, r_train = spawn(seed, 4)
    n_test = check_int("--test-prompts", n_test, low=1, high=10**7)
    check_int("--steps", steps, low=1, high=10**8)
    # a batch is drawn from the P stored prompts (or fresh ones online); more than P would silently mean P
    max_batch = 10**6 if online else data.n_prompts
    batch_size = min(256, max_batch) if batch_size is None else batch_size
    check_int("--batch-size", batch_size, low=1, high=max_batch)
    test = dist.replace(n_tasks=None).sample(n_test, rng=r_test)
    cfg = ZooConfig(**cfg_kwargs, d=dist.d, max_pos=max(512, dist.n_context + 1))
    model = build_model(cfg, rng=r_init)
    t0 = time.perf_counter()
    try:
        res = train_online(model, data, test, n_steps=steps, batch_size=batch_size, optimizer=optimizer, lr=lr,
                           weight_decay=weight_decay, schedule=schedule, device=device, rng=seed_from(r_train),
                           progress=progress, on_estimate=on_estimate)
    except FloatingPointError as exc:  # the loss became non-finite: nothing worth saving
        return ZooTrainRun({"arch": cfg.arch, "converged": False, "message": str(exc)}, False,
                           f"{exc} (nothing written)")
    zero_loss = float(np.mean(test.y ** 2))
    diverged = divergence_reason(res.train_loss, zero_loss)
    # the folder is one transaction (spinlens.io.folder_transaction): an error or a kill leaves it as it was
    with io.folder_transaction(Path(out), kind="zoo train", force=force) as stage:
        summary = {"arch": cfg.arch, "D": dist.d, "N": dist.n_context, "P": None if online else data.n_prompts,
                   "n_params": int(sum(p.numel() for p in model.parameters())), "converged": diverged is None,
                   "baseline_zero_prediction": zero_loss, **res.to_dict(), **res.time_estimate.to_dict(), "seed": seed}
        dist_info = distribution_info(dist)
        # OUT itself is the model folder (--checkpoint OUT in every command)
        save_model(model.to("cpu"), stage, metadata={**summary, "distribution": dist_info, "seed": seed})
        hist = res.history
        io.save_dataset(hist, stage, "history")
        io.save_columns({"step": hist.step.values, "train_loss": hist.train_loss.values, "lr": hist.lr.values},
                        stage, "train_loss")
        io.save_columns({"step": hist.eval_step.values, "test_loss": hist.test_loss.values}, stage, "test_loss")
        import matplotlib

        matplotlib.use("Agg")
        from spinlens.plotting.curves import plot_training_history

        fig, _ = plot_training_history(hist, title=f"{cfg.arch}: D={dist.d}, N={dist.n_context}")
        io.save_figure(fig, stage, "loss")
        rec_args = dict(vars(record_args) if record_args is not None and not isinstance(record_args, dict)
                        else record_args or {}, batch_size=batch_size)
        io.write_run_json(stage, io.run_record("zoo train", args=rec_args, seed=seed, config=cfg.to_dict(),
                                               distribution=to_symbols(dist_info), summary=summary,
                                               elapsed_s=time.perf_counter() - t0))
    return ZooTrainRun(summary, diverged is None, diverged or "", Path(out))
