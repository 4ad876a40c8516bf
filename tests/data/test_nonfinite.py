"""Feasibility filtering and ``data import`` decide unreachable targets at once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from feasnet.cli import app
from feasnet.data.generate import feasible_mask
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances

FAST = 2.0  # seconds


def test_feasible_mask_drops_overflowing_targets_and_gains_fast() -> None:
    rng = np.random.default_rng(0)
    h = rng.exponential(size=(4, 3, 2, 3)) * np.where(np.eye(3)[:, None, :] > 0, 50.0, 1.0)
    h[3] *= 1e300  # H * pmax / noise overflows
    rates = np.full((4, 3, 2), 1e5)
    rates[1, 0, 1] = 6e9  # 2^(alpha/W) - 1 overflows
    inst = PowerControlInstances.from_arrays(h, 1.0, 1e-8, 5e6, rates)
    start = time.perf_counter()
    mask = feasible_mask(inst)
    assert time.perf_counter() - start < FAST
    assert mask.tolist() == [True, False, True, False]


def test_feasible_mask_miso_huge_targets_and_gains_fast() -> None:
    rng = np.random.default_rng(1)
    h = (rng.normal(size=(3, 3, 4)) + 1j * rng.normal(size=(3, 3, 4))) / np.sqrt(2)
    h[2] *= 1e300
    sinr = np.array([[1.0] * 3, [1e300] * 3, [1.0] * 3])
    inst = MisoInstances.from_arrays(h, 1.0, 0.1, 0.5, 1e-3, sinr)
    start = time.perf_counter()
    mask = feasible_mask(inst)
    assert time.perf_counter() - start < FAST
    assert mask.tolist() == [True, False, False]


def test_data_import_of_unreachable_targets_fails_fast_with_the_reason(tmp_path: Path) -> None:
    source = tmp_path / "x.npz"
    h = np.random.default_rng(0).exponential(size=(2, 3, 2, 3))
    np.savez(source, H=h, pmax=1.0, noise=1e-8, bandwidth=5e6, min_rate=6e9)
    start = time.perf_counter()
    result = CliRunner().invoke(
        app, ["data", "import", str(source), "--out", str(tmp_path / "o.h5")]
    )
    assert time.perf_counter() - start < 10.0  # the CLI imports torch and h5py
    assert result.exit_code != 0
    assert "none of the 2 instances is feasible" in result.output
