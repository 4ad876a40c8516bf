"""HoP-style (homeomorphic projection) layer for MISO beams (hand-written).

The network proposes a direction ``D`` (any non-zero ``(Nt, K)`` complex matrix) and a radius
logit ``r``; the layer returns

    V = V0 + rho(r) * t_max(d) * d,     d = D / ||D||_F,     rho(r) = (1 - eps) sigmoid(r),

where ``V0`` is a strictly interior anchor (default :func:`feasnet.problems.miso.interior_anchor`
of the instances) and ``t_max(d)`` is the closed-form distance from ``V0`` to the boundary of
the feasible set along ``d`` (:func:`feasnet.problems.miso.boundary_distance`). The feasible
set is star-shaped around ``V0`` along every ray up to ``t_max`` by definition (first exit), so
``V`` is strictly feasible whenever ``rho < 1``; the map (direction, radius) -> point is a
homeomorphism from (unit sphere) x (0, 1) onto the star-shaped set minus the anchor, which is
the idea of HoP (Liang et al., 2023) with the learned invertible map replaced by the exact
gauge of the set along rays. ``eps`` (default 1e-4) keeps a relative slack even when the
sigmoid rounds to 1 (float32, ``r > 17``), so the result also passes the float64 check after a
float32 computation.

Robustness: ``D`` is first divided by its largest entry (no overflow or underflow for huge or
tiny directions), a zero or non-finite direction gives the anchor itself (``t = 0``), and a
non-finite radius logit counts as 0.5. Differentiable everywhere except at those guards.

Units: those of the instances (networks pass :func:`feasnet.problems.miso.normalized_instances`
and a normalized anchor). Work is in the direction's dtype; the instances and the anchor are
cast to it.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from feasnet.layers.base import FeasibilityLayer, finite_rows, ray_exit
from feasnet.problems import miso
from feasnet.problems.miso import MisoInstances

DEFAULT_EPS = 1e-4
"""Relative slack: the radius fraction is at most ``1 - eps``."""


def unit_direction(direction: Tensor) -> tuple[Tensor, Tensor]:
    """``(d, ok)``: ``direction / ||direction||_F`` per sample (``(N, Nt, K)``), computed
    without overflow, and ``(N,)`` bool ``ok`` (finite and non-zero); ``d = 0`` where not ok."""
    flat = direction.flatten(1)
    finite = torch.isfinite(torch.view_as_real(flat) if flat.is_complex() else flat)
    finite = finite.flatten(1).all(dim=1)
    safe = torch.where(finite[:, None, None], direction, torch.zeros_like(direction))
    peak = safe.abs().flatten(1).amax(dim=1)
    ok = finite & (peak > 0)
    peak = torch.where(ok, peak, torch.ones_like(peak))
    scaled = safe / peak.to(safe.dtype)[:, None, None]
    norm = torch.linalg.vector_norm(scaled.flatten(1), dim=1)
    norm = torch.where(ok, norm, torch.ones_like(norm))
    d = scaled / norm.to(scaled.dtype)[:, None, None]
    return torch.where(ok[:, None, None], d, torch.zeros_like(d)), ok


def hop_map(
    direction: Tensor,
    radius_logit: Tensor,
    instances: MisoInstances,
    anchor: Tensor,
    eps: float = DEFAULT_EPS,
) -> Tensor:
    """``V0 + (1 - eps) sigmoid(r) t_max(d) d`` (see the module docstring): ``(N, Nt, K)``.

    Args:
        direction: ``(N, Nt, K)`` complex, any scale.
        radius_logit: ``(N,)`` real.
        instances: ``N`` instances (units of the anchor).
        anchor: ``(N, Nt, K)`` strictly interior beams (NaN rows give NaN outputs).
        eps: relative slack in ``[0, 1)``.
    """
    inst = instances.to(direction.dtype, direction.device)
    v0 = anchor.to(dtype=direction.dtype, device=direction.device)
    d, ok = unit_direction(direction)
    t_max = miso.boundary_distance(v0, torch.where(ok[:, None, None], d, torch.ones_like(d)), inst)
    t_max = torch.where(ok & torch.isfinite(t_max), t_max, torch.zeros_like(t_max))
    logit = radius_logit.to(device=direction.device, dtype=t_max.dtype)
    logit = torch.where(torch.isfinite(logit), logit, torch.zeros_like(logit))
    fraction = (1 - eps) * torch.sigmoid(logit)
    return v0 + (fraction * t_max).to(d.dtype)[:, None, None] * d


class HoPLayer(nn.Module):
    """Module form of :func:`hop_map`; no parameters.

    Args:
        eps: relative slack, the radius fraction is at most ``1 - eps``.
        anchor_fraction: passed to :func:`feasnet.problems.miso.interior_anchor` when
            ``forward`` gets no anchor.
    """

    def __init__(self, eps: float = DEFAULT_EPS, anchor_fraction: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"eps: expected a value in [0, 1), got {eps}")
        if not 0.0 < anchor_fraction < 1.0:
            raise ValueError(f"anchor_fraction: expected a value in (0, 1), got {anchor_fraction}")
        self.eps = eps
        self.anchor_fraction = anchor_fraction

    def forward(
        self,
        direction: Tensor,
        radius_logit: Tensor,
        instances: MisoInstances,
        anchor: Tensor | None = None,
    ) -> Tensor:
        """Strictly feasible beams ``(N, Nt, K)`` in the direction's dtype.

        Args:
            direction: ``(N, Nt, K)`` complex (e.g. a network's raw beams).
            radius_logit: ``(N,)`` real (e.g. a network's extra output), or ``(N, 1)``.
            instances: the instances, in the units wanted (normally normalized).
            anchor: ``(N, Nt, K)`` strictly interior beams in those units; None computes
                :func:`~feasnet.problems.miso.interior_anchor` (no gradient needed through it).
        """
        if radius_logit.ndim == 2 and radius_logit.shape[1] == 1:
            radius_logit = radius_logit[:, 0]
        if anchor is None:
            with torch.no_grad():
                anchor = miso.interior_anchor(instances, self.anchor_fraction)
        return hop_map(direction, radius_logit, instances, anchor, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, anchor_fraction={self.anchor_fraction}"


class HopConfig(BaseModel):
    """Settings of the ``hop`` layer.

    Attributes:
        eps: relative slack, the radius fraction is at most ``1 - eps``.
        direction: ``"raw"``: the backbone output is the direction (MISO MLP, whose output
            lies in the unit ball around 0); ``"from-anchor"``: the backbone output is a point
            and the direction is ``raw - anchor`` (deep-unfolded WMMSE, power-control MLP).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    eps: float = Field(DEFAULT_EPS, ge=0, lt=1)
    direction: Literal["raw", "from-anchor"] = "from-anchor"


class HopProblemLayer(FeasibilityLayer):
    """``hop``: ``x = anchor + (1 - eps) sigmoid(r) t d`` on any problem (see the module
    docstring), with ``anchor = problem.anchor``, ``t = problem.boundary_exit(anchor, d)``
    and ``d`` the unit direction; ``r`` is the backbone's one extra output. Hard on every
    problem with an anchor; differentiable through ``t`` where the family gives the exit in
    closed form (polytope, MISO cones), through ``d`` and ``r`` always."""

    Config = HopConfig
    extra_outputs = 1

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``(N, *shape)`` strictly feasible normalized points in ``raw``'s dtype (NaN rows
        for instances without a feasible point)."""
        config = self.config
        assert isinstance(config, HopConfig)
        inst = instances.to(raw.dtype, raw.device)
        anchor = self.anchor_of(instances).to(device=raw.device, dtype=raw.dtype)
        shape = (-1,) + (1,) * (raw.dim() - 1)
        has_anchor = finite_rows(anchor)
        center = torch.where(has_anchor.view(shape), anchor, torch.zeros_like(anchor))
        direction = raw - center if config.direction == "from-anchor" else raw
        d, ok = unit_direction(direction.reshape(raw.shape[0], -1, 1))
        d = d.reshape(raw.shape)
        probe = torch.where(ok.view(shape), d, torch.ones_like(d))
        t = ray_exit(self.problem, center, probe, inst).to(raw.real.dtype)
        t = torch.where(ok & torch.isfinite(t), t, torch.zeros_like(t))
        if extra is None or extra.shape[1] < 1:
            logit = torch.zeros_like(t)
        else:
            logit = extra[:, 0].to(t.dtype)
        logit = torch.where(torch.isfinite(logit), logit, torch.zeros_like(logit))
        fraction = (1 - config.eps) * torch.sigmoid(logit)
        x = center + (fraction * t).to(d.dtype).view(shape) * d
        return torch.where(has_anchor.view(shape), x, torch.full_like(x, float("nan")))


__all__ = ["DEFAULT_EPS", "HoPLayer", "HopConfig", "HopProblemLayer", "hop_map", "unit_direction"]
