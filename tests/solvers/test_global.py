"""Global solvers with certified bounds: brute force on tiny instances, bounds above every
known feasible value, float64 feasibility, time limit, infeasible instances."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from feasnet import solvers
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.problems import miso
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import genetic, global_miso, global_power_control, sca, wmmse
from feasnet.solvers.result import AllocationResult, BeamformingResult
from tests.solvers.test_gp_sca import grid_optimum, pathloss_instances
from tests.solvers.test_miso_solvers import rayleigh


def assert_certified(result: AllocationResult | BeamformingResult, gap: float) -> None:
    """Every instance: feasible in float64 at rtol 1e-6, bound >= value, gap reached."""
    assert result.method == "global"
    assert result.feasible.all(), result.messages
    assert result.upper_bound is not None and result.gap is not None
    assert result.converged is not None and result.converged.all(), result.messages
    assert (result.upper_bound >= result.objective).all()
    np.testing.assert_allclose(
        result.gap, (result.upper_bound - result.objective) / result.upper_bound, atol=1e-12
    )
    assert (result.gap <= gap).all()
    assert all(m == f"optimal within gap {gap:g}" for m in result.messages)


def grid_optimum_two_channels(instance: PowerControlInstances, points: int = 25) -> float:
    """Best sum rate [bit/s] over a grid of ``[0, Pmax]^4`` (B = 2, Q = 2, one instance) that
    meets the budgets and the rate targets."""
    p = np.linspace(0.0, float(instance.pmax[0]), points)
    grids = np.meshgrid(p, p, p, p, indexing="ij")
    power = np.stack([g.reshape(-1) for g in grids], axis=1).reshape(-1, 2, 2)  # [n, b, q]
    inst = PowerControlInstances.from_arrays(
        instance.gain.expand(power.shape[0], -1, -1, -1),
        instance.pmax[0],
        instance.noise[0],
        instance.bandwidth[0],
        instance.min_rate.expand(power.shape[0], -1, -1),
    )
    tensor = torch.as_tensor(power)
    ok = pc.is_feasible(tensor, inst, rtol=0.0)
    return float(torch.where(ok, pc.sum_rate(tensor, inst), -math.inf).max())


# ---------------------------------------------------------------------------- power control
def test_power_control_matches_fine_grid_single_channel() -> None:
    inst = pathloss_instances(4, num_bs=2, num_channels=1, seed=3)
    gap = 1e-5
    result = global_power_control.solve(inst, workers=1, gap=gap)
    assert_certified(result, gap)
    for i in range(len(inst)):
        grid = grid_optimum(inst[i : i + 1])  # 2001 x 2001 grid
        assert grid <= result.upper_bound[i] * (1 + 1e-12)
        assert result.sum_rate[i] >= grid * (1 - gap)


def test_power_control_matches_grid_two_channels_and_the_rate_space_search() -> None:
    inst = pathloss_instances(3, num_bs=2, num_channels=2, seed=5)
    gap = 1e-4
    result = global_power_control.solve(inst, workers=1, gap=gap)
    assert_certified(result, gap)
    # an independent certified search over rate boxes brackets the same optimum
    other = global_power_control.solve(inst, workers=1, algorithm="rate", polish=False)
    assert_certified(other, 1e-3)
    assert (other.upper_bound >= result.sum_rate).all()
    assert (result.upper_bound >= other.sum_rate).all()
    for i in range(len(inst)):
        grid = grid_optimum_two_channels(inst[i : i + 1])
        assert grid <= result.upper_bound[i] * (1 + 1e-12)
        assert result.sum_rate[i] >= grid * (1 - gap)


def test_power_control_bound_above_sca_and_ga() -> None:
    inst = pathloss_instances(3, num_bs=3, num_channels=2, seed=11)
    result = solvers.solve("global", inst, workers=1)
    assert_certified(result, 1e-3)
    local = sca.solve(inst, workers=1)
    evolved = genetic.solve(inst, generations=30, seed=0)
    for other in (local, evolved):
        assert other.feasible.all()
        assert (result.upper_bound >= other.sum_rate).all()
    # the global point is at least as good as SCA up to the gap
    assert (result.sum_rate >= local.sum_rate * (1 - 1e-3)).all()


def test_power_control_time_limit_reported() -> None:
    # U = 8: tens of seconds to certify (a U = 6 instance can now close gap 1e-9 within 0.3 s)
    inst, _ = generate(get_preset("small").with_overrides(num_bs=4), num_samples=1, seed=0)
    start = time.perf_counter()
    result = global_power_control.solve(inst, workers=1, gap=1e-9, time_limit=0.3, polish=False)
    assert time.perf_counter() - start < 5.0
    assert result.messages[0].startswith("time limit: gap ")
    assert result.converged is not None and not result.converged[0]
    assert result.feasible[0]
    assert result.upper_bound is not None and result.upper_bound[0] >= result.sum_rate[0]


def test_power_control_box_limit_bounds_memory() -> None:
    # the open list of a U = 8 search outgrows 50 boxes at once: the search stops there with a
    # certified bound and says why, instead of growing until the memory runs out
    inst, _ = generate(get_preset("small").with_overrides(num_bs=4), num_samples=1, seed=0)
    result = global_power_control.solve(
        inst, workers=1, gap=1e-9, time_limit=60.0, polish=False, max_open_boxes=50
    )
    assert result.messages[0].startswith("box limit: gap ")
    assert result.converged is not None and not result.converged[0]
    assert result.feasible[0]
    assert result.upper_bound is not None and result.upper_bound[0] >= result.sum_rate[0]
    with pytest.raises(ValueError, match="max_open_boxes"):
        global_power_control.solve(inst, workers=1, max_open_boxes=0)


def test_power_control_infeasible_reported() -> None:
    inst = pathloss_instances(2, num_bs=2, num_channels=2, seed=4)
    rates = inst.min_rate.clone()
    rates[1] = 1e9  # 1 Gbit/s on 5 MHz: unreachable
    inst = PowerControlInstances.from_arrays(
        inst.gain, inst.pmax, inst.noise, inst.bandwidth, rates
    )
    result = global_power_control.solve(inst, workers=1)
    assert result.feasible.tolist() == [True, False]
    assert result.messages[1].startswith("infeasible")
    assert result.upper_bound is not None and math.isnan(result.upper_bound[1])
    assert result.converged is not None and not result.converged[1]


# ---------------------------------------------------------------------------- MISO
def miso_grid_optimum(inst: miso.MisoInstances, points: int = 121) -> float:
    """Best WSR over a ``points x points`` grid of rate pairs (K = 2, one instance) whose
    targets the library's exact minimum-power test accepts."""
    budget = float(inst.transmit_budget[0])
    channel = inst.channel[0] / torch.sqrt(inst.noise[0])
    top = torch.log2(1 + budget * (channel.abs() ** 2).sum(dim=1)).numpy()
    low = np.log2(1 + inst.sinr_min[0].numpy())
    r0, r1 = np.meshgrid(
        np.linspace(low[0], top[0], points), np.linspace(low[1], top[1], points), indexing="ij"
    )
    rates = np.stack([r0.reshape(-1), r1.reshape(-1)], axis=1)
    n = rates.shape[0]
    batch = miso.MisoInstances.from_arrays(
        inst.channel.expand(n, -1, -1),
        inst.pmax[0],
        inst.circuit_power[0],
        inst.efficiency[0],
        inst.noise[0],
        np.expm1(rates * math.log(2.0)),
        inst.weights.expand(n, -1),
    )
    ok = miso.minimum_power(batch).feasible.numpy()
    return float((rates[ok] @ inst.weights[0].numpy()).max())


