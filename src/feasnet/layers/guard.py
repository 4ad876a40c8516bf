"""Final feasibility guard: a last-resort repair any method can switch on.

For every sample that fails the float64 check
:func:`feasnet.problems.power_control.is_feasible` (relative tolerance ``rtol``, default 1e-6),
the guard moves the candidate along the segment toward the strictly interior anchor
:func:`feasnet.problems.power_control.interior_anchor` with the closed-form ray scaling
:func:`feasnet.problems.power_control.scale_toward_anchor`, which stops on the first
constraint the segment crosses. Samples that pass come back bit-for-bit unchanged (the guard
is the identity there, so gradients flow through untouched).

A point exactly on the boundary can still miss the check by rounding (for example a
non-negativity row, which the check applies without tolerance, or the cast back to float32).
The guard therefore shrinks the step further, trying the fractions
``1, 1 - 1e-9, 1 - 1e-6, 1 - 1e-3, 0.9, 0.5`` of the ray-scaled step and finally the anchor
itself, and keeps the first one that passes. Instances without any feasible point (the anchor
is NaN) cannot be repaired: their candidate is returned unchanged and flagged ``unfixable``.

MISO beamforming (hand-written): :func:`guard` dispatches on the instances' type. For
:class:`~feasnet.problems.miso.MisoInstances`, ``x`` is ``(N, Nt, K)`` complex beams in the
units of those instances (physical beams with physical instances, or normalized beams with
:func:`~feasnet.problems.miso.normalized_instances`); the check is
:func:`feasnet.problems.miso.is_feasible`, the anchor
:func:`feasnet.problems.miso.interior_anchor` and the ray scaling
:func:`feasnet.problems.miso.scale_toward_anchor` (all in complex128), with the same step
fractions. Non-finite candidates are replaced by the anchor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from feasnet.layers.base import FeasibilityLayer, ray_exit
from feasnet.problems import miso
from feasnet.problems.base import Problem
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import (
    DEFAULT_RTOL,
    interior_anchor,
    is_feasible,
    scale_toward_anchor,
)
from feasnet.solvers.result import AllocationResult, BeamformingResult, Result


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
    instances: PowerControlInstances | miso.MisoInstances,
    rtol: float = DEFAULT_RTOL,
    anchor_fraction: float = 0.5,
) -> GuardResult:
    """Repair the samples of ``x`` that fail the float64 feasibility check.

    Args:
        x: ``(N, B, Q)`` normalized powers (fraction of each instance's pmax), any float dtype;
            for MISO instances ``(N, Nt, K)`` complex beams in the instances' units.
        instances: the ``N`` instances (:class:`PowerControlInstances` or
            :class:`~feasnet.problems.miso.MisoInstances`).
        rtol: relative tolerance of :func:`~feasnet.problems.power_control.is_feasible`.
        anchor_fraction: ``fraction`` argument of
            :func:`~feasnet.problems.power_control.interior_anchor` (position of the anchor
            between the minimum-power point and the budget boundary).

    Returns:
        A :class:`GuardResult`; ``x`` keeps the input's dtype and is differentiable (identity
        where the guard did not fire, the ray-scaled point where it did).
    """
    if isinstance(instances, miso.MisoInstances):
        return _guard_miso(x, instances, rtol, anchor_fraction)
    n = x.shape[0]
    pmax = instances.pmax.to(device=x.device, dtype=x.dtype)[:, None, None]
    passed = is_feasible(x * pmax, instances, rtol).to(x.device)
    fired = ~passed
    unfixable = torch.zeros_like(fired)
    step = torch.ones(n, dtype=torch.float64, device=x.device)
    if not bool(fired.any()):
        return GuardResult(x=x, fired=fired, unfixable=unfixable, step=step)

    index = fired.nonzero().squeeze(1)
    sub64 = instances[index].to(torch.float64, x.device)
    anchor = interior_anchor(sub64, fraction=anchor_fraction)  # (k, B, Q) [W]
    fixable = torch.isfinite(anchor).all(dim=(1, 2))
    candidate = x[index].to(torch.float64) * sub64.pmax[:, None, None]
    safe_anchor = torch.where(fixable[:, None, None], anchor, torch.zeros_like(anchor))
    scaled, t = scale_toward_anchor(candidate, safe_anchor, sub64)
    displacement = scaled - safe_anchor  # t * (candidate - anchor)

    sub = instances[index]
    sub_pmax = pmax[index]
    return _shrink_toward_anchor(
        x,
        index,
        fired,
        t,
        fixable,
        point=lambda f: ((safe_anchor + f * displacement) / sub64.pmax[:, None, None]).to(x.dtype),
        passes=lambda trial: is_feasible(trial * sub_pmax, sub, rtol).to(x.device),
    )


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


def _guard_miso(
    x: Tensor, instances: miso.MisoInstances, rtol: float, anchor_fraction: float
) -> GuardResult:
    """:func:`guard` for MISO beams ``(N, Nt, K)`` (units of ``instances``)."""
    n = x.shape[0]
    passed = miso.is_feasible(x, instances, rtol).to(x.device)
    fired = ~passed
    unfixable = torch.zeros_like(fired)
    step = torch.ones(n, dtype=torch.float64, device=x.device)
    if not bool(fired.any()):
        return GuardResult(x=x, fired=fired, unfixable=unfixable, step=step)

    index = fired.nonzero().squeeze(1)
    sub = instances[index.to(instances.device)].to(device=x.device)
    sub128 = sub.to(torch.complex128)
    anchor = miso.interior_anchor(sub128, anchor_fraction)
    fixable = torch.isfinite(torch.view_as_real(anchor)).flatten(1).all(dim=1)
    safe_anchor = torch.where(fixable[:, None, None], anchor, torch.zeros_like(anchor))
    candidate = x[index].to(torch.complex128)
    finite = torch.isfinite(torch.view_as_real(candidate)).flatten(1).all(dim=1)
    candidate = torch.where(finite[:, None, None], candidate, safe_anchor)
    scaled, t = miso.scale_toward_anchor(candidate, safe_anchor, sub128)
    t = torch.where(finite, t, torch.zeros_like(t))
    displacement = scaled - safe_anchor  # t * (candidate - anchor)

    return _shrink_toward_anchor(
        x,
        index,
        fired,
        t,
        fixable,
        point=lambda f: (safe_anchor + f * displacement).to(x.dtype),
        passes=lambda trial: miso.is_feasible(trial, sub, rtol).to(x.device),
    )


class FeasibilityGuard(nn.Module):
    """Module form of :func:`guard` that counts how often it fires.

    Attributes:
        last_fired: ``(N,)`` bool mask of the last call (None before the first).
        last_unfixable: ``(N,)`` bool, fired on an instance without any feasible point.
        fired_count: samples repaired (or attempted) since construction / :meth:`reset_counts`.
        seen_count: samples seen since construction / :meth:`reset_counts`.

    Args:
        rtol: relative tolerance of the float64 check (default 1e-6).
        anchor_fraction: position of the interior anchor (see :func:`guard`).
    """

    def __init__(self, rtol: float = DEFAULT_RTOL, anchor_fraction: float = 0.5) -> None:
        super().__init__()
        if rtol < 0:
            raise ValueError(f"rtol: expected a value >= 0, got {rtol}")
        if not 0.0 < anchor_fraction < 1.0:
            raise ValueError(f"anchor_fraction: expected a value in (0, 1), got {anchor_fraction}")
        self.rtol = rtol
        self.anchor_fraction = anchor_fraction
        self.last_fired: Tensor | None = None
        self.last_unfixable: Tensor | None = None
        self.fired_count = 0
        self.seen_count = 0

    def forward(self, raw: Tensor, instances: PowerControlInstances | miso.MisoInstances) -> Tensor:
        """Repair infeasible samples: ``(N, B, Q)`` normalized powers (or ``(N, Nt, K)`` MISO
        beams) in, same shape out."""
        result = guard(raw, instances, self.rtol, self.anchor_fraction)
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
        return f"rtol={self.rtol}, anchor_fraction={self.anchor_fraction}"


def guard_result(
    result: Result,
    instances: PowerControlInstances | miso.MisoInstances,
    rtol: float = DEFAULT_RTOL,
) -> Result:
    """Apply :func:`guard` to a finished result (any method, classical or learned).

    Allocations that fail the float64 check at ``rtol`` (NaN rows of a failed solve included,
    which start from the zero allocation) move toward the strictly interior anchor until they
    pass; their message gains "guard fired". Instances without any feasible point keep their
    allocation and message. The guard's time is not added to ``seconds``.
    """
    if isinstance(result, BeamformingResult):
        x = torch.as_tensor(result.beams, dtype=torch.complex128)
        inst: PowerControlInstances | miso.MisoInstances = instances.to(torch.complex128, "cpu")
        finite = torch.isfinite(torch.view_as_real(x)).flatten(1).all(dim=1)
    else:
        inst = instances.to(torch.float64, "cpu")
        x = torch.as_tensor(result.power, dtype=torch.float64) / inst.pmax[:, None, None]
        finite = torch.isfinite(x).flatten(1).all(dim=1)
    x = torch.where(finite[:, None, None], x, torch.zeros_like(x))
    guarded = guard(x, inst, rtol=rtol)
    messages = [
        f"{message}; guard fired".lstrip("; ") if fired and not unfixable else message
        for message, fired, unfixable in zip(
            result.messages, guarded.fired.tolist(), guarded.unfixable.tolist(), strict=True
        )
    ]
    if isinstance(result, BeamformingResult):
        assert isinstance(inst, miso.MisoInstances)
        out: Result = BeamformingResult.from_beams(
            result.method, guarded.x, inst, result.seconds, messages, rtol
        )
    else:
        assert isinstance(inst, PowerControlInstances)
        out = AllocationResult.from_power(
            result.method,
            guarded.x * inst.pmax[:, None, None],
            inst,
            result.seconds,
            messages,
            rtol,
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
    fixable = _finite_rows(center)
    shape = (-1,) + (1,) * (x.dim() - 1)
    center = torch.where(fixable.view(shape), center, torch.zeros_like(center))
    candidate = x[index].to(wide)
    finite = _finite_rows(candidate)
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


def _finite_rows(x: Tensor) -> Tensor:
    flat = torch.view_as_real(x) if x.is_complex() else x
    return torch.isfinite(flat.reshape(x.shape[0], -1)).all(dim=1)


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
