"""MISO downlink channels: Nakagami-m small-scale fading over 3GPP path loss in one cell.

One BS with ``Nt`` antennas sits at the centre of a circular cell of radius ``R``; ``K``
single-antenna users are dropped uniformly *in area* over the annulus
``[inner_radius_fraction * R, R]`` (radius ``r = sqrt(r0^2 + U (R^2 - r0^2))``, ``U`` uniform;
the angle plays no role with a single BS and is not drawn). Each user's large-scale power gain
is the 3GPP TR 36.814 path loss of :func:`feasnet.channels.path_loss.path_loss_db`::

    PL(d) [dB] = 128.1 + 37.6 log10(d / 1 km),     g(d) = 10^(-PL(d) / 10)

and every antenna coefficient carries independent Nakagami-m fading with unit mean power::

    f = sqrt(X) exp(j phi),   X ~ Gamma(shape m, scale 1/m),   phi ~ Uniform[0, 2 pi)
    h[k, t] = sqrt(g(d_k)) f[k, t]

so ``E|f|^2 = 1`` and ``E|f|^4 = (m + 1) / m``. ``m = 1`` is Rayleigh fading (``X ~ Exp(1)``,
``f ~ CN(0, 1)``); larger ``m`` means milder fading (``m -> inf``: no fading); ``m >= 1/2`` is
the range of the Nakagami model (``m = 1/2``: one-sided Gaussian amplitude).

Randomness: all of it comes from one ``torch.Generator``. PyTorch's own Gamma sampler
(``torch._standard_gamma``, ``torch.distributions.Gamma``) takes no generator, so
:func:`standard_gamma` implements the Marsaglia-Tsang method on top of ``torch.randn`` and
``torch.rand`` with the generator (rejected proposals are redrawn, batched, until every sample
is accepted; the acceptance probability is above 95 % for every shape, so a few rounds
suffice). Draws are therefore reproducible from the generator's seed and need no NumPy state.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from feasnet.channels.gaussian import resolve_generator
from feasnet.channels.path_loss import path_loss_db

MIN_NAKAGAMI_M = 0.5
"""Smallest Nakagami shape parameter ``m`` (the model's range)."""
CELL_RADIUS_M = 200.0
"""Default cell radius ``R`` [m]."""
INNER_RADIUS_FRACTION = 0.5
"""Default inner radius of the user annulus, as a fraction of ``R``."""

_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64}
_MAX_GAMMA_ROUNDS = 1000


def path_gain(distance_m: Tensor | float) -> Tensor:
    """Linear large-scale power gain ``10^(-PL(d)/10)`` of the 3GPP TR 36.814 model.

    Args:
        distance_m: BS-user distance(s) [m], ``> 0`` (tensor of any shape or a float; a float
            gives a float64 scalar tensor).
    """
    d = (
        torch.as_tensor(distance_m, dtype=torch.float64)
        if not isinstance(distance_m, Tensor)
        else distance_m
    )
    return torch.pow(10.0, -path_loss_db(d) / 10.0)


def _check_m(m: float) -> float:
    m = float(m)
    if not math.isfinite(m) or m < MIN_NAKAGAMI_M:
        raise ValueError(f"m: Nakagami shape parameter must be a finite number >= 0.5, got {m}")
    return m


