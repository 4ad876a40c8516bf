"""Solver labels stored in a data set: round trip, resume after an interruption, refusal of
other settings, atomic writes, and the CLI's one-line errors."""

from __future__ import annotations

import functools
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from feasnet import solvers
from feasnet.cli import app
from feasnet.data.labels import (
    LabelError,
    chunk_folder,
    label_dataset,
    labelled_splits,
    read_labels,
    solver_settings,
)
from feasnet.data.presets import get_preset
from feasnet.data.storage import read_dataset, write_dataset
from feasnet.solvers import sca

from ..conftest import random_miso_instances, varied_power_control_instances

SCENARIO = get_preset("small")  # B=3, Q=2


def _quiet(_: str) -> None:
    pass


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """12 path-loss-scale power-control instances split 6 / 3 / 3."""
    path = tmp_path / "d.h5"
    instances = varied_power_control_instances(12)
    write_dataset(path, instances, SCENARIO, 0, None, splits=(0.5, 0.25, 0.25))
    return path


def test_round_trip_matches_the_solver(dataset: Path) -> None:
    out = label_dataset(dataset, splits=["test"], log=_quiet)  # default method: sca
    labels = read_labels(dataset, "sca", "test", check_instances=True)
    test, _ = read_dataset(dataset, "test")
    direct = solvers.solve("sca", test)
    assert labels.method == "sca" and labels.family == "power-control" and len(labels) == 3
    np.testing.assert_allclose(labels.allocation, direct.allocation, rtol=1e-9, atol=0)
    np.testing.assert_allclose(labels.objective, direct.objective, rtol=1e-9)
    np.testing.assert_array_equal(labels.feasible, direct.feasible)
    assert labels.converged.dtype == bool and labels.messages == direct.messages
    assert labels.settings == solver_settings("power-control", "sca")
    assert labels.settings["tolerance"] == sca.DEFAULT_TOLERANCE
    np.testing.assert_array_equal(out["test"].allocation, labels.allocation)
    assert labelled_splits(dataset, "sca") == ["test"]
    # the instances are untouched and the file is still a data set
    again, _ = read_dataset(dataset, "test")
    np.testing.assert_array_equal(again.as_numpy()["H"], test.as_numpy()["H"])
    with h5py.File(dataset, "r") as f:
        assert f["labels/sca"].attrs["feasnet_version"]
        assert f["labels/sca/test"].attrs["num_instances"] == 3
    # a second run keeps what is there
    seen: list[str] = []
    label_dataset(dataset, "sca", splits=["test"], log=seen.append)
    assert "kept" in seen[0]


