"""Training in spinlens: the one training loop `fit`, and regression training `train_model` on top of it.

`fit` is the only place where spinlens takes an optimiser step. Every trainer is a loss callable on top of
it: `train_model` (regression, here), `spinlens.training_online.train_online` (the zoo),
`spinlens.lm.train.train_lm` (language models), `spinlens.edit.pinpoint.masked_finetune` (pinpoint tuning,
LM and Hugging Face fine-tunes, sycophancy), `spinlens.llm.editing.apply_edit` (fact editing),
`spinlens.interp.lens.fit_tuned_lens` and `spinlens.reproduce.figS1.train_on_features`. It holds:

* the loss: ``loss(model, step)`` draws its batch and returns a scalar tensor (``step`` = 0, 1, ...), or
  None to stop early (a goal reached: the run counts as converged);
* which entries train: ``params`` (parameter names or tensors) or ``masks`` (``{name: bool tensor}``; every
  gradient is multiplied by its mask, so that with Adam the entries outside stay bit-for-bit unchanged);
* the optimiser: ``"adam"``, ``"adamw"``, ``"sgd"`` with ``lr``, ``weight_decay`` (torch's own: coupled for
  adam and sgd, decoupled for adamw; with ``masks`` decoupled and inside the masks only), ``betas``, a
  schedule ``lr_at(step)`` and gradient-norm clipping;
* ``on_step(model, step, loss)`` after every step (``step`` = 1, 2, ...): evaluation, checkpoints, logs;
* the divergence rule: the first non-finite loss stops the run, with ``converged=False`` and a message (the
  CLI exits 3, docs/cli.md; `divergence_reason` is the rule on the final loss);
* progress, one updating line on a terminal (`spinlens.progress.ProgressLine`), and the time estimate made
  before the start (`spinlens.progress.estimate_training_time`), kept next to the measured time.

At a stationary point, training a merged linear attention with weight decay λ₀ minimises the
Hamiltonian E with λ = λ₀/2 (`spinlens.conventions.l2_strength_from_weight_decay`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidParameterError, check_choice, check_float, check_int
from .random import RNGLike, as_generator, seed_from

if TYPE_CHECKING:
    import xarray as xr
    from torch import nn


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Result of `train_model`.

    Attributes
    ----------
    model : torch.nn.Module (trained, on CPU)
    W : ndarray of shape (D+1, D+1) or None — the effective merged weights, when the model has them
    history : xarray.Dataset with dim ``epoch`` and variables ``train_loss``, ``test_loss``
    seconds : float (measured)
    config : dict — optimizer settings and seed
    time_estimate : spinlens.progress.TimeEstimate — made before the start (`estimate_training_time`)
    """

    model: nn.Module
    W: np.ndarray | None
    history: xr.Dataset
    seconds: float
    config: dict
    time_estimate: Any = None

    @property
    def final_train_loss(self) -> float:
        return float(self.history["train_loss"][-1])

    @property
    def final_test_loss(self) -> float:
        return float(self.history["test_loss"][-1])


OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Outcome of `fit`.

    Attributes
    ----------
    losses : ndarray (n_steps,)
        The loss of every step taken.
    n_steps : int
        Optimiser steps taken (fewer than asked when the loss stopped the run or became non-finite).
    converged : bool
        False when the loss became non-finite (the run stopped at that step).
    message : str or None
        Why the run stopped early.
    seconds : float
        Measured wall time of the loop.
    n_trainable : int
        Entries that could change (inside the masks, or of the trained parameters).
    time_estimate : TimeEstimate or None
        The estimate made before the start, when one was given.
    """

    losses: np.ndarray
    n_steps: int
    converged: bool
    message: str | None
    seconds: float
    n_trainable: int
    time_estimate: Any = None

    def to_dict(self) -> dict:
        """JSON-friendly: steps, converged, message, measured and estimated seconds."""
        est = self.time_estimate.to_dict() if self.time_estimate is not None else {"time_estimate_s": None}
        return {"n_steps": self.n_steps, "converged": self.converged, "message": self.message,
                "train_elapsed_s": round(self.seconds, 4), **est}


def make_optimizer(params, optimizer: str = "adam", *, lr: float, weight_decay: float = 0.0, betas=None):
    """The torch optimiser of `fit`: ``"adam"``, ``"adamw"`` or ``"sgd"`` over ``params``."""
    import torch

    check_choice("optimizer", optimizer, OPTIMIZERS)
    kw = {} if betas is None or optimizer == "sgd" else {"betas": tuple(betas)}
    Opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[optimizer]
    return Opt(params, lr=lr, weight_decay=weight_decay, **kw)


def fit(model, loss, *, steps: int, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
        betas=None, lr_at=None, grad_clip: float | None = None, params=None, masks: dict | None = None,
        on_step=None, progress: bool = False, label: str = "train", time_estimate=None,
        on_estimate=None) -> FitResult:
    """The one training loop of spinlens (module docstring): ``steps`` optimiser steps on ``loss``.

    Parameters
    ----------
    model : torch.nn.Module, or a list of tensors (trained directly)
    loss : callable ``(model, step) -> scalar tensor or None``
        ``step`` = 0 .. steps-1; None stops the run (converged).
    steps : int >= 0
    optimizer : {"adam", "adamw", "sgd"}
    lr, weight_decay : float
        With ``masks``, the weight decay is decoupled (``p -= lr·wd·p`` after the step) and acts inside the
        masks only; otherwise it is the optimiser's own.
    betas : pair of floats, optional (Adam's; default torch's)
    lr_at : callable ``step -> lr``, optional
        The learning rate of each step (a schedule).
    grad_clip : float > 0, optional
        Clip the gradient norm of the trained parameters.
    params : list of names or tensors, optional
        The parameters that train (the others are frozen for the run and restored after). Default: those
        with ``requires_grad`` (all of a list).
    masks : dict ``{name: bool tensor}``, optional
        Train only these entries (exclusive with ``params``).
    on_step : callable ``(model, step, loss)``, optional
        After every step, ``step`` = 1 .. steps (evaluation, checkpoints).
    progress : bool
        One updating line on a terminal (nothing elsewhere).
    label : str
        The progress line's name.
    time_estimate : spinlens.progress.TimeEstimate, optional
        Kept in the result beside the measured time.
    on_estimate : callable ``TimeEstimate -> None``, optional
        Called with ``time_estimate`` before the first step: the command line prints it there and refuses a
        job beyond an hour without ``--yes`` (`spinlens.progress.check_duration`).

    Returns
    -------
    FitResult

    Examples
    --------
    >>> import torch
    >>> w = torch.zeros(3, requires_grad=True)
    >>> res = fit([w], lambda ps, step: ((ps[0] - 1.0) ** 2).sum(), steps=200, lr=0.1)
    >>> res.converged, round(float(w.detach().sum()), 3)
    (True, 3.0)
    """
    import torch

    from .progress import ProgressLine

    own = "fit"
    steps = check_int("steps", steps, low=0, owner=own)
    check_choice("optimizer", optimizer, OPTIMIZERS, owner=own)
    if params is not None and masks is not None:
        raise InvalidParameterError("The 'params' and 'masks' parameters of fit exclude each other; give one.")
    if on_estimate is not None and time_estimate is not None:
        on_estimate(time_estimate)
    module = model if isinstance(model, torch.nn.Module) else None
    named = dict(module.named_parameters()) if module is not None else {}
    if masks is not None:
        unknown = set(masks) - set(named)
        if unknown:
            raise InvalidParameterError(f"Masks name unknown parameters: {sorted(unknown)}.")
        names = [n for n, m in masks.items() if bool(m.any())]
        train = [named[n] for n in names]
        fmask = [masks[n].to(named[n].dtype) for n in names]
    elif params is not None:
        train = [named[p] if isinstance(p, str) else p for p in params]
        fmask = None
    elif module is not None:
        train = [p for p in module.parameters() if p.requires_grad]
        fmask = None
    else:
        train, fmask = list(model), None
    flags = [(p, p.requires_grad) for p in named.values()]
    if module is not None and (masks is not None or params is not None):
        keep = {id(p) for p in train}
        for p in named.values():
            p.requires_grad_(id(p) in keep)
    opt = make_optimizer(train, optimizer, lr=lr, weight_decay=0.0 if fmask is not None else weight_decay,
                         betas=betas)
    n_trainable = (int(sum(int(m.sum()) for m in fmask)) if fmask is not None
                   else int(sum(p.numel() for p in train)))
    losses: list = []
    converged, message = True, None
    line = ProgressLine(label, total=steps, enabled=None if progress else False)
    if time_estimate is not None:
        from .progress import format_seconds

        line.fields["estimate"] = format_seconds(time_estimate.seconds)
    t0 = time.perf_counter()
    try:
        for step in range(steps):
            if lr_at is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_at(step)
            value = loss(model, step)
            if value is None:
                message = f"stopped by the loss at step {step}"
                break
            opt.zero_grad(set_to_none=True)
            value.backward()
            if fmask is not None:
                with torch.no_grad():
                    for p, m in zip(train, fmask):
                        if p.grad is not None:
                            p.grad.mul_(m)
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(train, grad_clip)
            opt.step()
            if fmask is not None and weight_decay:
                with torch.no_grad():
                    for p, m in zip(train, fmask):
                        p.sub_(lr * weight_decay * p * m)
            v = float(value.detach())
            losses.append(v)
            line.update(step + 1, loss=v)
            if not math.isfinite(v):
                converged = False
                message = f"training diverged at step {step + 1} (loss {v}); lower the learning rate (now {lr:g})"
                break
            if on_step is not None:
                on_step(model, step + 1, v)
    finally:
        line.close()
        for p in train:
            p.grad = None
        for p, f in flags:
            p.requires_grad_(f)
    return FitResult(np.asarray(losses, dtype=float), len(losses), converged, message, time.perf_counter() - t0,
                     n_trainable, time_estimate)


DIVERGENCE_FACTOR = 10.0


def divergence_reason(final_train_loss: float, zero_prediction_loss: float) -> str | None:
    """The one rule by which every spinlens trainer calls a run diverged; None when it did not diverge.

    A run diverged when its final training loss is not finite, or exceeds ``DIVERGENCE_FACTOR`` (10) times
    the loss of always predicting 0 (the mean squared label of the training prompts): then the weights are
    worse than no model at all, and the run must not pass as a result.
    """
    loss = float(final_train_loss)
    if loss != loss or loss in (float("inf"), float("-inf")):
        return f"the training loss became non-finite ({loss}); lower the learning rate"
    ref = float(zero_prediction_loss)
    if ref == ref and loss > DIVERGENCE_FACTOR * max(ref, 1e-300):
        return (f"the final training loss {loss:.3g} exceeds {DIVERGENCE_FACTOR:g} x the loss of predicting 0 "
                f"({ref:.3g}); lower the learning rate")
    return None


def train_model(
    model,
    train,
    test=None,
    *,
    optimizer: str = "adam",
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    epochs: int = 300,
    batch_size: int | None = None,
    device: str = "cpu",
    rng: RNGLike = None,
    progress: bool = True,
    eval_every: int = 1,
    on_estimate=None,
) -> TrainResult:
    """Train ``model`` on ``train`` (a `Prompts`) with MSE loss.

    Parameters
    ----------
    optimizer : {"adam", "sgd"}
    lr : float > 0
    weight_decay : float >= 0
        Coupled weight decay λ₀ of torch (λ = λ₀/2 in the Hamiltonian).
    epochs : int >= 1
    batch_size : int or None
        None: full batch.
    device : torch device string.
    rng : seed for the mini-batch order.
    on_estimate : callable, optional
        Called with the time (and memory) estimate before the start (`fit`).
    """
    import torch
    import xarray as xr

    own = "train_model"
    check_choice("optimizer", optimizer, ("adam", "sgd"), owner=own)
    lr = check_float("lr", lr, low=0, low_open=True, owner=own)
    weight_decay = check_float("weight_decay", weight_decay, low=0, owner=own)
    epochs = check_int("epochs", epochs, low=1, owner=own)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1, owner=own)
    g = as_generator(rng)
    seed = seed_from(g)
    dtype = next(model.parameters()).dtype
    model = model.to(device)
    Ztr = torch.as_tensor(train.Z, dtype=dtype, device=device)
    ytr = torch.as_tensor(train.y, dtype=dtype, device=device)
    if test is not None:
        Zte = torch.as_tensor(test.Z, dtype=dtype, device=device)
        yte = torch.as_tensor(test.y, dtype=dtype, device=device)
    loss_fn = torch.nn.MSELoss()
    P = Ztr.shape[0]
    full = batch_size is None or batch_size >= P
    n_batches = 1 if full or batch_size is None else -(-P // batch_size)
    tg = torch.Generator(device="cpu")
    tg.manual_seed(seed)
    tr_hist, te_hist, ep_hist = [], [], []
    order: list = [None]

    def batch_loss(m, step):
        if step % n_batches == 0:  # a new epoch: a new order
            m.train()
            if not full:
                order[0] = list(torch.randperm(P, generator=tg).to(device).split(batch_size))
        idx = None if full else order[0][step % n_batches]
        Zb, yb = (Ztr, ytr) if idx is None else (Ztr[idx], ytr[idx])
        return loss_fn(m(Zb), yb)

    def evaluate(m, ep):
        m.eval()
        with torch.no_grad():
            tr_hist.append(float(loss_fn(m(Ztr), ytr)))
            te_hist.append(float(loss_fn(m(Zte), yte)) if test is not None else float("nan"))
        ep_hist.append(ep)

    def on_step(m, step, value):
        ep, rest = divmod(step, n_batches)
        if rest == 0 and (ep % eval_every == 0 or ep == epochs):
            evaluate(m, ep)

    from .progress import estimate_training_time

    est = estimate_training_time(model, Ztr[: min(P, batch_size or P)], steps=epochs * n_batches,
                                 eval_inputs=P + (test.n_prompts if test is not None else 0),
                                 eval_every=n_batches * eval_every, data_bytes=2 * Ztr.nbytes, eval_batch=P)
    res = fit(model, batch_loss, steps=epochs * n_batches, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
              on_step=on_step, progress=progress, label="train", time_estimate=est, on_estimate=on_estimate)
    if not res.converged:  # stopped at a non-finite loss: record where
        evaluate(model, -(-res.n_steps // n_batches))
    seconds = res.seconds
    model = model.to("cpu")
    W = None
    if hasattr(model, "effective_W"):
        with torch.no_grad():
            W = model.effective_W().detach().cpu().numpy().astype(np.float64)
    history = xr.Dataset(
        {
            "train_loss": ("epoch", np.array(tr_hist), {"long_name": "train MSE"}),
            "test_loss": ("epoch", np.array(te_hist), {"long_name": "test MSE (fresh tasks)"}),
        },
        coords={"epoch": ("epoch", np.array(ep_hist))},
    )
    config = dict(optimizer=optimizer, lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
                  device=str(device), seed=seed)
    return TrainResult(model=model, W=W, history=history, seconds=seconds, config=config, time_estimate=est)


def distribution_info(dist) -> dict:
    """The fields of a `spinlens.prompts.PromptDistribution` stored with a trained model (its metadata
    ``distribution``): ``d, n_context, sigma_x, sigma_w, sigma_eps, corr, n_tasks``."""
    return {k: getattr(dist, k) for k in ("d", "n_context", "sigma_x", "sigma_w", "sigma_eps", "corr", "n_tasks")}


def train_run(dist, train, out, *, kind: str = "merged", n_test: int = 1000, optimizer: str = "adam", lr: float = 0.01,
              weight_decay: float = 0.0, epochs: int = 300, batch_size: int | None = None, device: str = "cpu",
              seed: int = 0, progress: bool = False, on_estimate=None, force: bool = False, record_args=None) -> dict:
    """What ``spinlens train`` does: train a merged or separate linear attention on the prompts ``train`` of
    ``dist`` (`train_model`, test error on ``n_test`` fresh prompts) and write ``out`` as one transaction
    (`spinlens.io.folder_transaction`): the spinlens model folder (``model.safetensors`` + ``config.json``, for
    ``--checkpoint OUT``), ``history.csv`` and run.json (``record_args``: the command's arguments).

    Returns the summary: ``converged`` (False when the loss diverged, `divergence_reason`), ``message`` (why),
    ``final_train_loss``, ``final_test_loss``, ``test_error_exact`` (isotropic prompts, else None),
    ``contrast_ratio``, ``elapsed_s``, ``train_elapsed_s`` and the time estimate.
    """
    from pathlib import Path

    from spinlens import io
    from spinlens import observables as ob
    from spinlens.models.checkpoint import save_model
    from spinlens.models.linear_attention import MergedLinearAttention, SeparateLinearAttention
    from spinlens.random import spawn

    kind = check_choice("--model", kind, ("merged", "separate"))
    n_test = check_int("--test-prompts", n_test, low=1)
    _, r_test, r_init, r_train = spawn(seed, 4)
    test = dist.replace(n_tasks=None).sample(n_test, rng=r_test)
    model = (MergedLinearAttention if kind == "merged" else SeparateLinearAttention)(dist.d, rng=r_init)
    t0 = time.perf_counter()
    check_int("--epochs", epochs, low=1, high=10**9)
    if batch_size is not None:
        check_int("--batch-size", batch_size, low=1, high=max(1, train.n_prompts))
    res = train_model(model, train, test, optimizer=optimizer, lr=lr, weight_decay=weight_decay, epochs=epochs,
                      batch_size=batch_size, device=device, rng=r_train, progress=progress, on_estimate=on_estimate)
    # the folder is one transaction (spinlens.io.folder_transaction): an error or a kill leaves it as it was
    with io.folder_transaction(Path(out), kind="train", force=force) as stage:
        # OUT is a spinlens model folder (the zoo's "sla" / "sla-separate"): --checkpoint OUT works everywhere
        save_model(res.model.to("cpu"), stage, metadata={
            "command": "train", "distribution": distribution_info(dist), "seed": seed, "optimizer": optimizer,
            "weight_decay": weight_decay, "n_prompts": train.n_prompts})
        io.save_dataframe(res.history.to_dataframe(), stage, "history")
        diverged = divergence_reason(res.final_train_loss, float(np.mean(np.asarray(train.y, dtype=float) ** 2)))
        summary = {
            "converged": diverged is None,
            "final_train_loss": res.final_train_loss,
            "final_test_loss": res.final_test_loss,
            "test_error_exact": ob.test_error(res.W, dist) if dist.isotropic else None,
            "contrast_ratio": ob.contrast_ratio(res.W),
            "elapsed_s": time.perf_counter() - t0,
            "train_elapsed_s": res.seconds,
            **res.time_estimate.to_dict(),
        }
        run_info = {"model": kind, "D": dist.d, "N": dist.n_context, "P": train.n_prompts,
                    **{k: v for k, v in res.config.items() if k != "seed"}, "summary": summary}
        io.write_run_json(stage, io.run_record("train", args=record_args, seed=seed, **run_info))
    return {**summary, "message": diverged or ""}
