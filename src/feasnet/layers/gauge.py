"""Gauge mapping layer on any problem with an anchor (hand-written).

Gauge mapping (Li, Kolouri & Mohammadi, "Learning to solve optimization problems with hard
linear constraints") maps the unit ``l_inf`` ball ``B`` bijectively onto a bounded feasible set
``C`` that holds a strictly interior point ``x0``: with ``gamma(z)``, the gauge (Minkowski
functional) of the shifted set ``C - x0``,

    x = x0 + (||z||_inf / gamma(z)) z,          z in B.

Both ``||.||_inf`` and ``gamma`` are positively homogeneous of degree 1, so the map sends the
level set ``{||z||_inf = r}`` of the cube onto the level set ``{gamma = r}`` of the feasible
set: ``||z||_inf = 1`` (the cube's surface) lands on the boundary of ``C``, ``z = 0`` on
``x0``, and the map is a homeomorphism of ``B`` onto ``C`` (continuous, with the continuous
inverse ``z = x0 + (gamma(x - x0) / ||x - x0||_inf) (x - x0)``). The gauge is the reciprocal of
the exit distance of the ray from ``x0`` along ``z``: ``gamma(z) = 1 / t_exit(z)``. Here

* on a polytope ``G x <= h`` (power control, ``linear-rate``) it is the closed form
  ``gamma(z) = max(0, max_i G_i z / (h_i - G_i x0))`` (:func:`polytope_gauge`; the paper's
  formula);
* otherwise it is ``1 / problem.boundary_exit(x0, z)``: a closed form on the MISO cones and on
  the ``rate`` polytope written without a linear form, a certified bisection elsewhere (energy
  efficiency), differentiated by the implicit function theorem
  (:func:`feasnet.layers.base.ray_exit`). Where the set is star-shaped around ``x0`` but not
  convex the bisection's first exit gives the largest star-shaped subset along rays, and the
  map is a homeomorphism onto that subset.

Where we differ from the paper: the paper applies the map to polytopes only; with the exit
distance as the gauge the same formula serves every set that is star-shaped around the
anchor. The output is scaled by ``1 - eps`` (default ``1e-4``) so that a float32 computation
(or ``tanh`` rounding to 1) still passes the float64 check; ``||z||_inf`` is capped at 1 (an
input outside the cube is read as its radial projection onto the cube's surface).

Input (:class:`GaugeConfig.input`): the backbone's raw output is turned into ``z`` in ``B``
by ``"unit-interval"`` (``z = 2 raw - 1``, for heads in ``(0, 1)`` such as the power-control
MLP's sigmoid), ``"ball"`` (``z = raw``, for heads inside the unit ball such as the MISO
backbones' beams) or ``"tanh"`` (``z = tanh(raw)``, for unbounded heads). ``"auto"`` (default)
takes ``"ball"`` for complex variables and ``"unit-interval"`` for real ones, which fits the
default backbones. For complex variables the real and imaginary parts are coordinates of their
own (``||z||_inf`` is the largest of them).

A row with a non-finite raw output returns the anchor; an instance without a feasible point
returns a NaN row. Units: the problem's normalized ``x``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from feasnet.layers.base import FeasibilityLayer, expand_rows, finite_rows, ray_exit
from feasnet.problems.base import LinearForm, Problem

DEFAULT_EPS = 1e-4
"""Relative slack: the output sits at most ``1 - eps`` of the way to the boundary."""


def flat_real(x: Tensor) -> Tensor:
    """``(N, D)`` real coordinates of ``x`` ``(N, *shape)``: the entries flattened, and for a
    complex ``x`` the real and imaginary parts as separate coordinates (``D = 2 prod(shape)``).
    """
    return (torch.view_as_real(x) if x.is_complex() else x).reshape(x.shape[0], -1)


def unflat_real(v: Tensor, like: Tensor) -> Tensor:
    """The inverse of :func:`flat_real`: ``v`` ``(N, D)`` as a tensor of ``like``'s shape and
    kind (complex when ``like`` is)."""
    if like.is_complex():
        return torch.view_as_complex(v.reshape(*like.shape, 2).contiguous())
    return v.reshape(like.shape)


def infinity_norm(x: Tensor) -> Tensor:
    """``(N,)`` largest absolute real coordinate of each row (:func:`flat_real`)."""
    return flat_real(x).abs().amax(dim=1)


def polytope_gauge(form: LinearForm, anchor: Tensor, z: Tensor) -> Tensor:
    """The gauge of ``{x : G x <= h} - x0`` at ``z``, in closed form.

    Args:
        form: ``G`` ``(N, M, D)`` and ``h`` ``(N, M)`` of a polytope in the flattened ``x``.
        anchor: ``(N, *shape)`` strictly interior points ``x0`` (``G x0 < h``).
        z: ``(N, *shape)`` real points.

    Returns:
        ``(N,)`` ``gamma(z) = max(0, max_i G_i z / (h_i - G_i x0))`` (0 where the ray from
        ``x0`` along ``z`` never leaves), in ``z``'s dtype; ``1 / gamma`` is the exit distance.
    """
    g = form.G.to(device=z.device, dtype=z.dtype)
    h = form.h.to(device=z.device, dtype=z.dtype)
    slack = h - torch.einsum("nmd,nd->nm", g, anchor.reshape(anchor.shape[0], -1))
    ratio = torch.einsum("nmd,nd->nm", g, z.reshape(z.shape[0], -1)) / slack
    return torch.relu(ratio.amax(dim=1))


def polytope_exit(form: LinearForm, anchor: Tensor, z: Tensor) -> Tensor:
    """``(N,)`` exit distance ``1 / polytope_gauge`` of the ray from ``anchor`` along ``z``
    (``inf`` where it never leaves), differentiable where finite."""
    gamma = polytope_gauge(form, anchor, z)
    safe = torch.where(gamma > 0, gamma, torch.ones_like(gamma))
    return torch.where(gamma > 0, 1 / safe, torch.full_like(gamma, math.inf))


class GaugeConfig(BaseModel):
    """Settings of the ``gauge`` layer.

    Attributes:
        eps: relative slack, the output sits at most ``1 - eps`` of the way to the boundary.
        input: how the raw output becomes a point of the unit ``l_inf`` ball (module
            docstring): ``auto``, ``unit-interval``, ``ball`` or ``tanh``.
        closed_form: use the polytope closed form when the problem has a linear form (else
            always ``problem.boundary_exit``; the two agree).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    eps: float = Field(DEFAULT_EPS, ge=0, lt=1)
    input: Literal["auto", "unit-interval", "ball", "tanh"] = "auto"
    closed_form: bool = True


