"""The power-control problem: rates, vector form, exact feasibility test, anchor, ray scaling."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
import torch

from feasnet.problems import power_control as pc
from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances
from tests.conftest import random_instances


def two_by_two() -> tuple[PowerControlInstances, torch.Tensor]:
    """B = 2 BSs, Q = 2 channels with hand-picked gains (noise 1, W = 1 Hz)."""
    gain = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    # channel 0: user of BS0 (direct 4, from BS1 1); user of BS1 (direct 2, from BS0 0.5)
    gain[0, 0, 0] = torch.tensor([4.0, 1.0])
    gain[0, 1, 0] = torch.tensor([0.5, 2.0])
    # channel 1: user of BS0 (direct 3, from BS1 2); user of BS1 (direct 1, from BS0 1)
    gain[0, 0, 1] = torch.tensor([3.0, 2.0])
    gain[0, 1, 1] = torch.tensor([1.0, 1.0])
    inst = PowerControlInstances.from_arrays(
        gain, pmax=10.0, noise=1.0, bandwidth=1.0, min_rate=0.5
    )
    power = torch.tensor([[[1.0, 2.0], [3.0, 1.0]]], dtype=torch.float64)  # P[b, q]
    return inst, power


def test_sinr_and_rates_match_hand_computation() -> None:
    inst, power = two_by_two()
    # SINR[b,q] = H[b,q,b] P[b,q] / (H[b,q,other] P[other,q] + 1)
    expected_sinr = torch.tensor(
        [
            [
                [4 * 1 / (1 * 3 + 1), 3 * 2 / (2 * 1 + 1)],
                [2 * 3 / (0.5 * 1 + 1), 1 * 1 / (1 * 2 + 1)],
            ]
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(pc.sinr(power, inst), expected_sinr)
    expected_rates = torch.log2(1 + expected_sinr)
    torch.testing.assert_close(pc.rates(power, inst), expected_rates)
    torch.testing.assert_close(pc.sum_rate(power, inst), expected_rates.sum(dim=(1, 2)))
    # hand values: SINRs 1, 2, 4, 1/3 -> rates 1, log2 3, log2 5, log2 4/3
    assert pc.sum_rate(power, inst).item() == pytest.approx(
        1 + math.log2(3) + math.log2(5) + math.log2(4 / 3)
    )


def test_matrix_and_vector_forms_agree(small_batch: PowerControlInstances) -> None:
    inst = small_batch
    g = torch.Generator().manual_seed(3)
    power = torch.rand(len(inst), inst.num_bs, inst.num_channels, generator=g, dtype=torch.float64)
    power = power * 1e-3
    p = pc.to_vector(power)
    torch.testing.assert_close(pc.to_matrix(p, inst.num_bs, inst.num_channels), power)
    assert p[0, 1 * inst.num_bs + 2] == power[0, 2, 1]  # p[q*B + b] = P[b, q]
    form = pc.vector_form(inst)
    # A p = per-BS power sums
    torch.testing.assert_close(p @ form.A.T, power.sum(dim=2))
    # C p - d = signal - beta (interference + noise), the QoS slack in watts
    signal, interference = pc.received_powers(power, inst)
    beta = pc.min_sinr(inst)
    slack = signal - beta * (interference + inst.noise[:, None, None])
    torch.testing.assert_close(torch.einsum("nij,nj->ni", form.C, p) - form.d, pc.to_vector(slack))
    # the QoS rows hold exactly when the rate targets hold
    rate_ok = pc.rates(power, inst) >= inst.min_rate
    assert torch.equal(pc.to_vector(rate_ok), (torch.einsum("nij,nj->ni", form.C, p) >= form.d))


def test_normalized_constraints_match_physical_ones(small_batch: PowerControlInstances) -> None:
    inst = small_batch
    anchor = pc.interior_anchor(inst)
    g = torch.Generator().manual_seed(5)
    for power in (anchor, torch.rand(anchor.shape, generator=g, dtype=torch.float64) * 8e-4):
        cons = pc.linear_constraints(inst)
        x = pc.to_vector(power) / inst.pmax[:, None]
        rows_ok = (torch.einsum("nmu,nu->nm", cons.G, x) <= cons.h + 1e-12).all(dim=1)
        assert torch.equal(rows_ok, pc.is_feasible(power, inst, rtol=1e-9))
        assert torch.equal(pc.violation_measure(power, inst) == 0, rows_ok)


def test_min_power_meets_every_qos_row_with_equality(small_batch: PowerControlInstances) -> None:
    mp = pc.minimum_power(small_batch)
    assert mp.feasible.all()
    rates = pc.rates(mp.power, small_batch)
    torch.testing.assert_close(rates, small_batch.min_rate, rtol=1e-10, atol=0)
    assert (mp.spectral_radius < 1).all()


def _lp_feasible(inst: PowerControlInstances, i: int) -> bool:
    """Brute-force reference: is {p >= 0, A p <= pmax, C p >= d} non-empty? (cvxpy LP)."""
    form = pc.vector_form(inst[i])
    scale = float(inst.pmax[i])
    c = form.C[0].numpy() * scale / inst.noise[i].item()
    d = form.d[0].numpy() / inst.noise[i].item()
    x = cp.Variable(inst.num_users)
    problem = cp.Problem(cp.Minimize(0), [x >= 0, form.A.numpy() @ x <= 1, c @ x >= d])
    problem.solve(solver=cp.CLARABEL)
    return problem.status == cp.OPTIMAL


def test_exact_feasibility_test_agrees_with_lp() -> None:
    # mix of easy and hard instances: strong interference and high targets
    parts = [
        random_instances(20, 3, 2, seed=11, cross_scale=0.3, min_rate=2.5e6),
        random_instances(20, 3, 2, seed=12, cross_scale=1.5, min_rate=5e6),
        random_instances(20, 4, 1, seed=13, cross_scale=2.0, min_rate=1e7),
    ]
    verdicts = []
    for inst in parts:
        mp = pc.minimum_power(inst)
        for i in range(len(inst)):
            assert bool(mp.feasible[i]) == _lp_feasible(inst, i), f"instance {i}"
            verdicts.append(bool(mp.feasible[i]))
    assert any(verdicts) and not all(verdicts), "the test set must contain both kinds"


def test_infeasible_instances_get_reasons_not_errors() -> None:
    inst = random_instances(30, 3, 2, seed=4, cross_scale=3.0, min_rate=2e7)
    mp = pc.minimum_power(inst)
    assert not mp.feasible.all()
    reasons = mp.reasons()
    for ok, reason in zip(mp.feasible.tolist(), reasons, strict=True):
        assert (reason == "") == ok
        assert ok or reason.startswith("infeasible")
    anchor = pc.interior_anchor(inst, min_power=mp)
    assert torch.isnan(anchor[~mp.feasible]).all()


def test_anchor_is_strictly_interior(small_batch: PowerControlInstances) -> None:
    inst = small_batch
    anchor = pc.interior_anchor(inst)
    assert (anchor > 0).all()
    assert (anchor.sum(dim=2) < inst.pmax[:, None] * (1 - 1e-6)).all()
    assert (pc.rates(anchor, inst) > inst.min_rate * (1 + 1e-6)).all()


def test_anchor_without_rate_targets_is_uniform_split() -> None:
    inst = random_instances(3, 2, 3, seed=0, min_rate=0.0)
    anchor = pc.interior_anchor(inst, fraction=0.5)
    torch.testing.assert_close(anchor, torch.full_like(anchor, 0.5 * 1e-3 / 3))


def test_scale_toward_anchor_returns_feasible_points(small_batch: PowerControlInstances) -> None:
    inst = small_batch
    anchor = pc.interior_anchor(inst)
    g = torch.Generator().manual_seed(9)
    candidates = (torch.rand(anchor.shape, generator=g, dtype=torch.float64) * 2 - 0.5) * 1e-3
    candidates[0] = float("nan")
    scaled, t = pc.scale_toward_anchor(candidates, anchor, inst)
    assert pc.is_feasible(scaled, inst).all()
    assert t[0] == 0 and ((t >= 0) & (t <= 1)).all()
    # points on the boundary stay put (up to rounding), interior points exactly
    same, t_same = pc.scale_toward_anchor(scaled, anchor, inst)
    torch.testing.assert_close(same, scaled)
    assert (t_same >= 1 - 1e-12).all()
    inside = 0.5 * (scaled + anchor)
    kept, t_inside = pc.scale_toward_anchor(inside, anchor, inst)
    assert torch.equal(kept, inside) and (t_inside == 1).all()


def test_scale_toward_anchor_gradcheck() -> None:
    inst = random_instances(4, 2, 2, seed=2)
    anchor = pc.interior_anchor(inst)
    g = torch.Generator().manual_seed(1)
    candidate = (
        torch.rand(anchor.shape, generator=g, dtype=torch.float64) * 1.5e-3
    ).requires_grad_()

    def layer(power: torch.Tensor) -> torch.Tensor:
        return pc.scale_toward_anchor(power, anchor, inst)[0] / 1e-3

    assert torch.autograd.gradcheck(layer, (candidate,), eps=1e-9, atol=1e-6)


def test_violation_measure_gradcheck() -> None:
    inst = random_instances(3, 2, 2, seed=6)
    g = torch.Generator().manual_seed(2)
    power = (torch.rand(3, 2, 2, generator=g, dtype=torch.float64) * 1.2e-3).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda p: pc.violation_measure(p, inst), (power,), eps=1e-10, atol=1e-6
    )


def test_sum_rate_gradcheck(small_batch: PowerControlInstances) -> None:
    power = (pc.interior_anchor(small_batch[:3]) * 1.1).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda p: pc.sum_rate(p, small_batch[:3]) / 1e6, (power,), eps=1e-10, atol=1e-5
    )


def test_is_feasible_catches_each_violation(small_batch: PowerControlInstances) -> None:
    inst = small_batch[:1]
    anchor = pc.interior_anchor(inst)
    assert pc.is_feasible(anchor, inst).item()
    negative = anchor.clone()
    negative[0, 0, 0] = -1e-12
    over = anchor.clone()
    over[0, 0] *= inst.pmax[0] / over[0, 0].sum() * (1 + 1e-5)
    low = pc.minimum_power(inst).power * (1 - 1e-4)
    nan = anchor.clone()
    nan[0, 1, 1] = float("nan")
    for bad in (negative, over, low, nan):
        assert not pc.is_feasible(bad, inst).item()
    # within tolerance passes
    tight = pc.minimum_power(inst).power * (1 - 1e-8)
    assert pc.is_feasible(tight, inst, rtol=1e-6).item()


def test_float32_and_float64_agree(small_batch: PowerControlInstances) -> None:
    anchor = pc.interior_anchor(small_batch)
    r64 = pc.sum_rate(anchor, small_batch)
    r32 = pc.sum_rate(anchor.float(), small_batch.to(torch.float32))
    assert r32.dtype == torch.float32
    torch.testing.assert_close(r32.double(), r64, rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    ("field", "kwargs", "message"),
    [
        ("H", {"gain": np.ones((2, 3, 2))}, "H: expected shape"),
        ("H", {"gain": np.full((1, 2, 1, 2), np.nan)}, "H: contains NaN"),
        ("H", {"gain": -np.ones((1, 2, 1, 2))}, "H: contains negative"),
        ("H", {"gain": np.ones((1, 2, 1, 2)) * 1j}, "H: expected real"),
        ("H", {"gain": np.array([[[[0.0, 1.0]], [[1.0, 1.0]]]])}, "H: a direct gain"),
        ("pmax", {"pmax": 0.0}, "pmax: must be > 0"),
        ("noise", {"noise": -1.0}, "noise: must be > 0"),
        ("bandwidth", {"bandwidth": np.inf}, "bandwidth: contains NaN or inf"),
        ("pmax", {"pmax": np.ones(3)}, "pmax: expected a scalar or shape"),
        ("min_rate", {"min_rate": -1.0}, "min_rate: must be >= 0"),
        ("min_rate", {"min_rate": np.ones((1, 3, 3))}, "min_rate: expected"),
        ("min_rate", {"min_rate": None}, "min_rate: missing"),
    ],
)
def test_bad_instance_data_names_the_field(field: str, kwargs: dict, message: str) -> None:
    args = {
        "gain": np.ones((1, 2, 1, 2)),
        "pmax": 1.0,
        "noise": 1.0,
        "bandwidth": 1.0,
        "min_rate": 0.1,
    }
    args.update(kwargs)
    with pytest.raises(InvalidInstanceError, match=message):
        PowerControlInstances.from_arrays(**args)
