"""Training torch models Z → ŷ on prompts with Adam or SGD (torch MSE, coupled weight decay).

At a stationary point, training a merged linear attention with weight decay λ₀ minimises the
Hamiltonian E with λ = λ₀/2 (`spinlens.conventions.l2_strength_from_weight_decay`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

import numpy as np

from .errors import check_choice, check_float, check_int
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
    seconds : float
    config : dict — optimizer settings and seed
    """

    model: nn.Module
    W: np.ndarray | None
    history: xr.Dataset
    seconds: float
    config: dict

    @property
    def final_train_loss(self) -> float:
        return float(self.history["train_loss"][-1])

    @property
    def final_test_loss(self) -> float:
        return float(self.history["test_loss"][-1])


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
    """
    import torch
    import xarray as xr
    from tqdm.auto import tqdm

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
    Opt = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = Opt(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.MSELoss()
    P = Ztr.shape[0]
    tg = torch.Generator(device="cpu")
    tg.manual_seed(seed)
    tr_hist, te_hist, ep_hist = [], [], []
    t0 = time.perf_counter()
    bar = tqdm(range(epochs), desc="train", disable=not progress, leave=False)
    for ep in bar:
        model.train()
        if batch_size is None or batch_size >= P:
            batches = [None]
        else:
            perm = torch.randperm(P, generator=tg).to(device)
            batches = list(perm.split(batch_size))
        for idx in batches:
            Zb, yb = (Ztr, ytr) if idx is None else (Ztr[idx], ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Zb), yb)
            loss.backward()
            opt.step()
        if (ep + 1) % eval_every == 0 or ep == epochs - 1:
            model.eval()
            with torch.no_grad():
                tr = float(loss_fn(model(Ztr), ytr))
                te = float(loss_fn(model(Zte), yte)) if test is not None else float("nan")
            tr_hist.append(tr)
            te_hist.append(te)
            ep_hist.append(ep + 1)
            if progress:
                bar.set_postfix(train=f"{tr:.4g}", test=f"{te:.4g}")
    seconds = time.perf_counter() - t0
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
    config = dict(optimizer=optimizer, lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size, device=str(device), seed=seed)
    return TrainResult(model=model, W=W, history=history, seconds=seconds, config=config)
