"""MISO feasibility layers: HoP, DC3 correction, penalty and guard."""

from __future__ import annotations

import math

import pytest
import torch

from feasnet.layers.dc3 import (
    DC3Correction,
    cone_rows,
    constraint_jacobian,
    correct_to_tolerance,
    squared_violation,
)
from feasnet.layers.guard import FeasibilityGuard, guard
from feasnet.layers.hop import HopConfig, HopLayer
from feasnet.problems import miso
from feasnet.problems.miso import MisoInstances
from feasnet.problems.miso_problem import MisoProblem
from tests.conftest import snr_miso_instances


def random_beams(inst: MisoInstances, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (len(inst), inst.num_antennas, inst.num_users)
    re = torch.randn(shape, generator=g, dtype=torch.float64)
    im = torch.randn(shape, generator=g, dtype=torch.float64)
    return scale * torch.complex(re, im)


# ----------------------------------------------------------------------------- jacobians
@pytest.mark.parametrize("rows", [constraint_jacobian, cone_rows])
def test_closed_form_gradients_match_autograd(rows) -> None:
    inst = snr_miso_instances(6, 4, 3, seed=1)
    v = random_beams(inst, 0.2, seed=1).requires_grad_()
    values, jac = rows(v, inst)
    if rows is constraint_jacobian:
        reference = miso.constraint_values(v, inst)
    else:  # cone rows: the denominator R_k is held fixed
        gains = miso.beam_gains(v, inst)
        radius = torch.sqrt(gains.abs().square().sum(dim=2) + inst.noise[:, None])
        own = torch.diagonal(gains, dim1=1, dim2=2).abs()
        factor = torch.sqrt(1 + 1 / inst.sinr_min)
        qos = (radius - factor * own) / radius.detach()
        budget = v.flatten(1).norm(dim=1) / inst.transmit_budget.sqrt() - 1
        reference = torch.cat([budget[:, None], qos], dim=1)
    torch.testing.assert_close(values, reference)
    for a in range(values.shape[1]):
        (grad,) = torch.autograd.grad(reference[:, a].sum(), v, retain_graph=True)
        torch.testing.assert_close(grad, jac[:, a], rtol=1e-9, atol=1e-12)
    # the cone rows have the sign of the constraint rows
    torch.testing.assert_close((cone_rows(v, inst)[0] <= 0), (miso.constraint_values(v, inst) <= 0))


# ----------------------------------------------------------------------------- HoP
# (feasibility, dtype, NaN rows, batch independence, gradcheck: tests/layers/test_conformance.py)
def hop_layer(direction: str = "raw") -> HopLayer:
    return HopLayer(MisoProblem(), HopConfig(direction=direction))  # type: ignore[arg-type]


def test_hop_lands_strictly_inside_for_any_direction() -> None:
    inst = snr_miso_instances(64, 4, 2, seed=2)
    problem = MisoProblem()
    anchor = problem.anchor(inst)
    layer = hop_layer()
    g = torch.Generator().manual_seed(0)
    for scale in (1.0, 1e30, 1e-30):
        direction = random_beams(inst, scale, seed=3)
        logit = 8 * torch.randn(len(inst), 1, generator=g, dtype=torch.float64)
        out = layer(direction, inst, logit)
        assert out.shape == direction.shape and out.dtype == torch.complex128
        assert (problem.constraints(out, inst) < 0).all()
        assert problem.is_feasible(out, inst, rtol=0).all()
    # zero / non-finite directions and logits give the anchor or a point on the segment
    direction = random_beams(inst, 1.0, seed=4)
    direction[0] = 0
    direction[1, 0, 0] = complex(math.nan, 0.0)
    logit = torch.full((len(inst), 1), 50.0, dtype=torch.float64)
    logit[2] = math.nan
    out = layer(direction, inst, logit)
    torch.testing.assert_close(out[:2], anchor[:2])
    assert (problem.constraints(out, inst) < 0).all()


def test_hop_radius_to_one_approaches_the_boundary() -> None:
    inst = snr_miso_instances(32, 4, 2, seed=7)
    problem = MisoProblem()
    direction = random_beams(inst, 1.0, seed=8)
    worst = []
    for logit in (-2.0, 2.0, 20.0):
        out = hop_layer()(direction, inst, torch.full((len(inst), 1), logit, dtype=torch.float64))
        worst.append(problem.constraints(out, inst).amax(dim=1))
    assert (worst[0] < worst[1]).all() and (worst[1] < worst[2]).all()
    assert (worst[2] > -1e-3).all() and (worst[2] < 0).all()


# ----------------------------------------------------------------------------- DC3
def test_dc3_eval_reaches_tolerance_from_poor_starts() -> None:
    inst = snr_miso_instances(200, 6, 3, seed=11, gamma_db=(0.0, 12.0))
    norm = miso.normalized_instances(inst)
    layer = DC3Correction().eval()
    for scale in (3.0, 0.1, 1e-3):
        start = random_beams(norm, scale, seed=12)
        assert not miso.is_feasible(start, norm).all()
        out = layer(start, norm)
        info = layer.last_info
        assert info is not None and info.done.all()
        assert (miso.constraint_values(out, norm) <= -1e-7).all()
        assert miso.is_feasible(miso.beams_from_normalized(out, inst), inst).all()
    # complex64 in, complex64 out, still passes the float64 check
    out32 = layer(random_beams(norm, 0.3, seed=13).to(torch.complex64), norm)
    assert out32.dtype == torch.complex64 and miso.is_feasible(out32, norm).all()


def test_dc3_violation_never_increases_and_feasible_starts_are_kept() -> None:
    inst = miso.normalized_instances(snr_miso_instances(64, 4, 2, seed=14))
    start = random_beams(inst, 0.5, seed=15)
    trace: list[torch.Tensor] = []
    _, info = correct_to_tolerance(start, inst, 1e-7, trace=trace)
    assert info.done.all()
    steps = torch.stack(trace)  # (steps + 1, N)
    assert (steps[1:] <= steps[:-1]).all()
    assert (steps[0] > 0).any() and (steps[-1] == 0).all()
    anchor = miso.interior_anchor(inst)
    kept, info = correct_to_tolerance(anchor, inst, 1e-7)
    assert torch.equal(kept, anchor) and (info.steps == 0).all()


def test_dc3_training_mode_is_unrolled_and_reduces_violation() -> None:
    inst = miso.normalized_instances(snr_miso_instances(64, 4, 2, seed=16))
    start = random_beams(inst, 0.3, seed=17).requires_grad_()
    layer = DC3Correction(train_steps=5).train()
    out = layer(start, inst)
    before = miso.violation_measure(start, inst)
    after = miso.violation_measure(out, inst)
    assert after.mean() < 0.2 * before.mean()
    (grad,) = torch.autograd.grad(miso.weighted_sum_rate(out, inst).sum(), start)
    assert torch.isfinite(torch.view_as_real(grad)).all() and grad.abs().sum() > 0
    # small steps on the plain squared violation 0.5 sum relu(g)^2 decrease it monotonically
    small = DC3Correction(train_steps=1, step_size=0.01, equilibrate=False).train()
    v = start.detach()
    history = [squared_violation(miso.constraint_values(v, inst))]
    for _ in range(10):
        v = small(v, inst)
        history.append(squared_violation(miso.constraint_values(v, inst)))
    stacked = torch.stack(history)
    assert (stacked[1:] <= stacked[:-1] + 1e-12).all()


def test_dc3_gradcheck_training_steps() -> None:
    inst = miso.normalized_instances(snr_miso_instances(3, 3, 2, seed=18))
    start = random_beams(inst, 0.4, seed=19).requires_grad_()
    layer = DC3Correction(train_steps=2).train()
    assert torch.autograd.gradcheck(lambda v: layer(v, inst), (start,))


def test_dc3_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="momentum"):
        DC3Correction(momentum=1.0)
    with pytest.raises(ValueError, match="train_mode"):
        DC3Correction(train_mode="adam")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- guard
