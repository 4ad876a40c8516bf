"""Final feasibility guard: a last-resort repair any method can switch on, on any problem.

For every sample that fails the problem's float64 check ``problem.is_feasible`` (relative
tolerance ``rtol``, default 1e-6), the guard moves the candidate along the segment toward the
strictly interior anchor ``problem.anchor`` up to the first exit ``problem.boundary_exit``
(closed form on a polytope and on the MISO cones; a certified bisection on non-convex sets
such as the energy-efficiency one). Samples that pass come back bit-for-bit unchanged (the
guard is the identity there, so gradients flow through untouched).

A point exactly on the boundary can still miss the check by rounding (for example a
non-negativity row, which the check applies without tolerance, or the cast back to float32).
The guard therefore shrinks the step further, trying the fractions
``1, 1 - 1e-9, 1 - 1e-6, 1 - 1e-3, 0.9, 0.5`` of the exit step and finally the anchor itself,
and keeps the first one that passes: every kept point is certified by the float64 check
itself, also on non-convex sets. Instances without any feasible point (the anchor is NaN)
cannot be repaired: their candidate is returned unchanged and flagged ``unfixable``.

Units: ``x`` is the problem's normalized variable (power control: powers as a fraction of
pmax; MISO: beams in units of sqrt(budget)); :func:`guard_result` works on finished results in
physical units. The problem comes from the registry (:func:`feasnet.problems.registry.problem_of`)
unless given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from feasnet.layers.base import FeasibilityLayer, finite_rows, ray_exit
from feasnet.problems.base import DEFAULT_RTOL, Problem
from feasnet.solvers.result import Result


class GuardConfig(BaseModel):
    """Settings of the guard layer."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rtol: float = Field(DEFAULT_RTOL, ge=0)


STEP_FRACTIONS = (1.0, 1.0 - 1e-9, 1.0 - 1e-6, 1.0 - 1e-3, 0.9, 0.5, 0.0)
"""Fractions of the ray-scaled step tried in turn (0: the anchor itself)."""


@dataclass(frozen=True)
class GuardResult:
    """Output of :func:`guard`.

    Attributes:
        x: ``(N, B, Q)`` normalized powers (MISO: ``(N, Nt, K)`` beams), feasible for every
            fixable instance.
        fired: ``(N,)`` bool, the input failed the check and the guard acted on it.
        unfixable: ``(N,)`` bool, fired on an instance with no feasible point (left as is).
        step: ``(N,)`` fraction of the way from the anchor to the candidate that was kept
            (1 where the guard did not fire or could not fix; 0 means the anchor itself).
    """

    x: Tensor
    fired: Tensor
    unfixable: Tensor
    step: Tensor


def guard(
    x: Tensor,
    instances: Any,
    rtol: float = DEFAULT_RTOL,
    problem: Problem | None = None,
) -> GuardResult:
    """Repair the samples of ``x`` that fail the float64 feasibility check.

    Args:
        x: ``(N, *shape)`` normalized points (power control ``(N, B, Q)`` fractions of pmax;
            MISO ``(N, Nt, K)`` beams in units of sqrt(budget)), any dtype.
        instances: the ``N`` instances.
        rtol: relative tolerance of the check.
        problem: the problem (default: the one the instances call for).

    Returns:
        A :class:`GuardResult` (see :func:`repair`).
    """
    from feasnet.problems.registry import problem_of

    return repair(problem or problem_of(instances), x, instances, rtol)


def _shrink_toward_anchor(
    x: Tensor,
    index: Tensor,
    fired: Tensor,
    t: Tensor,
    fixable: Tensor,
    point: Callable[[float], Tensor],
    passes: Callable[[Tensor], Tensor],
) -> GuardResult:
    """Try :data:`STEP_FRACTIONS` of the ray-scaled step for the fired samples ``index``.

    ``point(fraction)`` gives the trial outputs of the fired samples (in ``x``'s units and dtype),
    ``passes(trial)`` their float64 check; ``t`` is the ray-scaled step of each.
    """
    repaired = x[index]
    chosen = torch.zeros_like(fixable)
    kept = torch.zeros_like(t)
    for fraction in STEP_FRACTIONS:
        trial = point(fraction)
        ok = passes(trial) & fixable & ~chosen
        repaired = torch.where(ok.view(-1, *([1] * (x.ndim - 1))), trial, repaired)
        kept = torch.where(ok, t * fraction, kept)
        chosen = chosen | ok
        if bool((chosen | ~fixable).all()):
            break
    # unreachable in practice (the anchor is strictly interior); flag rather than hide it
    unfixable = torch.zeros_like(fired)
    unfixable[index] = ~chosen
    step = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
    step[index] = torch.where(chosen, kept, torch.ones_like(kept))
    keep = chosen.view(-1, *([1] * (x.ndim - 1)))
    out = x.index_copy(0, index, torch.where(keep, repaired, x[index]))
    return GuardResult(x=out, fired=fired, unfixable=unfixable, step=step)