def standard_gamma(
    shape: float,
    size: tuple[int, ...],
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """``Gamma(shape, scale 1)`` samples drawn from ``generator`` (Marsaglia-Tsang).

    For ``shape >= 1``: ``d = shape - 1/3``, ``c = 1 / sqrt(9 d)``; propose ``v = (1 + c x)^3``
    with ``x ~ N(0, 1)`` and accept ``d v`` when ``v > 0`` and
    ``log u < x^2 / 2 + d - d v + d log v`` (``u ~ U(0, 1)``). For ``shape < 1`` the sample is
    ``Gamma(shape + 1) * u^(1 / shape)``.

    Args:
        shape: ``> 0``.
        size: output shape.
        generator: CPU ``torch.Generator``; the result is a deterministic function of its state.
        dtype: float dtype of the result.
    """
    if not math.isfinite(shape) or shape <= 0:
        raise ValueError(f"shape: expected a finite number > 0, got {shape}")
    boost = shape < 1
    a = shape + 1.0 if boost else shape
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    numel = math.prod(size)
    out = torch.empty(numel, dtype=torch.float64)
    pending = torch.arange(numel)
    for _ in range(_MAX_GAMMA_ROUNDS):
        if pending.numel() == 0:
            break
        n = pending.numel()
        x = torch.randn(n, generator=generator, dtype=torch.float64)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        v = (1.0 + c * x) ** 3
        positive = v > 0
        log_v = torch.log(torch.where(positive, v, torch.ones_like(v)))
        accept = positive & (torch.log(u) < 0.5 * x * x + d - d * v + d * log_v)
        out[pending[accept]] = d * v[accept]
        pending = pending[~accept]
    if pending.numel():  # pragma: no cover - probability below 0.05^1000
        raise RuntimeError("standard_gamma: rejection sampler did not finish")
    if boost:
        u = torch.rand(numel, generator=generator, dtype=torch.float64)
        out = out * u.pow(1.0 / shape)
    return out.reshape(size).to(dtype)


def nakagami_fading(
    num_samples: int,
    num_users: int,
    num_antennas: int,
    m: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.complex128,
    *,
    seed: int | None = None,
) -> Tensor:
    """Nakagami-m small-scale fading coefficients with unit mean power.

    Args:
        num_samples: ``N``; num_users: ``K``; num_antennas: ``Nt``.
        m: Nakagami shape parameter, ``>= 0.5`` (``1``: Rayleigh).
        generator, seed: source of randomness (see
            :func:`feasnet.channels.gaussian.resolve_generator`).
        dtype: complex dtype of the result.

    Returns:
        ``(N, K, Nt)`` complex: amplitude ``sqrt(X)``, ``X ~ Gamma(m, 1/m)``, phase uniform in
        ``[0, 2 pi)``, all entries independent (dimensionless).

    Raises:
        ValueError: ``m < 0.5`` (or not finite), non-positive sizes, or a non-complex dtype.
    """
    m = _check_m(m)
    _check_sizes(num_samples, num_users, num_antennas)
    if dtype not in _REAL_OF:
        raise ValueError(f"dtype: expected complex64 or complex128, got {dtype}")
    gen = resolve_generator(generator, seed)
    size = (num_samples, num_users, num_antennas)
    power = standard_gamma(m, size, gen) / m
    phase = 2.0 * math.pi * torch.rand(size, generator=gen, dtype=torch.float64)
    return torch.polar(power.sqrt(), phase).to(dtype)


def drop_users_in_annulus(
    num_samples: int,
    num_users: int,
    generator: torch.Generator,
    cell_radius_m: float = CELL_RADIUS_M,
    inner_radius_fraction: float = INNER_RADIUS_FRACTION,
) -> Tensor:
    """``(N, K)`` float64 BS-user distances [m], uniform in area over ``[f R, R]``."""
    if not math.isfinite(cell_radius_m) or cell_radius_m <= 0:
        raise ValueError(f"cell_radius_m: expected > 0, got {cell_radius_m}")
    if not 0 < inner_radius_fraction <= 1:
        raise ValueError(
            f"inner_radius_fraction: expected in (0, 1], got {inner_radius_fraction} "
            "(0 would put users on the BS, where the path-loss formula has no meaning)"
        )
    r0 = inner_radius_fraction * cell_radius_m
    u = torch.rand(num_samples, num_users, generator=generator, dtype=torch.float64)
    return torch.sqrt(r0 * r0 + u * (cell_radius_m**2 - r0 * r0))


def miso_channels(
    num_samples: int,
    num_users: int,
    num_antennas: int,
    m: float,
    generator: torch.Generator | None = None,
    cell_radius_m: float = CELL_RADIUS_M,
    inner_radius_fraction: float = INNER_RADIUS_FRACTION,
    *,
    seed: int | None = None,
    dtype: torch.dtype = torch.complex128,
) -> tuple[Tensor, Tensor]:
    """Draw single-cell MISO downlink channels.

    The generator is used in this order: user distances ``(N, K)``, then the fading of
    :func:`nakagami_fading`.

    Args:
        num_samples: ``N``; num_users: ``K``; num_antennas: ``Nt``.
        m: Nakagami shape parameter, ``>= 0.5``.
        generator, seed: source of randomness.
        cell_radius_m: cell radius ``R`` [m].
        inner_radius_fraction: users lie at distances in ``[fraction * R, R]``, in ``(0, 1]``.
        dtype: complex dtype of the channel.

    Returns:
        ``(channel, large_scale_gain)``: ``(N, K, Nt)`` complex amplitude gains
        ``sqrt(g_k) f_k`` (``y_k = h_k^T v``) and ``(N, K)`` float64 linear path gains ``g_k``.
    """
    m = _check_m(m)
    _check_sizes(num_samples, num_users, num_antennas)
    gen = resolve_generator(generator, seed)
    distance = drop_users_in_annulus(
        num_samples, num_users, gen, cell_radius_m, inner_radius_fraction
    )
    gain = path_gain(distance)
    fading = nakagami_fading(num_samples, num_users, num_antennas, m, gen, dtype=torch.complex128)
    channel = fading * gain.sqrt()[:, :, None]
    return channel.to(dtype), gain


def _check_sizes(num_samples: int, num_users: int, num_antennas: int) -> None:
    for name, value in (
        ("num_samples", num_samples),
        ("num_users", num_users),
        ("num_antennas", num_antennas),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value}")
