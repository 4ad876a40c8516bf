"""The one result type: family-named npz keys, files of the old per-family classes load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from feasnet.problems import miso
from feasnet.problems import power_control as pc
from feasnet.problems.registry import problem_of
from feasnet.solvers.result import AllocationResult, BeamformingResult, Result
from tests.conftest import random_instances, random_miso_instances


def test_problem_result_is_the_family_subclass_with_aliases() -> None:
    instances = random_instances(4, 2, 2, seed=1)
    power = pc.minimum_power(instances).power
    result = problem_of(instances).result("m", power, instances, 0.5)
    assert isinstance(result, AllocationResult) and result.family == "power-control"
    assert result.power is result.allocation and result.sum_rate is result.objective
    np.testing.assert_array_equal(result.objective, pc.sum_rate(power, instances).numpy())
    np.testing.assert_array_equal(result.seconds, np.full(4, 0.5))

    m_inst = random_miso_instances(3, users=2, antennas=3, seed=2, gamma=0.5)
    beams = miso.interior_anchor(m_inst)
    beamforming = Result.checked("b", beams, m_inst, 0.0)
    assert isinstance(beamforming, BeamformingResult) and beamforming.family == "miso"
    assert beamforming.beams is beamforming.allocation and beamforming.wsr is beamforming.objective
    with pytest.raises(ValueError, match="expected power-control"):
        AllocationResult.checked("b", beams, m_inst, 0.0)
    with pytest.raises(ValueError, match="P: expected shape"):
        Result.checked("m", power[:, :1], instances, 0.0)


def test_save_keeps_the_family_keys_and_round_trips(tmp_path: Path) -> None:
    instances = random_instances(3, 2, 2, seed=5)
    result = Result.checked("m", pc.minimum_power(instances).power, instances, 0.1)
    result.converged = np.array([True, False, True])
    result.save_npz(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as data:
        assert {"P", "sum_rate", "converged"} <= set(data.files) and "V" not in data.files
    loaded = Result.load_npz(tmp_path / "p.npz")
    assert isinstance(loaded, AllocationResult)
    np.testing.assert_array_equal(loaded.power, result.power)
    np.testing.assert_array_equal(loaded.converged, result.converged)

    m_inst = random_miso_instances(2, users=2, antennas=2, seed=3, gamma=0.5)
    beams = Result.checked("b", miso.interior_anchor(m_inst), m_inst, 0.0)
    beams.save_npz(tmp_path / "v.npz")
    with np.load(tmp_path / "v.npz") as data:
        assert {"V", "wsr"} <= set(data.files)
    with pytest.raises(ValueError, match="a miso solution file, expected power-control"):
        AllocationResult.load_npz(tmp_path / "v.npz")
    assert BeamformingResult.load_npz(tmp_path / "v.npz").wsr.shape == (2,)


def test_files_in_the_old_format_still_load(tmp_path: Path) -> None:
    """The keys written by the former AllocationResult.save_npz, no family key."""
    path = tmp_path / "old.npz"
    np.savez(
        path,
        P=np.ones((2, 1, 1)),
        feasible=np.array([True, False]),
        sum_rate=np.array([1.0, 2.0]),
        seconds=np.zeros(2),
        message=np.asarray(["", "infeasible: x"]),
        method=np.asarray("sca"),
        rtol=np.asarray(1e-6),
    )
    loaded = Result.load_npz(path)
    assert isinstance(loaded, AllocationResult) and loaded.method == "sca"
    assert loaded.messages == ["", "infeasible: x"] and loaded.upper_bound is None
    np.testing.assert_array_equal(loaded.sum_rate, [1.0, 2.0])
    np.savez(tmp_path / "bad.npz", X=np.ones(2))
    with pytest.raises(ValueError, match="not a solution file of any family"):
        Result.load_npz(tmp_path / "bad.npz")


def test_a_result_needs_its_family() -> None:
    with pytest.raises(ValueError, match="family"):
        Result("m", np.zeros((1, 1)), np.ones(1, bool), np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="AllocationResult is power-control"):
        AllocationResult(
            "m", np.zeros((1, 1, 1)), np.ones(1, bool), np.zeros(1), np.zeros(1), family="miso"
        )