class FeasibilityGuard(nn.Module):
    """Module form of :func:`guard` that counts how often it fires.

    Attributes:
        last_fired: ``(N,)`` bool mask of the last call (None before the first).
        last_unfixable: ``(N,)`` bool, fired on an instance without any feasible point.
        fired_count: samples repaired (or attempted) since construction / :meth:`reset_counts`.
        seen_count: samples seen since construction / :meth:`reset_counts`.

    Args:
        rtol: relative tolerance of the float64 check (default 1e-6).
    """

    def __init__(self, rtol: float = DEFAULT_RTOL) -> None:
        super().__init__()
        if rtol < 0:
            raise ValueError(f"rtol: expected a value >= 0, got {rtol}")
        self.rtol = rtol
        self.last_fired: Tensor | None = None
        self.last_unfixable: Tensor | None = None
        self.fired_count = 0
        self.seen_count = 0

    def forward(self, raw: Tensor, instances: Any) -> Tensor:
        """Repair infeasible samples: ``(N, *shape)`` normalized points in, same shape out."""
        result = guard(raw, instances, self.rtol)
        self.last_fired = result.fired
        self.last_unfixable = result.unfixable
        self.fired_count += int(result.fired.sum())
        self.seen_count += int(raw.shape[0])
        return result.x

    @property
    def fire_rate(self) -> float:
        """Fraction of the samples seen on which the guard fired (0 before any call)."""
        return self.fired_count / self.seen_count if self.seen_count else 0.0

    def reset_counts(self) -> None:
        """Zero :attr:`fired_count` and :attr:`seen_count`."""
        self.fired_count = 0
        self.seen_count = 0

    def extra_repr(self) -> str:
        return f"rtol={self.rtol}"


def guard_result(result: Result, instances: Any, rtol: float = DEFAULT_RTOL) -> Result:
    """Apply :func:`guard` to a finished result (any method, classical or learned).

    Allocations that fail the float64 check at ``rtol`` (NaN rows of a failed solve included,
    which start from the zero allocation) move toward the strictly interior anchor until they
    pass; their message gains "guard fired". Instances without any feasible point keep their
    allocation and message. The guard's time is not added to ``seconds``.
    """
    from feasnet.problems.registry import problem_of

    problem = problem_of(instances)
    inst = problem.float64(instances)
    physical = torch.as_tensor(result.allocation).to(
        torch.complex128 if problem.complex_variable else torch.float64
    )
    x = problem.from_physical(physical, inst)
    x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    guarded = repair(problem, x, inst, rtol)
    messages = [
        f"{message}; guard fired".lstrip("; ") if fired and not unfixable else message
        for message, fired, unfixable in zip(
            result.messages, guarded.fired.tolist(), guarded.unfixable.tolist(), strict=True
        )
    ]
    out: Result = problem.result(
        result.method, problem.to_physical(guarded.x, inst), inst, result.seconds, messages, rtol
    )
    out.converged = result.converged
    return out


# ============================================================================ the generic guard
def repair(
    problem: Problem,
    x: Tensor,
    instances: Any,
    rtol: float = DEFAULT_RTOL,
    anchor: Tensor | None = None,
) -> GuardResult:
    """The guard on any problem: samples of ``x`` that fail ``problem.is_feasible`` move
    toward ``problem.anchor`` up to the first exit ``problem.boundary_exit`` finds.

    Reads only the problem interface. On convex sets the exit is exact; on non-convex ones it
    is the family's certified bisection, and every kept point is certified by the float64
    check itself (the step fractions of :data:`STEP_FRACTIONS` are tried in turn until one
    passes; the last is the anchor). Non-finite candidates start from the anchor.

    Args:
        problem: the problem (family and constraint set).
        x: ``(N, *shape)`` normalized points, any dtype (kept) and device.
        instances: the ``N`` instances.
        rtol: relative tolerance of the float64 check.
        anchor: ``(N, *shape)`` a precomputed ``problem.anchor(instances)`` (else computed for
            the failing samples only).

    Returns:
        A :class:`GuardResult`; ``x`` is differentiable (identity where the guard did not
        fire, the ray point where it did; the exit itself is differentiable only where the
        family gives it in closed form).
    """
    n = x.shape[0]
    passed = problem.is_feasible(x, instances, rtol).to(x.device)
    fired = ~passed
    step = torch.ones(n, dtype=torch.float64, device=x.device)
    if not bool(fired.any()):
        return GuardResult(x=x, fired=fired, unfixable=torch.zeros_like(fired), step=step)
    index = fired.nonzero().squeeze(1)
    sub = instances[index.to(instances.device) if hasattr(instances, "device") else index]
    wide = torch.complex128 if x.is_complex() else torch.float64
    sub64 = problem.float64(sub, x.device)
    center = (problem.anchor(sub64) if anchor is None else anchor[index]).to(wide)
    fixable = finite_rows(center)
    shape = (-1,) + (1,) * (x.dim() - 1)
    center = torch.where(fixable.view(shape), center, torch.zeros_like(center))
    candidate = x[index].to(wide)
    finite = finite_rows(candidate)
    candidate = torch.where(finite.view(shape), candidate, center)
    direction = candidate - center
    t = ray_exit(problem, center, direction, sub64)
    t = torch.where(finite & torch.isfinite(t), t.clamp(max=1.0), torch.zeros_like(t))
    t = t.to(torch.float64)
    displacement = t.to(wide).view(shape) * direction
    return _shrink_toward_anchor(
        x,
        index,
        fired,
        t,
        fixable,
        point=lambda f: (center + f * displacement).to(x.dtype),
        passes=lambda trial: problem.is_feasible(trial, sub64, rtol).to(x.device),
    )


class GuardLayer(FeasibilityLayer):
    """The guard as a feasibility layer (``guard``): identity on samples that pass the
    float64 check, :func:`repair` on the others. A hard layer on every problem that has an
    anchor; no training signal of its own (pair it with the penalty in the loss)."""

    Config = GuardConfig

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``(N, *shape)`` repaired normalized points (``raw``'s dtype)."""
        config = self.config
        assert isinstance(config, GuardConfig)
        anchor = self.anchor_of(instances).to(raw.device)
        return repair(self.problem, raw, instances, config.rtol, anchor=anchor).x
