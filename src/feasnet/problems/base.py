"""The problem interface: what every problem family provides, and what everything else reads.

A :class:`Problem` is one problem family with one constraint set (power control with linear
rate rows, power control with energy-efficiency constraints, MISO beamforming with SINR
targets, a family a user defines in their own file, ...). Training losses, penalties,
feasibility layers, the guard, the metrics and the float64 checks ask the problem object; none
of them re-derives a formula or branches on the family. A new constraint or family is added by
writing one subclass and registering it (:mod:`feasnet.problems.registry`).

Conventions (every tensor is batched over ``N`` instances):

* ``x`` is the *decision variable in normalized units*, the space the networks and layers work
  in: its per-instance shape is :meth:`Problem.variable_shape` (power control: ``(B, Q)`` powers
  as a fraction of each BS's budget; MISO: ``(Nt, K)`` complex beams in units where the noise
  and the transmit budget are 1). :meth:`Problem.to_physical` / :meth:`Problem.from_physical`
  convert to and from the allocation in physical units (W, sqrt(W)).
* Constraint values ``g(x) <= 0`` are scale-free (each row divided by a natural scale of its
  own, so that a relative tolerance means the same on every row) and differentiable with
  autograd.
* The float64 feasibility check :meth:`Problem.is_feasible` is the verdict every reported
  violation figure uses, at the relative tolerance it states.

In the spirit of cooper's ``ConstrainedMinimizationProblem``: plain objects with small, named
methods; the training code asks the problem.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

DEFAULT_RTOL = 1e-6
"""Relative tolerance of the float64 feasibility check unless a caller states another."""


class UnsupportedProblemError(ValueError):
    """A method, layer or solver was asked for a problem (family or constraint set) it cannot
    handle; the message names the problem and the method."""


@dataclass(frozen=True)
class Feasibility:
    """The verdict of :meth:`Problem.feasibility` on ``N`` instances.

    Attributes:
        feasible: ``(N,)`` bool, the instance has a feasible point.
        reasons: one line per instance, ``""`` where feasible (e.g. "infeasible: rate target of
            user (b=1, q=0) unreachable ...").
        exact: the verdict is exact (a proof either way); False where it is a certified
            sufficient condition only (``feasible`` True is then certain, False may not be).
    """

    feasible: Tensor
    reasons: list[str]
    exact: bool = True


@dataclass(frozen=True)
class LinearForm:
    """``G x <= h`` describing the feasible set in normalized units (flattened ``x``).

    Attributes:
        G: ``(N, M, D)`` float, one row per constraint, ``D`` = prod of the variable shape.
        h: ``(N, M)`` float.
    """

    G: Tensor
    h: Tensor


@dataclass(frozen=True)
class FileKey:
    """One key of the family's ``.npz`` / HDF5 exchange format.

    Attributes:
        shape: accepted shapes in words (e.g. ``"scalar, (N,) or (N, B, Q)"``).
        unit: physical unit (``"W"``, ``"bit/s"``, ``"linear"``, ...).
        meaning: one line.
        required: the key must be present.
    """

    shape: str
    unit: str
    meaning: str
    required: bool = True


@dataclass
class Problem(ABC):
    """One problem family with one constraint set. Subclasses fill the class attributes and
    implement the abstract methods; the concrete ones have generic defaults a family may
    replace with closed forms.

    Attributes:
        constraint_set: which of :attr:`constraint_sets` this object enforces.
    """

    family: ClassVar[str]
    """Registry name of the family (``"power-control"``, ``"miso"``, ...)."""
    objective_unit: ClassVar[str]
    """Unit of :meth:`objective` (``"bit/s"``, ``"bit/s/Hz"``)."""
    instances_type: ClassVar[type]
    """The batched, validated instance type of the family."""
    constraint_sets: ClassVar[tuple[str, ...]]
    """Constraint sets the family offers; the first is the default."""
    complex_variable: ClassVar[bool] = False
    """``x`` is complex (beams) rather than real (powers)."""
    file_keys: ClassVar[dict[str, FileKey]] = {}
    """The exchange format: every key a file of this family may hold. Any other key in an
    input file is an error naming it."""
    allocation_key: ClassVar[str] = "x"
    """Key of the allocation (physical units) in a solution ``.npz`` (power control ``P``,
    MISO ``V``)."""
    objective_key: ClassVar[str] = "objective"
    """Key of the ``(N,)`` objective in a solution ``.npz`` (``sum_rate``, ``wsr``)."""

    constraint_set: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.constraint_set:
            self.constraint_set = self.constraint_sets[0]
        if self.constraint_set not in self.constraint_sets:
            raise UnsupportedProblemError(
                f"constraint_set: {self.family} offers {', '.join(self.constraint_sets)}, got "
                f"{self.constraint_set!r}"
            )

    @property
    def name(self) -> str:
        """``family`` or ``family/constraint-set`` when not the default set."""
        if self.constraint_set == self.constraint_sets[0]:
            return self.family
        return f"{self.family}/{self.constraint_set}"

    @property
    def is_convex(self) -> bool:
        """The feasible set (in ``x``) is convex; layers that need convexity ask this."""
        return True

    # ---------------------------------------------------------------- variables
    @abstractmethod
    def variable_shape(self, instances: Any) -> tuple[int, ...]:
        """Per-instance shape of ``x`` (power control ``(B, Q)``, MISO ``(Nt, K)``)."""

    @abstractmethod
    def to_physical(self, x: Tensor, instances: Any) -> Tensor:
        """The allocation in physical units (W, sqrt(W)) of normalized ``x``."""

    @abstractmethod
    def from_physical(self, allocation: Tensor, instances: Any) -> Tensor:
        """Normalized ``x`` of an allocation in physical units."""

    # ---------------------------------------------------------------- objective, constraints
    @abstractmethod
    def objective(self, x: Tensor, instances: Any) -> Tensor:
        """``(N,)`` the objective to maximize, in :attr:`objective_unit`; differentiable."""

    @abstractmethod
    def constraints(self, x: Tensor, instances: Any) -> Tensor:
        """``(N, M)`` scale-free constraint values, feasible iff every entry ``<= 0``;
        differentiable with autograd."""

    def objective_scale(self, instances: Any) -> Tensor | float:
        """The natural unit of :meth:`objective` for a training loss, ``(N,)`` or a scalar
        (default 1): losses use ``objective / objective_scale`` so that it and the violation
        have comparable sizes (power control: the bandwidth, giving bit/s/Hz as eq. 14)."""
        return 1.0

    def violation(self, x: Tensor, instances: Any) -> Tensor:
        """``(N,)`` squared violation ``sum_m relu(g_m)^2`` (0 iff feasible); differentiable."""
        return torch.relu(self.constraints(x, instances)).pow(2).sum(dim=1)

    def is_feasible(self, x: Tensor, instances: Any, rtol: float = DEFAULT_RTOL) -> Tensor:
        """``(N,)`` bool float64 verdict: every scale-free constraint ``<= rtol``. NaN/inf
        entries of ``x`` are infeasible."""
        x64 = x.to(torch.complex128 if x.is_complex() else torch.float64)
        inst64 = self.float64(instances, x.device)
        g = self.constraints(x64, inst64)
        finite = torch.isfinite(torch.view_as_real(x64) if x64.is_complex() else x64)
        finite = finite.flatten(1).all(dim=1)
        return finite & torch.nan_to_num(g, nan=math.inf).le(rtol).all(dim=1)

    def float64(self, instances: Any, device: torch.device | str | None = None) -> Any:
        """``instances`` in double precision (complex128 for complex families)."""
        dtype = torch.complex128 if self.complex_variable else torch.float64
        return instances.to(dtype, device if device is not None else "cpu")

    # ---------------------------------------------------------------- geometry
    @abstractmethod
    def feasibility(self, instances: Any) -> Feasibility:
        """Which instances have a feasible point, with a reason for the others."""

    @abstractmethod
    def anchor(self, instances: Any) -> Tensor:
        """``x`` strictly inside the feasible set of every feasible instance (NaN rows for the
        infeasible ones); the center of ray-based layers and of the guard."""

    def boundary_exit(
        self, anchor: Tensor, direction: Tensor, instances: Any, iterations: int = 60
    ) -> Tensor:
        """``(N,)`` largest ``t >= 0`` with ``anchor + s * direction`` feasible for every
        ``s`` in ``[0, t]`` (``inf`` where the ray never leaves the set).

        Generic version: a bisection on the float64 check, certified in the sense that the
        returned ``t`` itself passes :meth:`is_feasible` at rtol 0 (the lower end of the
        bracket is kept). Exact for convex sets; for a non-convex set it is the first exit
        found by the bracket, which may skip a pocket of infeasibility narrower than the
        final bracket. Families override it with closed forms where the set allows.
        Not differentiable; layers that need gradients use a family's closed form.
        """
        a64 = anchor.detach().to(torch.complex128 if anchor.is_complex() else torch.float64)
        d64 = direction.detach().to(a64.dtype)
        inst64 = self.float64(instances, anchor.device)
        shape = (-1,) + (1,) * (a64.dim() - 1)

        def passes(t: Tensor) -> Tensor:
            return self.is_feasible(a64 + t.view(shape) * d64, inst64, rtol=0.0)

        low = torch.zeros(a64.shape[0], dtype=torch.float64, device=a64.device)
        high = torch.ones_like(low)
        # grow the bracket until it leaves the set (or give up: the ray stays inside)
        for _ in range(64):
            inside = passes(high)
            if not bool(inside.any()):
                break
            low = torch.where(inside, high, low)
            high = torch.where(inside, 2 * high, high)
        unbounded = passes(high)
        for _ in range(iterations):
            mid = 0.5 * (low + high)
            inside = passes(mid)
            low = torch.where(inside, mid, low)
            high = torch.where(inside, high, mid)
        return torch.where(unbounded, torch.full_like(low, math.inf), low)

    def linear_form(self, instances: Any) -> LinearForm | None:
        """``G x <= h`` for layers that need a polytope (QP projection); None where the set is
        not one."""
        return None

    # ---------------------------------------------------------------- files and results
    @abstractmethod
    def instances_from_arrays(
        self,
        arrays: Mapping[str, np.ndarray],
        source: str,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Any:
        """Validated instances from the arrays of an exchange file (``source`` names the file
        in messages), as ``dtype`` (the complex counterpart for complex families) on
        ``device``; unknown keys are an error naming the key."""

    @abstractmethod
    def instances_to_arrays(self, instances: Any) -> dict[str, np.ndarray]:
        """The exchange-format arrays of ``instances`` (the inverse of
        :meth:`instances_from_arrays`)."""

    def allocation_feasible(self, allocation: Tensor, instances: Any, rtol: float) -> Tensor:
        """``(N,)`` bool float64 verdict on an allocation in physical units (``instances`` in
        float64). Default: :meth:`is_feasible` of :meth:`from_physical`."""
        return self.is_feasible(self.from_physical(allocation, instances), instances, rtol)

    def allocation_objective(self, allocation: Tensor, instances: Any) -> Tensor:
        """``(N,)`` objective (:attr:`objective_unit`) of an allocation in physical units.
        Default: :meth:`objective` of :meth:`from_physical`."""
        return self.objective(self.from_physical(allocation, instances), instances)

    def result(
        self,
        method: str,
        allocation: Tensor | np.ndarray,
        instances: Any,
        seconds: Tensor | np.ndarray | float,
        messages: list[str] | None = None,
        rtol: float = DEFAULT_RTOL,
    ) -> Any:
        """The :class:`~feasnet.solvers.result.Result` of ``allocation`` (physical units,
        ``(N, *variable_shape)``), checked in float64 at ``rtol``; ``seconds`` ``(N,)`` or
        one number [s]."""
        from feasnet.solvers.result import Result

        return Result.checked(method, allocation, instances, seconds, messages, rtol)

    @classmethod
    def for_instances(cls, instances: Any, nonlinear: bool = False) -> Problem:
        """The problem ``instances`` call for (the constraint set follows from the fields they
        carry; ``nonlinear`` prefers a non-linear formulation where a family offers one).
        Default: the family's default constraint set."""
        return cls()

    @classmethod
    def recognizes(cls, arrays: Mapping[str, Any]) -> bool:
        """The arrays look like this family's when their keys alone cannot tell (e.g. by the
        shape of ``H``); used by the registry to break ties. Default: False."""
        return False

    def check_arrays(self, arrays: Mapping[str, Any], source: str) -> None:
        """Raise a clear error for a missing required key or a key the format does not know."""
        unknown = sorted(set(arrays) - set(self.file_keys))
        if unknown:
            raise ValueError(
                f"{source}: unknown key {unknown[0]!r} for a {self.family} file; known keys: "
                f"{', '.join(self.file_keys)}"
            )
        missing = [k for k, spec in self.file_keys.items() if spec.required and k not in arrays]
        if missing:
            raise ValueError(f"{source}: missing key {missing[0]!r} for a {self.family} file")
