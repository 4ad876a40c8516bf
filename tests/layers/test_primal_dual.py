"""The primal-dual (PDL) layer: dual update sign and clipping, penalty schedule, augmented
Lagrangian loss, gradients, training on both families, saving and loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from feasnet.layers.primal_dual import PrimalDualLayer, PrimalDualOptions
from feasnet.layers.registry import build_layer
from feasnet.methods import get_method
from feasnet.models import build_model
from feasnet.problems.registry import problem_of
from feasnet.training import TrainConfig, load_model, model_result, train

from ..conftest import random_miso_instances, varied_power_control_instances


def _quiet(_: str) -> None:
    pass


def _layer(instances, **options):  # type: ignore[no-untyped-def]
    problem = problem_of(instances)
    layer = build_layer("primal-dual", options, problem)
    assert isinstance(layer, PrimalDualLayer)
    layer.setup(problem.variable_shape(instances))
    layer.fit(instances)
    return layer


def test_dual_update_moves_multipliers_with_the_violation_and_clips_at_zero() -> None:
    layer = _layer(varied_power_control_instances(4), rho=2.0)
    lam = torch.tensor([[0.0, 1.0, 2.0, 0.5]], dtype=torch.float64)
    g = torch.tensor([[-1.0, -2.0, 0.5, 0.0]], dtype=torch.float64)
    # violated rows grow by rho * g, satisfied rows shrink, and nothing goes below zero
    expected = torch.tensor([[0.0, 0.0, 3.0, 0.5]], dtype=torch.float64)
    assert torch.equal(layer.dual_targets(lam, g), expected)


def test_rho_grows_only_without_enough_progress_and_is_capped() -> None:
    layer = _layer(varied_power_control_instances(4), rho=1.0, rho_growth=10.0, rho_max=50.0)
    layer.update_rho(1.0)  # first iteration: previous violation is inf -> no growth
    assert float(layer.rho) == 1.0
    layer.update_rho(0.5)  # 0.5 <= 0.8 * 1.0: enough progress
    assert float(layer.rho) == 1.0
    layer.update_rho(0.45)  # 0.45 > 0.8 * 0.5: grow
    assert float(layer.rho) == 10.0
    layer.update_rho(0.45)
    assert float(layer.rho) == 50.0  # capped
    assert float(layer.last_violation) == 0.45


@pytest.mark.parametrize(
    "make",
    [
        lambda: varied_power_control_instances(5),
        lambda: random_miso_instances(n=5, users=2, antennas=3, seed=1),
    ],
)
def test_constraint_loss_is_the_augmented_lagrangian_and_has_exact_gradients(make) -> None:  # type: ignore[no-untyped-def]
    instances = make()
    layer = _layer(instances)
    problem = layer.problem
    inst64 = problem.float64(instances)
    anchor = problem.anchor(inst64)
    x = (2.0 * anchor).detach()  # some rows violated, some not
    layer.outer_iterations.fill_(1)  # multipliers now come from the (random) dual network
    layer.rho.fill_(3.0)
    lam = layer.multipliers(inst64).to(torch.float64)
    assert lam.shape == problem.constraints(x, inst64).shape and bool((lam >= 0).all())
    g = problem.constraints(x, inst64)
    manual = (lam * g).sum(1) + 1.5 * torch.relu(g).pow(2).sum(1)
    torch.testing.assert_close(layer.constraint_loss(x, inst64), manual)
    # float64 gradient check of the loss term (the layer itself is the identity)
    point = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda z: layer.constraint_loss(z, inst64), (point,), eps=1e-7, atol=1e-5
    )
    raw = torch.randn_like(x)
    assert torch.equal(layer(raw, inst64), raw)


def test_multipliers_are_zero_before_the_first_dual_update() -> None:
    instances = varied_power_control_instances(3)
    layer = _layer(instances)
    assert int(layer.outer_iterations) == 0
    assert not layer.multipliers(instances).any()


@pytest.mark.parametrize(
    ("method", "make"),
    [
        ("primal-dual+mlp", lambda: varied_power_control_instances(64)),
        ("primal-dual+mlp", lambda: random_miso_instances(n=64, users=2, antennas=3, seed=2)),
    ],
)
def test_trains_on_both_families_saves_and_loads(method, make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instances = make()
    lines: list[str] = []
    config = TrainConfig(epochs=3, batch_size=16)
    train(get_method(method), instances, instances[:0], tmp_path, config, log=lines.append)
    outer = [line for line in lines if line.startswith("primal-dual: outer iteration")]
    assert len(outer) == 3  # one dual update per epoch by default
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    assert int(state["layer.outer_iterations"]) == 3 and float(state["layer.rho"]) >= 1.0
    model, _ = load_model(tmp_path)  # the dual network is rebuilt from the file
    layer = model.layer
    assert isinstance(layer, PrimalDualLayer) and layer.dual is not None
    assert (
        int(layer.num_constraints)
        == problem_of(instances)
        .constraints(
            problem_of(instances).anchor(problem_of(instances).float64(instances[:1])),
            problem_of(instances).float64(instances[:1]),
        )
        .shape[1]
    )
    result = model_result(model, instances[:8])
    assert result.allocation.shape[0] == 8  # soft: feasibility is reported, not promised


def test_resume_continues_the_schedule(tmp_path: Path) -> None:
    instances = varied_power_control_instances(48)
    method = get_method("primal-dual+mlp", layer={"kind": "primal-dual", "options": {}})
    full, part = tmp_path / "full", tmp_path / "part"
    train(method, instances, instances[:0], full, TrainConfig(epochs=2, batch_size=16), log=_quiet)
    train(method, instances, instances[:0], part, TrainConfig(epochs=1, batch_size=16), log=_quiet)
    train(
        method, instances, instances[:0], part, TrainConfig(epochs=2, batch_size=16),
        resume=True, log=_quiet,
    )  # fmt: skip
    a = torch.load(full / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(part / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="rho_growth"):
        PrimalDualOptions(rho_growth=0.5)
    with pytest.raises(ValueError, match="violation_ratio"):
        PrimalDualOptions(violation_ratio=1.5)
    model = build_model(get_method("primal-dual+mlp"), varied_power_control_instances(4))
    assert not model.layer.hard


def test_every_problem_and_constraint_set(problem_case) -> None:  # type: ignore[no-untyped-def]
    """One dual update on each (family, constraint set): multipliers sized by the problem's
    rows, nonnegative, and a finite loss with a gradient for the primal output."""
    from feasnet.layers.registry import build_layer as build

    problem, instances = problem_case
    layer = build("primal-dual", {"dual_epochs": 1}, problem)
    assert isinstance(layer, PrimalDualLayer)
    layer.setup(problem.variable_shape(instances))
    layer.fit(instances)
    inst = problem.float64(instances)
    x = problem.anchor(inst) * 1.5
    rows = problem.constraints(x, inst).shape[1]
    assert int(layer.num_constraints) == rows

    class Fixed(torch.nn.Module):  # a "model" whose output is x, for the outer iteration
        def forward(self, batch):  # type: ignore[no-untyped-def]
            return x[: len(batch)].to(torch.complex64 if x.is_complex() else torch.float32)

    single = instances.to(torch.complex64 if problem.complex_variable else torch.float32)
    layer.after_epoch(Fixed(), single, epoch=1, log=_quiet)
    assert int(layer.outer_iterations) == 1
    lam = layer.multipliers(single)
    assert lam.shape == (len(instances), rows) and bool((lam >= 0).all())
    point = x.clone().requires_grad_()
    loss = layer.constraint_loss(point, inst).sum()
    loss.backward()
    assert torch.isfinite(loss) and point.grad is not None
