"""Iterative correction (DEPNet), penalty (PNet) and the final feasibility guard."""

from __future__ import annotations

import pytest
import torch

from feasnet.layers.correction import (
    CorrectionConfig,
    CorrectionLayer,
    correct,
    equilibrate_rows,
    squared_violation,
    tighten,
)
from feasnet.layers.guard import FeasibilityGuard, guard
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control_problem import PowerControlProblem
from tests.conftest import random_instances


def depnet_layer(**options: object) -> CorrectionLayer:
    """DEPNet's layer on the linear-rate power-control problem."""
    return CorrectionLayer(PowerControlProblem(), CorrectionConfig(**options))  # type: ignore[arg-type]


def uniform_raw(inst: PowerControlInstances, seed: int = 0, low: float = 0.0, high: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    shape = (len(inst), inst.num_bs, inst.num_channels)
    return low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)


def feasible(x: torch.Tensor, inst: PowerControlInstances) -> torch.Tensor:
    """Float64 check at rtol 1e-6 of normalized powers ``x``."""
    return pc.is_feasible(x.double() * inst.pmax[:, None, None], inst, rtol=1e-6)


# ----------------------------------------------------------------------------- correction
def test_correction_gradcheck_training_mode() -> None:
    inst = random_instances(4, 2, 2, seed=1, pathloss=True, feasible_only=True)
    raw = uniform_raw(inst, seed=2, low=0.05, high=0.95).requires_grad_()
    layer = depnet_layer(train_steps=3).train()
    assert torch.autograd.gradcheck(lambda r: layer(r, inst), (raw,))


def test_correction_gradcheck_newton_steps() -> None:
    inst = random_instances(4, 2, 2, seed=3, pathloss=True, feasible_only=True)
    cons = pc.linear_constraints(inst)
    x = pc.to_vector(uniform_raw(inst, seed=4, low=0.05, high=0.95)).requires_grad_()

    # A larger ridge than the default 1e-8: with 1e-8 the Hessian's condition number (~1e9)
    # makes the finite differences themselves inaccurate at the 1e-2 level. Two steps stay
    # generic here because the ridge keeps the first step off the row targets.
    def two_steps(z: torch.Tensor) -> torch.Tensor:
        return correct(z, cons, 2, "newton", regularization=1e-3)

    assert torch.autograd.gradcheck(two_steps, (x,))


def test_newton_reaches_feasibility_where_gradient_descent_does_not() -> None:
    # the paper's Fig. 11 behaviour on a small case: same budget of 10 steps
    inst = random_instances(64, 4, 3, seed=3, pathloss=True, feasible_only=True)
    raw = uniform_raw(inst, seed=0)
    cons = pc.linear_constraints(inst)
    x0 = pc.to_vector(raw)
    assert not feasible(raw, inst).any()  # the starting points are infeasible
    newton = correct(x0, cons, 10, "newton")
    gradient = correct(x0, cons, 10, "gradient")
    assert feasible(pc.to_matrix(newton, 4, 3), inst).all()
    assert feasible(pc.to_matrix(gradient, 4, 3), inst).float().mean() < 0.6
    # the layer in eval mode (Newton, early exit) gives feasible outputs too
    out = depnet_layer().eval()(raw, inst)
    assert out.shape == raw.shape
    assert feasible(out, inst).all()


def test_newton_decreases_violation_monotonically_on_a_small_case() -> None:
    inst = random_instances(32, 3, 2, seed=5, pathloss=True, feasible_only=True)
    cons = pc.linear_constraints(inst)
    trace: list[torch.Tensor] = []
    correct(pc.to_vector(uniform_raw(inst, seed=1)), cons, 8, "newton", trace=trace)
    values = torch.stack(trace, dim=1)  # (N, steps + 1)
    assert (values[:, 1:] <= values[:, :-1] * (1 + 1e-12) + 1e-30).all()
    assert (values[:, 0] > 0).all() and (values[:, -1] < 1e-20).all()