def test_resume_after_an_interruption_gives_identical_labels(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference_file = tmp_path / "reference.h5"
    reference_file.write_bytes(dataset.read_bytes())
    reference = label_dataset(reference_file, "sca", splits=["train"], log=_quiet)["train"]

    original = sca.solve_instance
    calls = {"n": 0}

    @functools.wraps(original)  # the same name: the checkpoint manifest must match
    def interrupted(instance, options):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(instance, options)

    monkeypatch.setattr(sca, "solve_instance", interrupted)
    before = dataset.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        label_dataset(dataset, "sca", splits=["train"], log=_quiet)
    assert dataset.read_bytes() == before  # nothing half-written into the data set
    chunks = sorted((chunk_folder(dataset, "sca") / "train").rglob("chunk-*.npz"))
    assert len(chunks) == 2  # one instance per chunk at this size: two finished

    counted = {"n": 0}

    @functools.wraps(original)
    def counting(instance, options):  # type: ignore[no-untyped-def]
        counted["n"] += 1
        return original(instance, options)

    monkeypatch.setattr(sca, "solve_instance", counting)
    resumed = label_dataset(dataset, "sca", splits=["train"], log=_quiet)["train"]
    assert counted["n"] == 4  # only the 4 unfinished instances were solved
    np.testing.assert_array_equal(resumed.allocation, reference.allocation)
    np.testing.assert_array_equal(resumed.objective, reference.objective)
    np.testing.assert_array_equal(resumed.converged, reference.converged)
    assert not chunk_folder(dataset, "sca").exists()  # cleaned up after the split is stored


def test_other_settings_are_refused_unless_forced(dataset: Path) -> None:
    label_dataset(dataset, "sca", splits=["test"], log=_quiet)
    with pytest.raises(LabelError, match=r"other settings.*tolerance"):
        label_dataset(dataset, "sca", splits=["test"], options={"tolerance": 1e-4}, log=_quiet)
    with pytest.raises(LabelError, match="other settings"):  # another split, same group
        label_dataset(dataset, "sca", splits=["validation"], options={"tolerance": 1e-4})
    forced = label_dataset(
        dataset, "sca", splits=["validation"], options={"tolerance": 1e-4}, force=True, log=_quiet
    )
    assert forced["validation"].settings["tolerance"] == 1e-4
    # forcing replaced the whole group: the old test labels (other settings) are gone
    assert labelled_splits(dataset, "sca") == ["validation"]


def test_unknown_method_option_split_and_missing_labels(dataset: Path) -> None:
    with pytest.raises(LabelError, match="not a classical power-control solver"):
        label_dataset(dataset, "wmmse", log=_quiet)
    with pytest.raises(LabelError, match="no option 'bogus'"):
        label_dataset(dataset, "sca", options={"bogus": 1}, log=_quiet)
    with pytest.raises(ValueError, match="no split 'nope'"):
        label_dataset(dataset, "sca", splits=["nope"], log=_quiet)
    with pytest.raises(LabelError, match="feasnet data label"):
        read_labels(dataset, "sca", "train")


def test_miso_labels_default_to_wmmse(tmp_path: Path) -> None:
    from feasnet.data.miso_presets import imported_miso_scenario

    instances = random_miso_instances(n=4, users=2, antennas=3, seed=3, gamma=1.0)
    scenario = imported_miso_scenario(instances, name="t", description="test")
    path = tmp_path / "m.h5"
    write_dataset(path, instances, scenario, 0, None, splits=(0.5, 0.0, 0.5))
    out = label_dataset(path, log=_quiet)  # every non-empty split
    assert sorted(out) == ["test", "train"]
    labels = read_labels(path, None, "train")
    assert labels.method == "wmmse" and labels.allocation.dtype == np.complex128
    assert labels.allocation.shape == (2, 3, 2)


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "bogus"], "not a classical power-control solver"),
        (["--split", "nope"], "no split 'nope'"),
        (["--option", "tolerance"], "expected KEY=VALUE"),
        (["--executor", "dask"], "executor: expected process or ray"),
    ],
)
def test_cli_one_line_errors(dataset: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["data", "label", str(dataset), *args])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert message in text and "Traceback" not in result.output


def test_cli_labels_and_refuses_other_settings(dataset: Path) -> None:
    ok = runner.invoke(app, ["data", "label", str(dataset), "--split", "test", "--workers", "1"])
    assert ok.exit_code == 0, ok.output
    assert "3 labels" in ok.output
    refused = runner.invoke(
        app, ["data", "label", str(dataset), "--split", "test", "--option", "tolerance=1e-4"]
    )
    assert refused.exit_code == 2 and "--force" in " ".join(refused.output.split())
    missing = runner.invoke(app, ["data", "label", str(dataset.with_name("none.h5"))])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_chunks_of_an_unfinished_run_with_other_settings(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = sca.solve_instance

    @functools.wraps(original)
    def interrupted(instance, options):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(sca, "solve_instance", interrupted)
    with pytest.raises(KeyboardInterrupt):
        label_dataset(dataset, "sca", splits=["test"], options={"tolerance": 1e-4}, log=_quiet)
    monkeypatch.setattr(sca, "solve_instance", original)
    with pytest.raises(LabelError, match="unfinished sca run with other settings"):
        label_dataset(dataset, "sca", splits=["test"], log=_quiet)
    labels = label_dataset(dataset, "sca", splits=["test"], force=True, log=_quiet)["test"]
    assert labels.settings["tolerance"] == sca.DEFAULT_TOLERANCE
