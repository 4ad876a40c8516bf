"""Helpers shared by the batched heuristics (Frank-Wolfe line search, genetic algorithm).

Both methods evaluate *many* candidate allocations per instance at once: ``K`` points along a
Frank-Wolfe segment, or a population of ``K`` individuals. The functions here add that
candidate dimension to the single-point functions of :mod:`feasnet.problems.power_control`
without copying the channel tensor ``K`` times, and work in the normalized vector layout
``x = p / pmax`` with ``p[q*B + b] = P[b, q]`` (see :func:`~feasnet.problems.power_control.
linear_constraints`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances


def to_power(x: Tensor, instances: PowerControlInstances) -> Tensor:
    """Normalized vectors ``(N, K, U)`` -> powers ``(N, K, B, Q)`` [W]."""
    n, k, _ = x.shape
    b, q = instances.num_bs, instances.num_channels
    return x.reshape(n, k, q, b).transpose(-1, -2) * instances.pmax[:, None, None, None]


def to_normalized(power: Tensor, instances: PowerControlInstances) -> Tensor:
    """Powers ``(N, B, Q)`` [W] -> normalized vectors ``(N, U)`` (vector layout)."""
    return pc.to_vector(power) / instances.pmax[:, None]


def sum_rate_many(x: Tensor, instances: PowerControlInstances) -> Tensor:
    """Sum rate of ``K`` candidates per instance: ``(N, K)`` [bit/s].

    Args:
        x: ``(N, K, U)`` normalized powers ``P / pmax`` in vector layout.
        instances: the batch of ``N`` instances.

    Same arithmetic as :func:`~feasnet.problems.power_control.sum_rate` (interference is the
    total received power minus the desired one), so both agree to rounding.
    """
    power = to_power(x, instances)  # (N, K, B, Q)
    gain = instances.gain
    total = torch.einsum("nbqc,nkcq->nkbq", gain, power)
    direct = torch.diagonal(gain, dim1=1, dim2=3).transpose(1, 2)  # (N, B, Q)
    signal = direct[:, None] * power
    sinr = signal / (total - signal + instances.noise[:, None, None, None])
    rates = instances.bandwidth[:, None, None, None] * torch.log2(1.0 + sinr)
    return rates.sum(dim=(2, 3))


@dataclass(frozen=True)
class RayRepair:
    """The normalized polytope ``G x <= h`` of each instance plus a feasible anchor in it.

    Calling it applies the ray repair of
    :func:`~feasnet.problems.power_control.scale_toward_anchor` (largest ``t`` in ``[0, 1]``
    keeping ``G (a + t (x - a)) <= h``) to many candidates per instance, with the constraint
    matrices and the anchor's slack computed once instead of at every call; tests check that
    both agree.

    Attributes:
        G: ``(N, M, U)`` normalized constraint matrix (see ``linear_constraints``).
        h: ``(N, M)`` right-hand sides.
        slack: ``(N, M)`` ``max(h - G a, 0)`` at the anchor.
        anchor: ``(N, U)`` normalized anchor ``a``.
    """

    G: Tensor
    h: Tensor
    slack: Tensor
    anchor: Tensor

    @classmethod
    def build(cls, anchor_power: Tensor, instances: PowerControlInstances) -> RayRepair:
        """From anchors ``(N, B, Q)`` [W] (feasible, e.g. ``interior_anchor``)."""
        cons = pc.linear_constraints(instances)
        x_anchor = to_normalized(anchor_power, instances)
        slack = torch.clamp(cons.h - torch.einsum("nmu,nu->nm", cons.G, x_anchor), min=0)
        return cls(G=cons.G, h=cons.h, slack=slack, anchor=x_anchor)

    def select(self, index: Tensor) -> RayRepair:
        """The data of a subset of the instances (``index`` as for tensors)."""
        return RayRepair(
            G=self.G[index], h=self.h[index], slack=self.slack[index], anchor=self.anchor[index]
        )

    def __call__(self, x: Tensor) -> Tensor:
        """Pull candidates ``(N, K, U)`` onto the feasible set along rays from the anchor.

        Non-finite candidates become the anchor; feasible ones come back unchanged.
        """
        a = self.anchor[:, None, :]
        direction = x - a
        if not bool(torch.isfinite(x).all()):
            finite = torch.isfinite(x).all(dim=-1, keepdim=True)
            direction = torch.where(finite, direction, torch.zeros_like(direction))
        rate = torch.einsum("nmu,nku->nkm", self.G, direction)
        # Rows the segment does not move toward (rate <= 0) never limit the step.
        limits = (self.slack[:, None, :] / rate.clamp(min=1e-300)).masked_fill_(rate <= 0, math.inf)
        t = limits.amin(dim=-1, keepdim=True).clamp_(max=1.0)
        return a + t * direction
