"""Batched power-control instances: the channel tensor plus the per-instance scalars.

One :class:`PowerControlInstances` holds ``N`` instances of the multi-cell, multi-channel
power-control problem of the power-control paper (section II): ``B`` single-antenna base
stations (BSs), ``Q`` orthogonal channels per BS and one user on every (BS, channel) pair.

Every tensor has a leading batch dimension ``N``; scalars given once are broadcast on
construction so that every instance carries its own budget, noise, bandwidth and rate targets.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor


class InvalidInstanceError(ValueError):
    """Raised when instance data is malformed; the message names the offending field."""


@dataclass(frozen=True)
class PowerControlInstances:
    """``N`` power-control instances.

    Attributes:
        gain: ``(N, B, Q, B)`` float, linear power gain. ``gain[n, b, q, c]`` is the gain from
            BS ``c`` to the user served on channel ``q`` of BS ``b``; ``gain[n, b, q, b]`` is
            that user's direct gain.
        pmax: ``(N,)`` float, power budget of every BS [W].
        noise: ``(N,)`` float, receiver noise power [W].
        bandwidth: ``(N,)`` float, bandwidth of one channel [Hz].
        min_rate: ``(N, B, Q)`` float, minimum rate of every user [bit/s] (may be 0).
        min_energy_efficiency: ``(N, B, Q)`` float or None, minimum energy efficiency
            ``R_bq / P_bq`` of every user [bit/J], enforced as ``R_bq >= ee_bq P_bq`` (so a
            user at zero power meets it; 0 means no requirement). None: no such constraint.
        csi_error: ``(N,)`` float in ``[0, 1)`` or None, the relative CSI estimation error
            ``sigma``: ``gain`` is then an estimate and every true gain lies in
            ``[gain / (1 + sigma), gain / (1 - sigma)]`` (see :mod:`feasnet.problems.csi`).
        csi_corner: ``(N, 2)`` float or None, multipliers ``(direct, cross)`` of ``gain`` that
            give the gains the constraints are written for (:attr:`constraint_gain`); set by
            the robust mode (:func:`feasnet.problems.csi.with_robust`). None: the constraints
            use ``gain`` itself.
    """

    gain: Tensor
    pmax: Tensor
    noise: Tensor
    bandwidth: Tensor
    min_rate: Tensor
    min_energy_efficiency: Tensor | None = None
    csi_error: Tensor | None = None
    csi_corner: Tensor | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        gain: Any,
        pmax: Any,
        noise: Any,
        bandwidth: Any,
        min_rate: Any,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        min_energy_efficiency: Any = None,
        csi_error: Any = None,
        csi_corner: Any = None,
    ) -> PowerControlInstances:
        """Validate array-likes, broadcast scalars and build a batch.

        Args:
            gain: ``(N, B, Q, B)`` linear power gains (non-negative, finite; direct gains > 0).
            pmax, noise, bandwidth: scalar or ``(N,)``, strictly positive [W, W, Hz].
            min_rate: scalar, ``(N,)`` or ``(N, B, Q)``, non-negative [bit/s].
            min_energy_efficiency: None (no energy-efficiency constraint), or scalar, ``(N,)``
                or ``(N, B, Q)``, non-negative [bit/J].
            csi_error: None (perfect CSI), or scalar or ``(N,)`` in ``[0, 1)``, the relative
                CSI error ``sigma`` (``gain`` is then the estimate).
            csi_corner: None (with ``csi_error``: the exact worst-case corner
                ``(1 / (1 + sigma), 1 / (1 - sigma))``), or scalar, ``(2,)`` or ``(N, 2)``
                positive multipliers ``(direct, cross)`` of the constraint-side gains.

        Raises:
            InvalidInstanceError: naming the field and what was expected.
        """
        gain_t = _as_real_tensor("H", gain, dtype, device)
        if gain_t.ndim != 4 or gain_t.shape[1] != gain_t.shape[3]:
            raise InvalidInstanceError(
                f"H: expected shape (N, B, Q, B) with equal 2nd and 4th sizes, got "
                f"{tuple(gain_t.shape)}"
            )
        n, b, q, _ = gain_t.shape
        if n == 0 or b == 0 or q == 0:
            raise InvalidInstanceError(
                f"H: expected non-empty dimensions, got {tuple(gain_t.shape)}"
            )
        if not torch.isfinite(gain_t).all():
            raise InvalidInstanceError("H: contains NaN or inf; expected finite power gains")
        if (gain_t < 0).any():
            raise InvalidInstanceError("H: contains negative values; power gains must be >= 0")
        direct = torch.diagonal(gain_t, dim1=1, dim2=3)  # (N, Q, B)
        if (direct <= 0).any():
            raise InvalidInstanceError(
                "H: a direct gain H[n, b, q, b] is zero; every served user needs a positive gain"
            )

        def per_instance(name: str, value: Any, positive: bool) -> Tensor:
            t = _as_real_tensor(name, value, dtype, device)
            if t.ndim == 0:
                t = t.expand(n).clone()
            if t.shape != (n,):
                raise InvalidInstanceError(
                    f"{name}: expected a scalar or shape ({n},), got {tuple(t.shape)}"
                )
            if not torch.isfinite(t).all():
                raise InvalidInstanceError(f"{name}: contains NaN or inf")
            if positive and (t <= 0).any():
                raise InvalidInstanceError(f"{name}: must be > 0")
            return t

        pmax_t = per_instance("pmax", pmax, positive=True)
        noise_t = per_instance("noise", noise, positive=True)
        bandwidth_t = per_instance("bandwidth", bandwidth, positive=True)

        def per_user(name: str, value: Any, unit: str) -> Tensor:
            t = _as_real_tensor(name, value, dtype, device)
            if t.ndim == 0:
                t = t.expand(n, b, q).clone()
            elif t.shape == (n,):
                t = t[:, None, None].expand(n, b, q).clone()
            if t.shape != (n, b, q):
                raise InvalidInstanceError(
                    f"{name}: expected a scalar, shape ({n},) or ({n}, {b}, {q}), got "
                    f"{tuple(t.shape)}"
                )
            if not torch.isfinite(t).all():
                raise InvalidInstanceError(f"{name}: contains NaN or inf")
            if (t < 0).any():
                raise InvalidInstanceError(f"{name}: must be >= 0 {unit}")
            return t

        rate_t = per_user("min_rate", min_rate, "bit/s")
        ee_t = (
            None
            if min_energy_efficiency is None
            else per_user("min_energy_efficiency", min_energy_efficiency, "bit/J")
        )
        csi_t = corner_t = None
        if csi_error is not None:
            from feasnet.problems.csi import exact_corner, validate_csi_error

            csi_t = validate_csi_error(per_instance("csi_error", csi_error, positive=False))
            corner_t = exact_corner(csi_t)
        if csi_corner is not None:
            if csi_t is None:
                raise InvalidInstanceError("csi_corner: given without csi_error")
            from feasnet.problems.csi import validate_corner

            corner_t = validate_corner(_as_real_tensor("csi_corner", csi_corner, dtype, device), n)
        return cls(gain_t, pmax_t, noise_t, bandwidth_t, rate_t, ee_t, csi_t, corner_t)

    # ------------------------------------------------------------------ shape helpers
    @property
    def num_instances(self) -> int:
        return int(self.gain.shape[0])

    @property
    def num_bs(self) -> int:
        return int(self.gain.shape[1])

    @property
    def num_channels(self) -> int:
        return int(self.gain.shape[2])

    @property
    def num_users(self) -> int:
        return self.num_bs * self.num_channels

    def __len__(self) -> int:
        return self.num_instances

    def __getitem__(
        self, index: int | slice | Tensor | np.ndarray | list[int]
    ) -> PowerControlInstances:
        """A sub-batch (an integer index keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        if isinstance(index, np.ndarray | list):
            index = torch.as_tensor(index, device=self.gain.device)
        return self._map(lambda t: t[index])

    def _map(self, fn: Any) -> PowerControlInstances:
        """A copy with ``fn`` applied to every tensor field (None fields stay None)."""
        mapped: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            mapped[f.name] = None if value is None else fn(value)
        return PowerControlInstances(**mapped)

    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> PowerControlInstances:
        """Copy to another float dtype and/or device."""
        return self._map(lambda t: t.to(dtype=dtype, device=device))

    @property
    def dtype(self) -> torch.dtype:
        return self.gain.dtype

    @property
    def device(self) -> torch.device:
        return self.gain.device

    def as_numpy(self) -> dict[str, np.ndarray]:
        """Plain float64 arrays keyed as in the ``.npz`` exchange format."""
        out = {
            "H": self.gain.detach().cpu().double().numpy(),
            "pmax": self.pmax.detach().cpu().double().numpy(),
            "noise": self.noise.detach().cpu().double().numpy(),
            "bandwidth": self.bandwidth.detach().cpu().double().numpy(),
            "min_rate": self.min_rate.detach().cpu().double().numpy(),
        }
        if self.min_energy_efficiency is not None:
            out["min_energy_efficiency"] = (
                self.min_energy_efficiency.detach().cpu().double().numpy()
            )
        if self.csi_error is not None:
            out["csi_error"] = self.csi_error.detach().cpu().double().numpy()
            from feasnet.problems.csi import is_exact_corner

            corner = self.csi_corner
            if corner is None:
                corner = torch.ones_like(self.csi_error)[:, None].expand(-1, 2)
            if not is_exact_corner(self.csi_error, corner):
                out["csi_corner"] = corner.detach().cpu().double().numpy()  # a non-default mode
        return out

    @property
    def constraint_gain(self) -> Tensor:
        """``(N, B, Q, B)`` the gains the constraints are written for: ``gain`` with the
        direct gains times ``csi_corner[:, 0]`` and the cross gains times ``csi_corner[:, 1]``
        (``gain`` itself without a corner). The objective always uses ``gain``."""
        if self.csi_corner is None:
            return self.gain
        b = self.num_bs
        eye = torch.eye(b, dtype=torch.bool, device=self.gain.device)[None, :, None, :]
        direct = self.csi_corner[:, 0].to(self.gain.dtype)[:, None, None, None]
        cross = self.csi_corner[:, 1].to(self.gain.dtype)[:, None, None, None]
        return self.gain * torch.where(eye, direct, cross)

    def constraint_side(self) -> PowerControlInstances:
        """The instances whose ``gain`` is :attr:`constraint_gain` (no CSI fields): what every
        constraint, feasibility test and anchor is computed on. ``self`` without a corner."""
        if self.csi_corner is None:
            return self
        return PowerControlInstances(
            self.constraint_gain,
            self.pmax,
            self.noise,
            self.bandwidth,
            self.min_rate,
            self.min_energy_efficiency,
        )

    @staticmethod
    def concatenate(parts: list[PowerControlInstances]) -> PowerControlInstances:
        """Stack batches of equal ``(B, Q)`` along the instance dimension (a batch without
        ``min_energy_efficiency`` counts as a zero requirement when another batch has one)."""
        if not parts:
            raise ValueError("concatenate: need at least one batch")
        with_ee = any(p.min_energy_efficiency is not None for p in parts)
        if any(p.csi_error is not None for p in parts):  # a batch without: sigma = 0
            from feasnet.problems.csi import exact_corner

            parts = [
                p
                if p.csi_error is not None
                else replace(
                    p,
                    csi_error=torch.zeros_like(p.pmax),
                    csi_corner=exact_corner(torch.zeros_like(p.pmax)),
                )
                for p in parts
            ]
            parts = [  # no corner: the constraints use the gains themselves
                p
                if p.csi_corner is not None
                else replace(p, csi_corner=torch.ones_like(p.pmax)[:, None].expand(-1, 2))
                for p in parts
            ]
        out: dict[str, Tensor | None] = {}
        for f in fields(PowerControlInstances):
            if f.name in ("csi_error", "csi_corner") and getattr(parts[0], f.name) is None:
                out[f.name] = None
            elif f.name == "min_energy_efficiency":
                out[f.name] = (
                    torch.cat(
                        [
                            p.min_energy_efficiency
                            if p.min_energy_efficiency is not None
                            else torch.zeros_like(p.min_rate)
                            for p in parts
                        ]
                    )
                    if with_ee
                    else None
                )
            else:
                out[f.name] = torch.cat([getattr(p, f.name) for p in parts])
        return PowerControlInstances(**out)  # type: ignore[arg-type]


def _as_real_tensor(
    name: str, value: Any, dtype: torch.dtype, device: torch.device | str | None
) -> Tensor:
    """Convert ``value`` to a real float tensor, with an error that names the field."""
    return field_tensor(name, value).to(dtype=dtype, device=device)


def field_tensor(name: str, value: Any, allow_complex: bool = False) -> Tensor:
    """``value`` as a tensor of numbers (real, or also complex), uncast; errors name the field.

    Raises:
        InvalidInstanceError: ``value`` is missing, not numeric, or complex where not allowed.
    """
    if value is None:
        raise InvalidInstanceError(f"{name}: missing")
    expected = "complex or real numbers" if allow_complex else "real numbers"
    if isinstance(value, Tensor):
        t = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise InvalidInstanceError(f"{name}: cannot be read as an array ({exc})") from exc
        if arr.dtype == object or arr.dtype.kind not in ("biufc" if allow_complex else "biuf"):
            raise InvalidInstanceError(
                f"{name}: expected {expected}, got array of dtype {arr.dtype}"
            )
        t = torch.as_tensor(arr.copy())
    if t.is_complex() and not allow_complex:
        raise InvalidInstanceError(f"{name}: expected real numbers, got {t.dtype}")
    if not (t.is_complex() or t.is_floating_point() or t.dtype in _INT_DTYPES):
        raise InvalidInstanceError(f"{name}: expected {expected}, got {t.dtype}")
    return t


_INT_DTYPES = {torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool}
