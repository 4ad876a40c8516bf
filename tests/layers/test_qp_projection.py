"""The implicit QP projection layer (DIPNet, eq. 10): feasibility, accuracy, gradients."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch

from feasnet.layers import cvxpy_projection as cxp
from feasnet.layers import qp_projection as qpp
from feasnet.layers.qp_projection import ProjectionLayer, project
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import (
    interior_anchor,
    is_feasible,
    linear_constraints,
    minimum_power,
    to_vector,
)
from feasnet.problems.power_control_problem import PowerControlProblem
from tests.conftest import random_instances

pytestmark = pytest.mark.filterwarnings("ignore:.*__array__ implementation.*")

SIZES = [(3, 2), (4, 5), (6, 4)]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny batched ops run far faster on one thread when the 2 CPU cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def raw_outputs(
    instances: PowerControlInstances,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    far: bool = True,
) -> torch.Tensor:
    """Raw candidates ``(N, B, Q)`` cycling through inside / near / outside / far / negative.

    ``far=False`` replaces the far-outside kind (100x the anchor scale) by a moderate one.
    """
    n, b, q = instances.num_instances, instances.num_bs, instances.num_channels
    g = torch.Generator().manual_seed(seed)
    anchor = interior_anchor(instances) / instances.pmax[:, None, None]
    noise = torch.randn(n, b, q, generator=g, dtype=torch.float64)
    kinds = torch.arange(n) % 5
    far_scale = 100.0 if far else 0.5
    scale = torch.tensor([0.001, 0.1, 1.0, far_scale, 1.0], dtype=torch.float64)[kinds]
    raw = anchor + scale[:, None, None] * noise
    negative = kinds == 4
    raw[negative] = -noise[negative].abs()  # every entry negative
    return raw.to(dtype)


def clarabel_projection(r: np.ndarray, G: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The projection QP solved by CVXPY/Clarabel at tight tolerances (float64)."""
    x = cp.Variable(r.shape[0])
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - r)), [G @ x <= h])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert problem.status == cp.OPTIMAL
    return np.asarray(x.value)


# ---------------------------------------------------------------------------- feasibility
@pytest.mark.parametrize(
    ("num_bs", "num_channels", "kwargs"),
    [
        (3, 2, {}),
        (4, 5, {}),
        (6, 4, {}),
        (4, 5, {"pathloss": True, "min_rate": 1e6}),
        (6, 4, {"min_rate": 0.0}),
    ],
)
def test_output_is_feasible(num_bs: int, num_channels: int, kwargs: dict) -> None:
    inst = random_instances(200, num_bs, num_channels, seed=11, **kwargs)
    assert minimum_power(inst).feasible.all()
    layer = ProjectionLayer(PowerControlProblem())
    out = layer(raw_outputs(inst, seed=1), inst)
    assert out.shape == (200, num_bs, num_channels)
    assert is_feasible(out * inst.pmax[:, None, None], inst).all()
    info = layer.last_info
    assert info is not None
    assert info.converged.float().mean() > 0.95
    assert info.polished.float().mean() > 0.95
    assert info.max_iterations <= qpp.DEFAULT_MAX_ITER
    assert not info.safeguard.any()  # the solver's own point passes the check


def test_matches_clarabel() -> None:
    for (b, q), seed in zip(SIZES, (21, 22, 23), strict=True):
        inst = random_instances(25, b, q, seed=seed)
        cons = linear_constraints(inst)
        r = to_vector(raw_outputs(inst, seed=seed))
        x = project(r, cons)
        for i in range(len(inst)):
            ref = clarabel_projection(r[i].numpy(), cons.G[i].numpy(), cons.h[i].numpy())
            assert np.abs(x[i].numpy() - ref).max() < 1e-6, (b, q, i)


def test_generic_polytope_uses_dense_path_and_matches_clarabel() -> None:
    g = torch.Generator().manual_seed(5)
    n, m, u = 12, 15, 6
    G = torch.randn(n, m, u, generator=g, dtype=torch.float64)
    h = torch.rand(n, m, generator=g, dtype=torch.float64) + 0.1  # x = 0 strictly inside
    r = 3.0 * torch.randn(n, u, generator=g, dtype=torch.float64)
    cons = qpp.LinearConstraints(G=G, h=h)
    assert qpp._power_control_blocks(qpp._normalize_rows(G, h)[0]) is None
    x = project(r, cons)
    for i in range(n):
        ref = clarabel_projection(r[i].numpy(), G[i].numpy(), h[i].numpy())
        assert np.abs(x[i].numpy() - ref).max() < 1e-6


