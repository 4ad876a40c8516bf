"""The one result type shared by every classical solver and every learned method, of every
problem family.

A :class:`Result` holds the allocations a method produced for ``N`` instances (in physical
units), their float64 feasibility check and objective, and the time taken. The family's
:class:`~feasnet.problems.base.Problem` names the keys of its solution ``.npz``
(``allocation_key``, ``objective_key``: power control ``P`` / ``sum_rate``, MISO ``V`` /
``wsr``) and computes the check (:meth:`~feasnet.problems.base.Problem.result`).
:class:`AllocationResult` (power control) and :class:`BeamformingResult` (MISO) are the same
class with the family fixed and the historical attribute names (``power`` / ``sum_rate``,
``beams`` / ``wsr``) as read-only aliases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import torch

from feasnet.atomic import atomic_path
from feasnet.problems.base import DEFAULT_RTOL

OPTIONAL_KEYS: dict[str, type] = {"converged": bool, "upper_bound": float, "gap": float}
"""Per-instance extras a result may carry, each ``(N,)`` or None (not applicable):

- ``converged`` bool: an iterative method met its stated stopping tolerance (False: it stopped
  at an iteration cap or failed; the instance's message says why);
- ``upper_bound`` float64: a certified upper bound on the optimal objective (same unit as the
  objective: bit/s for power control, bit/s/Hz for MISO), from a global solver;
- ``gap`` float64: ``(upper_bound - objective) / upper_bound``, the certified relative gap.

Saved to the solution ``.npz`` under the same keys when set.
"""


def optional_arrays(result: Result) -> dict[str, Any]:
    """The :data:`OPTIONAL_KEYS` of ``result`` that are set, as arrays of their dtype."""
    out: dict[str, Any] = {}
    for key, kind in OPTIONAL_KEYS.items():
        value = getattr(result, key)
        if value is not None:
            array: np.ndarray = np.asarray(value, dtype=kind)
            if array.shape != (len(result),):
                raise ValueError(f"{key}: expected shape ({len(result)},), got {array.shape}")
            out[key] = array
    return out


def load_optional_arrays(data: Any) -> dict[str, np.ndarray]:
    """The :data:`OPTIONAL_KEYS` present in an opened solution ``.npz``."""
    return {
        key: np.asarray(data[key], dtype=kind) for key, kind in OPTIONAL_KEYS.items() if key in data
    }


def _solution_family(keys: Any, source: str) -> str:
    """The registered family whose allocation and objective keys a solution file holds."""
    from feasnet.problems.registry import FAMILIES

    for name, problem_cls in FAMILIES.items():
        if problem_cls.allocation_key in keys and problem_cls.objective_key in keys:
            return name
    known = ", ".join(f"{c.allocation_key}/{c.objective_key} ({n})" for n, c in FAMILIES.items())
    raise ValueError(f"{source}: not a solution file of any family (expected keys {known})")


@dataclass
class Result:
    """Allocations for ``N`` instances plus their float64 check, objective and time.

    Attributes:
        method: name of the method that produced the allocations.
        allocation: ``(N, *shape)`` in physical units (power control ``(N, B, Q)`` float64
            [W]; MISO ``(N, Nt, K)`` complex128 [sqrt(W)], column ``k`` user ``k``'s beam);
            NaN rows where the method returned nothing.
        feasible: ``(N,)`` bool, float64 feasibility check at relative tolerance ``rtol``.
        objective: ``(N,)`` float64 objective of ``allocation`` in the family's
            ``objective_unit`` (sum rate [bit/s], weighted sum rate [bit/s/Hz]); NaN where
            ``allocation`` is NaN. Every metric reads this.
        seconds: ``(N,)`` float64 wall time per instance [s] (a batched method reports its
            batch time divided by the batch size).
        family: registry name of the problem family (set by the subclasses).
        messages: one line per instance, "" when nothing needs saying (e.g. "infeasible: ...").
        rtol: tolerance used for ``feasible``.
        converged, upper_bound, gap: optional per-instance extras, see :data:`OPTIONAL_KEYS`.
    """

    FAMILY: ClassVar[str] = ""
    """The family a subclass is fixed to ("" for the generic class)."""

    method: str
    allocation: np.ndarray
    feasible: np.ndarray
    objective: np.ndarray
    seconds: np.ndarray
    family: str = ""
    messages: list[str] = field(default_factory=list)
    rtol: float = DEFAULT_RTOL
    converged: np.ndarray | None = None
    upper_bound: np.ndarray | None = None
    gap: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.family:
            self.family = self.FAMILY
        if not self.family:
            raise ValueError("family: a Result needs the name of its problem family")
        if self.FAMILY and self.family != self.FAMILY:
            raise ValueError(f"family: {type(self).__name__} is {self.FAMILY}, got {self.family}")

    @classmethod
    def checked(
        cls,
        method: str,
        allocation: torch.Tensor | np.ndarray,
        instances: Any,
        seconds: torch.Tensor | np.ndarray | float,
        messages: list[str] | None = None,
        rtol: float = DEFAULT_RTOL,
    ) -> Self:
        """Check ``allocation`` (physical units, ``(N, *shape)``) in float64 against
        ``instances`` and package it; the family's problem computes the verdict and the
        objective. ``seconds`` is per instance (``(N,)``) or one number for all."""
        from feasnet.problems.registry import problem_of

        problem = problem_of(instances)
        kind = cls if cls.FAMILY else RESULT_TYPES.get(problem.family, cls)
        if cls.FAMILY and problem.family != cls.FAMILY:
            raise ValueError(
                f"{cls.__name__}: expected {cls.FAMILY} instances, got {problem.family}"
            )
        dtype = torch.complex128 if problem.complex_variable else torch.float64
        alloc = torch.as_tensor(allocation).to(dtype).cpu()
        inst = problem.float64(instances)
        n = len(inst)
        expected = (n, *problem.variable_shape(inst))
        if tuple(alloc.shape) != expected:
            raise ValueError(
                f"{problem.allocation_key}: expected shape {expected}, got {tuple(alloc.shape)}"
            )
        secs = np.broadcast_to(np.asarray(seconds, dtype=np.float64), (n,)).copy()
        msgs = list(messages) if messages is not None else [""] * n
        if len(msgs) != n:
            raise ValueError(f"messages: expected {n} entries, got {len(msgs)}")
        result = kind(
            method=method,
            allocation=alloc.numpy(),
            feasible=problem.allocation_feasible(alloc, inst, rtol).numpy(),
            objective=problem.allocation_objective(alloc, inst).numpy(),
            seconds=secs,
            family=problem.family,
            messages=msgs,
            rtol=rtol,
        )
        assert isinstance(result, cls)
        return result

    def __len__(self) -> int:
        return int(self.allocation.shape[0])

    def save_npz(self, path: str | os.PathLike[str]) -> None:
        """Write the solution file of ``feasnet solve`` atomically.

        Keys: the family's ``allocation_key`` (power control ``P`` (N, B, Q) [W], MISO ``V``
        (N, Nt, K) complex [sqrt(W)]), ``feasible`` (N,) bool, the family's ``objective_key``
        (``sum_rate`` [bit/s], ``wsr`` [bit/s/Hz]) (N,), ``seconds`` (N,) [s], ``message``
        (N,) str, ``method`` and ``rtol`` scalars, and the :data:`OPTIONAL_KEYS` that are set.
        """
        from feasnet.problems.registry import get_family

        problem_cls = get_family(self.family)
        arrays: dict[str, Any] = {
            problem_cls.allocation_key: self.allocation,
            "feasible": self.feasible,
            problem_cls.objective_key: self.objective,
            "seconds": self.seconds,
            "message": np.asarray(self.messages, dtype=str),
            "method": np.asarray(self.method),
            "rtol": np.asarray(self.rtol),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays, **optional_arrays(self))

    @classmethod
    def load_npz(cls, path: str | os.PathLike[str]) -> Self:
        """Read a file written by :meth:`save_npz`; the family follows from its keys (a
        subclass refuses another family's file)."""
        from feasnet.problems.registry import get_family

        with np.load(path, allow_pickle=False) as data:
            family = _solution_family(data.files, str(path))
            if cls.FAMILY and family != cls.FAMILY:
                raise ValueError(f"{path}: a {family} solution file, expected {cls.FAMILY}")
            problem_cls = get_family(family)
            kind = cls if cls.FAMILY else RESULT_TYPES.get(family, cls)
            result = kind(
                method=str(data["method"]),
                allocation=data[problem_cls.allocation_key],
                feasible=data["feasible"].astype(bool),
                objective=data[problem_cls.objective_key],
                seconds=data["seconds"],
                family=family,
                messages=[str(m) for m in data["message"]],
                rtol=float(data["rtol"]),
                **load_optional_arrays(data),
            )
        assert isinstance(result, cls)
        return result


class AllocationResult(Result):
    """A power-control :class:`Result`: ``power`` ``(N, B, Q)`` [W] and ``sum_rate`` ``(N,)``
    [bit/s] name ``allocation`` and ``objective``."""

    FAMILY: ClassVar[str] = "power-control"

    @property
    def power(self) -> np.ndarray:
        """``(N, B, Q)`` float64 powers [W] (``allocation``)."""
        return self.allocation

    @property
    def sum_rate(self) -> np.ndarray:
        """``(N,)`` float64 sum rate [bit/s] (``objective``)."""
        return self.objective


class BeamformingResult(Result):
    """A MISO :class:`Result`: ``beams`` ``(N, Nt, K)`` complex [sqrt(W)] and ``wsr``
    ``(N,)`` [bit/s/Hz] name ``allocation`` and ``objective``."""

    FAMILY: ClassVar[str] = "miso"

    @property
    def beams(self) -> np.ndarray:
        """``(N, Nt, K)`` complex128 beams [sqrt(W)] (``allocation``)."""
        return self.allocation

    @property
    def wsr(self) -> np.ndarray:
        """``(N,)`` float64 weighted sum rate [bit/s/Hz] (``objective``)."""
        return self.objective


RESULT_TYPES: dict[str, type[Result]] = {
    AllocationResult.FAMILY: AllocationResult,
    BeamformingResult.FAMILY: BeamformingResult,
}
"""Family name -> the :class:`Result` subclass with its attribute aliases (other families use
:class:`Result` itself)."""


def with_tolerance(result: Result, instances: Any, rtol: float) -> Result:
    """``result`` checked again in float64 at relative tolerance ``rtol`` (same allocations,
    times, messages and optional extras); ``instances`` are the ones it was solved for."""
    checked = type(result).checked(
        result.method, result.allocation, instances, result.seconds, result.messages, rtol
    )
    for key in OPTIONAL_KEYS:
        setattr(checked, key, getattr(result, key))
    return checked
