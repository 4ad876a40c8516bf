"""Training objectives: self-supervised, supervised (solver labels) and hybrid.

The training loop (:func:`feasnet.training.train`) asks :func:`training_loss` for the loss of
one mini-batch; :class:`~feasnet.train_config.TrainConfig` ``.objective`` picks it:

* ``"self-supervised"`` (default): the model's own loss, which asks the problem
  (:meth:`feasnet.models.LearnedModel.loss`: ``-objective / objective_scale`` plus the layer's
  constraint term or ``penalty_weight * violation``). No labels.
* ``"supervised"``: the mean squared error between the layer's output ``x`` and the label
  ``x*`` of a classical solver, both in the problem's normalized units
  (:meth:`~feasnet.problems.base.Problem.from_physical`: power control ``P / pmax``, MISO
  beams in units where the noise and the budget are 1), averaged over the entries of ``x``
  (for complex beams ``|x - x*|^2``). Instances whose label is missing (the solver returned
  nothing: NaN rows) are left out of the mean.
* ``"hybrid"``: the supervised term plus ``hybrid_weight`` times the self-supervised loss.

Labels come from :mod:`feasnet.data.labels` (``feasnet data label``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from feasnet.layers.base import expand_rows, finite_rows
from feasnet.problems.base import Problem
from feasnet.train_config import OBJECTIVES, TrainConfig

NEEDS_LABELS = ("supervised", "hybrid")
"""Objectives that need labels."""


class MissingLabelsError(ValueError):
    """A supervised or hybrid training was started without labels."""


def needs_labels(config: TrainConfig) -> bool:
    """Whether ``config.objective`` fits labels."""
    return config.objective in NEEDS_LABELS


def label_targets(problem: Problem, allocation: Tensor | np.ndarray, instances: Any) -> Tensor:
    """Labels in the problem's normalized units.

    Args:
        problem: the problem the model is trained on.
        allocation: ``(N, *shape)`` solver allocations in physical units (power control
            float64 [W], MISO complex128 [sqrt(W)]); NaN rows where the solver failed.
        instances: the ``N`` instances they solve.

    Returns:
        ``(N, *shape)`` float64 (complex128) normalized ``x*``.

    Raises:
        ValueError: ``allocation`` does not have one row of the variable shape per instance.
    """
    inst64 = problem.float64(instances)
    tensor = torch.as_tensor(np.asarray(allocation))
    tensor = tensor.to(torch.complex128 if problem.complex_variable else torch.float64)
    expected = (len(instances), *problem.variable_shape(inst64))
    if tuple(tensor.shape) != expected:
        raise ValueError(
            f"labels: expected allocations of shape {expected} (one per instance), got "
            f"{tuple(tensor.shape)}"
        )
    return problem.from_physical(tensor, inst64)


def supervised_loss(x: Tensor, target: Tensor) -> Tensor:
    """Mean squared error ``mean |x - x*|^2`` over the entries and the labelled rows.

    Args:
        x: ``(N, *shape)`` layer output, normalized units (real or complex).
        target: ``(N, *shape)`` labels in the same units and dtype; rows with a non-finite
            entry are left out.

    Returns:
        Scalar; 0 (with a gradient path) when no row is labelled.
    """
    valid = finite_rows(target)
    safe = torch.where(expand_rows(valid, target), target, torch.zeros_like(target))
    per_row = (x - safe).abs().pow(2).reshape(x.shape[0], -1).mean(dim=1)
    weight = valid.to(per_row.dtype)
    return (per_row * weight).sum() / weight.sum().clamp(min=1.0)


def training_loss(
    model: Any, config: TrainConfig, x: Tensor, batch: Any, target: Tensor | None
) -> Tensor:
    """The loss of one mini-batch under ``config.objective`` (see the module docstring).

    Args:
        model: the :class:`~feasnet.models.LearnedModel`.
        config: its training settings (``objective``, ``hybrid_weight``).
        x: ``(N, *shape)`` the model's output on ``batch``.
        batch: the ``N`` instances the loss sees.
        target: ``(N, *shape)`` labels in ``x``'s dtype (None for self-supervised).

    Raises:
        MissingLabelsError: a supervised or hybrid objective without labels.
    """
    if config.objective not in OBJECTIVES:  # pragma: no cover - pydantic validates it
        raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}")
    if config.objective == "self-supervised":
        loss: Tensor = model.loss(x, batch)
        return loss
    if target is None:
        raise MissingLabelsError(
            f"objective: {config.objective!r} training needs labels (pass labels=, from "
            "feasnet.data.labels.read_labels, or run `feasnet data label DATASET`)"
        )
    loss = supervised_loss(x, target)
    if config.objective == "hybrid" and config.hybrid_weight > 0:
        loss = loss + config.hybrid_weight * model.loss(x, batch)
    return loss


__all__ = [
    "NEEDS_LABELS",
    "MissingLabelsError",
    "label_targets",
    "needs_labels",
    "supervised_loss",
    "training_loss",
]
