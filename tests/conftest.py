"""Shared fixtures: small random power-control and MISO batches."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances

os.environ.setdefault("FEASNET_PROGRESS", "0")


def random_instances(
    n: int,
    num_bs: int,
    num_channels: int,
    seed: int = 0,
    min_rate: float = 2.5e6,
    cross_scale: float = 0.2,
    pathloss: bool = False,
    feasible_only: bool = False,
) -> PowerControlInstances:
    """Random instances with dominant direct gains (mostly feasible).

    ``pathloss=True`` scales gains to ~1e-10 and noise to ~6e-14 W as in the path-loss data;
    ``feasible_only=True`` keeps only the instances :func:`minimum_power` finds feasible.
    """
    inst = _random_instances(n, num_bs, num_channels, seed, min_rate, cross_scale, pathloss)
    if not feasible_only:
        return inst
    from feasnet.problems import power_control as pc

    keep = pc.minimum_power(inst).feasible.nonzero().squeeze(1)
    assert len(keep) > 0
    return inst[keep]


def _random_instances(
    n: int,
    num_bs: int,
    num_channels: int,
    seed: int,
    min_rate: float,
    cross_scale: float,
    pathloss: bool,
) -> PowerControlInstances:
    g = torch.Generator().manual_seed(seed)
    gain = torch.rand(n, num_bs, num_channels, num_bs, generator=g, dtype=torch.float64)
    gain = gain * cross_scale
    idx = torch.arange(num_bs)
    gain[:, idx, :, idx] = 1.0 + torch.rand(
        num_bs, n, num_channels, generator=g, dtype=torch.float64
    )
    if pathloss:
        return PowerControlInstances.from_arrays(gain * 1e-10, 1e-3, 6.3e-14, 5e6, min_rate)
    return PowerControlInstances.from_arrays(gain * 1e-4, 1e-3, 1e-8, 5e6, min_rate)


def pathloss_instances(
    n: int,
    num_bs: int,
    num_channels: int,
    seed: int = 0,
    min_rate: float | np.ndarray = 2.5e6,
    direct_log10: tuple[float, float] = (-10.0, -9.0),
    draws_per_round: int | None = None,
) -> PowerControlInstances:
    """``n`` feasible path-loss-scale instances (numpy draws): cross gains ``10**U(-13, -9)``,
    direct gains ``10**U(*direct_log10)``, noise 6.3e-14 W, Pmax 1 mW, W 5 MHz.

    Candidates are drawn ``draws_per_round`` at a time (default ``4 n``) and kept in order
    while :func:`minimum_power` finds them feasible; ``min_rate`` [bit/s] is a scalar or
    ``(n, B, Q)`` (candidate for slot ``i`` is checked against ``min_rate[i]``)."""
    from feasnet.problems import power_control as pc

    pmax, noise, bandwidth = 1e-3, 6.3e-14, 5e6
    rng = np.random.default_rng(seed)
    targets = np.broadcast_to(np.asarray(min_rate, dtype=np.float64), (n, num_bs, num_channels))
    draws = 4 * n if draws_per_round is None else draws_per_round
    low, high = direct_log10
    kept: list[np.ndarray] = []
    while len(kept) < n:
        gain = 10.0 ** rng.uniform(-13.0, -9.0, size=(draws, num_bs, num_channels, num_bs))
        direct = 10.0 ** rng.uniform(low, high, size=(draws, num_bs, num_channels))
        for b in range(num_bs):
            gain[:, b, :, b] = direct[:, b, :]
        for one_gain in gain:
            if len(kept) == n:
                break
            one = PowerControlInstances.from_arrays(
                one_gain[None], pmax, noise, bandwidth, targets[len(kept)][None]
            )
            if bool(pc.minimum_power(one).feasible[0]):
                kept.append(one_gain)
    return PowerControlInstances.from_arrays(np.stack(kept), pmax, noise, bandwidth, targets)


def varied_power_control_instances(
    n: int = 40, num_bs: int = 3, num_channels: int = 2, seed: int = 2
) -> PowerControlInstances:
    """Path-loss-scale instances whose every field varies across instances (so that slicing
    errors show): Pmax 1..2 mW, noise 6..7e-14 W, rate targets ``U(0, 1e6)`` bit/s."""
    inst = random_instances(n, num_bs, num_channels, seed=seed, pathloss=True)
    targets = torch.rand(
        n, num_bs, num_channels, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    return PowerControlInstances.from_arrays(
        inst.gain,
        torch.linspace(1e-3, 2e-3, n, dtype=torch.float64),
        torch.linspace(6e-14, 7e-14, n, dtype=torch.float64),
        5e6,
        targets * 1e6,
    )


@pytest.fixture
def small_batch() -> PowerControlInstances:
    return random_instances(16, 3, 2, seed=1)


def random_miso_instances(
    n: int = 16, users: int = 3, antennas: int = 6, seed: int = 0, gamma: float = 2.0
) -> MisoInstances:
    """Rayleigh MISO instances (complex128): pmax 1 W, pc 0.1 W, eta 0.5, noise 0.05 W,
    SINR target ``gamma`` for every user, weights uniform in [0.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    channel = torch.randn(n, users, antennas, dtype=torch.complex128, generator=g)
    weights = 0.5 + torch.rand(n, users, generator=g, dtype=torch.float64)
    return MisoInstances.from_arrays(channel, 1.0, 0.1, 0.5, 0.05, gamma, weights)


def snr_miso_instances(
    n: int,
    antennas: int = 4,
    users: int = 2,
    seed: int = 0,
    gamma_db: tuple[float, float] = (0.0, 10.0),
    gamma_log10_max: float | None = None,
    pmax: float = 1.0,
    circuit_power: float = 0.1,
    efficiency: float = 0.5,
    noise: float = 1e-3,
    random_weights: bool = True,
    normalized: bool = False,
) -> MisoInstances:
    """Feasible MISO instances from complex Gaussian channels at SNR ``U(0, 30)`` dB (per
    instance, relative to ``efficiency * (pmax - circuit_power) / noise``), SINR targets
    ``U(*gamma_db)`` dB (``10**U(0, gamma_log10_max)`` when that is given), weights
    ``U(0.5, 1.5)`` (or 1 when not ``random_weights``); ``normalized=True`` returns
    :func:`miso.normalized_instances` of them."""
    from feasnet.problems import miso

    g = torch.Generator().manual_seed(seed)
    shape = (n, users, antennas)
    h = torch.complex(
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    ) / math.sqrt(2)
    snr = 10 ** (3 * torch.rand(n, 1, 1, generator=g, dtype=torch.float64))
    h = h * torch.sqrt(snr * noise / (efficiency * (pmax - circuit_power)))
    u = torch.rand(n, users, generator=g, dtype=torch.float64)
    if gamma_log10_max is not None:
        gamma = 10 ** (u * gamma_log10_max)
    else:
        low, high = gamma_db
        gamma = 10 ** ((low + (high - low) * u) / 10)
    weights = (
        0.5 + torch.rand(n, users, generator=g, dtype=torch.float64) if random_weights else 1.0
    )
    inst = MisoInstances.from_arrays(h, pmax, circuit_power, efficiency, noise, gamma, weights)
    keep = miso.minimum_power(inst).feasible.nonzero().squeeze(1)
    assert len(keep) > n // 2
    return miso.normalized_instances(inst[keep]) if normalized else inst[keep]


def varied_miso_instances(
    n: int = 20, users: int = 2, antennas: int = 4, seed: int = 0
) -> MisoInstances:
    """MISO instances whose every field varies across instances and users."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, users, antennas)) + 1j * rng.standard_normal((n, users, antennas))
    return MisoInstances.from_arrays(
        h * 1e-5,
        rng.uniform(1, 2, n),
        rng.uniform(0, 0.5, n),
        rng.uniform(0.3, 1, n),
        rng.uniform(1e-12, 2e-12, n),
        rng.uniform(0, 2, (n, users)),
        rng.uniform(0.5, 1.5, (n, users)),
    )


def energy_efficiency_instances(
    n: int = 8,
    num_bs: int = 3,
    num_channels: int = 2,
    seed: int = 0,
    ee: float = 2e7,
    min_rate: float = 0.0,
) -> PowerControlInstances:
    """Path-loss-scaled random instances carrying ``min_energy_efficiency = ee`` [bit/J]
    (feasible ones only when ``min_rate > 0``)."""
    base = random_instances(4 * n, num_bs, num_channels, seed=seed, min_rate=min_rate)
    inst = PowerControlInstances.from_arrays(
        base.gain * 1e-6,
        1.0,
        6.3e-14,
        5e6,
        min_rate,
        min_energy_efficiency=ee,
    )
    from feasnet.problems import power_control as pc

    keep = torch.nonzero(pc.minimum_power(inst).feasible).squeeze(1)[:n]
    return inst[keep]


PROBLEM_CASES = (
    "power-control/linear-rate",
    "power-control/rate",
    "power-control/energy-efficiency",
    "power-control/energy-efficiency+rate",
    "miso/sinr",
)
"""Every (family, constraint set) the conformance tests cover."""


def make_problem_case(name: str, n: int = 6):
    """``(problem, instances)`` for one of :data:`PROBLEM_CASES` (float64 / complex128)."""
    from feasnet.problems.miso_problem import MisoProblem
    from feasnet.problems.power_control_problem import PowerControlProblem

    if name == "power-control/linear-rate":
        return PowerControlProblem("linear-rate"), random_instances(n, 3, 2, seed=11)
    if name == "power-control/rate":
        return PowerControlProblem("rate"), random_instances(n, 3, 2, seed=12)
    if name == "power-control/energy-efficiency":
        return PowerControlProblem("energy-efficiency"), energy_efficiency_instances(n, seed=13)
    if name == "power-control/energy-efficiency+rate":
        inst = energy_efficiency_instances(n, seed=14, min_rate=1e6)
        return PowerControlProblem("energy-efficiency"), inst
    if name == "miso/sinr":
        return MisoProblem(), random_miso_instances(n, seed=15)
    raise KeyError(name)


@pytest.fixture(params=PROBLEM_CASES)
def problem_case(request):
    """One ``(problem, instances)`` per (family, constraint set); parametrizes the test."""
    return make_problem_case(request.param)


@pytest.fixture
def problem_cases():
    """Every ``(name, problem, instances)`` of :data:`PROBLEM_CASES`."""
    return [(name, *make_problem_case(name)) for name in PROBLEM_CASES]
