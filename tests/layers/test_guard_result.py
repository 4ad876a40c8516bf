"""The guard and the tolerance re-check applied to finished results of any method."""

from __future__ import annotations

import numpy as np
import torch

from feasnet import solvers
from feasnet.layers.guard import guard_result
from feasnet.problems import miso
from feasnet.problems import power_control as pc
from feasnet.solvers.result import AllocationResult, BeamformingResult, with_tolerance
from tests.conftest import random_instances, random_miso_instances


def test_guard_result_repairs_power_control_allocations_and_nan_rows() -> None:
    instances = random_instances(12, 3, 2, seed=4)
    assert bool(pc.minimum_power(instances).feasible.all())
    power = instances.pmax[:, None, None].expand(12, 3, 2).clone() * 0.9  # over budget
    power[0] = float("nan")  # a failed solve
    broken = AllocationResult.checked("x", power, instances, 0.0)
    assert not broken.feasible.any()
    fixed = guard_result(broken, instances)
    assert fixed.feasible.all()
    assert pc.is_feasible(torch.as_tensor(fixed.power), instances.to(torch.float64)).all()
    assert all("guard fired" in m for m in fixed.messages)
    # feasible allocations are left exactly as they were
    again = guard_result(fixed, instances)
    np.testing.assert_array_equal(again.power, fixed.power)


def test_guard_result_repairs_beams_and_keeps_unfixable_instances() -> None:
    instances = random_miso_instances(8, users=3, antennas=6, seed=2, gamma=1.0)
    minimum = miso.minimum_power(instances)
    beams = torch.ones(8, 6, 3, dtype=torch.complex128) * 10.0  # far over the budget
    broken = BeamformingResult.checked("x", beams, instances, 0.0)
    fixed = guard_result(broken, instances)
    feasible = minimum.feasible.numpy()
    assert (fixed.feasible == feasible).all() and feasible.any()


def test_with_tolerance_rechecks_and_keeps_extras() -> None:
    instances = random_instances(6, 2, 2, seed=3)
    result = solvers.solve("min-power", instances)
    result.converged = np.ones(6, dtype=bool)
    # the minimum-power point meets every QoS row with equality: a negative tolerance fails it
    strict = with_tolerance(result, instances, rtol=-1e-3)
    assert strict.rtol == -1e-3 and not strict.feasible.any()
    assert strict.converged is not None and strict.converged.all()
    loose = with_tolerance(strict, instances, rtol=1e-6)
    assert loose.feasible.all()
