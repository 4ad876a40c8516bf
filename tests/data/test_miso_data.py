"""MISO data sets: scenario and presets, SNR definition, generation, HDF5 and .npz files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pydantic
import pytest
import torch

from feasnet.data import (
    DEFAULT_MISO_SPLITS,
    MISO_REQUIRED_KEYS,
    DatasetFileError,
    EmptySplitError,
    GenerationError,
    GenerationStats,
    InstanceFileError,
    MisoScenario,
    Scenario,
    draw_instances,
    generate,
    get_preset,
    imported_miso_scenario,
    load_npz,
    preset_names,
    read_dataset,
    read_info,
    save_npz,
    scenario_family,
    write_dataset,
)
from feasnet.problems import miso
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances
from tests.conftest import random_instances, varied_miso_instances

SMALL = get_preset("miso-small")  # Nt=4, K=2
FIELDS = ("channel", "pmax", "circuit_power", "efficiency", "noise", "sinr_min", "weights")
STATS = GenerationStats(num_samples=20, drawn=25, rejected=5, seconds=0.1)


def assert_same(a: MisoInstances, b: MisoInstances) -> None:
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# ---------------------------------------------------------------------------- presets
def test_presets_registered_with_power_control() -> None:
    names = preset_names()
    sweep = [f"miso-snr-{s}" for s in (0, 5, 10, 15, 20)]
    sweep += [f"miso-m-{m}" for m in ("0.5", "1", "2", "4", "8")]
    sweep += [f"miso-sinr-{t}" for t in ("0", "5", "10", "12.5", "15")]
    assert [n for n in names if n.startswith("miso")] == [*sweep, "miso-small"]
    assert "small" in names and isinstance(get_preset("small"), Scenario)
    for snr in (0, 5, 10, 15, 20):
        s = get_preset(f"miso-snr-{snr}")
        assert isinstance(s, MisoScenario) and scenario_family(s) == "miso"
        assert (s.snr_db, s.nakagami_m, s.num_antennas, s.num_users) == (snr, 1.0, 20, 3)
    for m in (0.5, 1, 2, 4, 8):
        s = get_preset(f"MISO-M-{m:g}")
        assert (s.nakagami_m, s.snr_db) == (m, 10.0)
    s = get_preset("miso-snr-10")
    assert (s.pmax, s.circuit_power, s.efficiency, s.sinr_min_db, s.weights) == (
        1.0,
        0.1,
        0.5,
        0.0,
        "random",
    )
    assert (s.cell_radius_m, s.inner_radius_fraction, s.num_samples) == (200, 0.5, 1000)
    assert (SMALL.num_antennas, SMALL.num_users) == (4, 2)
    assert MisoScenario.model_validate_json(s.model_dump_json()) == s


def test_scenario_validation() -> None:
    with pytest.raises(pydantic.ValidationError, match="circuit_power"):
        MisoScenario(name="x", pmax=1.0, circuit_power=1.0)
    with pytest.raises(pydantic.ValidationError, match="nakagami_m"):
        MisoScenario(name="x", nakagami_m=0.3)
    with pytest.raises(pydantic.ValidationError, match="efficiency"):
        SMALL.with_overrides(efficiency=1.5)
    assert SMALL.with_overrides(sinr_min_db=None).sinr_min == 0.0


def test_snr_definition() -> None:
    s = get_preset("miso-snr-10")
    edge_gain = 10 ** (-(128.1 + 37.6 * math.log10(0.2)) / 10)  # PL at R = 200 m
    budget = 0.5 * (1.0 - 0.1)
    assert s.edge_gain == pytest.approx(edge_gain, rel=1e-12)
    assert s.transmit_budget == pytest.approx(budget)
    assert s.noise_power == pytest.approx(budget * edge_gain / 10.0, rel=1e-12)
    # SNR = budget g(R) / sigma^2, in dB, for every preset of the sweep
    for snr in (0, 5, 10, 15, 20):
        p = get_preset(f"miso-snr-{snr}")
        assert 10 * math.log10(p.transmit_budget * p.edge_gain / p.noise_power) == pytest.approx(
            snr
        )
    # the other power-model fields enter through the budget only
    t = s.with_overrides(pmax=2.0, circuit_power=0.5, efficiency=0.25, cell_radius_m=100.0)
    edge_100 = 10 ** (-(128.1 - 37.6) / 10)
    assert t.noise_power == pytest.approx(0.25 * 1.5 * edge_100 / 10.0, rel=1e-12)


# ---------------------------------------------------------------------------- generation
def test_generation_values_and_reproducibility() -> None:
    inst, stats = generate(SMALL, 30, seed=0, batch_size=64)
    assert isinstance(inst, MisoInstances)
    assert inst.channel.shape == (30, 2, 4) and inst.channel.dtype == torch.complex128
    assert miso.minimum_power(inst).feasible.all()
    assert stats.num_samples == 30 and stats.drawn == 30 + stats.rejected
    assert torch.all(inst.pmax == 1.0) and torch.all(inst.circuit_power == 0.1)
    assert torch.all(inst.efficiency == 0.5) and torch.all(inst.sinr_min == 1.0)
    assert torch.allclose(inst.noise, torch.full((30,), SMALL.noise_power, dtype=torch.float64))
    assert (inst.weights >= 0.5).all() and (inst.weights <= 1.5).all()
    assert inst.weights.std() > 0.1  # i.i.d. per user and instance
    again, _ = generate(SMALL, 30, seed=0, batch_size=64)
    longer, _ = generate(SMALL, 40, seed=0, batch_size=64)
    other, _ = generate(SMALL, 30, seed=1, batch_size=64)
    assert_same(inst, again)
    assert_same(inst, longer[:30])
    assert not torch.equal(inst.channel, other.channel)
    equal, _ = generate(SMALL.with_overrides(weights="equal"), 5, seed=0, batch_size=16)
    assert torch.all(equal.weights == 1.0)


def test_generation_rejects_infeasible_draws() -> None:
    tight = SMALL.with_overrides(sinr_min_db=12.0)  # Nt=4, K=2, SNR 10 dB: ~20 % infeasible
    inst, stats = generate(tight, 40, seed=0, batch_size=64)
    assert stats.rejected > 0 and stats.drawn == 40 + stats.rejected
    assert miso.minimum_power(inst).feasible.all()
    # Replay by hand: the kept instances are exactly the feasible draws, in order.
    g = torch.Generator().manual_seed(0)
    kept: list[MisoInstances] = []
    drawn = 0
    while sum(len(k) for k in kept) < 40:
        batch = draw_instances(tight, 64, g)
        ok = torch.nonzero(miso.minimum_power(batch).feasible).squeeze(1)
        ok = ok[: 40 - sum(len(k) for k in kept)]
        kept.append(batch[ok])
        drawn += int(ok[-1]) + 1 if sum(len(k) for k in kept) == 40 else 64
    assert_same(MisoInstances.concatenate(kept), inst)
    assert stats.drawn == drawn


def test_impossible_targets_raise() -> None:
    # SNR -40 dB: even a cell-centre user with the array gain cannot reach 0 dB
    hopeless = SMALL.with_overrides(snr_db=-40.0)
    with pytest.raises(GenerationError, match=r"acceptance rate 0\.000%.*sinr_min_db"):
        generate(hopeless, 10, seed=0, batch_size=100, max_draw_factor=20)
    imported = imported_miso_scenario(varied_miso_instances(), "mine")
    with pytest.raises(ValueError, match="imported channels cannot be drawn"):
        generate(imported, 5)


# ---------------------------------------------------------------------------- HDF5
def test_hdf5_round_trip_with_empty_validation(tmp_path: Path) -> None:
    inst = varied_miso_instances(20)
    scenario = SMALL.with_overrides(num_samples=20)
    path = tmp_path / "miso.h5"
    info = write_dataset(path, inst, scenario, seed=3, stats=STATS)  # default splits 7:0:3
    assert info.family == "miso" and info.splits == dict(
        zip(("train", "validation", "test"), DEFAULT_MISO_SPLITS, strict=True)
    )
    assert info.split_sizes == {"train": 14, "validation": 0, "test": 6}
    with h5py.File(path, "r") as f:
        assert f.attrs["feasnet_format"] == "miso-dataset"
        assert f.attrs["num_users"] == 2 and f.attrs["weights"] == "random"
        assert f.attrs["noise_power"] == pytest.approx(scenario.noise_power)
        assert f["train/H"].dtype == np.complex128 and f["train/H"].shape == (14, 2, 4)
        assert f["validation/H"].shape == (0, 2, 4)
        assert f["test/sinr_min"].shape == (6, 2) and f["test/pc"].shape == (6,)
    train, info_train = read_dataset(path, "train")
    test, _ = read_dataset(path, "test")
    assert isinstance(train, MisoInstances) and train.channel.dtype == torch.complex128
    assert_same(MisoInstances.concatenate([train, test]), inst)
    assert info_train == read_info(path) and info_train.scenario == scenario
    assert (info_train.seed, info_train.drawn, info_train.rejected) == (3, 25, 5)
    with pytest.raises(EmptySplitError, match=r"miso\.h5: split 'validation' is empty"):
        read_dataset(path, "validation")
    assert issubclass(EmptySplitError, DatasetFileError)


def test_hdf5_custom_splits_and_power_control_family(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    info = write_dataset(path, varied_miso_instances(20), SMALL, 0, None, splits=(0.5, 0.25, 0.25))
    assert info.split_sizes == {"train": 10, "validation": 5, "test": 5}
    assert len(read_dataset(path, "validation")[0]) == 5
    # Power control keeps its own marker and defaults; an empty validation works there too.
    pc_path = tmp_path / "pc.h5"
    pc = random_instances(10, 3, 2, seed=0, pathloss=True)
    info = write_dataset(pc_path, pc, get_preset("small"), 0, None, splits=(0.8, 0.0, 0.2))
    assert info.family == "power-control" and read_info(pc_path).family == "power-control"
    with h5py.File(pc_path, "r") as f:
        assert f.attrs["feasnet_format"] == "power-control-dataset"
    assert isinstance(read_dataset(pc_path, "train")[0], PowerControlInstances)
    with pytest.raises(EmptySplitError, match="'validation' is empty"):
        read_dataset(pc_path, "validation")


def test_hdf5_mismatches_and_bad_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="K=3, Nt=5 do not match"):
        write_dataset(tmp_path / "x.h5", varied_miso_instances(20, 3, 5), SMALL, 0, None)
    with pytest.raises(ValueError, match="MISO instances do not match power-control"):
        write_dataset(tmp_path / "x.h5", varied_miso_instances(20), get_preset("small"), 0, None)
    with pytest.raises(ValueError, match="power-control instances do not match MISO"):
        pc = random_instances(20, 2, 4, seed=0)
        write_dataset(tmp_path / "x.h5", pc, SMALL, 0, None)
    with pytest.raises(ValueError, match="validation >= 0"):
        write_dataset(
            tmp_path / "x.h5", varied_miso_instances(20), SMALL, 0, None, (0.8, -0.1, 0.3)
        )
    assert not (tmp_path / "x.h5").exists()
    path = tmp_path / "bad.h5"
    write_dataset(path, varied_miso_instances(20), SMALL, 0, None)
    with h5py.File(path, "r+") as f:
        f["test/eta"][0] = 1.5
    with pytest.raises(DatasetFileError, match=r"bad\.h5: split 'test': eta: must be <= 1"):
        read_dataset(path, "test")
    with h5py.File(path, "r+") as f:
        del f["train/weights"]
    with pytest.raises(DatasetFileError, match="split 'train' has no dataset 'weights'"):
        read_dataset(path, "train")


# ---------------------------------------------------------------------------- npz
def write_npz(path: Path, arrays: dict[str, Any]) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, allow_pickle=True, **arrays)
    return path


def valid_arrays(n: int = 5, k: int = 2, nt: int = 4) -> dict[str, Any]:
    h = varied_miso_instances(n, k, nt).channel.numpy()
    return {"H": h, "pmax": 1.0, "pc": 0.1, "eta": 0.5, "noise": 1e-12, "sinr_min": 1.0,
            "weights": 1.0}  # fmt: skip


def test_npz_round_trip(tmp_path: Path) -> None:
    inst = varied_miso_instances(6)
    path = save_npz(tmp_path / "full.npz", inst)
    with np.load(path) as archive:
        assert set(archive.files) == set(MISO_REQUIRED_KEYS)
        assert archive["H"].dtype == np.complex128 and archive["sinr_min"].shape == (6, 2)
    assert_same(load_npz(path), inst)
    # constant values come out as scalars, per-user constants as (K,)
    const = MisoInstances.from_arrays(inst.channel, 1.0, 0.1, 0.5, 1e-12, [1.0, 2.0], 1.0)
    path = save_npz(tmp_path / "const.npz", const)
    with np.load(path) as archive:
        for key in ("pmax", "pc", "eta", "noise", "weights"):
            assert archive[key].shape == (), key
        assert archive["sinr_min"].shape == (2,)
    back = load_npz(path, dtype=torch.float32)
    assert back.channel.dtype == torch.complex64
    assert_same(back.to(torch.complex128), const.to(torch.complex64).to(torch.complex128))
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["const.npz", "full.npz"]


def test_npz_hand_written_real_channel(tmp_path: Path) -> None:
    arrays = valid_arrays() | {"H": np.ones((5, 2, 4))}
    inst = load_npz(write_npz(tmp_path / "real.npz", arrays))
    assert isinstance(inst, MisoInstances) and inst.channel.dtype == torch.complex128
    assert torch.all(inst.sinr_min == 1.0)


@pytest.mark.parametrize("key", MISO_REQUIRED_KEYS[1:])
def test_npz_missing_key(tmp_path: Path, key: str) -> None:
    arrays = valid_arrays()
    del arrays[key]
    pattern = rf"missing key '{key}'; required keys: H, pmax, pc, eta, noise, sinr_min, weights"
    with pytest.raises(InstanceFileError, match=pattern):
        load_npz(write_npz(tmp_path / "case.npz", arrays))


def test_npz_family_detection(tmp_path: Path) -> None:
    # Neither family's own keys: H decides (3-D -> MISO, 4-D -> power control).
    only = {"pmax": 1.0, "noise": 1.0}
    h3 = valid_arrays()["H"]
    with pytest.raises(InstanceFileError, match=r"missing key 'pc' \(also 'eta', 'sinr_min'"):
        load_npz(write_npz(tmp_path / "a.npz", only | {"H": h3}))
    with pytest.raises(InstanceFileError, match=r"missing key 'bandwidth' \(also 'min_rate'\)"):
        load_npz(write_npz(tmp_path / "b.npz", only | {"H": np.ones((2, 2, 1, 2))}))
    # No H at all: reported for the family the other keys point to.
    with pytest.raises(InstanceFileError, match=r"missing key 'H'.*pc, eta"):
        load_npz(
            write_npz(tmp_path / "c.npz", {k: v for k, v in valid_arrays().items() if k != "H"})
        )
    # Forcing the family skips detection.
    with pytest.raises(InstanceFileError, match="missing key 'bandwidth'"):
        load_npz(write_npz(tmp_path / "d.npz", valid_arrays()), family="power-control")


def _h_with(value: complex) -> np.ndarray:
    h = valid_arrays()["H"].copy()
    h[0, 1, 2] = value
    return h


BAD_INPUTS = {
    "H-nan": ("H", lambda: _h_with(np.nan)),
    "H-inf": ("H", lambda: _h_with(complex(0, np.inf))),
    "H-two-dims": ("H", lambda: valid_arrays()["H"][0]),
    "H-zero-user": ("H", lambda: np.zeros((5, 2, 4))),
    "H-strings": ("H", lambda: np.array([["a"]])),
    "H-object": ("H", lambda: np.array([None, 1.0], dtype=object)),
    "pmax-zero": ("pmax", lambda: 0.0),
    "pmax-wrong-shape": ("pmax", lambda: np.ones(6)),
    "pc-negative": ("pc", lambda: -0.1),
    "pc-complex": ("pc", lambda: np.complex128(0.1 + 0.1j)),
    "eta-above-one": ("eta", lambda: 1.2),
    "eta-zero": ("eta", lambda: 0.0),
    "noise-negative": ("noise", lambda: -1e-12),
    "noise-zero": ("noise", lambda: np.zeros(5)),
    "noise-inf": ("noise", lambda: np.inf),
    "sinr_min-negative": ("sinr_min", lambda: np.array([1.0, -1.0])),
    "sinr_min-wrong-shape": ("sinr_min", lambda: np.ones((5, 3))),
    "weights-nan": ("weights", lambda: np.full((5, 2), np.nan)),
    "weights-wrong-shape": ("weights", lambda: np.ones(3)),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_npz_bad_input_names_the_key(tmp_path: Path, case: str) -> None:
    key, make = BAD_INPUTS[case]
    path = write_npz(tmp_path / "case.npz", valid_arrays() | {key: make()})
    with pytest.raises(InstanceFileError, match=rf"case\.npz: {key}: "):
        load_npz(path)


def test_imported_scenario_records_the_data() -> None:
    inst = MisoInstances.from_arrays(
        varied_miso_instances(4).channel, 1.0, 0.1, 0.5, SMALL.noise_power, 2.0, 1.0
    )
    s = imported_miso_scenario(inst, "imported-mine")
    assert (s.kind, s.num_users, s.num_antennas, s.num_samples, s.weights) == (
        "miso-imported",
        2,
        4,
        4,
        "equal",
    )
    assert s.noise_power == pytest.approx(SMALL.noise_power)
    assert s.sinr_min == pytest.approx(2.0)