def test_miso_matches_grid_over_the_rate_region() -> None:
    inst = rayleigh(2, nt=3, k=2, seed=7, weights=np.array([1.0, 0.6]))
    gap = 1e-4
    result = global_miso.solve(inst, workers=1, gap=gap)
    assert isinstance(result, BeamformingResult)
    assert_certified(result, gap)
    for i in range(len(inst)):
        grid = miso_grid_optimum(inst[i : i + 1])
        assert grid <= result.upper_bound[i] * (1 + 1e-9)
        assert result.wsr[i] >= grid * (1 - gap)


def test_miso_bound_above_wmmse() -> None:
    inst = rayleigh(3, nt=4, k=3, seed=3)
    result = solvers.solve("global", inst, workers=1)
    assert_certified(result, 1e-3)
    reference = wmmse.solve(inst, workers=1)
    assert reference.feasible.all()
    assert (result.upper_bound >= reference.wsr).all()
    assert (result.wsr >= reference.wsr * (1 - 1e-3)).all()


def test_miso_oracle_agrees_with_minimum_power() -> None:
    inst = rayleigh(1, nt=4, k=3, seed=9)
    region = global_miso.SinrRegion(
        inst.channel[0].numpy(), float(inst.noise[0]), float(inst.transmit_budget[0])
    )
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.0, 1.0, size=(300, 3)) * region.upper_rates()
    feasible, infeasible = region(rates)
    batch = miso.MisoInstances.from_arrays(
        inst.channel.expand(300, -1, -1),
        inst.pmax[0],
        inst.circuit_power[0],
        inst.efficiency[0],
        inst.noise[0],
        np.expm1(rates * math.log(2.0)),
        1.0,
    )
    exact = miso.minimum_power(batch, stop_above_budget=False)
    assert not (feasible & infeasible).any()
    assert feasible.any() and infeasible.any()
    assert (exact.feasible.numpy()[feasible]).all()
    assert not (exact.feasible.numpy()[infeasible]).any()


