"""The result type shared by every classical solver and every learned method."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from feasnet.atomic import atomic_path
from feasnet.problems import miso
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances

OPTIONAL_KEYS: dict[str, type] = {"converged": bool, "upper_bound": float, "gap": float}
"""Per-instance extras a result may carry, each ``(N,)`` or None (not applicable):

- ``converged`` bool: an iterative method met its stated stopping tolerance (False: it stopped
  at an iteration cap or failed; the instance's message says why);
- ``upper_bound`` float64: a certified upper bound on the optimal objective (same unit as the
  objective: bit/s for power control, bit/s/Hz for MISO), from a global solver;
- ``gap`` float64: ``(upper_bound - objective) / upper_bound``, the certified relative gap.

Saved to the solution ``.npz`` under the same keys when set.
"""


def optional_arrays(result: AllocationResult | BeamformingResult) -> dict[str, Any]:
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


@dataclass
class AllocationResult:
    """Allocations for ``N`` instances plus their float64 check, objective and time.

    Attributes:
        method: name of the method that produced the allocations.
        power: ``(N, B, Q)`` float64 [W]; NaN rows where the method returned nothing.
        feasible: ``(N,)`` bool, float64 feasibility check at relative tolerance ``rtol``.
        sum_rate: ``(N,)`` float64 [bit/s] of ``power`` (NaN where ``power`` is NaN).
        seconds: ``(N,)`` float64 wall time per instance [s] (a batched method reports its
            batch time divided by the batch size).
        messages: one line per instance, "" when nothing needs saying (e.g. "infeasible: ...").
        rtol: tolerance used for ``feasible``.
        converged, upper_bound, gap: optional per-instance extras, see :data:`OPTIONAL_KEYS`.
    """

    method: str
    power: np.ndarray
    feasible: np.ndarray
    sum_rate: np.ndarray
    seconds: np.ndarray
    messages: list[str] = field(default_factory=list)
    rtol: float = pc.DEFAULT_RTOL
    converged: np.ndarray | None = None
    upper_bound: np.ndarray | None = None
    gap: np.ndarray | None = None

    @classmethod
    def from_power(
        cls,
        method: str,
        power: torch.Tensor | np.ndarray,
        instances: PowerControlInstances,
        seconds: torch.Tensor | np.ndarray | float,
        messages: list[str] | None = None,
        rtol: float = pc.DEFAULT_RTOL,
    ) -> AllocationResult:
        """Check ``power`` (``(N, B, Q)`` [W]) in float64 and package it.

        ``seconds`` is per instance (``(N,)``) or one number per instance for all.
        """
        power_t = torch.as_tensor(power, dtype=torch.float64).cpu()
        inst64 = instances.to(torch.float64, "cpu")
        if tuple(power_t.shape) != tuple(inst64.gain.shape[:3]):
            raise ValueError(
                f"power: expected shape {tuple(inst64.gain.shape[:3])}, got {tuple(power_t.shape)}"
            )
        feasible = pc.is_feasible(power_t, inst64, rtol=rtol)
        sum_rate = pc.sum_rate(power_t, inst64)
        n = inst64.num_instances
        secs = np.broadcast_to(np.asarray(seconds, dtype=np.float64), (n,)).copy()
        msgs = list(messages) if messages is not None else [""] * n
        if len(msgs) != n:
            raise ValueError(f"messages: expected {n} entries, got {len(msgs)}")
        return cls(
            method=method,
            power=power_t.numpy(),
            feasible=feasible.numpy(),
            sum_rate=sum_rate.numpy(),
            seconds=secs,
            messages=msgs,
            rtol=rtol,
        )

    def __len__(self) -> int:
        return int(self.power.shape[0])

    @property
    def objective(self) -> np.ndarray:
        """``(N,)`` the objective every metric reads: the sum rate [bit/s]."""
        return self.sum_rate

    def save_npz(self, path: str | os.PathLike[str]) -> None:
        """Write the solution file of ``feasnet solve`` atomically.

        Keys: ``P`` (N, B, Q) [W], ``feasible`` (N,) bool, ``sum_rate`` (N,) [bit/s],
        ``seconds`` (N,) [s], ``message`` (N,) str, ``method`` and ``rtol`` scalars, and the
        :data:`OPTIONAL_KEYS` that are set.
        """
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                P=self.power,
                feasible=self.feasible,
                sum_rate=self.sum_rate,
                seconds=self.seconds,
                message=np.asarray(self.messages, dtype=str),
                method=np.asarray(self.method),
                rtol=np.asarray(self.rtol),
                **optional_arrays(self),
            )

    @classmethod
    def load_npz(cls, path: str | os.PathLike[str]) -> AllocationResult:
        """Read a file written by :meth:`save_npz`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                method=str(data["method"]),
                power=data["P"],
                feasible=data["feasible"].astype(bool),
                sum_rate=data["sum_rate"],
                seconds=data["seconds"],
                messages=[str(m) for m in data["message"]],
                rtol=float(data["rtol"]),
                **load_optional_arrays(data),
            )