def test_structured_and_dense_products_agree() -> None:
    inst = random_instances(7, 3, 4, seed=2)
    cons = linear_constraints(inst)
    Gn, _ = qpp._normalize_rows(cons.G, cons.h)
    blocks = qpp._power_control_blocks(Gn)
    assert blocks is not None
    fast, dense = qpp._PowerControlRows(blocks), qpp._DenseRows(Gn)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 12, generator=g, dtype=torch.float64)
    w = torch.rand(7, Gn.shape[1], generator=g, dtype=torch.float64)
    torch.testing.assert_close(fast.mv(x), dense.mv(x), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(fast.mtv(w), dense.mtv(w), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(fast.gram(w), dense.gram(w), rtol=1e-13, atol=1e-14)


def test_points_inside_come_back_unchanged() -> None:
    inst = random_instances(300, 4, 5, seed=3)
    cons = linear_constraints(inst)
    g = torch.Generator().manual_seed(4)
    anchor = to_vector(interior_anchor(inst)) / inst.pmax[:, None]
    r = anchor * (1.0 + 0.05 * torch.randn(anchor.shape, generator=g, dtype=torch.float64))
    inside = (torch.einsum("nmu,nu->nm", cons.G, r) < cons.h).all(dim=1)
    assert inside.sum() > 100
    r = r.requires_grad_()
    x = project(r, cons)
    assert torch.equal(x[inside], r[inside].detach())
    w = torch.randn(r.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((x * w).sum(), r)
    torch.testing.assert_close(grad[inside], w[inside], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- gradients
def test_gradcheck() -> None:
    inst = random_instances(5, 3, 2, seed=7)
    cons = linear_constraints(inst)
    r = to_vector(raw_outputs(inst, seed=8)).clone().requires_grad_()
    _, info = project(r, cons, return_info=True)
    assert info.polished.all()
    assert torch.autograd.gradcheck(lambda v: project(v, cons), (r,), eps=1e-6, atol=1e-7)
    small = random_instances(3, 2, 2, seed=9)
    raw = raw_outputs(small, seed=10).clone().requires_grad_()
    layer = ProjectionLayer(PowerControlProblem())
    assert torch.autograd.gradcheck(lambda v: layer(v, small), (raw,), eps=1e-6, atol=1e-7)


def test_gradient_is_the_active_set_projector() -> None:
    inst = random_instances(30, 3, 2, seed=12)
    cons = linear_constraints(inst)
    r = to_vector(raw_outputs(inst, seed=13))
    x = project(r, cons)
    eye = torch.eye(6, dtype=torch.float64)
    for i in range(len(inst)):
        ci = qpp.LinearConstraints(cons.G[i : i + 1], cons.h[i : i + 1])
        J = torch.autograd.functional.jacobian(lambda v, ci=ci: project(v, ci), r[i : i + 1])
        tight = (cons.G[i] @ x[i] - cons.h[i]).abs() < 1e-9
        Ga = cons.G[i][tight]
        expected = eye - Ga.T @ torch.linalg.pinv(Ga @ Ga.T) @ Ga if len(Ga) else eye
        torch.testing.assert_close(J[0, :, 0], expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize(("num_bs", "num_channels"), [(3, 2), (4, 5)])
def test_matches_cvxpylayers_value_and_gradient(num_bs: int, num_channels: int) -> None:
    # cvxpylayers' SCS path is only accurate to ~1e-5 for points ~100x outside: not used here
    pytest.importorskip("cvxpylayers")
    inst = random_instances(10, num_bs, num_channels, seed=31)
    raw = raw_outputs(inst, seed=32, far=False)
    w = torch.randn(raw.shape, generator=torch.Generator().manual_seed(33), dtype=torch.float64)
    outs, grads = [], []
    for layer in (
        ProjectionLayer(PowerControlProblem()),
        cxp.CvxpyProjectionLayer(PowerControlProblem()),
    ):
        v = raw.clone().requires_grad_()
        out = layer(v, inst)
        (grad,) = torch.autograd.grad((out * w).sum(), v)
        outs.append(out.detach())
        grads.append(grad)
    assert (outs[0] - outs[1]).abs().max() < 1e-6
    assert (grads[0] - grads[1]).abs().max() < 1e-6


# ---------------------------------------------------------------------------- dtypes, sizes
def test_float32_and_batch_sizes() -> None:
    inst64 = random_instances(1000, 4, 5, seed=41)
    raw64 = raw_outputs(inst64, seed=42)
    layer = ProjectionLayer(PowerControlProblem())
    ref = layer(raw64, inst64)
    inst32 = inst64.to(torch.float32)
    out32 = layer(raw64.float(), inst32)
    assert out32.dtype == torch.float32
    assert is_feasible(out32.double() * inst64.pmax[:, None, None], inst64).all()
    # float32 inputs are solved in float64: only the rounding of raw/instances differs
    assert (out32.double() - ref).abs().max() < 1e-4
    one = layer(raw64[:1], inst64[0])
    assert one.shape == (1, 4, 5)
    torch.testing.assert_close(one, ref[:1], rtol=0, atol=1e-12)


def test_infeasible_instances_give_nan_and_others_are_unaffected() -> None:
    inst = PowerControlInstances.concatenate(
        [random_instances(3, 3, 2, seed=51), random_instances(3, 3, 2, seed=52, min_rate=5e7)]
    )
    feasible = minimum_power(inst).feasible
    assert feasible.tolist() == [True] * 3 + [False] * 3
    layer = ProjectionLayer(PowerControlProblem())
    raw = raw_outputs(inst, seed=53)
    out = layer(raw, inst)
    assert torch.isnan(out[~feasible]).all()
    assert is_feasible(out[feasible] * inst.pmax[:3, None, None], inst[:3]).all()
    torch.testing.assert_close(out[:3], layer(raw[:3], inst[:3]), rtol=0, atol=1e-12)
    assert layer.last_info is not None


def test_non_finite_raw_rows_give_a_feasible_point_and_finite_gradients() -> None:
    inst = random_instances(4, 3, 2, seed=61)
    raw = raw_outputs(inst, seed=62)
    raw[1, 0, 0] = float("nan")
    raw[2, 1, 1] = float("inf")
    raw = raw.requires_grad_()
    out = ProjectionLayer(PowerControlProblem())(raw, inst)
    assert is_feasible(out * inst.pmax[:, None, None], inst).all()
    (grad,) = torch.autograd.grad(out.sum(), raw)
    assert torch.isfinite(grad).all()
    assert (grad[1:3] == 0).all()


def test_safeguard_pulls_an_infeasible_result_inside() -> None:
    inst = random_instances(5, 3, 2, seed=71)
    raw = raw_outputs(inst, seed=72)
    problem = PowerControlProblem()
    data = qpp.polytope_data(problem, raw, inst)
    x = project(data.r, data.constraints)
    bad = x.clone()
    bad[0] += 1e-3  # leaves the polytope (raw row 0 is inside: the budget is not tight)
    bad[0] *= 10.0
    out, moved = qpp.finish_projection(problem, bad, data, inst, torch.float64)
    assert moved.tolist() == [True, False, False, False, False]
    assert is_feasible(out * inst.pmax[:, None, None], inst).all()


def test_without_polish_the_interior_point_is_close() -> None:
    inst = random_instances(50, 4, 5, seed=81)
    cons = linear_constraints(inst)
    r = to_vector(raw_outputs(inst, seed=82, far=False))
    exact = project(r, cons)
    x, info = project(r, cons, polish=False, return_info=True)
    assert not info.polished.any()
    assert info.converged.all()
    assert (x - exact).abs().max() < 1e-6


def test_project_keeps_dtype_and_handles_an_empty_batch() -> None:
    inst = random_instances(3, 3, 2, seed=91)
    cons = linear_constraints(inst)
    r = to_vector(raw_outputs(inst, seed=92)).float()
    assert project(r, cons).dtype == torch.float32
    empty = inst[torch.zeros(0, dtype=torch.long)]
    assert ProjectionLayer(PowerControlProblem())(torch.zeros(0, 3, 2), empty).shape == (0, 3, 2)


def test_inference_and_training_paths_agree() -> None:
    inst = random_instances(200, 6, 4, seed=101)
    cons = linear_constraints(inst)
    r = to_vector(raw_outputs(inst, seed=102))
    with torch.no_grad():
        x_inference = project(r, cons)
    x_training = project(r.clone().requires_grad_(), cons).detach()
    torch.testing.assert_close(x_inference, x_training, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------- regressions
def test_badly_scaled_instances_converge_without_safeguard() -> None:
    """Generated instances whose QoS rows hold large ``beta * H_cross / H_direct`` entries.

    The interior point used to stop on a residual plateau (or the polish to reject a correct
    active set on rounding of the large multipliers), leaving the safeguard to return a
    feasible point that is not the projection: 3 of these 500 with this raw (indices 149,
    404, 449).
    """
    from feasnet.data.generate import generate
    from feasnet.data.presets import get_preset

    instances, _ = generate(get_preset("small"), 10000, seed=0)
    test = instances[9500:]
    g = torch.Generator().manual_seed(3)
    raw = torch.sigmoid(torch.randn(500, 3, 2, generator=g, dtype=torch.float64))
    layer = ProjectionLayer(PowerControlProblem())
    test32 = test.to(torch.float32)  # as the layer sees them in training
    out = layer(raw.float(), test32)
    info = layer.last_info
    assert info is not None
    assert info.converged.all(), info.summary()
    assert not info.safeguard.any(), info.summary()
    cons = linear_constraints(test32.to(torch.float64))
    assert cons.G.abs().amax() > 1e3  # the batch does contain badly scaled rows
    x = to_vector(out.double())
    r = to_vector(raw.float().double())
    for i in range(len(test)):
        ref = clarabel_projection(r[i].numpy(), cons.G[i].numpy(), cons.h[i].numpy())
        assert np.abs(x[i].numpy() - ref).max() < 1e-6, i