# (feasibility, dtype, NaN rows and gradcheck of the guard: tests/layers/test_conformance.py)
def test_miso_guard_repairs_and_leaves_feasible_beams_alone() -> None:
    inst = snr_miso_instances(64, 4, 2, seed=22)
    problem = MisoProblem()
    anchor = problem.anchor(inst)  # normalized beams (units of sqrt(budget))
    beams = random_beams(inst, 0.1, seed=23)
    beams[:20] = anchor[:20]
    beams[20, 0, 0] = complex(math.nan, 0.0)
    initially = problem.is_feasible(beams, inst)
    layer = FeasibilityGuard()
    out = layer(beams, inst)
    assert problem.is_feasible(out, inst).all()
    assert layer.last_fired is not None and torch.equal(layer.last_fired, ~initially)
    assert torch.equal(out[initially], beams[initially])
    result = guard(random_beams(inst, 1.0, seed=24).to(torch.complex64), inst)
    assert result.x.dtype == torch.complex64 and problem.is_feasible(result.x, inst).all()
    assert result.fired.any() and not result.unfixable.any()
    assert ((result.step >= 0) & (result.step <= 1)).all()


def test_miso_guard_flags_infeasible_instances() -> None:
    good = snr_miso_instances(3, 3, 2, seed=25)
    bad = MisoInstances.from_arrays(
        good.channel[:1], 1.0, 0.1, 0.5, 1e-3, 1e6, 1.0
    )  # targets far beyond the budget
    assert not miso.minimum_power(bad).feasible.any()
    inst = MisoInstances.concatenate([good, bad])
    beams = random_beams(inst, 10.0, seed=26)
    result = guard(beams, inst)
    assert result.unfixable.tolist() == [False, False, False, True]
    assert torch.equal(result.x[3], beams[3])
    assert MisoProblem().is_feasible(result.x[:3], good).all()
