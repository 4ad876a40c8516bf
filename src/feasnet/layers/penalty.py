"""Soft constraints: no correction at the output, a violation penalty in the loss (PNet).

The layer passes the backbone's output through unchanged; constraints enter only through the
training objective, the *soft loss* of the power-control paper (eq. 14),

    loss(x) = - R(x) / W + penalty_weight * V(x),

with ``R / W`` the sum rate in bit/s/Hz (the sum of spectral efficiencies, so that the two
terms have comparable sizes whatever the bandwidth) and ``V`` the squared violation of eq. (12)
in normalized units, :func:`feasnet.problems.power_control.violation_measure`. The paper uses
``penalty_weight`` 1000 on Gaussian and 10000 on path-loss data for PNet (section VIII). Nothing
guarantees feasibility: pair it with :class:`~feasnet.layers.guard.FeasibilityGuard` for that.

``equilibrate=True`` measures ``V`` on the rows scaled to unit norm
(:func:`feasnet.layers.correction.equilibrate_rows`), i.e. as the sum of squared distances to
the violated hyperplanes. On path-loss data the QoS rows' entries span ~1 to ~5e3 across
instances, so the plain ``V`` is dominated by a few instances; the equilibrated one is not.

MISO beamforming (hand-written, not from the power-control paper): :func:`constraint_penalty`
is the same squared violation on any ``(N, M)`` constraint values ``g <= 0``, and
:func:`miso_soft_loss` is ``-WSR + weight * sum relu(g)^2`` with
``g = feasnet.problems.miso.constraint_values`` (dimensionless rows: budget
``||V||^2 / budget - 1`` and ``1 - SINR_k / gamma_k``; each QoS row is at most 1). The square
is smooth (the gradient vanishes on the boundary, so the minimizer sits ``O(1/weight)``
outside); an exact (non-squared) penalty would reach the boundary for a finite weight but has a
kink there that makes SGD chatter. Neither guarantees feasibility.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from feasnet.layers.base import FeasibilityLayer
from feasnet.layers.correction import equilibrate_rows, squared_violation
from feasnet.problems import miso
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import (
    linear_constraints,
    sum_rate,
    to_vector,
    violation_measure,
)

DEFAULT_PENALTY_WEIGHT = 1000.0
"""Paper's PNet weight on Gaussian data (path-loss data: 10000)."""


def to_watts(x: Tensor, instances: PowerControlInstances) -> Tensor:
    """Normalized powers ``(N, B, Q)`` (fraction of pmax) to watts ``(N, B, Q)``."""
    return x * instances.pmax.to(device=x.device, dtype=x.dtype)[:, None, None]


def constraint_violation(
    x: Tensor, instances: PowerControlInstances, equilibrate: bool = False
) -> Tensor:
    """``V = ||max(G x - h, 0)||^2`` of normalized powers ``x (N, B, Q)``: ``(N,)``, dimensionless.

    Differentiable; zero exactly where ``x`` meets every linear constraint. With
    ``equilibrate=True`` every row of ``G x <= h`` is first scaled to unit norm.
    """
    inst = instances.to(x.dtype, x.device)
    if not equilibrate:
        return violation_measure(to_watts(x, inst), inst)
    return squared_violation(to_vector(x), equilibrate_rows(linear_constraints(inst)))


def spectral_efficiency(x: Tensor, instances: PowerControlInstances) -> Tensor:
    """Sum rate divided by the channel bandwidth, ``(N,)`` [bit/s/Hz], for ``x (N, B, Q)``."""
    inst = instances.to(x.dtype, x.device)
    return sum_rate(to_watts(x, inst), inst) / inst.bandwidth


