"""The Gaussian dataset: i.i.d. Rayleigh fading on every link (power-control paper, sec. VII-1).

Every complex channel coefficient is ``h ~ CN(0, 1)``, so every power gain ``|h|^2`` is
exponentially distributed with mean 1 (no path loss, no shadowing). The gains are drawn per
*user*: ``G[n, u, c, q]`` is the gain from BS ``c`` to user ``u`` on channel ``q``, all
independent. Users are then associated to BSs and channels by
:func:`feasnet.channels.association.associate_users`, scoring a user by its gain to a BS
averaged over the ``Q`` channels; the resulting ``H`` therefore has ordered (no longer i.i.d.)
direct gains, exactly as in the paper's data.

Defaults follow the paper: ``Pmax = 1 mW``, ``W = 5 MHz``, noise power ``0.01 µW = 1e-8 W``.

This module also holds the two random-number helpers shared by the channel generators:
:func:`resolve_generator` and :func:`rayleigh_power`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from feasnet.channels.association import associate_users
from feasnet.problems.instances import PowerControlInstances

DEFAULT_PMAX_W = 1e-3
"""Power budget of every BS [W] (1 mW)."""
DEFAULT_BANDWIDTH_HZ = 5e6
"""Bandwidth of one channel [Hz] (5 MHz)."""
DEFAULT_NOISE_W = 1e-8
"""Receiver noise power [W] (0.01 µW)."""


def resolve_generator(
    generator: torch.Generator | None = None, seed: int | None = None
) -> torch.Generator:
    """The CPU generator to draw from: ``generator`` itself, a new one seeded with ``seed``,
    or (neither given) a new one with a non-deterministic seed.

    Raises:
        ValueError: when both ``generator`` and ``seed`` are given.
    """
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    if generator is not None:
        return generator
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def rayleigh_power(
    shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Rayleigh-fading power gains ``|h|^2`` with ``h ~ CN(0, 1)``: Exp(1), mean 1.

    Drawn as ``(x^2 + y^2) / 2`` with ``x, y ~ N(0, 1)`` (real and imaginary parts of ``h``
    times ``sqrt(2)``), so a gain is zero only with probability zero.

    Returns:
        ``shape`` float tensor of linear power gains (dimensionless).
    """
    parts = torch.randn((2, *shape), generator=generator, dtype=dtype)
    return 0.5 * parts.pow(2).sum(dim=0)


def gaussian_gains(
    num_samples: int,
    num_bs: int,
    num_channels: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Draw associated Gaussian-dataset channels.

    Args:
        num_samples: ``N``, number of instances.
        num_bs: ``B``, number of BSs.
        num_channels: ``Q``, channels (and users) per BS; ``U = B * Q`` users in all.
        generator, seed: source of randomness (see :func:`resolve_generator`).
        dtype: float dtype of the result.

    Returns:
        ``H``: ``(N, B, Q, B)`` float, linear power gain; ``H[n, b, q, c]`` is the gain from BS
        ``c`` to the user on channel ``q`` of BS ``b`` (on channel ``q``).
    """
    _check_sizes(num_samples, num_bs, num_channels)
    gen = resolve_generator(generator, seed)
    num_users = num_bs * num_channels
    user_gain = rayleigh_power((num_samples, num_users, num_bs, num_channels), gen, dtype)
    return associate_users(user_gain, user_gain.mean(dim=3), num_channels).gain


def gaussian_instances(
    num_samples: int,
    num_bs: int,
    num_channels: int,
    min_rate: Any,
    *,
    pmax: Any = DEFAULT_PMAX_W,
    noise: Any = DEFAULT_NOISE_W,
    bandwidth: Any = DEFAULT_BANDWIDTH_HZ,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> PowerControlInstances:
    """Gaussian-dataset instances (not filtered for feasibility), float64.

    Args:
        min_rate: minimum rate of every user [bit/s]: scalar, ``(N,)`` or ``(N, B, Q)``.
        pmax: power budget [W], noise: noise power [W], bandwidth: channel bandwidth [Hz];
            each a scalar or ``(N,)``.
        Others as in :func:`gaussian_gains`.
    """
    gain = gaussian_gains(num_samples, num_bs, num_channels, generator=generator, seed=seed)
    return PowerControlInstances.from_arrays(gain, pmax, noise, bandwidth, min_rate)


def _check_sizes(num_samples: int, num_bs: int, num_channels: int) -> None:
    for name, value, least in (
        ("num_samples", num_samples, 0),
        ("num_bs", num_bs, 1),
        ("num_channels", num_channels, 1),
    ):
        if int(value) != value or value < least:
            raise ValueError(f"{name}: expected an integer >= {least}, got {value!r}")
