"""Batched power-control instances: the channel tensor plus the per-instance scalars.

One :class:`PowerControlInstances` holds ``N`` instances of the multi-cell, multi-channel
power-control problem of the power-control paper (section II): ``B`` single-antenna base
stations (BSs), ``Q`` orthogonal channels per BS and one user on every (BS, channel) pair.

Every tensor has a leading batch dimension ``N``; scalars given once are broadcast on
construction so that every instance carries its own budget, noise, bandwidth and rate targets.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
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
    """

    gain: Tensor
    pmax: Tensor
    noise: Tensor
    bandwidth: Tensor
    min_rate: Tensor

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
    ) -> PowerControlInstances:
        """Validate array-likes, broadcast scalars and build a batch.

        Args:
            gain: ``(N, B, Q, B)`` linear power gains (non-negative, finite; direct gains > 0).
            pmax, noise, bandwidth: scalar or ``(N,)``, strictly positive [W, W, Hz].
            min_rate: scalar, ``(N,)`` or ``(N, B, Q)``, non-negative [bit/s].

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

        rate_t = _as_real_tensor("min_rate", min_rate, dtype, device)
        if rate_t.ndim == 0:
            rate_t = rate_t.expand(n, b, q).clone()
        elif rate_t.shape == (n,):
            rate_t = rate_t[:, None, None].expand(n, b, q).clone()
        if rate_t.shape != (n, b, q):
            raise InvalidInstanceError(
                f"min_rate: expected a scalar, shape ({n},) or ({n}, {b}, {q}), got "
                f"{tuple(rate_t.shape)}"
            )
        if not torch.isfinite(rate_t).all():
            raise InvalidInstanceError("min_rate: contains NaN or inf")
        if (rate_t < 0).any():
            raise InvalidInstanceError("min_rate: must be >= 0 bit/s")
        return cls(gain_t, pmax_t, noise_t, bandwidth_t, rate_t)

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
        return PowerControlInstances(*(getattr(self, f.name)[index] for f in fields(self)))

    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> PowerControlInstances:
        """Copy to another float dtype and/or device."""
        return PowerControlInstances(
            *(getattr(self, f.name).to(dtype=dtype, device=device) for f in fields(self))
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.gain.dtype

    @property
    def device(self) -> torch.device:
        return self.gain.device

    def as_numpy(self) -> dict[str, np.ndarray]:
        """Plain float64 arrays keyed as in the ``.npz`` exchange format."""
        return {
            "H": self.gain.detach().cpu().double().numpy(),
            "pmax": self.pmax.detach().cpu().double().numpy(),
            "noise": self.noise.detach().cpu().double().numpy(),
            "bandwidth": self.bandwidth.detach().cpu().double().numpy(),
            "min_rate": self.min_rate.detach().cpu().double().numpy(),
        }

    @staticmethod
    def concatenate(parts: list[PowerControlInstances]) -> PowerControlInstances:
        """Stack batches of equal ``(B, Q)`` along the instance dimension."""
        if not parts:
            raise ValueError("concatenate: need at least one batch")
        return PowerControlInstances(
            *(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(PowerControlInstances))
        )


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
