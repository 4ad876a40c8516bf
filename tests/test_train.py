"""The training loop: learning, checkpoints, resume, reload, size and distribution checks."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.methods import METHODS, get_method
from feasnet.models import build_model, method_applies
from feasnet.problems import miso
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control_problem import PowerControlProblem
from feasnet.training import (
    TrainConfig,
    load_model,
    model_result,
    train,
    warn_if_outside_training,
)
from tests.conftest import make_problem_case


@pytest.fixture(scope="module")
def data() -> tuple[PowerControlInstances, PowerControlInstances, PowerControlInstances]:
    instances, _ = generate(get_preset("small"), 1400, seed=3)
    return instances[:1000], instances[1000:1200], instances[1200:]


def _quiet(_: str) -> None:
    pass


def test_every_registered_method_builds_and_gives_feasible_outputs(data) -> None:
    _, _, test = data
    for name, config in METHODS.items():
        if name == "dipnet-cvxpylayers" or not method_applies(config, "power-control"):
            continue  # slow reference covered in tests/layers; MISO in test_train_miso
        model = build_model(get_method(name), problem=PowerControlProblem(), shape=(3, 2))
        model.fit_normalizer(test)  # backbone normalizer, and the layer fit (hp)
        result = model_result(model, test[:50])
        if model.layer.hard:  # penalty layers may violate; everything else must be feasible
            assert result.feasible.all(), name
        assert result.power.shape == (50, 3, 2)


def test_short_training_improves_validation_objective(data, tmp_path: Path) -> None:
    train_set, validation_set, _ = data
    torch.manual_seed(0)
    untrained = build_model(get_method("dipnet"), train_set)
    untrained.backbone.fit_normalizer(train_set)
    before = model_result(untrained, validation_set)
    summary = train(
        get_method("dipnet"),
        train_set,
        validation_set,
        tmp_path,
        TrainConfig(epochs=3, batch_size=64),
        log=_quiet,
    )
    model, payload = load_model(tmp_path)
    after = model_result(model, validation_set)
    assert after.feasible.all()
    assert after.sum_rate.mean() > before.sum_rate.mean() * 1.005
    assert summary["best_epoch"] >= 1 and (tmp_path / "history.json").exists()
    assert payload["variable_shape"] == [3, 2] and payload["method"]["name"] == "dipnet"


def test_checkpoint_resume_and_reload_round_trip(data, tmp_path: Path) -> None:
    train_set, validation_set, test = data
    config = TrainConfig(epochs=2, batch_size=128, seed=5)
    train(get_method("dipnet"), train_set, validation_set, tmp_path / "a", config, log=_quiet)
    # two epochs in one go == one epoch, then resume for the second
    one = TrainConfig(epochs=1, batch_size=128, seed=5)
    train(get_method("dipnet"), train_set, validation_set, tmp_path / "b", one, log=_quiet)
    summary = train(
        get_method("dipnet"),
        train_set,
        validation_set,
        tmp_path / "b",
        config,
        resume=True,
        log=_quiet,
    )
    assert [row["epoch"] for row in summary["history"]] == [1, 2]
    state_a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    state_b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    for key, value in state_a["model"].items():
        torch.testing.assert_close(value, state_b["model"][key], msg=key)
    # reload: weights_only loading and identical outputs
    model, _ = load_model(tmp_path / "a" / "model.pt")
    again, _ = load_model(tmp_path / "a")
    first = model_result(model, test).power
    second = model_result(again, test).power
    assert (first == second).all()


def test_resume_refuses_another_method(data, tmp_path: Path) -> None:
    train_set, validation_set, _ = data
    config = TrainConfig(epochs=1, batch_size=256)
    train(get_method("depnet"), train_set, validation_set, tmp_path, config, log=_quiet)
    with pytest.raises(ValueError, match="another method"):
        train(
            get_method("pnet"), train_set, validation_set, tmp_path, config, resume=True, log=_quiet
        )


@pytest.fixture(scope="module")
def one_epoch_depnet(data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DEPNet run folder trained for one epoch (shared by the loading tests)."""
    train_set, validation_set, _ = data
    folder = tmp_path_factory.mktemp("depnet")
    train(
        get_method("depnet"),
        train_set,
        validation_set,
        folder,
        TrainConfig(epochs=1, batch_size=256),
        log=_quiet,
    )
    return folder


