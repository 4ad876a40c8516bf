"""The contract every feasibility layer follows.

A layer is built once for one :class:`~feasnet.problems.base.Problem` (a family with one
constraint set) and maps a backbone's raw output to the decision variable::

    layer = SomeLayer(problem, SomeLayer.Config(...))
    x = layer(raw, instances, extra)

* ``raw``: ``(N, *problem.variable_shape(instances))`` in normalized units (see
  :mod:`feasnet.problems.base`), any float (or complex) dtype and device;
* ``instances``: the ``N`` instances in physical units (any dtype; the layer casts);
* ``extra``: ``(N, extra_outputs)`` real, further backbone outputs the layer asked for with
  :attr:`FeasibilityLayer.extra_outputs` (HoP's radius logit); empty otherwise;
* returns ``x`` of ``raw``'s shape, dtype and device. *Hard* layers return points that pass
  ``problem.is_feasible`` at rtol 1e-6 in eval mode (NaN rows for instances without any
  feasible point; non-finite ``raw`` rows do not affect the other rows).

A layer reads only the problem interface (objective, constraints, violation, anchor,
boundary exit, linear form). One that needs more than a problem offers says so in
:meth:`FeasibilityLayer.check` with :class:`~feasnet.problems.base.UnsupportedProblemError`.
New layers: one file with a subclass, plus one line in :mod:`feasnet.layers.registry`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from feasnet.problems.base import Problem, UnsupportedProblemError


class NoOptions(BaseModel):
    """Settings of a layer that has none."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class FeasibilityLayer(nn.Module):
    """Base class of the feasibility layers (see the module docstring).

    Class attributes:
        Config: pydantic settings of the layer (``extra="forbid"``).
        hard: eval-mode outputs are feasible by construction.
        extra_outputs: extra real outputs the backbone must provide per instance.
    """

    Config: ClassVar[type[BaseModel]] = NoOptions
    hard: ClassVar[bool] = True
    extra_outputs: ClassVar[int] = 0

    def __init__(self, problem: Problem, config: BaseModel | None = None) -> None:
        super().__init__()
        self.check(problem)
        self.problem = problem
        self.config = config if config is not None else self.Config()

    def anchor_of(self, instances: Any) -> Tensor:
        """``problem.anchor`` of ``instances`` in float64 (complex128), ``(N, *shape)``,
        remembered for the last batch seen: repeated calls on the same instances object
        (inference loops, gradcheck) skip the minimum-power computation."""
        cached = getattr(self, "_anchor_cache", None)
        if cached is not None and cached[0] is instances:
            return cached[1]
        anchor = self.problem.anchor(self.problem.float64(instances))
        self._anchor_cache = (instances, anchor)
        return anchor

    def center_of(self, instances: Any, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(center, has_anchor)``: :meth:`anchor_of` in ``like``'s dtype and device with the
        rows of instances without a feasible point (NaN anchors) replaced by 0, and the
        ``(N,)`` bool mask of the rows that have an anchor."""
        anchor = self.anchor_of(instances).to(device=like.device, dtype=like.dtype)
        has_anchor = finite_rows(anchor)
        center = torch.where(expand_rows(has_anchor, anchor), anchor, torch.zeros_like(anchor))
        return center, has_anchor

    @classmethod
    def check(cls, problem: Problem) -> None:
        """Raise :class:`UnsupportedProblemError` if the layer cannot serve ``problem``."""

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"problem={self.problem.name}, " + ", ".join(
            f"{k}={v!r}" for k, v in self.config.model_dump().items()
        )


def unsupported(layer: str, problem: Problem, why: str) -> UnsupportedProblemError:
    """The one-line error of a layer asked for a problem it cannot serve."""
    return UnsupportedProblemError(f"layer {layer!r} does not apply to {problem.name}: {why}")


def finite_rows(x: Tensor) -> Tensor:
    """``(N,)`` bool: every entry of the row is finite (real and imaginary parts)."""
    flat = torch.view_as_real(x) if x.is_complex() else x
    return torch.isfinite(flat.reshape(x.shape[0], -1)).all(dim=1)


def expand_rows(mask: Tensor, like: Tensor) -> Tensor:
    """``(N,)`` mask viewed as ``(N, 1, ..., 1)`` to broadcast against ``like``."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of the same precision (complex64 -> float32, ...)."""
    return torch.empty(0, dtype=dtype).real.dtype


def constraint_jacobian(
    problem: Problem, x: Tensor, instances: Any, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """Constraint values and their Jacobian with respect to ``x``, by autograd.

    Args:
        problem: the problem whose :meth:`~Problem.constraints` are differentiated.
        x: ``(N, *shape)`` point (real or complex).
        instances: the ``N`` instances, already in ``x``'s dtype and device.
        create_graph: keep the graph of the Jacobian (to differentiate through a step).

    Returns:
        ``(g, J)``: ``(N, M)`` values and ``(N, M, *shape)`` gradients, row ``m`` of sample
        ``n`` the gradient of ``g[n, m]`` w.r.t. ``x[n]`` (for complex ``x`` PyTorch's
        convention ``d/dRe + i d/dIm``). Rows of distinct samples do not mix (each row of ``g``
        depends on its own sample only), so one backward pass per constraint suffices.
    """
    with torch.enable_grad():
        point = x if x.requires_grad else x.detach().requires_grad_()
        g = problem.constraints(point, instances)
        rows = []
        for m in range(g.shape[1]):
            (grad,) = torch.autograd.grad(
                g[:, m].sum(),
                point,
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
            )
            rows.append(torch.zeros_like(point) if grad is None else grad)
    jacobian = torch.stack(rows, dim=1)
    if not create_graph:
        return g.detach(), jacobian.detach()
    return g, jacobian


def ray_exit(problem: Problem, anchor: Tensor, direction: Tensor, instances: Any) -> Tensor:
    """``problem.boundary_exit`` with a gradient where the family's exit has none.

    Families give the exit in closed form where the set allows (polytope, MISO cones; then it
    is differentiable and returned as is); elsewhere it is a certified bisection, which has
    no gradient. There the exit ``t`` is the root of the active row ``g_a(anchor + t d) = 0``
    (the row closest to 0 at the exit), so the implicit function theorem gives
    ``dt = -dg_a / (dg_a/dt)``; it is attached straight-through: the value stays the certified
    ``t``. Infinite exits (the ray never leaves) and zero exits get no gradient.

    Args:
        problem: the problem.
        anchor: ``(N, *shape)`` strictly interior points.
        direction: ``(N, *shape)`` directions.
        instances: the ``N`` instances in ``anchor``'s dtype.

    Returns:
        ``(N,)`` exits in the real dtype of ``anchor``.
    """
    t = problem.boundary_exit(anchor, direction, instances)
    needs = anchor.requires_grad or direction.requires_grad
    if t.requires_grad or not needs or not torch.is_grad_enabled():
        return t
    t = t.to(real_dtype(anchor.dtype))
    usable = torch.isfinite(t) & (t > 0)
    if not bool(usable.any()):
        return t
    shape = (-1,) + (1,) * (anchor.dim() - 1)
    t0 = torch.where(usable, t, torch.zeros_like(t)).detach().requires_grad_()
    point = anchor + t0.to(anchor.dtype).view(shape) * direction
    g = problem.constraints(point, instances)
    active = g.detach().argmax(dim=1, keepdim=True)
    g_active = g.gather(1, active).squeeze(1)
    (slope,) = torch.autograd.grad(g_active.sum(), t0, retain_graph=True)
    slope = torch.where(usable & (slope > 0), slope, torch.ones_like(slope)).detach()
    shift = -g_active / slope
    shift = torch.where(usable, shift - shift.detach(), torch.zeros_like(shift))
    return t.detach() + shift
