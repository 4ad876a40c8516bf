"""HDF5 datasets: round trip, attributes, split checks, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import feasnet
from feasnet.data.generate import GenerationStats
from feasnet.data.presets import get_preset
from feasnet.data.storage import (
    DatasetFileError,
    read_dataset,
    read_info,
    write_dataset,
)
from feasnet.problems.instances import PowerControlInstances
from tests.conftest import varied_power_control_instances

SCENARIO = get_preset("small")  # B=3, Q=2
STATS = GenerationStats(num_samples=40, drawn=130, rejected=90, seconds=0.1)


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, PowerControlInstances]:
    inst = varied_power_control_instances()
    path = tmp_path / "set.h5"
    write_dataset(path, inst, SCENARIO, seed=7, stats=STATS)
    return path, inst


def test_round_trip(dataset: tuple[Path, PowerControlInstances]) -> None:
    path, inst = dataset
    parts = {split: read_dataset(path, split) for split in ("train", "validation", "test")}
    assert [len(parts[s][0]) for s in ("train", "validation", "test")] == [36, 2, 2]
    order = ("train", "validation", "test")
    joined = PowerControlInstances.concatenate([parts[s][0] for s in order])
    for name in ("gain", "pmax", "noise", "bandwidth", "min_rate"):
        assert torch.equal(getattr(joined, name), getattr(inst, name)), name
    assert joined.gain.dtype == torch.float64

    info = parts["test"][1]
    assert info.scenario == SCENARIO
    assert (info.seed, info.drawn, info.rejected) == (7, 130, 90)
    assert info.splits == {"train": 0.9, "validation": 0.05, "test": 0.05}
    assert info.split_sizes == {"train": 36, "validation": 2, "test": 2}
    assert info.num_instances == 40
    assert info.feasnet_version == feasnet.__version__
    assert info.format_version == 1 and info.created.endswith("+00:00")
    assert read_info(path) == info


def test_root_attributes(dataset: tuple[Path, PowerControlInstances]) -> None:
    path, _ = dataset
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        assert attrs["feasnet_format"] == "power-control-dataset"
        assert attrs["format_version"] == 1
        for key, value in SCENARIO.model_dump().items():
            if value is not None:
                assert attrs[key] == value, key
        assert "noise" not in attrs  # None for path-loss scenarios
        assert attrs["noise_power"] == pytest.approx(SCENARIO.noise_power)
        assert (attrs["seed"], attrs["drawn"], attrs["rejected"]) == (7, 130, 90)
        assert attrs["split_train"] == 0.9 and attrs["split_test"] == 0.05
        assert attrs["num_instances"] == 40
        assert f["train/H"].shape == (36, 3, 2, 3) and f["test/min_rate"].shape == (2, 3, 2)
        assert f["validation"].attrs["num_instances"] == 2


def test_without_stats_and_seed(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    splits = (0.5, 0.25, 0.25)
    write_dataset(
        path, varied_power_control_instances(20), SCENARIO, seed=None, stats=None, splits=splits
    )
    info = read_info(path)
    assert (info.seed, info.drawn, info.rejected) == (None, None, None)
    assert info.split_sizes == {"train": 10, "validation": 5, "test": 5}


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ((0.5, 0.5), "three fractions"),
        ((0.9, 0.1, 0.0), "must be > 0"),
        ((1.1, -0.05, -0.05), "must be > 0"),
        ((0.8, 0.1, 0.05), "sum to 1"),
        ((0.9, 0.05, float("nan")), "must be > 0"),
    ],
)
def test_invalid_splits(tmp_path: Path, splits: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_dataset(
            tmp_path / "x.h5", varied_power_control_instances(), SCENARIO, 0, STATS, splits=splits
        )
    assert not (tmp_path / "x.h5").exists()


def test_too_few_instances_and_wrong_scenario(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too few"):
        write_dataset(tmp_path / "x.h5", varied_power_control_instances(5), SCENARIO, 0, STATS)
    with pytest.raises(ValueError, match="do not match scenario"):
        write_dataset(
            tmp_path / "x.h5", varied_power_control_instances(), get_preset("table2-3"), 0, STATS
        )


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "set.h5"
    write_dataset(path, varied_power_control_instances(), SCENARIO, seed=1, stats=STATS)
    before = path.read_bytes()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(path, varied_power_control_instances(), SCENARIO, seed=2, stats=STATS)
    assert path.read_bytes() == before  # old file untouched
    assert [p.name for p in tmp_path.iterdir()] == ["set.h5"]  # no temporary left behind


# ---------------------------------------------------------------------------- errors
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetFileError, match=r"nothere\.h5: no such file"):
        read_dataset(tmp_path / "nothere.h5")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "junk.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DatasetFileError, match=r"junk\.h5: not an HDF5 file"):
        read_dataset(path)
    with pytest.raises(DatasetFileError, match="not an HDF5 file"):
        read_info(path)


def test_foreign_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("H", data=np.ones((2, 2, 1, 2)))
        f.attrs["creator"] = "someone else"
    with pytest.raises(DatasetFileError, match=r"foreign\.h5: not a feasnet dataset.*miso-dataset"):
        read_dataset(path)


def test_newer_format_version(dataset: tuple[Path, PowerControlInstances]) -> None:
    path, _ = dataset
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(DatasetFileError, match="unsupported format_version 99"):
        read_info(path)


def test_missing_split(dataset: tuple[Path, PowerControlInstances]) -> None:
    path, _ = dataset
    with h5py.File(path, "r+") as f:
        del f["validation"]
    with pytest.raises(DatasetFileError, match=r"no split 'validation' \(available: train, test\)"):
        read_dataset(path, "validation")
    assert len(read_dataset(path, "test")[0]) == 2  # the other splits still read


def test_unknown_split_name(dataset: tuple[Path, PowerControlInstances]) -> None:
    path, _ = dataset
    with pytest.raises(DatasetFileError, match="no split 'val'"):
        read_dataset(path, "val")


def test_missing_dataset(dataset: tuple[Path, PowerControlInstances]) -> None:
    path, _ = dataset
    with h5py.File(path, "r+") as f:
        del f["test/noise"]
    with pytest.raises(DatasetFileError, match="split 'test' has no dataset 'noise'"):
        read_dataset(path, "test")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("H", np.nan, "H: contains NaN or inf"),
        ("H", -1.0, "H: contains negative values"),
        ("pmax", 0.0, "pmax: must be > 0"),
        ("bandwidth", -5.0, "bandwidth: must be > 0"),
    ],
)
def test_invalid_data(
    dataset: tuple[Path, PowerControlInstances], key: str, value: float, message: str
) -> None:
    path, _ = dataset
    with h5py.File(path, "r+") as f:
        data = f[f"test/{key}"][()]
        data.reshape(-1)[0] = value
        f[f"test/{key}"][...] = data
    with pytest.raises(DatasetFileError, match=rf"set\.h5: split 'test': {message}"):
        read_dataset(path, "test")


def test_bad_scenario_json(dataset: tuple[Path, PowerControlInstances]) -> None:
    path, _ = dataset
    with h5py.File(path, "r+") as f:
        f.attrs["scenario_json"] = "{not json"
    with pytest.raises(DatasetFileError, match="scenario_json is invalid"):
        read_info(path)
