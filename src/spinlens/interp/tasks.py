"""Clean/corrupted prompt pairs for patching: in-context regression and a synthetic in-context token task."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spinlens.errors import check_int
from spinlens.random import as_generator


@dataclass(frozen=True)
class RegressionPairs:
    """Clean prompts and corrupted copies whose context labels come from another task.

    Attributes
    ----------
    clean, corrupt : Tensor ``(n_prompts, d+1, n_context+1)``
        Same inputs x; corrupt context labels are ``w'·x/√D`` for a fresh task ``w'``.
    y : Tensor ``(n_prompts,)``
        Clean targets (the query labels).
    w, w_corrupt : ndarray ``(n_prompts, d)``
    """

    clean: torch.Tensor
    corrupt: torch.Tensor
    y: torch.Tensor
    w: np.ndarray
    w_corrupt: np.ndarray


def regression_pairs(d: int, n_context: int, n_prompts: int, *, dtype=torch.float32, rng=None) -> RegressionPairs:
    """Draw clean prompts (`spinlens.prompts.PromptDistribution`) and label-corrupted copies."""
    from spinlens.conventions import label_scale
    from spinlens.prompts import PromptDistribution

    g = as_generator(rng)
    dist = PromptDistribution(d, n_context)
    p = dist.sample(n_prompts, rng=g)
    assert p.w is not None  # sample() always draws the tasks
    w2 = dist.sample_tasks(n_prompts, rng=g)
    Z2 = p.Z.copy()
    x = p.Z[:, :d, :n_context]
    Z2[:, d, :n_context] = np.einsum("pd,pdn->pn", w2, x) * label_scale(d)
    return RegressionPairs(
        torch.as_tensor(p.Z, dtype=dtype), torch.as_tensor(Z2, dtype=dtype), torch.as_tensor(p.y, dtype=dtype), p.w, w2
    )


def task_quantities(Z: np.ndarray | torch.Tensor, y=None, w=None) -> dict[str, np.ndarray]:
    """Task quantities of regression prompts, one value per prompt.

    ``gd_estimate`` = (1/N) Σ_i y_i x_i·x_q (one gradient step from w = 0, unit learning rate, on
    ½ mean_i (y_i − w·x_i/√D)² rescaled by √D so that it estimates y_q); ``query_norm`` = ‖x_q‖;
    ``label_mean`` = mean context label; plus ``y`` (the target) and ``w_norm`` = ‖w‖ when given.
    """
    Z = np.asarray(Z.detach().cpu() if isinstance(Z, torch.Tensor) else Z, dtype=np.float64)
    D, N = Z.shape[1] - 1, Z.shape[2] - 1
    x, lab, xq = Z[:, :D, :N], Z[:, D, :N], Z[:, :D, N]
    q = {
        "gd_estimate": np.einsum("pn,pdn,pd->p", lab, x, xq) / N,
        "query_norm": np.linalg.norm(xq, axis=1),
        "label_mean": lab.mean(1),
    }
    if y is not None:
        q["y"] = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    if w is not None:
        q["w_norm"] = np.linalg.norm(np.asarray(w, dtype=np.float64), axis=1)
    return q


@dataclass(frozen=True)
class TokenICLPairs:
    """A synthetic in-context token task: ``x1 l1 x2 l2 ... xk lk x_q`` → the label paired with ``x_q``.

    Input tokens are ``0..n_inputs-1``, label tokens ``n_inputs..n_inputs+n_labels-1``; each prompt has its
    own arbitrary input→label mapping, so the answer can only be read from the context (find the earlier
    ``x_q``, copy the token after it: an induction / copying circuit).

    Attributes
    ----------
    clean, corrupt : LongTensor ``(n_prompts, 2*n_pairs+1)``
        corrupt: see ``corruption`` of `token_icl_pairs` (default: the queried pair's label is swapped).
    answer, corrupt_answer : LongTensor ``(n_prompts,)``
    query_source : LongTensor ``(n_prompts,)`` position of the queried pair's label in the context.
    d_vocab : int
    """

    clean: torch.Tensor
    corrupt: torch.Tensor
    answer: torch.Tensor
    corrupt_answer: torch.Tensor
    query_source: torch.Tensor
    d_vocab: int


def token_icl_pairs(n_prompts: int, *, n_pairs: int = 4, n_inputs: int = 12, n_labels: int = 6,
                    corruption: str = "label_swap", rng=None) -> TokenICLPairs:
    """Sample the token task of `TokenICLPairs` (inputs in a prompt are distinct).

    corruption : {"label_swap", "input_swap"}
        ``label_swap``: the queried pair's label is replaced by another label (what is copied changes;
        which position is matched does not). ``input_swap``: the queried input trades places with the input of
        another pair that has a different label (when one exists), so the query now matches the other pair and
        the answer becomes that pair's label (which position is matched changes; the labels do not).
    """
    from spinlens.errors import check_choice

    check_choice("corruption", corruption, ("label_swap", "input_swap"))
    n_prompts = check_int("n_prompts", n_prompts, low=1)
    n_pairs = check_int("n_pairs", n_pairs, low=1)
    n_inputs = check_int("n_inputs", n_inputs, low=n_pairs)
    n_labels = check_int("n_labels", n_labels, low=2)
    g = as_generator(rng)
    P, K = n_prompts, n_pairs
    xs = np.argsort(g.random((P, n_inputs)), axis=1)[:, :K]
    labels = n_inputs + g.integers(0, n_labels, size=(P, K))
    q = g.integers(0, K, size=P)
    seq = np.empty((P, 2 * K + 1), dtype=np.int64)
    seq[:, 0:2 * K:2] = xs
    seq[:, 1:2 * K:2] = labels
    seq[:, -1] = xs[np.arange(P), q]
    ans = labels[np.arange(P), q]
    cor = seq.copy()
    if corruption == "label_swap":
        alt = n_inputs + (ans - n_inputs + g.integers(1, n_labels, size=P)) % n_labels
        cor[np.arange(P), 2 * q + 1] = alt
    else:
        alt = ans.copy()
        for i in range(P):
            others = [j for j in range(K) if j != q[i] and labels[i, j] != ans[i]]
            if not others:
                others = [j for j in range(K) if j != q[i]]
            if not others:
                continue
            j = others[int(g.integers(0, len(others)))]
            cor[i, 2 * q[i]], cor[i, 2 * j] = seq[i, 2 * j], seq[i, 2 * q[i]]
            alt[i] = labels[i, j]
    return TokenICLPairs(
        torch.as_tensor(seq), torch.as_tensor(cor), torch.as_tensor(ans), torch.as_tensor(alt),
        torch.as_tensor(2 * q + 1), n_inputs + n_labels,
    )
