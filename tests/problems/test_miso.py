"""MISO problem: hand-computed SINR/WSR, constraints, exact min-power test, anchor, ray boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from feasnet.problems import miso
from feasnet.problems.instances import InvalidInstanceError

from ..conftest import random_miso_instances as random_instances


def _two_by_two() -> tuple[miso.MisoInstances, torch.Tensor]:
    """h_1 = [1, 0], h_2 = [0.5, 1j]; v_1 = [1, 0], v_2 = [0, 2]; noise 0.5."""
    channel = torch.tensor([[[1, 0], [0.5, 1j]]], dtype=torch.complex128)
    inst = miso.MisoInstances.from_arrays(
        channel,
        pmax=12.0,
        circuit_power=1.0,
        efficiency=0.5,
        noise=0.5,
        sinr_min=[1.0, 2.0],
        weights=[1.0, 2.0],
    )
    beams = torch.tensor([[[1, 0], [0, 2]]], dtype=torch.complex128)
    return inst, beams


def test_hand_computed_sinr_and_weighted_sum_rate():
    inst, beams = _two_by_two()
    # G = H V: user 1 sees beam 1 with amplitude 1 and beam 2 with 0; user 2 sees 0.5 and 2j.
    expected_sinr = torch.tensor([[1 / 0.5, 4 / (0.25 + 0.5)]], dtype=torch.float64)
    torch.testing.assert_close(miso.sinr(beams, inst), expected_sinr)
    expected_wsr = math.log2(3) + 2 * math.log2(1 + 16 / 3)
    assert float(miso.weighted_sum_rate(beams, inst)) == pytest.approx(expected_wsr, rel=1e-12)
    assert float(miso.transmit_power(beams)) == pytest.approx(5.0)
    assert float(miso.consumed_power(beams, inst)) == pytest.approx(5.0 / 0.5 + 1.0)
    # budget 12 W covers 11 W; both targets met
    assert bool(miso.is_feasible(beams, inst))
    values = miso.constraint_values(beams, inst)
    torch.testing.assert_close(
        values, torch.tensor([[5 / 5.5 - 1, 1 - 2 / 1, 1 - (16 / 3) / 2]], dtype=torch.float64)
    )


def test_violations_and_tolerance():
    inst, beams = _two_by_two()
    over = beams * math.sqrt(1.2)  # 6 W transmit -> 13 W consumed > 12 W
    v = miso.violations(over, inst)
    assert float(v.budget_excess) == pytest.approx(1.0)
    assert not bool(miso.is_feasible(over, inst))
    # just inside the relative tolerance passes, just outside fails
    edge = beams * math.sqrt(5.5 / 5 * (1 + 0.5e-6 * 12 / 11))
    assert bool(miso.is_feasible(edge, inst, rtol=1e-6))
    assert not bool(miso.is_feasible(beams * math.sqrt(5.5 / 5 * 1.00001), inst))
    nan_beams = beams.clone()
    nan_beams[0, 0, 0] = complex(math.nan, 0)
    assert not bool(miso.is_feasible(nan_beams, inst))
    assert miso.violation_measure(beams, inst).item() == 0.0


def test_minimum_power_meets_targets_with_equality_and_decides_feasibility():
    inst = random_instances(n=32)
    result = miso.minimum_power(inst)
    assert bool(result.feasible.all())
    torch.testing.assert_close(miso.sinr(result.beams, inst), inst.sinr_min, rtol=1e-9, atol=0)
    assert bool(miso.is_feasible(result.beams, inst).all())
    # a budget just below the minimum power makes it infeasible; just above, feasible
    arrays = inst.as_numpy()
    budget = result.power.numpy()
    for factor, expected in ((0.999, False), (1.001, True)):
        pmax = arrays["pc"] + factor * budget / arrays["eta"]
        tight = miso.MisoInstances.from_arrays(
            arrays["H"], pmax, arrays["pc"], arrays["eta"], arrays["noise"], arrays["sinr_min"]
        )
        assert bool((miso.minimum_power(tight).feasible == expected).all())


def test_circuit_power_above_pmax_is_reported_infeasible_not_an_error():
    channel = torch.tensor([[[1, 0, 0], [0, 1, 0]]], dtype=torch.complex128)
    inst = miso.MisoInstances.from_arrays(channel, 1.0, 2.0, 0.5, 1.0, 1.0)
    result = miso.minimum_power(inst)
    assert not bool(result.feasible)
    assert "exceeds" in result.reasons()[0]


def test_targets_unreachable_at_any_power_are_reported():
    # two users on the same channel cannot both have SINR >= 1
    inst = miso.MisoInstances.from_arrays(
        torch.ones(1, 2, 3, dtype=torch.complex128), 1.0, 0.1, 0.5, 1.0, 1.0
    )
    result = miso.minimum_power(inst, stop_above_budget=False)
    assert not bool(result.qos_reachable) and not bool(result.feasible)
    assert "any power" in result.reasons()[0]
    # with the early stop (default) it is only known to exceed the budget: still infeasible
    assert not bool(miso.minimum_power(inst).feasible)


def test_early_stop_above_budget_agrees_with_the_exact_test():
    inst = random_instances(n=64, seed=5, gamma=10.0)
    exact = miso.minimum_power(inst, stop_above_budget=False)
    fast = miso.minimum_power(inst)
    assert 0 < int(exact.feasible.sum()) < 64  # a mix of feasible and infeasible instances
    assert bool((fast.feasible == exact.feasible).all())
    assert bool((fast.power[~fast.feasible] <= exact.power[~fast.feasible] * (1 + 1e-12)).all())


def test_users_without_target_get_no_power():
    inst = random_instances(n=4)
    inst = miso.MisoInstances.from_arrays(
        inst.channel, 1.0, 0.1, 0.5, 0.05, torch.tensor([0.0, 2.0, 2.0], dtype=torch.float64)
    )
    result = miso.minimum_power(inst)
    assert float(result.beams[:, :, 0].abs().max()) == 0.0
    assert bool(miso.is_feasible(result.beams, inst).all())


def test_anchor_is_strictly_interior():
    inst = random_instances(n=32)
    anchor = miso.interior_anchor(inst)
    values = miso.constraint_values(anchor, inst)
    assert bool((values < -1e-3).all())
    assert bool(miso.is_feasible(anchor, inst).all())


def test_boundary_distance_is_the_first_exit_along_the_ray():
    inst = random_instances(n=64, seed=3)
    anchor = miso.interior_anchor(inst)
    direction = torch.randn(anchor.shape, dtype=torch.complex128, generator=torch.Generator())
    t_max = miso.boundary_distance(anchor, direction, inst)
    assert bool(torch.isfinite(t_max).all()) and bool((t_max > 0).all())
    # strictly inside on a fine grid of [0, t_max), on the boundary at t_max, outside past it
    for fraction in np.linspace(0.0, 0.999, 40):
        values = miso.constraint_values(anchor + fraction * t_max[:, None, None] * direction, inst)
        assert bool((values.amax(dim=1) < 0).all())
    at_boundary = miso.constraint_values(anchor + t_max[:, None, None] * direction, inst)
    assert float(at_boundary.amax(dim=1).abs().max()) < 1e-9
    beyond = miso.constraint_values(anchor + 1.001 * t_max[:, None, None] * direction, inst)
    assert bool((beyond.amax(dim=1) > 0).all())


def test_scale_toward_anchor_keeps_feasible_points_and_repairs_others():
    inst = random_instances(n=16, seed=4)
    anchor = miso.interior_anchor(inst)
    inside = anchor * 1.0001
    moved, step = miso.scale_toward_anchor(inside, anchor, inst)
    torch.testing.assert_close(moved, inside)
    assert bool((step == 1).all())
    far = 10 * torch.randn(anchor.shape, dtype=torch.complex128)
    moved, step = miso.scale_toward_anchor(far, anchor, inst, shrink=1e-9)
    assert bool((step < 1).all())
    assert bool(miso.is_feasible(moved, inst).all())


def test_normalized_units_preserve_every_constraint_and_the_objective():
    inst = random_instances(n=8)
    beams = 0.3 * torch.randn(8, 6, 3, dtype=torch.complex128)
    normalized = miso.normalized_instances(inst)
    scaled = miso.beams_to_normalized(beams, inst)
    torch.testing.assert_close(
        miso.constraint_values(scaled, normalized), miso.constraint_values(beams, inst)
    )
    torch.testing.assert_close(
        miso.weighted_sum_rate(scaled, normalized), miso.weighted_sum_rate(beams, inst)
    )
    torch.testing.assert_close(miso.beams_from_normalized(scaled, inst), beams)


def test_complex64_works_and_checks_in_float64():
    inst = random_instances(n=8).to(torch.complex64)
    assert inst.channel.dtype == torch.complex64 and inst.pmax.dtype == torch.float32
    anchor = miso.interior_anchor(inst)
    assert anchor.dtype == torch.complex64
    assert bool(miso.is_feasible(anchor, inst).all())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": np.full((2, 3, 4), np.nan)}, "H"),
        ({"channel": np.ones((2, 3))}, "H"),
        ({"channel": np.zeros((2, 3, 4))}, "H"),
        ({"pmax": -1.0}, "pmax"),
        ({"pmax": [1.0, 2.0, 3.0]}, "pmax"),
        ({"circuit_power": -0.1}, "pc"),
        ({"efficiency": 1.5}, "eta"),
        ({"efficiency": 0.0}, "eta"),
        ({"noise": math.inf}, "noise"),
        ({"sinr_min": -1.0}, "sinr_min"),
        ({"sinr_min": np.ones((2, 5))}, "sinr_min"),
        ({"weights": np.array(["a", "b"])}, "weights"),
        ({"pmax": None}, "pmax"),
    ],
)
def test_bad_input_names_the_field(change, field):
    arguments = {
        "channel": np.ones((2, 3, 4), dtype=complex),
        "pmax": 1.0,
        "circuit_power": 0.1,
        "efficiency": 0.5,
        "noise": 1e-3,
        "sinr_min": 1.0,
        "weights": 1.0,
    }
    arguments.update(change)
    with pytest.raises(InvalidInstanceError, match=rf"^{field}:"):
        miso.MisoInstances.from_arrays(**arguments)


def test_indexing_concatenation_and_numpy_round_trip():
    inst = random_instances(n=6)
    part = inst[2:4]
    assert len(part) == 2 and len(inst[0]) == 1
    joined = miso.MisoInstances.concatenate([inst[:3], inst[3:]])
    torch.testing.assert_close(joined.channel, inst.channel)
    again = miso.MisoInstances.from_numpy(inst.as_numpy())
    torch.testing.assert_close(again.weights, inst.weights)
    with pytest.raises(InvalidInstanceError, match=r"^eta:"):
        miso.MisoInstances.from_numpy({k: v for k, v in inst.as_numpy().items() if k != "eta"})
