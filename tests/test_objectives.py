"""Training objectives: supervised (MSE to labels), hybrid, and their errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from feasnet.cli import app
from feasnet.methods import get_method
from feasnet.models import build_model
from feasnet.objectives import (
    MissingLabelsError,
    label_targets,
    supervised_loss,
    training_loss,
)
from feasnet.problems.registry import problem_of
from feasnet.train_config import TrainConfig
from feasnet.training import train

from .conftest import random_miso_instances, varied_power_control_instances


def _quiet(_: str) -> None:
    pass


def _anchor_labels(instances):  # type: ignore[no-untyped-def]
    """Feasible labels in physical units: the problem's interior anchor (cheap, exact)."""
    problem = problem_of(instances)
    inst64 = problem.float64(instances)
    return problem.to_physical(problem.anchor(inst64), inst64)


def _label_mse(model, instances, labels) -> float:  # type: ignore[no-untyped-def]
    model.eval()
    with torch.no_grad():
        x = model(instances.to(torch.float32))
        target = label_targets(model.problem, labels, instances).to(x.dtype)
        return float(supervised_loss(x, target))


@pytest.mark.parametrize(
    ("method", "make"),
    [
        ("correction+mlp", lambda: varied_power_control_instances(80)),
        ("penalty+mlp", lambda: random_miso_instances(n=80, users=2, antennas=3, seed=5)),
    ],
)
def test_supervised_training_reduces_the_mse_to_labels(method, make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instances = make()
    labels = _anchor_labels(instances)
    config = TrainConfig(epochs=12, batch_size=16, learning_rate=3e-3, objective="supervised")
    torch.manual_seed(config.seed)
    start = build_model(get_method(method), instances)
    start.fit_normalizer(instances)
    before = _label_mse(start, instances, labels)
    summary = train(
        get_method(method), instances, instances[:0], tmp_path, config, labels=labels, log=_quiet
    )
    trained = build_model(get_method(method), instances)  # the last epoch's weights
    trained.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"])
    after = _label_mse(trained, instances, labels)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["train_config"]["objective"] == (
        "supervised"
    )
    assert after < 0.5 * before, (before, after)
    losses = [row["train_loss"] for row in summary["history"]]
    assert losses[-1] < losses[0]


def test_hybrid_is_supervised_plus_weighted_self_supervised() -> None:
    instances = varied_power_control_instances(8).to(torch.float32)
    model = build_model(get_method("correction+mlp"), instances)
    model.fit_normalizer(instances)
    model.eval()
    x = model(instances)
    target = label_targets(model.problem, _anchor_labels(instances), instances).to(x.dtype)
    self_supervised = training_loss(model, TrainConfig(), x, instances, None)
    assert torch.allclose(self_supervised, model.loss(x, instances))
    supervised = training_loss(model, TrainConfig(objective="supervised"), x, instances, target)
    hybrid = training_loss(
        model, TrainConfig(objective="hybrid", hybrid_weight=0.25), x, instances, target
    )
    assert torch.allclose(supervised, supervised_loss(x, target))
    assert torch.allclose(hybrid, supervised + 0.25 * self_supervised, rtol=1e-5)
    with pytest.raises(MissingLabelsError, match="feasnet data label"):
        training_loss(model, TrainConfig(objective="hybrid"), x, instances, None)


def test_supervised_loss_skips_unlabelled_rows_and_handles_complex() -> None:
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]])
    target = torch.tensor([[0.0, 2.0], [math.nan, 1.0], [3.0, 1.0]])
    # rows 0 and 2: squared errors (1, 0) and (0, 4): mean over entries 0.5 and 2
    assert float(supervised_loss(x, target)) == pytest.approx(1.25)
    assert float(supervised_loss(x[1:2], target[1:2])) == 0.0  # nothing labelled
    z = torch.tensor([[1 + 1j, 0j]], dtype=torch.complex128)
    assert float(supervised_loss(z, torch.zeros_like(z))) == pytest.approx(1.0)  # |1+i|^2 / 2


def test_labels_of_the_wrong_shape_or_count_are_refused(tmp_path: Path) -> None:
    instances = varied_power_control_instances(8)
    problem = problem_of(instances)
    with pytest.raises(ValueError, match="labels: expected allocations of shape"):
        label_targets(problem, torch.zeros(8, 2, 2), instances)
    method, config = get_method("penalty+mlp"), TrainConfig(epochs=1, objective="supervised")
    with pytest.raises(MissingLabelsError, match="needs labels"):
        train(method, instances, instances[:0], tmp_path / "a", config, log=_quiet)
    with pytest.raises(ValueError, match="labels: expected 8"):
        train(
            method, instances, instances[:0], tmp_path / "b", config,
            labels=_anchor_labels(instances)[:5], log=_quiet,
        )  # fmt: skip


def test_cli_objective_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(
        app,
        ["train", "--method", "qp+mlp", "--preset", "small", "--out", str(tmp_path / "r"),
         "--objective", "unsupervised"],
    )  # fmt: skip
    assert bad.exit_code == 2 and "objective" in bad.output and "Traceback" not in bad.output
    solver = runner.invoke(
        app,
        ["train", "--method", "qp+mlp", "--preset", "small", "--out", str(tmp_path / "r"),
         "--objective", "supervised", "--label-method", "wmmse"],
    )  # fmt: skip
    assert solver.exit_code == 2
    assert "not a classical power-control solver" in " ".join(solver.output.split())
    assert not (tmp_path / "r").exists()  # refused before any data or file is made
