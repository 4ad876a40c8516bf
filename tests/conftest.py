"""Shared fixtures: small random power-control and MISO batches."""

from __future__ import annotations

import os

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
) -> PowerControlInstances:
    """Random instances with dominant direct gains (mostly feasible).

    ``pathloss=True`` scales gains to ~1e-10 and noise to ~6e-14 W as in the path-loss data.
    """
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
