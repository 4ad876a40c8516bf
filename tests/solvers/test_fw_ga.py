"""Frank-Wolfe refinement and the batched genetic algorithm: feasibility, monotonicity,
reproducibility, and closeness to a brute-force optimum on two-user instances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from feasnet import solvers
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import frank_wolfe, genetic, min_power
from feasnet.solvers._population import RayRepair, sum_rate_many, to_normalized
from tests.conftest import pathloss_instances

PMAX = 1e-3  # W
NOISE = 6.3e-14  # W
BANDWIDTH = 5e6  # Hz


# ---------------------------------------------------------------------------- factories


def with_infeasible(instances: PowerControlInstances, position: int) -> PowerControlInstances:
    """Insert at ``position`` an instance whose rate targets no power can meet."""
    b, q = instances.num_bs, instances.num_channels
    bad = PowerControlInstances.from_arrays(
        np.ones((1, b, q, b)) * 1e-9, PMAX, NOISE, BANDWIDTH, 20 * BANDWIDTH
    )
    return PowerControlInstances.concatenate([instances[:position], bad, instances[position:]])


def two_user_optimum(instances: PowerControlInstances, points: int = 20001) -> torch.Tensor:
    """Brute-force maximum sum rate ``(N,)`` [bit/s] of instances with ``B = 2, Q = 1``.

    Scaling both powers by ``t > 1`` raises both SINRs, so some budget is tight at the
    optimum: it suffices to search the two edges ``x_1 = 1`` and ``x_2 = 1`` (normalized
    powers), each on a fine grid over the part of the edge that satisfies every constraint.
    """
    assert instances.num_bs == 2 and instances.num_channels == 1
    cons = pc.linear_constraints(instances)
    n = instances.num_instances
    best = torch.full((n,), -math.inf, dtype=torch.float64)
    for fixed in (0, 1):
        free = 1 - fixed
        residual = cons.h - cons.G[:, :, fixed]  # rows: G[:, free] * x_free <= residual
        coef = cons.G[:, :, free]
        ratio = residual / torch.where(coef != 0, coef, torch.ones_like(coef))
        hi = torch.where(coef > 0, ratio, torch.full_like(ratio, math.inf)).amin(dim=1)
        lo = torch.where(coef < 0, ratio, torch.full_like(ratio, -math.inf)).amax(dim=1)
        fixed_ok = (torch.where(coef == 0, residual, torch.zeros_like(residual)) >= 0).all(1)
        ok = fixed_ok & (lo <= hi)
        grid = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
        free_values = lo[:, None] + grid * (hi - lo)[:, None]  # (N, points)
        x = torch.empty(n, points, 2, dtype=torch.float64)
        x[..., fixed] = 1.0
        x[..., free] = free_values
        x = torch.where(ok[:, None, None], x, torch.zeros_like(x))
        rate = sum_rate_many(x, instances).amax(dim=1)
        best = torch.where(ok, torch.maximum(best, rate), best)
    return best


# ---------------------------------------------------------------------------- helpers
def test_sum_rate_many_matches_sum_rate() -> None:
    inst = pathloss_instances(5, 3, 2, seed=1)
    power = pc.interior_anchor(inst, fraction=0.3)
    x = to_normalized(power, inst)[:, None, :].repeat(1, 3, 1)
    many = sum_rate_many(x, inst)
    torch.testing.assert_close(many, pc.sum_rate(power, inst)[:, None].expand(5, 3))


def test_ray_repair_matches_scale_toward_anchor() -> None:
    inst = pathloss_instances(6, 3, 2, seed=2)
    anchor = pc.interior_anchor(inst)
    candidates = torch.rand(
        6, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    candidates = candidates * 2 * PMAX - 0.2 * PMAX
    expected, _ = pc.scale_toward_anchor(candidates, anchor, inst)
    repaired = RayRepair.build(anchor, inst)(to_normalized(candidates, inst)[:, None, :])[:, 0]
    torch.testing.assert_close(repaired, to_normalized(expected, inst))


# ---------------------------------------------------------------------------- Frank-Wolfe
def test_fw_feasible_and_improves_on_anchor() -> None:
    inst = pathloss_instances(12, 3, 2, seed=3)
    result = frank_wolfe.solve(inst)
    assert result.method == "fw"
    assert result.feasible.all()
    anchor_rate = pc.sum_rate(pc.interior_anchor(inst), inst).numpy()
    assert (result.sum_rate >= anchor_rate * (1 - 1e-12)).all()
    assert result.sum_rate.mean() > 1.05 * anchor_rate.mean()
    assert (result.seconds > 0).all()


def test_refine_takes_a_tensor_batch_and_never_decreases() -> None:
    inst = pathloss_instances(10, 4, 3, seed=4)
    start = pc.interior_anchor(inst, fraction=0.2).to(torch.float32)
    assert pc.is_feasible(start, inst).all()
    refined, used = frank_wolfe.refine(start, inst, iterations=20)
    assert refined.dtype == torch.float32 and refined.shape == start.shape
    assert used.shape == (10,) and (used >= 1).all() and (used <= 20).all()
    assert pc.is_feasible(refined, inst).all()
    before = pc.sum_rate(start.double(), inst)
    after = pc.sum_rate(refined.double(), inst)
    assert (after >= before * (1 - 1e-6)).all()  # float32 round trip
    assert after.mean() > before.mean()


@pytest.mark.parametrize("away_steps", [True, False])
def test_fw_variants_feasible_and_monotone(away_steps: bool) -> None:
    inst = pathloss_instances(8, 4, 5, seed=16)
    start = pc.interior_anchor(inst, fraction=0.7)
    refined, used = frank_wolfe.refine(start, inst, iterations=15, away_steps=away_steps)
    assert pc.is_feasible(refined, inst).all()
    assert (pc.sum_rate(refined, inst) >= pc.sum_rate(start, inst)).all()
    assert (used <= 15).all()


def test_away_steps_reach_the_single_cell_optimum() -> None:
    # One BS, identical channels: the sum rate is concave and the equal split is optimal (the
    # rate targets are slack there). Plain Frank-Wolfe zig-zags between vertices.
    inst = PowerControlInstances.from_arrays(np.full((1, 1, 4, 1), 1e-9), PMAX, NOISE, 5e6, 1e6)
    optimum = pc.sum_rate(torch.full((1, 1, 4), PMAX / 4, dtype=torch.float64), inst)
    start = pc.interior_anchor(inst)
    away, _ = frank_wolfe.refine(start, inst, threshold=1e-9)
    plain, _ = frank_wolfe.refine(start, inst, threshold=1e-9, away_steps=False)
    assert pc.sum_rate(away, inst) / optimum > 1 - 1e-5
    assert pc.sum_rate(plain, inst) < pc.sum_rate(away, inst)


def test_refine_works_under_no_grad() -> None:
    inst = pathloss_instances(4, 3, 2, seed=15)
    start = pc.interior_anchor(inst).requires_grad_(True)
    with torch.no_grad():
        refined, used = frank_wolfe.refine(start, inst, iterations=5)
    assert pc.is_feasible(refined, inst).all() and (used >= 1).all()
    assert (pc.sum_rate(refined, inst) > pc.sum_rate(start.detach(), inst)).all()


def test_refine_with_zero_iterations_returns_the_start() -> None:
    inst = pathloss_instances(4, 3, 2, seed=5)
    start = pc.minimum_power(inst).power
    refined, used = frank_wolfe.refine(start, inst, iterations=0)
    torch.testing.assert_close(refined, start)
    assert (used == 0).all()


def test_refine_repairs_an_infeasible_start() -> None:
    inst = pathloss_instances(5, 3, 2, seed=6)
    start = torch.full((5, 3, 2), 2 * PMAX, dtype=torch.float64)
    start[0] = math.nan
    refined, _ = frank_wolfe.refine(start, inst, iterations=10)
    assert pc.is_feasible(refined, inst).all()


def test_fw_with_workers_matches_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frank_wolfe, "_MIN_PER_WORKER", 2)
    inst = pathloss_instances(6, 3, 2, seed=7)
    start = pc.interior_anchor(inst)
    local, _ = frank_wolfe.refine(start, inst, iterations=10)
    pooled, _ = frank_wolfe.refine(start, inst, iterations=10, workers=2)
    torch.testing.assert_close(local, pooled)


# ---------------------------------------------------------------------------- genetic
def test_ga_feasible_and_beats_min_power() -> None:
    inst = pathloss_instances(12, 3, 2, seed=8)
    result = genetic.solve(inst, population=32, generations=80, seed=1)
    assert result.method == "ga"
    assert result.feasible.all()
    assert pc.is_feasible(torch.as_tensor(result.power), inst).all()
    baseline = min_power.solve(inst)
    assert result.sum_rate.mean() > 1.2 * baseline.sum_rate.mean()
    assert (result.sum_rate >= baseline.sum_rate * (1 - 1e-9)).all()  # P_min is in the population


def test_ga_is_reproducible() -> None:
    inst = pathloss_instances(6, 3, 2, seed=9)
    first = genetic.evolve(inst, population=16, generations=30, seed=3)
    again = genetic.evolve(inst, population=16, generations=30, seed=3)
    other = genetic.evolve(inst, population=16, generations=30, seed=4)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_ga_keeps_a_seeded_initial_point() -> None:
    inst = pathloss_instances(6, 4, 3, seed=10)
    seed_point = frank_wolfe.refine(pc.interior_anchor(inst), inst, iterations=30)[0]
    power = genetic.evolve(inst, population=16, generations=20, initial=seed_point)
    assert pc.is_feasible(power, inst).all()
    assert (pc.sum_rate(power, inst) >= pc.sum_rate(seed_point, inst) * (1 - 1e-9)).all()


def test_ga_chunks_cover_the_batch() -> None:
    inst = pathloss_instances(5, 3, 2, seed=11)
    power = genetic.evolve(inst, population=8, generations=5, chunk_size=2)
    assert pc.is_feasible(power, inst).all()


# ---------------------------------------------------------------------------- brute force
def test_two_user_instances_close_to_brute_force() -> None:
    inst = pathloss_instances(16, 2, 1, seed=12)
    optimum = two_user_optimum(inst)
    ga_rate = torch.as_tensor(genetic.solve(inst, population=32, generations=100).sum_rate)
    fw_rate = torch.as_tensor(frank_wolfe.solve(inst).sum_rate)
    ga_ratio, fw_ratio = ga_rate / optimum, fw_rate / optimum
    print(
        f"\nB=2,Q=1 vs brute force: GA mean {ga_ratio.mean():.5f} min {ga_ratio.min():.5f}; "
        f"FW mean {fw_ratio.mean():.5f} min {fw_ratio.min():.5f}"
    )
    # The grid resolution is 1/20000 of an edge, so a solver can exceed it very slightly.
    assert (ga_ratio <= 1 + 1e-4).all() and (fw_ratio <= 1 + 1e-4).all()
    assert ga_ratio.min() > 0.999
    assert fw_ratio.mean() > 0.98  # a local method: it may end in the other edge's maximum


# ---------------------------------------------------------------------------- infeasible
@pytest.mark.parametrize("name", ["fw", "ga"])
def test_infeasible_instance_is_reported(name: str) -> None:
    inst = with_infeasible(pathloss_instances(3, 3, 2, seed=13), position=1)
    options = {"population": 8, "generations": 5} if name == "ga" else {"iterations": 5}
    result = solvers.solve(name, inst, **options)
    assert np.isnan(result.power[1]).all()
    assert not result.feasible[1]
    assert result.messages[1].startswith("infeasible")
    assert result.feasible[[0, 2, 3]].all()
    # fw with 5 iterations may stop short of its gap threshold and says so
    assert all(
        result.messages[i] in ("",) or "not converged" in result.messages[i] for i in (0, 2, 3)
    )
    if name == "fw":
        assert result.converged is not None and not result.converged[1]
        for i in (0, 2, 3):
            assert result.converged[i] == (result.messages[i] == "")


def test_refine_leaves_infeasible_instances_unchanged() -> None:
    inst = with_infeasible(pathloss_instances(2, 3, 2, seed=14), position=0)
    start = torch.full((3, 3, 2), 0.1 * PMAX, dtype=torch.float64)
    refined, used = frank_wolfe.refine(start, inst, iterations=5)
    torch.testing.assert_close(refined[0], start[0])
    assert used[0] == 0