def soft_loss(
    x: Tensor,
    instances: PowerControlInstances,
    penalty_weight: float = DEFAULT_PENALTY_WEIGHT,
    equilibrate: bool = False,
) -> Tensor:
    """Per-sample soft loss ``-R / W + penalty_weight * V`` (eq. 14): ``(N,)``.

    Args:
        x: ``(N, B, Q)`` normalized powers (after any feasibility layer).
        instances: the ``N`` instances.
        penalty_weight: ``lambda >= 0``, weight of the squared violation.
        equilibrate: measure ``V`` on unit-norm rows (see :func:`constraint_violation`).
    """
    penalty = constraint_violation(x, instances, equilibrate)
    return -spectral_efficiency(x, instances) + penalty_weight * penalty


class Penalty(nn.Module):
    """Identity feasibility layer with a violation penalty for the loss (PNet).

    Args:
        penalty_weight: ``lambda`` of the soft loss (paper: 1000 Gaussian, 10000 path loss).
        equilibrate: measure ``V`` on unit-norm rows (default: the paper's eq. 12 as given).
    """

    def __init__(
        self, penalty_weight: float = DEFAULT_PENALTY_WEIGHT, equilibrate: bool = False
    ) -> None:
        super().__init__()
        if penalty_weight < 0:
            raise ValueError(f"penalty_weight: expected a value >= 0, got {penalty_weight}")
        self.penalty_weight = penalty_weight
        self.equilibrate = equilibrate

    def forward(self, raw: Tensor, instances: PowerControlInstances) -> Tensor:
        """Return ``raw`` unchanged: ``(N, B, Q)`` normalized powers."""
        return raw

    def penalty(self, x: Tensor, instances: PowerControlInstances) -> Tensor:
        """Squared violation ``V`` (eq. 12) per sample, ``(N,)`` dimensionless (unweighted)."""
        return constraint_violation(x, instances, self.equilibrate)

    def loss(self, x: Tensor, instances: PowerControlInstances) -> Tensor:
        """Soft loss ``-R / W + penalty_weight * V`` per sample, ``(N,)``; see :func:`soft_loss`."""
        return soft_loss(x, instances, self.penalty_weight, self.equilibrate)

    def extra_repr(self) -> str:
        return f"penalty_weight={self.penalty_weight}, equilibrate={self.equilibrate}"


class PenaltyLayer(FeasibilityLayer):
    """``penalty``: the identity; the constraints enter only through the loss
    (``lambda * problem.violation``, see :class:`feasnet.models.LearnedModel`). Applies to every
    problem; not hard."""

    hard = False

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``raw`` unchanged, ``(N, *shape)``."""
        return raw


def constraint_penalty(values: Tensor, squared: bool = True) -> Tensor:
    """``(N,)`` ``sum_m relu(g_m)^2`` (or ``sum_m relu(g_m)`` with ``squared=False``) of
    constraint values ``(N, M)`` that are ``<= 0`` where satisfied. Zero iff every ``g <= 0``;
    differentiable (the squared form also at 0)."""
    positive = torch.relu(values)
    return (positive.square() if squared else positive).sum(dim=1)


def miso_soft_loss(
    beams: Tensor, instances: miso.MisoInstances, weight: float, squared: bool = True
) -> Tensor:
    """``(N,)`` ``-WSR + weight * constraint_penalty(constraint_values)`` for MISO beams.

    Args:
        beams: ``(N, Nt, K)`` complex, in the units of ``instances`` (normally normalized).
        instances: the ``N`` instances (cast to the beams' dtype and device).
        weight: penalty weight ``>= 0`` [bit/s/Hz per unit squared violation].
        squared: squared (default) or exact penalty.
    """
    if weight < 0:
        raise ValueError(f"weight: expected a value >= 0, got {weight}")
    inst = instances.to(beams.dtype, beams.device)
    penalty = constraint_penalty(miso.constraint_values(beams, inst), squared)
    return -miso.weighted_sum_rate(beams, inst) + weight * penalty


__all__ = [
    "DEFAULT_PENALTY_WEIGHT",
    "Penalty",
    "PenaltyLayer",
    "constraint_penalty",
    "constraint_violation",
    "miso_soft_loss",
    "soft_loss",
    "spectral_efficiency",
    "to_watts",
]