def test_bound_aware_newton_escapes_where_the_plain_clamp_stalls() -> None:
    # A path-loss draw (preset "small", gains in units of noise / pmax, 4 digits) and a uniform
    # starting point on which "Newton step, then clamp at 0" stalls: the step asks for negative
    # powers on channel 1, the clamp undoes it, and the rest of the step is ~0.
    gain = torch.tensor(
        [
            [[53820.0, 2.569, 787.3], [19700.0, 49.93, 7055.0]],
            [[624.4, 63.24, 502.3], [469.9, 84.07, 2586.0]],
            [[9566.0, 8.472, 91840.0], [198.6, 12.46, 167.1]],
        ],
        dtype=torch.float64,
    )
    inst = PowerControlInstances.from_arrays(gain[None], 1.0, 1.0, 5e6, 2.5e6)
    assert pc.minimum_power(inst).feasible.all()
    cons = pc.linear_constraints(inst)
    x0 = torch.tensor([[0.568, 0.96, 0.983, 0.913, 0.168, 0.267]], dtype=torch.float64)
    plain = correct(x0, cons, 100, "newton", bound_passes=0)
    assert squared_violation(plain, cons).item() > 1.0  # stuck far from the polytope
    assert (plain[0, 3:] == 0).all()  # channel 1 switched off
    fixed = correct(x0, cons, 100, "newton", early_exit=True)  # default: bound-aware
    assert feasible(pc.to_matrix(fixed, 3, 2), inst).all()


def test_margin_makes_the_result_strictly_feasible() -> None:
    inst = random_instances(64, 4, 3, seed=7, pathloss=True, feasible_only=True)
    cons = pc.linear_constraints(inst)
    x = correct(pc.to_vector(uniform_raw(inst, seed=3)), cons, 100, "newton", early_exit=True)
    # every row holds with room to spare on the original constraints, not just up to rounding
    assert (squared_violation(x, cons) == 0).all()
    assert (squared_violation(x, tighten(cons, 0.5e-9)) == 0).all()
    assert feasible(pc.to_matrix(x, 4, 3), inst).all()
    assert (x >= 0).all()


def test_float32_input_gives_feasible_float32_output() -> None:
    inst = random_instances(64, 4, 3, seed=8, pathloss=True, feasible_only=True)
    raw = uniform_raw(inst, seed=5).float()
    out = depnet_layer().eval()(raw, inst.to(torch.float32))
    assert out.dtype == torch.float32
    assert feasible(out, inst).all()


def test_early_exit_freezes_samples_and_is_batch_independent() -> None:
    inst = random_instances(16, 3, 2, seed=9, pathloss=True, feasible_only=True)
    raw = uniform_raw(inst, seed=7)
    anchor = pc.interior_anchor(inst) / inst.pmax[:, None, None]
    raw[:4] = anchor[:4]  # already feasible: must come back unchanged
    layer = depnet_layer().eval()
    out = layer(raw, inst)
    assert torch.equal(out[:4], raw[:4])
    alone = torch.cat([layer(raw[i : i + 1], inst[i]) for i in range(len(inst))])
    assert torch.equal(out, alone)


def test_training_mode_runs_a_fixed_number_of_gradient_steps() -> None:
    inst = random_instances(8, 3, 2, seed=2, pathloss=True, feasible_only=True)
    raw = uniform_raw(inst, seed=1)
    layer = depnet_layer(train_steps=5).train()
    expected = correct(pc.to_vector(raw), pc.linear_constraints(inst), 5, "gradient")
    # the same steps on the same rows (columns in another order: equal up to rounding)
    torch.testing.assert_close(layer(raw, inst), pc.to_matrix(expected, 3, 2))
    problem = PowerControlProblem()
    before = problem.violation(raw, inst)
    after = problem.violation(layer(raw, inst), inst)
    assert (after < before).all()


