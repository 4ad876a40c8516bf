"""Every solver reports unreachable targets and out-of-range data at once, with a message."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from feasnet import solvers
from feasnet.problems import miso
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import frank_wolfe

FAST = 5.0  # seconds, including a first cvxpy build where there is one

POWER_CONTROL = {
    "min-power": {},
    "gp": {},
    "sca": {},
    "fw": {},
    "ga": {"population": 8, "generations": 5},
}


def gains(scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(0).exponential(size=(2, 3, 2, 3)) * scale


@pytest.mark.parametrize("name", list(POWER_CONTROL))
def test_unreachable_rate_target_is_reported_by_every_solver(name: str) -> None:
    inst = PowerControlInstances.from_arrays(gains(), 1.0, 1e-8, 5e6, 6e9)  # alpha/W = 1200
    start = time.perf_counter()
    result = solvers.solve(name, inst, workers=1, **POWER_CONTROL[name])
    assert time.perf_counter() - start < FAST
    assert not result.feasible.any() and np.isnan(result.power).all()
    for message in result.messages:
        assert message.startswith("infeasible: rate target of user")
        assert "overflows" in message


@pytest.mark.parametrize("name", list(POWER_CONTROL))
def test_gains_outside_float64_range_are_reported_by_every_solver(name: str) -> None:
    inst = PowerControlInstances.from_arrays(gains(1e300), 1.0, 1e-8, 5e6, 1e6)
    start = time.perf_counter()
    result = solvers.solve(name, inst, workers=1, **POWER_CONTROL[name])
    assert time.perf_counter() - start < FAST
    assert not result.feasible.any()
    assert all(m.startswith("infeasible (outside float64 range)") for m in result.messages)


@pytest.mark.parametrize("name", list(POWER_CONTROL))
def test_every_infeasible_output_carries_a_message(name: str) -> None:
    # Huge but finite SNRs (gains x 1e100 at path-loss scale) strain the conic solvers.
    rng = np.random.default_rng(1)
    h = 10 ** rng.uniform(-13, -9, size=(3, 3, 2, 3))
    h[:, np.arange(3), :, np.arange(3)] = 10 ** rng.uniform(-9.5, -7.5, size=(3, 3, 2))
    inst = PowerControlInstances.from_arrays(h * 1e100, 1.0, 6.3e-14, 5e6, 2.5e6)
    result = solvers.solve(name, inst, workers=1, **POWER_CONTROL[name])
    for feasible, message in zip(result.feasible, result.messages, strict=True):
        assert feasible or message


def miso_instances(scale: float, sinr_min: float) -> miso.MisoInstances:
    rng = np.random.default_rng(3)
    h = (rng.normal(size=(2, 3, 4)) + 1j * rng.normal(size=(2, 3, 4))) / np.sqrt(2)
    return miso.MisoInstances.from_arrays(h * scale, 1.0, 0.1, 0.5, 1e-3, sinr_min)


@pytest.mark.parametrize("name", ["min-power", "wmmse", "wmmse-sdr"])
@pytest.mark.parametrize(("scale", "sinr_min"), [(1.0, 1e300), (1e300, 1.0), (1e300, 1e300)])
def test_miso_solvers_report_unreachable_or_out_of_range(
    name: str, scale: float, sinr_min: float
) -> None:
    inst = miso_instances(scale, sinr_min)
    start = time.perf_counter()
    result = solvers.solve(name, inst, workers=1)
    assert time.perf_counter() - start < FAST
    assert not result.feasible.any()
    assert all(m.startswith("infeasible") for m in result.messages)


@pytest.mark.parametrize("name", ["min-power", "wmmse", "wmmse-sdr"])
def test_miso_every_infeasible_output_carries_a_message(name: str) -> None:
    result = solvers.solve(name, miso_instances(1e150, 1.0), workers=1)
    for feasible, message in zip(result.feasible, result.messages, strict=True):
        assert feasible or message


def test_frank_wolfe_stops_on_a_non_finite_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    inst = PowerControlInstances.from_arrays(
        gains() * np.where(np.eye(3)[:, None, :] > 0, 50.0, 1.0), 1.0, 1e-3, 5e6, 1e5
    )
    real = frank_wolfe._value_and_grad

    def poisoned(x: torch.Tensor, instances: PowerControlInstances):
        value, grad = real(x, instances)
        grad[0] = float("nan")  # whichever instance comes first in the active set
        return value, grad

    monkeypatch.setattr(frank_wolfe, "_value_and_grad", poisoned)
    start = time.perf_counter()
    result = frank_wolfe.solve(inst)
    assert time.perf_counter() - start < FAST
    assert result.feasible.all()  # the start (interior anchor) is kept
    assert "not finite" in result.messages[0]
    assert result.converged is not None and not result.converged[0]