def test_model_for_another_size_fails_clearly(one_epoch_depnet: Path) -> None:
    model, _ = load_model(one_epoch_depnet)
    other, _ = generate(get_preset("table2-2"), 5, seed=0)  # B=2, Q=3
    with pytest.raises(ValueError, match=r"trained for variables of shape \(3, 2\)"):
        model_result(model, other)


def test_other_scalars_stay_feasible_and_warn(data, one_epoch_depnet: Path) -> None:
    test = data[2]
    model, payload = load_model(one_epoch_depnet)
    # half the budget and a different rate target: keep only instances still feasible
    shifted = PowerControlInstances.from_arrays(
        test.gain, test.pmax * 0.5, test.noise, test.bandwidth, test.min_rate * 0.8
    )
    shifted = shifted[pc.minimum_power(shifted).feasible]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reasons = warn_if_outside_training(payload, shifted)
    assert any("pmax" in r for r in reasons) and any("min_rate" in r for r in reasons)
    assert caught
    result = model_result(model, shifted)
    assert result.feasible.all()


def test_loading_garbage_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a feasnet model file"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a feasnet model file"):
        load_model(tmp_path / "other.pt")


def test_unknown_method_name_lists_choices() -> None:
    with pytest.raises(KeyError, match="dipnet"):
        get_method("nonsense")
    assert get_method("DIPNet+FW").refine == "fw"


@pytest.mark.parametrize("case_name", ["power-control/linear-rate", "miso/sinr"])
def test_loss_asks_the_problem_and_reproduces_each_papers_loss(case_name: str) -> None:
    problem, instances = make_problem_case(case_name, n=6)
    model = build_model(get_method("penalty+mlp", penalty_weight=10.0), instances, problem=problem)
    shape = (len(instances), *problem.variable_shape(instances))
    g = torch.Generator().manual_seed(0)
    if problem.complex_variable:
        x = torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
        x = x.to(torch.complex128)
        inst = miso.normalized_instances(instances)  # normalized beams: same WSR and rows
        expected = -miso.weighted_sum_rate(x, inst) + 10.0 * torch.relu(
            miso.constraint_values(x, inst)
        ).square().sum(dim=1)
    else:
        x = 1.2 * torch.rand(shape, generator=g, dtype=torch.float64)
        watts = x * instances.pmax[:, None, None]
        # eq. 14: -R/W + lambda V with V the squared violation of the normalized rows (eq. 12)
        expected = -pc.sum_rate(watts, instances) / instances.bandwidth + 10.0 * (
            pc.violation_measure(watts, instances)
        )
    torch.testing.assert_close(model.loss(x, instances), expected.mean())
    x = x[:3].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: model.loss(v, instances[:3]), (x,))


def test_model_files_of_format_version_1_still_load(one_epoch_depnet: Path, tmp_path: Path) -> None:
    """A model file written before methods were compositions: flat method, size keys."""
    payload = torch.load(one_epoch_depnet / "model.pt", weights_only=True)
    flat = {
        "name": "depnet",
        "description": "",
        "layer": "correction",
        "activation": "sigmoid",
        "refine": "none",
        "penalty_weight": 10.0,
        "equilibrate_penalty": False,
        "selection": "objective",
        "hidden": [200, 200, 200],
        "dropout": 0.1,
        "batch_norm": True,
        "include_rate_targets": True,
        "correction": {"train_steps": 5, "step_size": 0.3, "momentum": 0.5, "test_steps": 100},
        "guard": False,
    }
    old = {k: v for k, v in payload.items() if k not in ("variable_shape", "constraint_set")}
    old.update(format_version=1, method=flat, num_bs=3, num_channels=2)
    torch.save(old, tmp_path / "model.pt")
    model, _ = load_model(tmp_path)
    again, _ = load_model(one_epoch_depnet)
    assert model.config.backbone.kind == "mlp" and model.problem == again.problem
    assert (
        model.config.layer.kind == "correction" and model.config.layer.options["test_steps"] == 100
    )
    instances, _ = generate(get_preset("small"), 40, seed=9)
    torch.testing.assert_close(
        model_result(model, instances).power, model_result(again, instances).power
    )