@dataclass
class BeamformingResult:
    """MISO beamformers for ``N`` instances plus their float64 check, objective and time.

    Attributes:
        method: name of the method that produced the beamformers.
        beams: ``(N, Nt, K)`` complex128 [sqrt(W)], column ``k`` is user ``k``'s beamformer;
            NaN where the method returned nothing.
        feasible: ``(N,)`` bool, float64 check :func:`feasnet.problems.miso.is_feasible`.
        wsr: ``(N,)`` float64 weighted sum rate [bit/s/Hz] (NaN where ``beams`` is NaN).
        seconds: ``(N,)`` float64 wall time per instance [s].
        messages: one line per instance, ``""`` when nothing needs saying.
        rtol: tolerance used for ``feasible``.
        converged, upper_bound, gap: optional per-instance extras, see :data:`OPTIONAL_KEYS`.
    """

    method: str
    beams: np.ndarray
    feasible: np.ndarray
    wsr: np.ndarray
    seconds: np.ndarray
    messages: list[str] = field(default_factory=list)
    rtol: float = miso.DEFAULT_RTOL
    converged: np.ndarray | None = None
    upper_bound: np.ndarray | None = None
    gap: np.ndarray | None = None

    @classmethod
    def from_beams(
        cls,
        method: str,
        beams: torch.Tensor | np.ndarray,
        instances: miso.MisoInstances,
        seconds: torch.Tensor | np.ndarray | float,
        messages: list[str] | None = None,
        rtol: float = miso.DEFAULT_RTOL,
    ) -> BeamformingResult:
        """Check ``beams`` (``(N, Nt, K)`` complex [sqrt(W)]) in float64 and package them."""
        beams_t = torch.as_tensor(beams).to(torch.complex128).cpu()
        inst = instances.to(torch.complex128, "cpu")
        expected = (len(inst), inst.num_antennas, inst.num_users)
        if tuple(beams_t.shape) != expected:
            raise ValueError(f"V: expected shape {expected}, got {tuple(beams_t.shape)}")
        n = len(inst)
        secs = np.broadcast_to(np.asarray(seconds, dtype=np.float64), (n,)).copy()
        msgs = list(messages) if messages is not None else [""] * n
        if len(msgs) != n:
            raise ValueError(f"messages: expected {n} entries, got {len(msgs)}")
        return cls(
            method=method,
            beams=beams_t.numpy(),
            feasible=miso.is_feasible(beams_t, inst, rtol=rtol).numpy(),
            wsr=miso.weighted_sum_rate(beams_t, inst).numpy(),
            seconds=secs,
            messages=msgs,
            rtol=rtol,
        )

    def __len__(self) -> int:
        return int(self.beams.shape[0])

    @property
    def objective(self) -> np.ndarray:
        """``(N,)`` the objective every metric reads: the weighted sum rate [bit/s/Hz]."""
        return self.wsr

    def save_npz(self, path: str | os.PathLike[str]) -> None:
        """Write the solution file of ``feasnet solve`` for MISO instances atomically.

        Keys: ``V`` (N, Nt, K) complex [sqrt(W)], ``feasible`` (N,) bool, ``wsr`` (N,)
        [bit/s/Hz], ``seconds`` (N,) [s], ``message`` (N,) str, ``method`` and ``rtol``, and
        the :data:`OPTIONAL_KEYS` that are set.
        """
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                V=self.beams,
                feasible=self.feasible,
                wsr=self.wsr,
                seconds=self.seconds,
                message=np.asarray(self.messages, dtype=str),
                method=np.asarray(self.method),
                rtol=np.asarray(self.rtol),
                **optional_arrays(self),
            )

    @classmethod
    def load_npz(cls, path: str | os.PathLike[str]) -> BeamformingResult:
        """Read a file written by :meth:`save_npz`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                method=str(data["method"]),
                beams=data["V"],
                feasible=data["feasible"].astype(bool),
                wsr=data["wsr"],
                seconds=data["seconds"],
                messages=[str(m) for m in data["message"]],
                rtol=float(data["rtol"]),
                **load_optional_arrays(data),
            )


Result = AllocationResult | BeamformingResult
"""Either family's result; :mod:`feasnet.metrics` reads ``objective``, ``feasible`` and
``seconds`` only."""


def with_tolerance(
    result: Result, instances: PowerControlInstances | miso.MisoInstances, rtol: float
) -> Result:
    """``result`` checked again in float64 at relative tolerance ``rtol`` (same allocations,
    times, messages and optional extras); ``instances`` are the ones it was solved for."""
    from feasnet.problems.registry import problem_of

    extras = {key: getattr(result, key) for key in OPTIONAL_KEYS}
    allocation = result.beams if isinstance(result, BeamformingResult) else result.power
    checked: Result = problem_of(instances).result(
        result.method, allocation, instances, result.seconds, result.messages, rtol
    )
    for key, value in extras.items():
        setattr(checked, key, value)
    return checked