def test_miso_time_limit_and_infeasible_reported() -> None:
    inst = rayleigh(2, nt=20, k=4, seed=1, snr_db=25.0)
    pmax = inst.pmax.clone()
    pmax[1] = 0.4  # below the circuit power 0.5: no transmit budget
    inst = miso.MisoInstances.from_arrays(
        inst.channel, pmax, inst.circuit_power, inst.efficiency, inst.noise, inst.sinr_min, 1.0
    )
    result = global_miso.solve(inst, workers=1, gap=1e-9, time_limit=0.3)
    assert result.messages[0].startswith("time limit: gap ")
    assert result.feasible[0] and result.upper_bound is not None
    assert result.upper_bound[0] >= result.wsr[0]
    assert result.messages[1].startswith("infeasible")
    assert not result.feasible[1] and math.isnan(result.upper_bound[1])


def test_registered_in_both_families() -> None:
    assert "global" in solvers.available("power-control")
    assert "global" in solvers.available("miso")
    with pytest.raises(ValueError, match="gap"):
        global_power_control.solve(pathloss_instances(1, 2, 1, seed=0), gap=0.0)


# ---------------------------------------------------------------------------- QoS dual bound
def _qos_case() -> tuple[global_power_control.PowerBox, np.ndarray, PowerControlInstances]:
    """The ``small`` B = 3, Q = 2 instance (seed 0, index 10) whose optimum has active QoS
    rows, its :class:`PowerBox` and a feasible point (SCA) ``(U,)``."""
    from feasnet.solvers import gp
    from feasnet.solvers.parallel import instance_dicts

    scenario = get_preset("small").with_overrides(num_bs=3, num_channels=2)
    inst, _ = generate(scenario, num_samples=11, seed=0)
    assert isinstance(inst, PowerControlInstances)
    one = inst[10:11]
    item = next(iter(instance_dicts(one)))
    prepared = gp.prepare_instance(item)
    box = global_power_control.PowerBox(
        np.asarray(item["H"]), item["pmax"], item["noise"], prepared.beta
    )
    x = global_power_control._sca_incumbent(prepared)
    assert x is not None and box.feasible(x[None])[0]
    return box, x, one


def _affine(box: global_power_control.PowerBox, low: np.ndarray, high: np.ndarray):  # type: ignore[no-untyped-def]
    """Slope ``(M, U)`` and constant ``(M,)`` of the affine bound at the box centres."""
    i_low, i_high = low @ box.cross.T, high @ box.cross.T
    chord = (np.log1p(i_high) - np.log1p(i_low)) / np.maximum(i_high - i_low, 1e-300)
    t0 = (0.5 * (low + high)) @ box.total.T
    slope = (1.0 / (1.0 + t0)) @ box.total - chord @ box.cross
    const = (np.log1p(t0) - t0 / (1.0 + t0)).sum(axis=1) + (-np.log1p(i_low) + chord * i_low).sum(
        axis=1
    )
    return slope, const


def test_qos_dual_bound_matches_linprog_and_stays_above_feasible_points() -> None:
    from scipy.optimize import linprog

    box, x0, _ = _qos_case()
    rng = np.random.default_rng(0)
    m = 40
    half = rng.uniform(0.002, 0.05, size=(m, box.dim))
    low = np.clip(x0 - half * rng.uniform(0.2, 1.0, size=(m, box.dim)), 0.0, 1.0)
    high = np.clip(x0 + half * rng.uniform(0.2, 1.0, size=(m, box.dim)), 0.0, 1.0)
    slope, const = _affine(box, low, high)
    value, _ = box.qos_dual_bound(slope, const, low, high)
    rows_g, rows_h = box._linear_rows()
    samples = low[:, None] + rng.random((m, 4000, box.dim)) * (high - low)[:, None]
    for k in range(m):
        lp = linprog(
            -slope[k], A_ub=rows_g, b_ub=rows_h, bounds=list(zip(low[k], high[k], strict=True))
        )
        assert lp.status == 0  # x0 is in every box
        exact = const[k] - lp.fun
        # HiGHS meets rows to ~1e-7 only (slopes reach 1e5 here): equal up to its tolerance
        violation = max(float((rows_g @ lp.x - rows_h).max()), 0.0)
        slack = 1e-9 * abs(exact) + violation * float(np.abs(slope[k]).max()) * 10
        assert value[k] >= exact - slack, (value[k], exact, violation)  # never below the LP
        assert value[k] <= exact + 1e-7 * abs(exact)  # and tight
        ok = box.feasible(samples[k])
        rates = box.rates(samples[k][ok]).sum(axis=1)
        affine = const[k] + samples[k][ok] @ slope[k]
        assert (affine <= value[k]).all()
        # the full box bound (monotone, affine, QoS dual) is above every feasible sum rate
        bound, _ = box.bound(low[k : k + 1], high[k : k + 1], threshold=-math.inf)
        assert rates.max() <= bound[0]


def test_power_control_active_qos_instance_certified() -> None:
    _, _, one = _qos_case()
    result = global_power_control.solve(one, workers=1, time_limit=120.0)
    assert_certified(result, 1e-3)
    local = sca.solve(one, workers=1)
    assert (result.upper_bound >= local.sum_rate).all()
