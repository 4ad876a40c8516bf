"""Soft constraints (PNet and the survey's penalty methods): no correction at the output.

The ``penalty`` layer passes the backbone's output through unchanged; the constraints enter
only through the training loss of :class:`feasnet.models.LearnedModel`,

    loss(x) = - objective(x) / objective_scale + penalty_weight * violation(x),

both terms asked from the problem. On power control with the ``linear-rate`` set this is the
soft loss of the power-control paper (eq. 14), ``-R / W + lambda V``: ``R / W`` the sum rate in
bit/s/Hz (``objective_scale`` is the bandwidth, so the two terms have comparable sizes whatever
the bandwidth) and ``V = ||max(G x - h, 0)||^2`` the squared violation of eq. (12) in
normalized units. The paper uses ``lambda`` 1000 on Gaussian and 10000 on path-loss data for
PNet (section VIII). On MISO it is ``-WSR + lambda sum relu(g)^2`` with the dimensionless rows
``||V||^2 / budget - 1`` and ``1 - SINR_k / gamma_k``.

The square is smooth (the gradient vanishes on the boundary, so the minimizer sits
``O(1 / lambda)`` outside); an exact (non-squared) penalty would reach the boundary for a finite
weight but has a kink there that makes SGD chatter. Nothing guarantees feasibility: switch on
the guard (:mod:`feasnet.layers.guard`) for that.

Measured once on ``small`` (9,000 training instances, 10 epochs): measuring ``V`` on
unit-norm rows (sum of squared distances to the violated hyperplanes) gave DEPNet 104.2 Mbit/s
against 101.0, but 1 of 500 test outputs then failed the float64 check, against none; the
paper's raw rows are kept.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from feasnet.layers.base import FeasibilityLayer

DEFAULT_PENALTY_WEIGHT = 1000.0
"""Paper's PNet weight on Gaussian data (path-loss data: 10000)."""


class PenaltyLayer(FeasibilityLayer):
    """``penalty``: the identity; the constraints enter only through the loss
    (``lambda * problem.violation``, see :class:`feasnet.models.LearnedModel`). Applies to every
    problem; not hard."""

    hard = False

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``raw`` unchanged, ``(N, *shape)``."""
        return raw


__all__ = ["DEFAULT_PENALTY_WEIGHT", "PenaltyLayer"]
