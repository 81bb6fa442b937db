"""Per-prompt metrics for patching: ``metric(output) -> (batch,)`` tensors, higher = closer to the clean behaviour.

Patching methods average a metric over prompts and normalise it between a *base* run and a *source* run:
``score = (m_patched - m_base) / (m_source - m_base)`` (1: the patch restores the source behaviour fully,
0: no effect). With ``base = corrupted``, ``source = clean`` (denoising) the score is the recovery of the
clean behaviour.
"""

from __future__ import annotations

import torch

from spinlens.errors import InvalidParameterError


def regression_metric(target: torch.Tensor):
    """``-(ŷ - target)²`` per prompt for scalar-output models (``target``: ``(batch,)``, e.g. the clean ŷ).

    With target = clean output, the normalised score is ``1 - mean (ŷ_patched - ŷ_clean)² / mean (ŷ_corrupt - ŷ_clean)²``.
    """
    target = target.detach()

    def metric(out: torch.Tensor) -> torch.Tensor:
        if out.shape != target.shape:
            raise InvalidParameterError(
                f"regression_metric expects outputs of shape {tuple(target.shape)}. Got {tuple(out.shape)} instead."
            )
        return -(out - target) ** 2

    return metric


def projection_metric(clean_out: torch.Tensor, corrupt_out: torch.Tensor):
    """``(ŷ - ŷ_corrupt)·(ŷ_clean - ŷ_corrupt)`` per prompt: linear in ŷ, so attribution patching (a first-order
    Taylor expansion of the metric) is exact whenever ŷ is linear in the patched activation. Normalised
    scores are ``E[(ŷ - ŷ_cor)(ŷ_cl - ŷ_cor)] / E[(ŷ_cl - ŷ_cor)²]``.
    """
    c, k = clean_out.detach(), corrupt_out.detach()
    diff = c - k

    def metric(out: torch.Tensor) -> torch.Tensor:
        return (out - k) * diff

    return metric


def logit_diff_metric(correct: torch.Tensor, wrong: torch.Tensor, *, position: int = -1):
    """``logit[correct] - logit[wrong]`` at ``position`` per prompt (``correct``, ``wrong``: ``(batch,)`` token ids)."""
    correct, wrong = correct.long(), wrong.long()

    def metric(logits: torch.Tensor) -> torch.Tensor:
        lg = logits[:, position]
        return lg.gather(-1, correct[:, None])[:, 0] - lg.gather(-1, wrong[:, None])[:, 0]

    return metric


def logprob_metric(correct: torch.Tensor, *, position: int = -1):
    """Log-probability of the ``correct`` token at ``position`` per prompt."""
    correct = correct.long()

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(logits[:, position].float(), -1).gather(-1, correct[:, None])[:, 0]

    return metric


def normalised(m: float, m_base: float, m_source: float) -> float:
    return (m - m_base) / (m_source - m_base)
