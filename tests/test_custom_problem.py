"""A family defined outside the package (examples/custom_problem.py) through the public API.

The example file is imported by path, exactly as a user's file would be. Checked here: its
instances validate and batch; its problem's geometry (anchor, closed-form exit, linear form)
agrees with the base class and the registry; exchange files round trip; the package's layers
serve it; ``penalty+mlp`` and ``hop+mlp`` train on it with :func:`feasnet.training.train`, the hard
layer's outputs pass the float64 check at rtol 1e-6, the penalty's violation is measured, and
both are compared with water-filling (itself checked against cvxpy).

The family is registered for this module only (removed again on teardown) so that other tests
see the registry as the package ships it.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from feasnet.problems import InvalidInstanceError, Problem, family_of, problem_of, register
from feasnet.problems.registry import unregister

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_problem.py"
RTOL = 1e-6


def _import_example() -> ModuleType:
    name = "feasnet_example_custom_problem"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def ex() -> ModuleType:
    """The example module, with its family registered (and unregistered afterwards)."""
    from feasnet.nets.registry import unregister_backbone

    module = _import_example()
    register(module.ParallelChannelProblem)  # a no-op after the import's own register
    module.add_mlp_backbone()
    yield module
    unregister(module.FAMILY)
    unregister_backbone("mlp", module.FAMILY)


@pytest.fixture(scope="module")
def problem(ex: ModuleType) -> Problem:
    return ex.ParallelChannelProblem()


# ------------------------------------------------------------------------------ instances
def test_instances_validate_batch_and_cast(ex: ModuleType) -> None:
    inst = ex.draw_instances(10, num_channels=3, seed=5)
    assert len(inst) == 10 and inst.gain.dtype == torch.float64
    assert len(inst[3]) == 1 and len(inst[2:6]) == 4 and len(inst[-1]) == 1
    assert len(inst[torch.tensor([0, 4, 9])]) == 3
    assert len(inst[inst.min_rate[:, 0] > 0.25]) == int((inst.min_rate[:, 0] > 0.25).sum())
    low = inst.to(torch.float32)
    assert low.peak.dtype == torch.float32 and inst.to(torch.float64) is inst
    assert low.to(torch.float64, "cpu").gain.dtype == torch.float64
    with pytest.raises(InvalidInstanceError, match="dtype"):
        inst.to(torch.complex64)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gain": [[1.0, -2.0]]}, "gain"),
        ({"gain": [1.0, 2.0]}, "gain"),
        ({"gain": [[1.0, 2.0j]]}, "gain"),
        ({"noise": float("nan")}, "noise"),
        ({"budget": 0.0}, "budget"),
        ({"peak": [1.0, 1.0, 1.0]}, "peak"),
        ({"peak": [[1.0, float("inf")]]}, "peak"),
        ({"min_rate": -0.1}, "min_rate"),
        ({"min_rate": "fast"}, "min_rate"),
    ],
)
def test_bad_input_names_the_field(ex: ModuleType, change: dict, field: str) -> None:
    good = {"gain": [[1.0, 2.0]], "noise": 1e-3, "budget": 1.0, "peak": 0.6, "min_rate": 0.1}
    with pytest.raises(InvalidInstanceError, match=rf"^{field}:"):
        ex.ParallelChannelInstances.from_arrays(**{**good, **change})


# ------------------------------------------------------------------------------ the problem
def test_registry_finds_the_family(ex: ModuleType, problem: Problem) -> None:
    inst = ex.draw_instances(4)
    assert family_of(inst) is ex.ParallelChannelProblem
    assert family_of(ex.FAMILY) is ex.ParallelChannelProblem
    assert isinstance(problem_of(inst), ex.ParallelChannelProblem)
    assert family_of(problem.instances_to_arrays(inst), "file") is ex.ParallelChannelProblem


def test_anchor_is_strictly_interior_and_infeasible_rows_say_why(
    ex: ModuleType, problem: Problem
) -> None:
    inst = ex.draw_instances(50, seed=3)
    anchor = problem.anchor(inst)
    assert bool((problem.constraints(anchor, inst).amax(dim=1) < -1e-6).all())
    bad = ex.ParallelChannelInstances.from_arrays(
        [[1.0, 1.0], [1e-3, 1.0], [1.0, 1.0]],
        1e-3,
        1.0,
        0.6,
        [[0.1], [5.0], [9.0]],
    )
    verdict = problem.feasibility(bad)
    assert verdict.exact and verdict.feasible.tolist() == [True, False, False]
    assert verdict.reasons[0] == ""
    assert "channel 0" in verdict.reasons[1] and "peak" in verdict.reasons[1]
    assert "budget" in verdict.reasons[2]
    assert (
        torch.isnan(problem.anchor(bad)[1:]).all() and torch.isfinite(problem.anchor(bad)[0]).all()
    )


def test_closed_form_exit_matches_the_base_bisection_and_is_differentiable(
    ex: ModuleType, problem: Problem
) -> None:
    inst = ex.draw_instances(20, seed=4)
    anchor = problem.anchor(inst)
    direction = torch.randn(
        anchor.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    closed = problem.boundary_exit(anchor, direction, inst)
    bisected = Problem.boundary_exit(problem, anchor, direction, inst)
    torch.testing.assert_close(closed, bisected, rtol=1e-9, atol=1e-12)
    exit_point = anchor + closed[:, None] * direction
    assert bool(problem.is_feasible(exit_point, inst, rtol=1e-12).all())
    g = problem.constraints(exit_point, inst).amax(dim=1)
    torch.testing.assert_close(g, torch.zeros_like(g), rtol=0, atol=1e-12)
    a, d = anchor[:3].clone().requires_grad_(), direction[:3].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, d: problem.boundary_exit(a, d, inst[:3]), (a, d))


def test_linear_form_agrees_with_constraints(ex: ModuleType, problem: Problem) -> None:
    inst = ex.draw_instances(8, seed=6)
    x = torch.rand(8, inst.num_channels, dtype=torch.float64)
    form = problem.linear_form(inst)
    assert form.G.shape == (8, 2 * inst.num_channels + 1, inst.num_channels)
    torch.testing.assert_close(
        problem.constraints(x, inst), torch.einsum("nmd,nd->nm", form.G, x) - form.h
    )


def test_water_filling_matches_cvxpy(ex: ModuleType, problem: Problem) -> None:
    cp = pytest.importorskip("cvxpy")
    inst = ex.draw_instances(5, seed=7)
    power = ex.water_filling(inst)
    ours = problem.objective(problem.from_physical(power, inst), inst)
    assert bool(problem.is_feasible(problem.from_physical(power, inst), inst, rtol=1e-9).all())
    for i in range(len(inst)):
        g, s, budget = inst.gain[i].numpy(), float(inst.noise[i]), float(inst.budget[i])
        p = cp.Variable(inst.num_channels)
        cons = [cp.sum(p) <= budget, p >= inst.floor_power()[i].numpy(), p <= inst.peak[i].numpy()]
        value = cp.Problem(cp.Maximize(cp.sum(cp.log(1 + cp.multiply(g / s, p))) / np.log(2)), cons)
        value.solve(solver="CLARABEL")
        assert float(ours[i]) == pytest.approx(value.value, rel=1e-6)


# ------------------------------------------------------------------------------ files
def test_files_round_trip_and_bad_files_name_the_key(
    ex: ModuleType, problem: Problem, tmp_path: Path
) -> None:
    from feasnet.data.exchange import InstanceFileError, load_npz, save_npz

    inst = ex.draw_instances(12, seed=8)
    back = load_npz(save_npz(tmp_path / "pc.npz", inst))
    assert isinstance(back, ex.ParallelChannelInstances)
    for name, _ in ex.FIELDS:
        torch.testing.assert_close(getattr(back, name), getattr(inst, name), rtol=0, atol=0)
    assert load_npz(tmp_path / "pc.npz", dtype=torch.float32).gain.dtype == torch.float32
    arrays = problem.instances_to_arrays(inst)
    assert arrays["budget"].shape == ()  # constant fields are stored as scalars
    with pytest.raises(ValueError, match="'bandwidth'"):
        problem.instances_from_arrays({**arrays, "bandwidth": np.ones(1)}, "f.npz")
    with pytest.raises(ValueError, match="'peak'"):
        problem.instances_from_arrays({k: v for k, v in arrays.items() if k != "peak"}, "f.npz")
    with pytest.raises(InvalidInstanceError, match=r"^f\.npz: noise:"):
        problem.instances_from_arrays({**arrays, "noise": np.asarray(-1.0)}, "f.npz")
    np.savez(tmp_path / "bad.npz", **{**arrays, "min_rate": -arrays["min_rate"] - 1})
    with pytest.raises(InstanceFileError, match="min_rate"):
        load_npz(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize("layer", ["hop", "qp", "correction", "guard"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hard_layers_serve_the_family(
    ex: ModuleType, problem: Problem, layer: str, dtype: torch.dtype
) -> None:
    from feasnet.layers.registry import build_layer

    inst = ex.draw_instances(40, seed=9)
    module = build_layer(layer, {}, problem).eval()
    raw = 1.2 * torch.rand(40, inst.num_channels, generator=torch.Generator().manual_seed(1))
    extra = torch.randn(40, module.extra_outputs)
    x = module(raw.to(dtype), inst.to(dtype), extra.to(dtype))
    assert x.dtype == dtype and x.shape == raw.shape
    assert bool(problem.is_feasible(x.double(), inst, rtol=RTOL).all())


# ------------------------------------------------------------------------------ training
def test_two_methods_train_through_the_public_api(
    ex: ModuleType, problem: Problem, tmp_path: Path
) -> None:
    from feasnet.training import load_model

    train_set = ex.draw_instances(300, seed=10, dtype=torch.float32)
    validation_set = ex.draw_instances(60, seed=11, dtype=torch.float32)
    test_set = ex.draw_instances(100, seed=12)
    lines: list[str] = []
    started = time.perf_counter()
    results = ex.train_and_evaluate(
        tmp_path, train_set, validation_set, test_set, epochs=5, log=lines.append
    )
    assert time.perf_counter() - started < 40
    assert sum("epoch 5" in line for line in lines) == 2

    optimum = problem.objective(
        problem.from_physical(ex.water_filling(test_set), test_set), test_set
    )
    for name, result in results.items():
        assert isinstance(result, ex.ParallelChannelResult) and len(result) == len(test_set)
        # the reported verdict is the float64 check, recomputed here from the powers
        x = problem.from_physical(torch.as_tensor(result.power), test_set)
        assert result.feasible.tolist() == problem.is_feasible(x, test_set, RTOL).tolist()
        ok = torch.as_tensor(result.feasible)
        # no feasible allocation beats the optimum
        assert bool((torch.as_tensor(result.objective)[ok] <= optimum[ok] * (1 + 1e-9)).all()), name

    hop = results["hop+mlp"]
    assert hop.feasible.all()
    assert hop.objective.mean() >= 0.9 * float(optimum.mean())

    penalty = results["penalty+mlp"]
    violation_probability = 1 - float(penalty.feasible.mean())
    assert 0 <= violation_probability <= 1  # measured, whatever it is
    history = [line for line in lines if line.startswith("penalty+mlp epoch")]
    assert all("violation prob." in line for line in history)

    # the saved hop model reloads and gives the same float64-feasible outputs in eval mode
    model, payload = load_model(tmp_path / "hop_mlp")
    assert payload["family"] == ex.FAMILY and model.shape == (test_set.num_channels,)
    with torch.no_grad():
        x = model(test_set.to(torch.float32))
    assert x.dtype == torch.float32
    assert bool(problem.is_feasible(x.double(), test_set, RTOL).all())
    torch.testing.assert_close(
        problem.to_physical(x.double(), test_set), torch.as_tensor(hop.power), rtol=1e-6, atol=0
    )
