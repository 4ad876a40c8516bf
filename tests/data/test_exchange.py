"""The .npz exchange format: round trip, and a clear error naming the field for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from feasnet.data.exchange import REQUIRED_KEYS, InstanceFileError, load_npz, save_npz
from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances
from tests.conftest import random_instances

N, B, Q = 6, 3, 2


def valid_arrays() -> dict[str, Any]:
    gain = random_instances(N, B, Q, seed=4).gain.numpy()
    return {"H": gain, "pmax": 1e-3, "noise": 1e-8, "bandwidth": 5e6, "min_rate": 2.5e6}


def write(path: Path, arrays: dict[str, Any], allow_pickle: bool = False) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, allow_pickle=allow_pickle, **arrays)
    return path


def test_round_trip_scalars(tmp_path: Path) -> None:
    inst = random_instances(N, B, Q, seed=1)
    path = save_npz(tmp_path / "out.npz", inst)
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == set(REQUIRED_KEYS)
        assert archive["H"].shape == (N, B, Q, B)
        for key in ("pmax", "noise", "bandwidth", "min_rate"):
            assert archive[key].shape == ()  # constant values stored as scalars
    back = load_npz(path)
    for name in ("gain", "pmax", "noise", "bandwidth", "min_rate"):
        assert torch.equal(getattr(back, name), getattr(inst, name)), name
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]  # no temporary left


def test_round_trip_per_instance_values(tmp_path: Path) -> None:
    base = random_instances(N, B, Q, seed=2)
    rng = np.random.default_rng(0)
    inst = PowerControlInstances.from_arrays(
        base.gain,
        rng.uniform(1e-3, 2e-3, N),
        rng.uniform(1e-9, 1e-8, N),
        rng.uniform(1e6, 5e6, N),
        rng.uniform(0, 3e6, (N, B, Q)),
    )
    path = save_npz(tmp_path / "out.npz", inst)
    with np.load(path) as archive:
        assert archive["pmax"].shape == (N,) and archive["min_rate"].shape == (N, B, Q)
    back = load_npz(path, dtype=torch.float32)
    assert back.gain.dtype == torch.float32
    assert torch.allclose(back.min_rate.double(), inst.min_rate, rtol=1e-6)


def test_hand_written_file_with_per_instance_values(tmp_path: Path) -> None:
    arrays = valid_arrays() | {"pmax": np.full(N, 2e-3)}
    inst = load_npz(write(tmp_path / "mine.npz", arrays))
    assert inst.gain.shape == (N, B, Q, B)
    assert torch.all(inst.pmax == 2e-3) and torch.all(inst.min_rate == 2.5e6)


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    arrays = valid_arrays() | {"note": np.array([1, 2, 3])}
    with pytest.raises(
        InstanceFileError, match=r"mine\.npz: unknown key 'note' for a power-control"
    ):
        load_npz(write(tmp_path / "mine.npz", arrays))


def test_key_of_the_other_family(tmp_path: Path) -> None:
    arrays = valid_arrays() | {"sinr_min": np.asarray(1.0)}
    with pytest.raises(InstanceFileError, match=r"unknown key 'sinr_min'.*miso files"):
        load_npz(write(tmp_path / "mixed.npz", arrays))
    miso = {
        "H": np.ones((2, 2, 3), dtype=complex),
        "pmax": 1.0,
        "pc": 0.1,
        "eta": 0.5,
        "noise": 1.0,
        "sinr_min": 1.0,
        "weights": 1.0,
    }
    with pytest.raises(InstanceFileError, match="this file is a miso file"):
        load_npz(write(tmp_path / "m.npz", miso), family="power-control")


def test_energy_efficiency_round_trip(tmp_path: Path) -> None:
    arrays = valid_arrays() | {"min_energy_efficiency": np.full((N, B, Q), 3e7)}
    inst = load_npz(write(tmp_path / "ee.npz", arrays))
    assert inst.min_energy_efficiency is not None
    assert torch.all(inst.min_energy_efficiency == 3e7)
    back = load_npz(save_npz(tmp_path / "ee2.npz", inst))
    assert torch.equal(back.min_energy_efficiency, inst.min_energy_efficiency)
    with np.load(tmp_path / "ee2.npz") as f:
        assert f["min_energy_efficiency"].shape == ()  # constant: stored as a scalar
    for bad, words in [(np.nan, "NaN"), (-1.0, ">= 0")]:
        with pytest.raises(InstanceFileError, match=f"min_energy_efficiency: .*{words}"):
            load_npz(write(tmp_path / "bad.npz", valid_arrays() | {"min_energy_efficiency": bad}))


def test_error_types() -> None:
    assert issubclass(InstanceFileError, InvalidInstanceError)
    assert issubclass(InstanceFileError, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InstanceFileError, match=r"nope\.npz: no such file"):
        load_npz(tmp_path / "nope.npz")


@pytest.mark.parametrize("content", ["random", "npy"])
def test_not_an_npz(tmp_path: Path, content: str) -> None:
    path = tmp_path / "case.npz"
    if content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(1000))
    else:
        with open(path, "wb") as fh:
            np.save(fh, np.ones(3))
    with pytest.raises(InstanceFileError, match=r"case\.npz: not an \.npz archive"):
        load_npz(path)


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_missing_key(tmp_path: Path, key: str) -> None:
    arrays = valid_arrays()
    del arrays[key]
    with pytest.raises(
        InstanceFileError,
        match=rf"missing key '{key}'; required keys: H, pmax, noise, bandwidth, min_rate",
    ):
        load_npz(write(tmp_path / "case.npz", arrays))


def _with(key: str, value: Any) -> dict[str, Any]:
    return valid_arrays() | {key: value}


def _gain_with(value: float) -> np.ndarray:
    gain = valid_arrays()["H"].copy()
    gain[0, 1, 0, 2] = value  # an interference entry
    return gain


BAD_INPUTS = {
    "H-three-dims": ("H", lambda: valid_arrays()["H"][0]),
    "H-unequal-bs": ("H", lambda: np.ones((N, B, Q, B + 1))),
    "H-complex": ("H", lambda: valid_arrays()["H"].astype(np.complex128)),
    "H-object": ("H", lambda: np.array([None, 1.0], dtype=object)),
    "H-strings": ("H", lambda: np.array(["a", "b"])),
    "H-nan": ("H", lambda: _gain_with(np.nan)),
    "H-inf": ("H", lambda: _gain_with(np.inf)),
    "H-negative": ("H", lambda: _gain_with(-1e-3)),
    "H-zero-direct": ("H", lambda: np.zeros((N, B, Q, B))),
    "pmax-zero": ("pmax", lambda: 0.0),
    "pmax-negative": ("pmax", lambda: -1e-3),
    "pmax-wrong-shape": ("pmax", lambda: np.ones(N + 1)),
    "pmax-nan": ("pmax", lambda: np.nan),
    "noise-zero": ("noise", lambda: 0.0),
    "noise-negative": ("noise", lambda: -1e-8),
    "noise-complex": ("noise", lambda: np.complex128(1e-8 + 1e-9j)),
    "bandwidth-zero": ("bandwidth", lambda: 0.0),
    "bandwidth-negative": ("bandwidth", lambda: -5e6),
    "bandwidth-inf": ("bandwidth", lambda: np.inf),
    "min_rate-negative": ("min_rate", lambda: -1.0),
    "min_rate-wrong-shape": ("min_rate", lambda: np.ones((N, B, Q + 1))),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_the_field(tmp_path: Path, case: str) -> None:
    field, make = BAD_INPUTS[case]
    path = write(tmp_path / "case.npz", _with(field, make()), allow_pickle=True)
    with pytest.raises(InstanceFileError, match=rf"case\.npz: {field}: "):
        load_npz(path)
