"""HoP (homeomorphic polar learning) layer on any problem with an anchor (hand-written).

HoP (Deng, Zhang, Lu & Sun, "HoP: Homeomorphic polar learning for hard constrained
optimization", 2025) lets the network output a point in polar coordinates around a center of a
star-convex feasible set, a direction and a bounded radius, and maps it to Cartesian
coordinates so that every output is feasible. Here the network proposes a direction ``D`` (the
raw output, or ``raw - anchor``) and a radius logit ``r`` (one extra output); the layer returns

    x = x0 + rho(r) * t_exit(d) * d,     d = D / ||D||,     rho(r) = (1 - eps) sigmoid(r),

where ``x0`` is the strictly interior anchor ``problem.anchor`` and ``t_exit(d)`` the first
exit of the ray from ``x0`` along ``d``, ``problem.boundary_exit`` (closed form on a polytope
and on the MISO cones; a certified bisection on non-convex sets, then differentiated by the
implicit function theorem, :func:`feasnet.layers.base.ray_exit`). The feasible set is
star-shaped around ``x0`` along every ray up to ``t_exit`` by definition, so ``x`` is strictly
feasible whenever ``rho < 1``.

The paper writes the direction in hyperspherical (trigonometric) coordinates, ``d_1 = cos
theta_1``, ``d_2 = sin theta_1 cos theta_2``, ..., ``d_n = sin theta_1 ... sin theta_{n-1}``,
with angles from bounded activations; we write it as the normalized vector ``D / ||D||``. The
two layers are the same map onto the feasible set, in two charts of the unit sphere:

* *image*: both direction maps are onto the unit sphere (the angle box covers it, and so
  does ``R^n`` minus the origin under normalization), and both compose with the same
  polar-to-Cartesian map ``(d, rho) -> x0 + rho t_exit(d) d``, a homeomorphism of
  ``S^{n-1} x (0, 1 - eps)`` onto the (star-shaped) feasible set scaled by ``1 - eps`` around
  ``x0``, minus ``x0``. The images are therefore identical;
* *bijectivity*: in both, the bijective part is that polar-to-Cartesian map. Neither
  direction chart is one-to-one from the network's raw outputs: the angles are many-to-one at
  the poles (``theta_1 = 0`` makes the other angles irrelevant) and on the seam
  ``theta_{n-1} = 0 ~ 2 pi``; the normalization is many-to-one along each open ray
  (``D`` and ``c D``, ``c > 0``, give the same ``d``);
* *differences*: only the gradient geometry. The angle chart has coordinate singularities
  (vanishing gradients at the poles, a jump at the seam, which the paper handles with its
  reconnection strategies); the normalized chart has neither, its gradient is the projection
  onto the tangent plane scaled by ``1 / ||D||``, and it needs no choice of pole.

``direction="auto"`` takes ``raw`` for complex variables (the MISO backbones output beams in the
unit ball centered at 0, so ``raw`` points anywhere) and ``raw - anchor`` for real ones (the
power-control MLP outputs powers in ``(0, 1)``: read as a direction from the anchor, a sigmoid
output would only point into the positive orthant, i.e. never lower any power below the
anchor's).

The learned invertible network of *homeomorphic projection* (Liang, Chen & Low, 2023) is a
different method, the ``hp`` layer (:mod:`feasnet.layers.homeomorphic`).

``eps`` (default 1e-4) keeps a relative slack even when the sigmoid rounds to 1 (float32,
``r > 17``), so the result also passes the float64 check after a float32 computation.
Robustness: ``D`` is first divided by its largest entry (no overflow or underflow for huge or
tiny directions), a zero or non-finite direction gives the anchor itself (``t = 0``), and a
non-finite radius logit counts as 0.5. Differentiable everywhere except at those guards.
Units: the problem's normalized ``x``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from feasnet.layers.base import FeasibilityLayer, finite_rows, ray_exit

DEFAULT_EPS = 1e-4
"""Relative slack: the radius fraction is at most ``1 - eps``."""


def unit_direction(direction: Tensor) -> tuple[Tensor, Tensor]:
    """``(d, ok)``: ``direction / ||direction||_F`` per sample (``(N, Nt, K)``), computed
    without overflow, and ``(N,)`` bool ``ok`` (finite and non-zero); ``d = 0`` where not ok."""
    finite = finite_rows(direction)
    safe = torch.where(finite[:, None, None], direction, torch.zeros_like(direction))
    peak = safe.abs().flatten(1).amax(dim=1)
    ok = finite & (peak > 0)
    peak = torch.where(ok, peak, torch.ones_like(peak))
    scaled = safe / peak.to(safe.dtype)[:, None, None]
    norm = torch.linalg.vector_norm(scaled.flatten(1), dim=1)
    norm = torch.where(ok, norm, torch.ones_like(norm))
    d = scaled / norm.to(scaled.dtype)[:, None, None]
    return torch.where(ok[:, None, None], d, torch.zeros_like(d)), ok


class HopConfig(BaseModel):
    """Settings of the ``hop`` layer.

    Attributes:
        eps: relative slack, the radius fraction is at most ``1 - eps``.
        direction: ``"raw"``: the backbone output is the direction (MISO MLP, whose output
            lies in the unit ball around 0); ``"from-anchor"``: the backbone output is a point
            and the direction is ``raw - anchor`` (deep-unfolded WMMSE, power-control MLP);
            ``"auto"``: ``raw`` for complex variables, ``from-anchor`` for real ones.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    eps: float = Field(DEFAULT_EPS, ge=0, lt=1)
    direction: Literal["raw", "from-anchor", "auto"] = "from-anchor"


class HopLayer(FeasibilityLayer):
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
        center, has_anchor = self.center_of(instances, raw)
        shape = (-1,) + (1,) * (raw.dim() - 1)
        mode = config.direction
        if mode == "auto":
            mode = "raw" if self.problem.complex_variable else "from-anchor"
        direction = raw - center if mode == "from-anchor" else raw
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


__all__ = ["DEFAULT_EPS", "HopConfig", "HopLayer", "unit_direction"]
