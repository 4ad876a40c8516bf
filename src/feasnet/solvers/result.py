"""The result type shared by every classical solver and every learned method."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from feasnet.atomic import atomic_path
from feasnet.problems import miso
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances


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
    """

    method: str
    power: np.ndarray
    feasible: np.ndarray
    sum_rate: np.ndarray
    seconds: np.ndarray
    messages: list[str] = field(default_factory=list)
    rtol: float = pc.DEFAULT_RTOL

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
        ``seconds`` (N,) [s], ``message`` (N,) str, ``method`` and ``rtol`` scalars.
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
    """

    method: str
    beams: np.ndarray
    feasible: np.ndarray
    wsr: np.ndarray
    seconds: np.ndarray
    messages: list[str] = field(default_factory=list)
    rtol: float = miso.DEFAULT_RTOL

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
        [bit/s/Hz], ``seconds`` (N,) [s], ``message`` (N,) str, ``method`` and ``rtol``.
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
            )


Result = AllocationResult | BeamformingResult
"""Either family's result; :mod:`feasnet.evaluate` reads ``objective``, ``feasible`` and
``seconds`` only."""
