"""The Fig. 12 suite: DEPNet on the rate, linear-rate and energy-efficiency sets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from feasnet.bench import fig12
from feasnet.bench.report import rerender
from feasnet.cli import app
from feasnet.data import storage
from feasnet.run_folder import RunFolderError
from feasnet.solvers.result import AllocationResult
from feasnet.training import load_model

POINT = 2.0
SAMPLES = 100  # 80 / 10 / 10 train / validation / test
EE_FOLDER, RATE_FOLDER = "ee-4", "rate-2"


def _tiny_run(out_dir: Path, log: object = lambda *a: None, **kwargs: object) -> list[dict]:
    return fig12.run(
        out_dir, points=(POINT,), samples=SAMPLES, epochs=1, workers=1, log=log, **kwargs
    )


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out_dir = tmp_path_factory.mktemp("fig12")
    return out_dir, _tiny_run(out_dir)


def test_writes_every_output(suite: tuple[Path, list[dict]]) -> None:
    out_dir, _ = suite
    for name in ("results.json", "results.csv", "report.md", "fig12.png"):
        assert (out_dir / name).stat().st_size > 0, name
    assert (out_dir / "fig12.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for folder, formulations in (
        (RATE_FOLDER, ("rate", "linear-rate")),
        (EE_FOLDER, ("energy-efficiency",)),
    ):
        assert (out_dir / folder / "dataset.h5").exists()
        assert (out_dir / folder / "training.png").exists()
        assert (out_dir / folder / "solutions" / "sca.npz").exists()
        for formulation in formulations:
            assert (out_dir / folder / "solutions" / f"depnet-{formulation}.npz").exists()
            assert (out_dir / folder / "models" / f"depnet-{formulation}" / "done").exists()
    payload = json.loads((out_dir / "results.json").read_text())
    assert payload["suite"] == "fig12" and payload["points_mbps"] == [POINT]
    assert "![fig12](fig12.png)" in (out_dir / "report.md").read_text()


def test_rows_cover_the_three_formulations(suite: tuple[Path, list[dict]]) -> None:
    _, rows = suite
    assert {(r["method"], r["formulation"]) for r in rows} == {
        ("sca", "rate"),
        ("depnet", "rate"),
        ("depnet", "linear-rate"),
        ("sca", "energy-efficiency"),
        ("depnet", "energy-efficiency"),
    }
    steps = {r["formulation"]: r["newton_steps"] for r in rows if r["method"] == "depnet"}
    assert steps == {"rate": 300, "linear-rate": 100, "energy-efficiency": 300}
    for row in rows:
        assert row["requirement_mbps"] == POINT
        assert row["num_instances"] == 10
        assert np.isfinite(row["mean_objective_mbps"]) and row["mean_objective_mbps"] > 0


def test_models_train_on_their_constraint_set(suite: tuple[Path, list[dict]]) -> None:
    out_dir, _ = suite
    for folder, formulation in (
        (RATE_FOLDER, "rate"),
        (RATE_FOLDER, "linear-rate"),
        (EE_FOLDER, "energy-efficiency"),
    ):
        model, _ = load_model(out_dir / folder / "models" / f"depnet-{formulation}")
        assert model.problem.constraint_set == formulation
        layer = model.config.layer
        assert layer.kind == "correction"
        assert layer.options["test_steps"] == fig12.TEST_NEWTON_STEPS[formulation]


def test_points_share_channels_with_their_targets(suite: tuple[Path, list[dict]]) -> None:
    out_dir, _ = suite
    rate, _ = storage.read_dataset(out_dir / RATE_FOLDER / "dataset.h5", "train")
    ee, _ = storage.read_dataset(out_dir / EE_FOLDER / "dataset.h5", "train")
    assert np.array_equal(rate.gain.numpy(), ee.gain.numpy())
    assert np.all(rate.min_rate.numpy() == POINT * 1e6)
    assert rate.min_energy_efficiency is None
    assert np.all(ee.min_rate.numpy() == 0.0)
    # ee = alpha Q / Pmax: 2 Mbit/s from half of a 1 W budget is 4 Mbit/J
    assert np.all(ee.min_energy_efficiency.numpy() == 4e6)


def test_violations_are_float64_checks(suite: tuple[Path, list[dict]]) -> None:
    """SCA is feasible at every iterate; DEPNet's violation figures are the float64 verdicts
    of its saved allocations (at this seed the correction reaches the rate sets: 0 of 10)."""
    out_dir, rows = suite
    by = {(r["method"], r["formulation"]): r for r in rows}
    assert by[("sca", "rate")]["violation_probability"] == 0.0
    assert by[("sca", "energy-efficiency")]["violation_probability"] == 0.0
    for formulation, folder in (("rate", RATE_FOLDER), ("linear-rate", RATE_FOLDER)):
        saved = AllocationResult.load_npz(
            out_dir / folder / "solutions" / f"depnet-{formulation}.npz"
        )
        violating = 1.0 - np.asarray(saved.feasible, dtype=float).mean()
        assert by[("depnet", formulation)]["violation_probability"] == pytest.approx(violating)
        assert violating == 0.0
    for formulation in ("rate", "linear-rate", "energy-efficiency"):
        assert by[("depnet", formulation)]["percent_of_reference"] <= 100.0 + 1e-6


def test_rerun_reuses_everything_and_rerenders(suite: tuple[Path, list[dict]]) -> None:
    out_dir, rows = suite
    lines: list[str] = []
    start = time.perf_counter()
    again = _tiny_run(out_dir, log=lines.append)
    assert time.perf_counter() - start < 15
    assert not any(line.startswith("training") for line in lines)
    assert [r["mean_objective_mbps"] for r in again] == [r["mean_objective_mbps"] for r in rows]
    written = rerender(out_dir, log=lambda *a: None)
    assert out_dir / "fig12.png" in written and out_dir / "report.md" in written


def test_stale_data_is_refused_without_force(suite: tuple[Path, list[dict]]) -> None:
    out_dir, _ = suite
    with pytest.raises(RunFolderError, match="--force"):
        fig12.run(out_dir, points=(POINT,), samples=SAMPLES + 10, epochs=1, log=lambda *a: None)


def test_energy_efficiency_mapping() -> None:
    assert fig12.energy_efficiency_of(0.5, pmax=1.0) == 1e6
    assert fig12.energy_efficiency_of(4.0, pmax=0.5, quota=2) == 16e6
    assert fig12.point_folders(0.5) == {"rate": "rate-0.5", "energy-efficiency": "ee-1"}


@pytest.mark.parametrize(
    ("points", "message"),
    [((0.0,), r"\(0, 4\]"), ((5.0,), "got 5"), ((1.0, 1.0), "repeated"), ((), "at least one")],
)
def test_bad_points_are_one_line_errors(points: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        fig12.check_points(points)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "fig12", "--points", "5"], "points:"),
        (["--suite", "fig12", "--points", "one"], "comma-separated numbers"),
        (["--suite", "fig12", "--methods", "sca"], "methods: the fig12 suite"),
        (["--suite", "fig12", "--preset", "small"], "preset: the fig12 suite"),
        (["--suite", "classical", "--full"], "full: the classical suite has no paper-scale mode"),
        (["--suite", "fig12", "--samples", "3"], "samples: 3 instances leave a split empty"),
    ],
)
def test_cli_rejects_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bench", *args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
