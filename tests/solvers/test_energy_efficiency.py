"""SCA on the energy-efficiency constraint set; the solvers that cannot handle it refuse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from feasnet import solvers
from feasnet.problems import power_control as pc
from feasnet.problems.base import UnsupportedProblemError
from feasnet.problems.instances import PowerControlInstances
from tests.conftest import energy_efficiency_instances


def _grid_optimum(inst: PowerControlInstances, steps: int = 301) -> float:
    """Brute-force best feasible sum rate of one 2-BS, 1-channel instance [bit/s]."""
    grid = torch.linspace(0, float(inst.pmax[0]), steps, dtype=torch.float64)
    p1, p2 = torch.meshgrid(grid, grid, indexing="ij")
    power = torch.stack([p1.reshape(-1), p2.reshape(-1)], dim=1)[:, :, None]  # (M, 2, 1)
    many = PowerControlInstances(
        gain=inst.gain.expand(len(power), -1, -1, -1),
        pmax=inst.pmax.expand(len(power)),
        noise=inst.noise.expand(len(power)),
        bandwidth=inst.bandwidth.expand(len(power)),
        min_rate=inst.min_rate.expand(len(power), -1, -1),
        min_energy_efficiency=inst.min_energy_efficiency.expand(len(power), -1, -1),
    )
    ok = pc.is_feasible(power, many, rtol=0.0)
    return float(pc.sum_rate(power, many)[ok].max())


@pytest.mark.parametrize("min_rate", [0.0, 1e6])
def test_sca_is_feasible_and_near_the_brute_force_optimum(min_rate: float) -> None:
    inst = energy_efficiency_instances(
        4, num_bs=2, num_channels=1, seed=5, ee=4e7, min_rate=min_rate
    )
    assert len(inst) == 4
    result = solvers.solve("sca", inst, starts="multi")
    assert result.feasible.all()
    # the requirement binds: the unconstrained optimum of some instance violates it
    full = torch.full((len(inst), 2, 1), 1.0, dtype=torch.float64)
    assert not bool(pc.is_feasible(full, inst).all())
    for i in range(len(inst)):
        best = _grid_optimum(inst[i])
        # SCA is a local method: at least the grid's best up to the grid resolution
        assert result.sum_rate[i] >= best * (1 - 2e-3), (i, result.sum_rate[i], best)


def test_sca_on_the_fig12_preset() -> None:
    from feasnet.data.generate import generate
    from feasnet.data.presets import get_preset

    inst, _ = generate(get_preset("fig12-ee-50"), num_samples=4, seed=3)
    assert inst.min_energy_efficiency is not None
    result = solvers.solve("sca", inst, max_iterations=30)
    assert result.feasible.all()
    anchor_rate = pc.sum_rate(pc.interior_anchor(inst), inst).numpy()
    assert np.all(result.sum_rate >= anchor_rate)


@pytest.mark.parametrize("name", ["gp", "fw", "ga", "global"])
def test_solvers_without_energy_efficiency_refuse(name: str) -> None:
    inst = energy_efficiency_instances(2)
    with pytest.raises(
        UnsupportedProblemError, match=f"{name} does not handle the energy-efficiency"
    ):
        solvers.solve(name, inst)


def test_min_power_meets_energy_efficiency() -> None:
    inst = energy_efficiency_instances(4, min_rate=1e6)
    result = solvers.solve("min-power", inst)
    assert result.feasible.all()
