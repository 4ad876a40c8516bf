"""Learned MISO methods: every preset builds, trains through the shared loop, saves and loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from feasnet.bench.miso import LEARNED_METHODS as MISO_METHODS
from feasnet.methods import METHODS, get_method, method_families
from feasnet.models import build_model, method_applies
from feasnet.problems import miso
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers.result import BeamformingResult
from feasnet.training import TrainConfig, load_model, model_result, train

from .conftest import random_miso_instances as random_instances


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def data() -> tuple[miso.MisoInstances, miso.MisoInstances]:
    instances = random_instances(n=160, users=2, antennas=4, seed=11, gamma=1.0)
    assert bool(miso.minimum_power(instances).feasible.all())
    return instances[:120], instances[120:]


def test_registry_has_the_six_survey_combinations() -> None:
    assert set(MISO_METHODS) == {
        f"{layer}+{backbone}" for layer in ("penalty", "dc3", "hop") for backbone in ("mlp", "du")
    }
    for name in MISO_METHODS:
        assert name in METHODS and method_applies(get_method(name), "miso")
        assert "miso" in method_families(get_method(name))
    assert not method_applies(get_method("dipnet"), "miso")  # qp needs a polytope
    assert not method_applies(get_method("dc3+du"), "power-control")  # dc3 is MISO-only


@pytest.mark.parametrize("name", sorted(MISO_METHODS))
def test_every_method_gives_beams_and_hard_layers_are_feasible(name: str, data) -> None:
    _, test = data
    torch.manual_seed(0)
    model = build_model(get_method(name), test)
    model.fit_normalizer(test)
    result = model_result(model, test)
    assert isinstance(result, BeamformingResult)
    assert result.beams.shape == (len(test), 4, 2)
    if not name.startswith("penalty"):  # DC3 to tolerance and HoP must be feasible untrained
        assert result.feasible.all(), name
    guarded = model_result(model, test, guard=True)
    assert guarded.feasible.all(), name


def test_training_improves_wsr_and_model_round_trips(data, tmp_path: Path) -> None:
    train_set, test = data
    torch.manual_seed(0)
    method = get_method("hop+mlp")
    untrained = build_model(method, train_set)
    untrained.fit_normalizer(train_set)
    before = model_result(untrained, test)
    # an empty validation set holds out part of the training set
    empty = train_set[:0]
    summary = train(
        method,
        train_set,
        empty,
        tmp_path,
        TrainConfig(epochs=4, batch_size=16, learning_rate=3e-3),
        log=_quiet,
    )
    assert len(summary["history"]) >= 1
    model, payload = load_model(tmp_path)
    assert payload["family"] == "miso" and payload["variable_shape"] == [4, 2]
    after = model_result(model, test)
    assert after.feasible.all()
    assert after.wsr.mean() > before.wsr.mean()
    # the trained model refuses other sizes and the other family
    with pytest.raises(ValueError, match="another size"):
        model_result(model, random_instances(n=4, users=2, antennas=6))
    power_control = PowerControlInstances.from_arrays(torch.ones(2, 2, 1, 2), 1.0, 1e-3, 1e6, 0.0)
    with pytest.raises(ValueError, match="miso model"):
        model_result(model, power_control)


def test_resume_continues_from_the_checkpoint(data, tmp_path: Path) -> None:
    train_set, test = data
    method = get_method("dc3+du")
    config = TrainConfig(epochs=1, batch_size=32)
    train(method, train_set, test, tmp_path, config, log=_quiet)
    lines: list[str] = []
    summary = train(
        method,
        train_set,
        test,
        tmp_path,
        TrainConfig(epochs=2, batch_size=32),
        resume=True,
        log=lines.append,
    )
    assert any("resumed" in line for line in lines)
    assert [row["epoch"] for row in summary["history"]] == [1, 2]
