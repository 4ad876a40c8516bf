"""Power control as a :class:`~feasnet.problems.base.Problem`, with its constraint sets.

The family (power-control paper, eqs. 1-6) maximizes the sum rate over the powers ``P``
``(B, Q)`` [W] with ``P >= 0`` and ``sum_q P[b, q] <= pmax``. The user rows come in the
constraint sets of the paper's section VIII-C:

* ``linear-rate`` (default): the minimum rates written as the linear rows ``C p >= d`` of
  eq. (4), each divided by its direct gain (the polytope of
  :func:`~feasnet.problems.power_control.linear_constraints`);
* ``rate``: the same set written as the non-linear ``R_bq(P) >= alpha_bq`` of eq. (2), rows
  ``1 - R_bq / alpha_bq``; not convex as written (no linear form), same feasible points;
* ``energy-efficiency``: ``R_bq(P) >= ee_bq P_bq`` (the multiplied form of ``R / P >= ee``, so
  a user at zero power meets it), rows ``P_bq / pmax - R_bq / (ee_bq pmax)``, together with
  the non-linear minimum-rate rows where ``alpha_bq > 0`` (with ``min_rate = 0`` it is the
  energy-efficiency constraint alone). Needs instances carrying ``min_energy_efficiency``.

Everything delegates to the free functions of :mod:`feasnet.problems.power_control`; this
module only maps them to the interface (normalized ``x = P / pmax``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from feasnet.problems import power_control as pc
from feasnet.problems.base import (
    DEFAULT_RTOL,
    Feasibility,
    FileKey,
    LinearForm,
    Problem,
    UnsupportedProblemError,
)
from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances

LINEAR_RATE = "linear-rate"
RATE = "rate"
ENERGY_EFFICIENCY = "energy-efficiency"
LINEAR_RATE_SETS = (LINEAR_RATE, RATE)
"""The constraint sets whose feasible set is the polytope of eq. (4) (rate rows only)."""

POWER_CONTROL_KEYS: dict[str, FileKey] = {
    "H": FileKey("(N, B, Q, B)", "linear", "power gain from BS c to the user (b, q)"),
    "pmax": FileKey("scalar or (N,)", "W", "power budget of every BS"),
    "noise": FileKey("scalar or (N,)", "W", "receiver noise power"),
    "bandwidth": FileKey("scalar or (N,)", "Hz", "bandwidth of one channel"),
    "min_rate": FileKey("scalar, (N,) or (N, B, Q)", "bit/s", "minimum rate of every user"),
    "min_energy_efficiency": FileKey(
        "scalar, (N,) or (N, B, Q)",
        "bit/J",
        "minimum energy efficiency R/P of every user (energy-efficiency constraint set)",
        required=False,
    ),
    "csi_error": FileKey(
        "scalar or (N,)",
        "1",
        "relative CSI error sigma in [0, 1): H is an estimate, the true gains lie in "
        "[H / (1 + sigma), H / (1 - sigma)]",
        required=False,
    ),
    "csi_corner": FileKey(
        "(N, 2)",
        "1",
        "multipliers (direct, cross) of H the constraints use (robust mode other than exact; "
        "needs csi_error)",
        required=False,
    ),
}
"""The power-control exchange format (``.npz`` keys and HDF5 split datasets)."""


def _compact(value: np.ndarray) -> np.ndarray:
    """A 0-d array when every entry is the same, else ``value``."""
    flat = value.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return np.asarray(flat[0])
    return value


@dataclass
class PowerControlProblem(Problem):
    """Multi-cell, multi-channel power control; ``x = P / pmax`` ``(N, B, Q)`` real.

    ``options`` is unused. The constraint set must match the instances: the
    ``energy-efficiency`` set needs instances with ``min_energy_efficiency`` and the other
    two refuse them (:meth:`for_instances` picks the right one).
    """

    family: ClassVar[str] = "power-control"
    objective_unit: ClassVar[str] = "bit/s"
    instances_type: ClassVar[type] = PowerControlInstances
    constraint_sets: ClassVar[tuple[str, ...]] = (LINEAR_RATE, RATE, ENERGY_EFFICIENCY)
    complex_variable: ClassVar[bool] = False
    file_keys: ClassVar[dict[str, FileKey]] = POWER_CONTROL_KEYS
    allocation_key: ClassVar[str] = "P"
    objective_key: ClassVar[str] = "sum_rate"

    @classmethod
    def for_instances(
        cls, instances: PowerControlInstances, nonlinear: bool = False
    ) -> PowerControlProblem:
        """The problem the instances call for: ``energy-efficiency`` when they carry
        ``min_energy_efficiency``, else ``rate`` (``nonlinear``) or ``linear-rate``."""
        if instances.min_energy_efficiency is not None:
            return cls(ENERGY_EFFICIENCY)
        return cls(RATE if nonlinear else LINEAR_RATE)

    @property
    def is_convex(self) -> bool:
        """Only ``linear-rate`` is written as a convex (polyhedral) set."""
        return self.constraint_set == LINEAR_RATE

    def check_instances(self, instances: PowerControlInstances) -> None:
        """Raise :class:`UnsupportedProblemError` when the constraint set does not match what
        the instances carry (a requirement would otherwise be ignored)."""
        if not isinstance(instances, PowerControlInstances):
            raise UnsupportedProblemError(
                f"{self.name}: expected PowerControlInstances, got {type(instances).__name__}"
            )
        has_ee = instances.min_energy_efficiency is not None
        if has_ee and self.constraint_set != ENERGY_EFFICIENCY:
            raise UnsupportedProblemError(
                f"{self.name}: the instances carry min_energy_efficiency, which the "
                f"{self.constraint_set} constraint set does not enforce; use {ENERGY_EFFICIENCY}"
            )
        if not has_ee and self.constraint_set == ENERGY_EFFICIENCY:
            raise UnsupportedProblemError(
                f"{self.name}: the instances carry no min_energy_efficiency"
            )

    @classmethod
    def recognizes(cls, arrays: Mapping[str, Any]) -> bool:
        """Tie-break of the registry on ``H``'s shape and type."""
        h = arrays.get("H")
        return h is not None and np.ndim(h) == 4 and np.asarray(h).dtype.kind != "c"

    # ---------------------------------------------------------------- variables
    def variable_shape(self, instances: PowerControlInstances) -> tuple[int, ...]:
        return (instances.num_bs, instances.num_channels)

    def to_physical(self, x: Tensor, instances: PowerControlInstances) -> Tensor:
        """Powers ``(N, B, Q)`` [W] of ``x = P / pmax``."""
        return x * instances.pmax.to(x.dtype)[:, None, None]

    def from_physical(self, allocation: Tensor, instances: PowerControlInstances) -> Tensor:
        """``x = P / pmax`` ``(N, B, Q)`` of powers [W]."""
        return allocation / instances.pmax.to(allocation.dtype)[:, None, None]

    # ---------------------------------------------------------------- objective, constraints
    def objective(self, x: Tensor, instances: PowerControlInstances) -> Tensor:
        """``(N,)`` sum rate [bit/s]."""
        return pc.sum_rate(self.to_physical(x, instances), instances)

    def objective_scale(self, instances: PowerControlInstances) -> Tensor:
        """``(N,)`` the bandwidth [Hz]: the soft loss of eq. (14) uses ``R / W``."""
        return instances.bandwidth

    def constraints(self, x: Tensor, instances: PowerControlInstances) -> Tensor:
        """``(N, M)`` scale-free rows, ``<= 0`` where met.

        ``linear-rate``: ``G x - h`` of :func:`~feasnet.problems.power_control.linear_constraints`
        (``M = 2U + B``, vector layout ``p[q B + b]``). ``rate``: ``-x`` (``U``), budget
        ``sum_q x - 1`` (``B``), ``1 - R / alpha`` (``U``), ``M = 2U + B``.
        ``energy-efficiency``: those rows plus ``x - R / (ee pmax)`` (``U``), ``M = 3U + B``.
        User rows are flattened ``(B, Q)`` row-major.
        """
        self.check_instances(instances)
        n = x.shape[0]
        if self.constraint_set == LINEAR_RATE:
            cons = pc.linear_constraints(instances)
            xv = pc.to_vector(x)
            return torch.einsum("nmu,nu->nm", cons.G.to(x.dtype), xv) - cons.h.to(x.dtype)
        power = self.to_physical(x, instances)
        side = instances.constraint_side()  # the robust CSI gains, once for both row kinds
        rows = [-x.reshape(n, -1), x.sum(dim=2) - 1, pc.rate_rows(power, side).reshape(n, -1)]
        if self.constraint_set == ENERGY_EFFICIENCY:
            rows.append(pc.energy_efficiency_rows(power, side).reshape(n, -1))
        return torch.cat(rows, dim=1)

    def violation(self, x: Tensor, instances: PowerControlInstances) -> Tensor:
        """``(N,)`` squared violation; on ``linear-rate`` exactly
        :func:`~feasnet.problems.power_control.violation_measure`."""
        if self.constraint_set == LINEAR_RATE:
            self.check_instances(instances)
            return pc.violation_measure(self.to_physical(x, instances), instances)
        return super().violation(x, instances)

    def is_feasible(
        self, x: Tensor, instances: PowerControlInstances, rtol: float = DEFAULT_RTOL
    ) -> Tensor:
        """Float64 verdict of :func:`~feasnet.problems.power_control.is_feasible` (the same
        feasible set on every constraint set; energy efficiency where the instances carry it)."""
        self.check_instances(instances)
        x64 = x.detach().to(torch.float64)
        inst64 = instances.to(torch.float64, x64.device)
        return pc.is_feasible(self.to_physical(x64, inst64), inst64, rtol=rtol)

    # ---------------------------------------------------------------- geometry
    def feasibility(self, instances: PowerControlInstances) -> Feasibility:
        """Exact verdict of :func:`~feasnet.problems.power_control.minimum_power` (exact on
        every set, energy efficiency included: see its ``efficiency_short``)."""
        self.check_instances(instances)
        mp = pc.minimum_power(instances)
        reasons = mp.reasons()
        if instances.csi_corner is not None:  # the verdict is on the robust corner
            from feasnet.problems.csi import robust_mode

            note = f" (under CSI uncertainty, robust mode {robust_mode(instances)})"
            reasons = [r + note if r else r for r in reasons]
        return Feasibility(feasible=mp.feasible, reasons=reasons, exact=True)

    def anchor(self, instances: PowerControlInstances, fraction: float = 0.5) -> Tensor:
        """:func:`~feasnet.problems.power_control.interior_anchor` in normalized units
        ``(N, B, Q)`` (NaN rows where infeasible)."""
        self.check_instances(instances)
        return self.from_physical(pc.interior_anchor(instances, fraction=fraction), instances)

    def boundary_exit(
        self,
        anchor: Tensor,
        direction: Tensor,
        instances: PowerControlInstances,
        iterations: int = 60,
    ) -> Tensor:
        """``(N,)`` first exit along the ray: closed form on the polytope (``linear-rate`` and
        ``rate``, the same set; differentiable), certified bisection on ``energy-efficiency``."""
        self.check_instances(instances)
        if self.constraint_set == ENERGY_EFFICIENCY:  # robust CSI gains once, not per check
            return super().boundary_exit(anchor, direction, instances.constraint_side(), iterations)
        cons = pc.linear_constraints(instances.to(anchor.dtype, anchor.device))
        return pc.ray_exit(pc.to_vector(anchor), pc.to_vector(direction), cons)

    def linear_form(self, instances: PowerControlInstances) -> LinearForm | None:
        """``G x <= h`` on ``linear-rate`` with columns in ``x.flatten(1)`` order (``b Q + q``);
        None on the non-linear sets."""
        if self.constraint_set != LINEAR_RATE:
            return None
        self.check_instances(instances)
        cons = pc.linear_constraints(instances)
        b, q = instances.num_bs, instances.num_channels
        # column b*Q + q of the flattened x is column q*B + b of the vector layout
        order = (torch.arange(q)[None, :] * b + torch.arange(b)[:, None]).reshape(-1)
        return LinearForm(G=cons.G[:, :, order.to(cons.G.device)], h=cons.h)

    # ---------------------------------------------------------------- files and results
    def instances_from_arrays(
        self,
        arrays: Mapping[str, np.ndarray],
        source: str,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> PowerControlInstances:
        """Validated instances from exchange arrays; errors start with ``source``."""
        self.check_arrays(arrays, source)
        try:
            return PowerControlInstances.from_arrays(
                arrays["H"],
                arrays["pmax"],
                arrays["noise"],
                arrays["bandwidth"],
                arrays["min_rate"],
                dtype=dtype,
                device=device,
                min_energy_efficiency=arrays.get("min_energy_efficiency"),
                csi_error=arrays.get("csi_error"),
                csi_corner=arrays.get("csi_corner"),
            )
        except InvalidInstanceError as exc:
            raise InvalidInstanceError(f"{source}: {exc}") from exc

    def instances_to_arrays(self, instances: PowerControlInstances) -> dict[str, np.ndarray]:
        """Exchange arrays (float64); constant values other than ``H`` as scalars."""
        arrays = instances.as_numpy()
        return {k: (v if k in ("H", "csi_corner") else _compact(v)) for k, v in arrays.items()}

    def allocation_feasible(
        self, allocation: Tensor, instances: PowerControlInstances, rtol: float
    ) -> Tensor:
        """:func:`~feasnet.problems.power_control.is_feasible` of powers ``(N, B, Q)`` [W]."""
        return pc.is_feasible(allocation, instances, rtol=rtol)

    def allocation_objective(self, allocation: Tensor, instances: PowerControlInstances) -> Tensor:
        """``(N,)`` sum rate [bit/s] of powers ``(N, B, Q)`` [W]."""
        return pc.sum_rate(allocation, instances)