def test_equilibrated_rows_keep_the_polytope_and_tame_the_unrolled_jacobian() -> None:
    # strong interference from BS 2 (gains scaled 100x): QoS rows with entries up to ~8
    inst = random_instances(64, 3, 2, seed=4, pathloss=True, feasible_only=True)
    boost = torch.tensor([1.0, 1.0, 100.0], dtype=torch.float64)  # scales H[., ., c]
    inst = PowerControlInstances(
        inst.gain * boost, inst.pmax, inst.noise, inst.bandwidth, inst.min_rate
    )
    cons = pc.linear_constraints(inst)
    unit = equilibrate_rows(cons)
    ones = torch.ones(cons.G.shape[:2], dtype=torch.float64)
    torch.testing.assert_close(unit.G.norm(dim=2), ones)
    x = pc.to_vector(uniform_raw(inst, seed=2)).requires_grad_()
    residual = torch.einsum("nmu,nu->nm", cons.G, x) - cons.h
    scaled = torch.einsum("nmu,nu->nm", unit.G, x) - unit.h
    assert torch.equal(residual > 0, scaled > 0)  # same rows violated: same polytope
    column_sums = {}
    for equilibrate in (False, True):
        out = correct(x, cons, 5, "gradient", equilibrate=equilibrate)
        (column_sums[equilibrate],) = torch.autograd.grad(out.sum(), x)
    assert column_sums[True].abs().max() < 2.0
    assert column_sums[False].abs().max() > 10.0


def test_correction_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="test_mode"):
        depnet_layer(test_mode="bfgs")
    with pytest.raises(ValueError, match="momentum"):
        depnet_layer(momentum=1.0)
    inst = random_instances(2, 2, 2, pathloss=True, feasible_only=True)
    with pytest.raises(ValueError, match="steps"):
        correct(torch.zeros(2, 4, dtype=torch.float64), pc.linear_constraints(inst), -1)


# penalty: the loss is tested in tests/test_train.py (LearnedModel.loss on every family)


# ----------------------------------------------------------------------------- guard
def test_guard_makes_every_output_feasible_and_counts() -> None:
    inst = random_instances(64, 4, 3, seed=11, pathloss=True, feasible_only=True)
    raw = uniform_raw(inst, seed=4, low=-0.1, high=0.8)
    corrected = correct(pc.to_vector(raw), pc.linear_constraints(inst), 100, early_exit=True)
    raw[:32] = pc.to_matrix(corrected, 4, 3)[:32]  # half feasible, half (mostly) not
    initially = feasible(raw, inst)
    layer = FeasibilityGuard()
    out = layer(raw, inst)
    assert feasible(out, inst).all()
    assert layer.last_fired is not None
    assert torch.equal(layer.last_fired, ~initially)
    assert layer.fired_count == int((~initially).sum()) > 0
    assert layer.seen_count == len(inst)
    assert torch.equal(out[initially], raw[initially])  # untouched, bit for bit
    layer(out, inst)
    assert layer.fired_count == int((~initially).sum())  # nothing left to fix
    assert layer.fire_rate == pytest.approx(layer.fired_count / (2 * len(inst)))


def test_guard_handles_float32_and_nonfinite_candidates() -> None:
    inst = random_instances(16, 3, 2, seed=12, pathloss=True, feasible_only=True)
    raw = uniform_raw(inst, seed=6).float()
    raw[0, 0, 0] = float("nan")
    raw[1] = -1.0
    result = guard(raw, inst.to(torch.float32))
    assert result.x.dtype == torch.float32
    assert feasible(result.x, inst).all()
    assert result.fired[:2].all() and not result.unfixable.any()


def test_guard_flags_instances_without_a_feasible_point() -> None:
    good = random_instances(3, 2, 2, seed=1, pathloss=True, feasible_only=True)
    bad = random_instances(1, 2, 2, seed=1, min_rate=5e7, pathloss=True)  # unreachable targets
    assert not pc.minimum_power(bad).feasible.any()
    inst = PowerControlInstances.concatenate([good, bad])
    raw = torch.full((4, 2, 2), 0.9, dtype=torch.float64)
    result = guard(raw, inst)
    assert result.unfixable.tolist() == [False, False, False, True]
    assert torch.equal(result.x[3], raw[3])
    assert feasible(result.x[:3], good).all()


# gradcheck of the guard (where it fires and where it does not): tests/layers/test_conformance.py
