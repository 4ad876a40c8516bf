"""The high-SINR GP baseline and the SCA reference: feasibility, ordering, optimality, edges."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import gp, sca
from feasnet.solvers.result import AllocationResult
from tests.conftest import pathloss_instances

PMAX, NOISE, BANDWIDTH = 1e-3, 6.3e-14, 5e6


# Strong direct gains, redrawing each infeasible draw in place.
GP_DRAWS: dict = dict(direct_log10=(-9.5, -7.5), draws_per_round=1)


def grid_optimum(instance: PowerControlInstances, points: int = 2001) -> float:
    """Best float64 sum rate [bit/s] over a ``points x points`` grid of ``[0, Pmax]^2`` that
    meets the rate targets (B = 2, Q = 1; a single instance)."""
    a = instance.as_numpy()
    h, pmax, noise, w = a["H"][0][:, 0, :], a["pmax"][0], a["noise"][0], a["bandwidth"][0]
    alpha = a["min_rate"][0][:, 0]
    p = np.linspace(0.0, pmax, points)
    p0, p1 = np.meshgrid(p, p, indexing="ij")
    r0 = w * np.log2(1 + h[0, 0] * p0 / (h[0, 1] * p1 + noise))
    r1 = w * np.log2(1 + h[1, 1] * p1 / (h[1, 0] * p0 + noise))
    total = np.where((r0 >= alpha[0]) & (r1 >= alpha[1]), r0 + r1, -np.inf)
    return float(total.max())


def assert_feasible(result: AllocationResult, rtol: float = 1e-6) -> None:
    """Every allocation passed the float64 check at ``rtol`` (messages shown otherwise)."""
    failed = [m for m, ok in zip(result.messages, result.feasible, strict=True) if not ok]
    assert result.feasible.all(), failed
    assert result.rtol == rtol


# ---------------------------------------------------------------------------- main properties
def test_feasible_and_sca_beats_gp_on_pathloss_scale() -> None:
    inst = pathloss_instances(12, 3, 2, seed=0, **GP_DRAWS)
    res_gp = gp.solve(inst, workers=1)
    res_sca = sca.solve(inst, workers=1)
    assert res_gp.method == "gp" and res_sca.method == "sca"
    assert_feasible(res_gp)
    assert_feasible(res_sca)
    # a second, independent float64 check of the returned powers
    power = torch.as_tensor(res_sca.power)
    assert pc.is_feasible(power, inst, rtol=1e-6).all()
    assert (res_sca.power >= 0).all()
    assert (res_sca.sum_rate >= res_gp.sum_rate * (1 - 1e-9)).all()
    assert np.mean(res_sca.sum_rate / res_gp.sum_rate - 1) > 1e-4
    assert res_gp.seconds.shape == (12,) and (res_gp.seconds > 0).all()


def test_qos_rows_bind_and_hold_at_pathloss_scale() -> None:
    """Normalization test: with tight targets the QoS rows are active at the GP optimum of
    raw ~1e-10 gains and ~6e-14 W noise, and still hold at rtol 1e-6."""
    inst = pathloss_instances(6, 4, 2, seed=3, min_rate=7e6, **GP_DRAWS)
    for result in (gp.solve(inst, workers=1), sca.solve(inst, workers=1)):
        assert_feasible(result)
        slack = pc.rates(torch.as_tensor(result.power), inst) / inst.min_rate - 1  # (N, B, Q)
        assert slack.min() > -1e-6
    # a binding row somewhere: the tight targets matter (otherwise the test shows nothing)
    assert float(slack.amin()) < 1e-3


@pytest.mark.slow
def test_parallel_workers_give_the_same_points() -> None:
    inst = pathloss_instances(4, 2, 2, seed=5, **GP_DRAWS)
    serial = gp.solve(inst, workers=1)
    parallel = gp.solve(inst, workers=2)
    assert_feasible(parallel)
    np.testing.assert_allclose(parallel.power, serial.power, rtol=1e-7, atol=1e-15)


def test_sca_matches_grid_search_on_two_users() -> None:
    inst = pathloss_instances(12, 2, 1, seed=11, **GP_DRAWS)
    res_gp = gp.solve(inst, workers=1)
    single = sca.solve(inst, workers=1)
    multi = sca.solve(inst, workers=1, starts="multi")
    best = np.array([grid_optimum(inst[i]) for i in range(len(inst))])
    for result in (single, multi):
        assert_feasible(result)
        assert (result.sum_rate >= res_gp.sum_rate * (1 - 1e-9)).all()
    gap_single = 1 - single.sum_rate / best
    gap_multi = 1 - multi.sum_rate / best
    # multi-start reaches the grid optimum on every instance (grid spacing costs < 0.5%) ...
    assert gap_multi.max() < 5e-3
    # ... single-start SCA is a local method: right on most instances, never worse than GP
    assert np.mean(gap_single < 5e-3) >= 0.75
    assert (multi.sum_rate >= single.sum_rate * (1 - 1e-9)).all()


# ---------------------------------------------------------------------------- edge cases
def test_infeasible_instances_are_reported_not_crashed_on() -> None:
    gain = np.zeros((3, 2, 1, 2))
    gain[0] = [[[1e-8, 1e-11]], [[1e-11, 1e-8]]]  # feasible
    gain[1] = [[[1e-9, 1e-9]], [[1e-9, 1e-9]]]  # rho(B_q) >= 1: unreachable targets
    gain[2] = [[[1e-14, 1e-15]], [[1e-15, 1e-14]]]  # reachable, but P_min > Pmax
    inst = PowerControlInstances.from_arrays(gain, PMAX, NOISE, BANDWIDTH, 5e6)
    for module in (gp, sca):
        result = module.solve(inst, workers=1)
        assert result.feasible.tolist() == [True, False, False]
        assert result.messages[0] == ""
        assert all("infeasible" in m for m in result.messages[1:])
        assert "any power" in result.messages[1] and "exceed pmax" in result.messages[2]
        assert np.isnan(result.power[1:]).all()


def test_zero_and_mixed_rate_targets() -> None:
    """beta = 0 users have no QoS row in the GP (the row would be 0 <= 1)."""
    inst0 = pathloss_instances(4, 3, 2, seed=7, min_rate=0.0, **GP_DRAWS)
    rng = np.random.default_rng(8)
    mixed = rng.choice([0.0, 2.5e6], size=(4, 3, 2))
    inst1 = pathloss_instances(4, 3, 2, seed=9, min_rate=mixed, **GP_DRAWS)
    for inst in (inst0, inst1):
        res_gp = gp.solve(inst, workers=1)
        res_sca = sca.solve(inst, workers=1)
        assert_feasible(res_gp)
        assert_feasible(res_sca)
        assert (res_sca.sum_rate >= res_gp.sum_rate * (1 - 1e-9)).all()


def test_zero_cross_gains_and_single_bs() -> None:
    inst = pathloss_instances(3, 3, 2, seed=4, **GP_DRAWS)
    gain = inst.gain.clone()
    gain[:, 0, :, 1] = 0.0  # BS 1 does not reach the users of BS 0
    zeroed = PowerControlInstances.from_arrays(gain, PMAX, NOISE, BANDWIDTH, 2.5e6)
    single = PowerControlInstances.from_arrays(
        np.full((2, 1, 3, 1), 1e-9), PMAX, NOISE, BANDWIDTH, 2.5e6
    )
    for batch in (zeroed, single):
        assert_feasible(gp.solve(batch, workers=1))
        assert_feasible(sca.solve(batch, workers=1))
    # one BS, no interference: both maximize sum log(1 + g p) exactly (equal gains: even split)
    res = sca.solve(single, workers=1)
    np.testing.assert_allclose(res.power, PMAX / 3, rtol=1e-5)


def test_solver_failure_falls_back_to_the_anchor() -> None:
    inst = pathloss_instances(2, 3, 2, seed=2, **GP_DRAWS)
    anchor = pc.interior_anchor(inst).numpy()
    res_gp = gp.solve(inst, workers=1, solver="NOT_A_SOLVER")
    assert_feasible(res_gp)
    assert all("failed" in m and "anchor" in m for m in res_gp.messages)
    np.testing.assert_allclose(res_gp.power, anchor)
    res_sca = sca.solve(inst, workers=1, gp_solver="NOT_A_SOLVER")
    assert_feasible(res_sca)
    assert (res_sca.sum_rate > res_gp.sum_rate).all()  # SCA still improves on the anchor
    bad_sub = sca.solve(inst, workers=1, solver="NOT_A_SOLVER")
    assert_feasible(bad_sub)
    assert all("subproblem 1 failed" in m for m in bad_sub.messages)


def test_polish_repairs_a_point_that_misses_by_a_hair() -> None:
    targets = np.full((1, 3, 2), 7e6)
    targets[0, 0, 0] = 0.0  # this user may sit at zero power
    inst = pathloss_instances(1, 3, 2, seed=6, min_rate=targets, **GP_DRAWS)
    a = inst.as_numpy()
    prepared = gp.prepare_instance(
        {
            "H": a["H"][0],
            "pmax": PMAX,
            "noise": NOISE,
            "bandwidth": BANDWIDTH,
            "min_rate": a["min_rate"][0],
        }
    )
    nudged = prepared.min_power * (1 - 1e-7)  # every QoS row violated by a hair
    nudged[0, 0] = -1e-18  # a round-off negative entry
    assert not pc.is_feasible(torch.as_tensor(nudged)[None], inst, rtol=1e-9)[0]
    fixed, t = gp.polish(nudged, prepared)
    assert 0.99 < t < 1.0
    assert (fixed >= 0).all()
    assert pc.is_feasible(torch.as_tensor(fixed)[None], inst, rtol=1e-12)[0]


def test_problems_are_parametrized_and_cached() -> None:
    inst = pathloss_instances(2, 2, 3, seed=1, **GP_DRAWS)
    gp.solve(inst, workers=1)
    sca.solve(inst, workers=1)
    gp_key = next(k for k in gp._GP_CACHE if k[:3] == ("dgp", 2, 3))
    built = gp._GP_CACHE[gp_key]
    assert built.problem.is_dgp(dpp=True)
    assert sca._SCA_CACHE[(2, 3)].problem.is_dcp(dpp=True)
    gp.solve(inst, workers=1)
    assert gp._GP_CACHE[gp_key] is built


def test_log_formulation_gives_the_same_gp_point() -> None:
    targets = np.random.default_rng(10).choice([0.0, 2.5e6], size=(5, 3, 2))
    inst = pathloss_instances(5, 3, 2, seed=10, min_rate=targets, **GP_DRAWS)
    dgp = gp.solve(inst, workers=1)
    log = gp.solve(inst, workers=1, formulation="log")
    assert_feasible(log)
    np.testing.assert_allclose(log.sum_rate, dgp.sum_rate, rtol=1e-5)
    np.testing.assert_allclose(log.power, dgp.power, atol=1e-3 * PMAX)
    assert any(k[0] == "log" for k in gp._GP_CACHE)
    assert_feasible(sca.solve(inst, workers=1, gp_formulation="log"))


def test_unknown_options_are_rejected() -> None:
    inst = pathloss_instances(1, 2, 1, seed=0, **GP_DRAWS)
    with pytest.raises(ValueError, match="starts"):
        sca.solve(inst, workers=1, starts="random")
    with pytest.raises(ValueError, match="formulation"):
        gp.solve(inst, workers=1, formulation="cone")


@pytest.mark.parametrize("module", [gp, sca])
def test_registry_dispatch(module: Any) -> None:
    from feasnet import solvers

    inst = pathloss_instances(2, 2, 1, seed=12, **GP_DRAWS)
    name = module.__name__.rsplit(".", 1)[1]
    result = solvers.solve(name, inst, workers=1)
    assert result.method == name
    assert_feasible(result)
