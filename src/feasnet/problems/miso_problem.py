"""MISO beamforming with QoS as a :class:`~feasnet.problems.base.Problem`.

``x`` is the beam matrix ``(N, Nt, K)`` complex in the units of
:func:`~feasnet.problems.miso.normalized_instances` (noise 1, transmit budget 1), i.e. the
physical beams divided by ``sqrt(eta (pmax - pc))``. Everything delegates to the free
functions of :mod:`feasnet.problems.miso`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from feasnet.problems import miso
from feasnet.problems.base import DEFAULT_RTOL, Feasibility, FileKey, Problem
from feasnet.problems.instances import InvalidInstanceError
from feasnet.problems.miso import MisoInstances

SINR = "sinr"

MISO_KEYS: dict[str, FileKey] = {
    "H": FileKey("(N, K, Nt) complex", "linear amplitude", "channel of every user, y = h^T v"),
    "pmax": FileKey("scalar or (N,)", "W", "total power budget including circuit power"),
    "pc": FileKey("scalar or (N,)", "W", "circuit power"),
    "eta": FileKey("scalar or (N,)", "1", "power-amplifier efficiency in (0, 1]"),
    "noise": FileKey("scalar or (N,)", "W", "receiver noise power"),
    "sinr_min": FileKey("scalar, (K,) or (N, K)", "linear", "SINR target of every user"),
    "weights": FileKey("scalar, (K,) or (N, K)", "1", "rate weight of every user"),
}
"""The MISO exchange format (``.npz`` keys and HDF5 split datasets)."""


def _compact(value: np.ndarray, per_user: bool) -> np.ndarray:
    """A scalar when constant; for per-user ``(N, K)`` values ``(K,)`` when every instance
    has the same row; else ``value``."""
    flat = value.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return np.asarray(flat[0])
    if per_user and value.shape[0] > 0 and np.all(value == value[:1]):
        return value[0].copy()
    return value


@dataclass
class MisoProblem(Problem):
    """Downlink MISO weighted-sum-rate maximization with SINR targets (one constraint set,
    ``sinr``: the budget and ``SINR_k >= gamma_k``, second-order cones up to beam phases)."""

    family: ClassVar[str] = "miso"
    objective_unit: ClassVar[str] = "bit/s/Hz"
    instances_type: ClassVar[type] = MisoInstances
    constraint_sets: ClassVar[tuple[str, ...]] = (SINR,)
    complex_variable: ClassVar[bool] = True
    file_keys: ClassVar[dict[str, FileKey]] = MISO_KEYS
    allocation_key: ClassVar[str] = "V"
    objective_key: ClassVar[str] = "wsr"

    @classmethod
    def for_instances(cls, instances: MisoInstances, nonlinear: bool = False) -> MisoProblem:
        """The problem for ``instances`` (MISO has one constraint set)."""
        return cls()

    @classmethod
    def recognizes(cls, arrays: Mapping[str, Any]) -> bool:
        """Tie-break of the registry on ``H``'s shape and type."""
        h = arrays.get("H")
        return h is not None and (np.ndim(h) == 3 or np.asarray(h).dtype.kind == "c")

    # ---------------------------------------------------------------- variables
    def variable_shape(self, instances: MisoInstances) -> tuple[int, ...]:
        return (instances.num_antennas, instances.num_users)

    def to_physical(self, x: Tensor, instances: MisoInstances) -> Tensor:
        """Beams ``(N, Nt, K)`` [sqrt(W)] of normalized ``x``."""
        return miso.beams_from_normalized(x, instances)

    def from_physical(self, allocation: Tensor, instances: MisoInstances) -> Tensor:
        """Normalized ``x`` of beams ``(N, Nt, K)`` [sqrt(W)]."""
        return miso.beams_to_normalized(allocation, instances)

    # ---------------------------------------------------------------- objective, constraints
    def objective(self, x: Tensor, instances: MisoInstances) -> Tensor:
        """``(N,)`` weighted sum rate [bit/s/Hz]."""
        return miso.weighted_sum_rate(self.to_physical(x, instances), instances)

    def constraints(self, x: Tensor, instances: MisoInstances) -> Tensor:
        """``(N, 1 + K)`` :func:`~feasnet.problems.miso.constraint_values` (budget, then
        ``1 - SINR_k / gamma_k``)."""
        return miso.constraint_values(self.to_physical(x, instances), instances)

    def is_feasible(
        self, x: Tensor, instances: MisoInstances, rtol: float = DEFAULT_RTOL
    ) -> Tensor:
        """Float64 verdict of :func:`~feasnet.problems.miso.is_feasible`."""
        x128 = x.detach().to(torch.complex128)
        inst = instances.to(torch.complex128, x128.device)
        return miso.is_feasible(self.to_physical(x128, inst), inst, rtol=rtol)

    # ---------------------------------------------------------------- geometry
    def feasibility(self, instances: MisoInstances) -> Feasibility:
        """Exact verdict of :func:`~feasnet.problems.miso.minimum_power` (uplink duality)."""
        mp = miso.minimum_power(instances)
        return Feasibility(feasible=mp.feasible, reasons=mp.reasons(), exact=True)

    def anchor(self, instances: MisoInstances, fraction: float = 0.5) -> Tensor:
        """:func:`~feasnet.problems.miso.interior_anchor` in normalized units ``(N, Nt, K)``."""
        beams = miso.interior_anchor(instances, anchor_fraction=fraction)
        return self.from_physical(beams, instances)

    def boundary_exit(
        self, anchor: Tensor, direction: Tensor, instances: MisoInstances, iterations: int = 60
    ) -> Tensor:
        """``(N,)`` closed form :func:`~feasnet.problems.miso.boundary_distance` (each
        constraint a quadratic along the ray; differentiable). ``t`` does not depend on the
        units, so it is computed on physical beams."""
        inst = instances.to(anchor.dtype, anchor.device)
        return miso.boundary_distance(
            self.to_physical(anchor, inst), self.to_physical(direction, inst), inst
        )

    # ---------------------------------------------------------------- files and results
    def instances_from_arrays(
        self,
        arrays: Mapping[str, np.ndarray],
        source: str,
        dtype: torch.dtype = torch.complex128,
        device: torch.device | str | None = None,
    ) -> MisoInstances:
        """Validated instances from exchange arrays; errors start with ``source``."""
        self.check_arrays(arrays, source)
        try:
            return MisoInstances.from_numpy(dict(arrays), dtype=dtype, device=device)
        except InvalidInstanceError as exc:
            raise InvalidInstanceError(f"{source}: {exc}") from exc

    def instances_to_arrays(self, instances: MisoInstances) -> dict[str, np.ndarray]:
        """Exchange arrays (``H`` complex128, the rest float64), compacted."""
        arrays = instances.as_numpy()
        return {
            k: (v if k == "H" else _compact(v, per_user=k in ("sinr_min", "weights")))
            for k, v in arrays.items()
        }

    def allocation_feasible(
        self, allocation: Tensor, instances: MisoInstances, rtol: float
    ) -> Tensor:
        """:func:`~feasnet.problems.miso.is_feasible` of beams ``(N, Nt, K)`` [sqrt(W)]."""
        return miso.is_feasible(allocation, instances, rtol=rtol)

    def allocation_objective(self, allocation: Tensor, instances: MisoInstances) -> Tensor:
        """``(N,)`` weighted sum rate [bit/s/Hz] of beams ``(N, Nt, K)`` [sqrt(W)]."""
        return miso.weighted_sum_rate(allocation, instances)