def to_cube(raw: Tensor, mode: str, complex_variable: bool) -> Tensor:
    """``z`` of the raw output under input ``mode`` (:class:`GaugeConfig`), same shape/dtype.

    Non-finite entries are not treated here (the caller replaces those rows)."""
    if mode == "auto":
        mode = "ball" if complex_variable else "unit-interval"
    if mode == "ball":
        return raw
    if mode == "unit-interval":
        return 2 * raw - 1
    if raw.is_complex():
        return torch.complex(torch.tanh(raw.real), torch.tanh(raw.imag))
    return torch.tanh(raw)


class GaugeLayer(FeasibilityLayer):
    """``gauge``: ``x = x0 + (1 - eps) min(||z||_inf, 1) t_exit(z) z`` (module docstring),
    ``x0 = problem.anchor``; hard on every problem with an anchor, differentiable wherever the
    exit is (closed forms on the polytope and the MISO cones; the implicit function theorem on
    the bisection of non-linear sets)."""

    Config = GaugeConfig

    def exit_distance(self, anchor: Tensor, z: Tensor, instances: Any) -> Tensor:
        """``(N,)`` exit distance ``1 / gamma(z)`` of the ray from ``anchor`` along ``z``
        (``inf`` where it never leaves), in the real dtype of ``z``; ``instances`` in ``z``'s
        dtype and device."""
        config = self.config
        assert isinstance(config, GaugeConfig)
        form = self.problem.linear_form(instances) if config.closed_form else None
        if form is not None and not z.is_complex():
            return polytope_exit(form, anchor, z)
        return ray_exit(self.problem, anchor, z, instances).to(z.real.dtype)

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``(N, *shape)`` strictly feasible normalized points in ``raw``'s dtype (NaN rows for
        instances without a feasible point; the anchor for non-finite raw rows)."""
        config = self.config
        assert isinstance(config, GaugeConfig)
        inst = instances.to(raw.dtype, raw.device)
        center, has_anchor = self.center_of(instances, raw)
        ok = finite_rows(raw)
        z = to_cube(
            torch.where(expand_rows(ok, raw), raw, torch.zeros_like(raw)),
            config.input,
            self.problem.complex_variable,
        )
        radius = infinity_norm(z)
        ok = ok & (radius > 0)
        probe = torch.where(expand_rows(ok, z), z, torch.ones_like(z))
        t = self.exit_distance(center, probe, inst)
        bounded = ok & torch.isfinite(t)
        # inside the ray's whole length the set never ends: the point itself is feasible
        scale = (
            (1 - config.eps)
            * torch.clamp(radius, max=1.0)
            * torch.where(bounded, t, torch.ones_like(t))
        )
        scale = torch.where(ok, scale, torch.zeros_like(scale))
        x = center + scale.to(z.dtype).view(-1, *([1] * (z.dim() - 1))) * probe
        return torch.where(expand_rows(has_anchor, x), x, torch.full_like(x, float("nan")))


def gauge_exit(problem: Problem, anchor: Tensor, z: Tensor, instances: Any) -> Tensor:
    """``(N,)`` the polytope closed form's exit ``1 / polytope_gauge`` where ``problem`` has a
    linear form, else ``problem.boundary_exit`` (for comparisons in tests and docs)."""
    form = problem.linear_form(instances)
    if form is None:
        return problem.boundary_exit(anchor, z, instances)
    return polytope_exit(form, anchor, z)


__all__ = [
    "DEFAULT_EPS",
    "GaugeConfig",
    "GaugeLayer",
    "flat_real",
    "gauge_exit",
    "infinity_norm",
    "polytope_exit",
    "polytope_gauge",
    "to_cube",
    "unflat_real",
]
