"""The Figs. 7-8 suite: final activation of DIPNet's and DEPNet's backbone, per epoch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feasnet.bench import fig7_8
from feasnet.bench.suites import SUITES, SuiteOptions
from feasnet.cli import app
from feasnet.data import storage
from feasnet.problems.instances import PowerControlInstances
from feasnet.run_folder import RunFolderError

SAMPLES = 40  # 36 / 2 / 2 train / validation / test


def _options(out_dir: Path, **kwargs: object) -> SuiteOptions:
    settings: dict[str, object] = {"samples": SAMPLES, "epochs": 1, "log": lambda *a: None}
    return SuiteOptions(run_dir=out_dir, **{**settings, **kwargs})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("fig7_8")
    fig7_8.run(_options(out_dir))
    return out_dir, json.loads((out_dir / "results.json").read_text())


def test_writes_every_output(suite: tuple[Path, dict]) -> None:
    out_dir, payload = suite
    for name in ("results.json", "results.csv", "report.md", "fig7-8.png", "training.png"):
        assert (out_dir / name).stat().st_size > 0, name
    assert (out_dir / "fig7-8.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert payload["suite"] == "fig7-8" and payload["preset"] == "table2-8"
    assert payload["scenario"]["num_bs"] == 4 and payload["scenario"]["num_channels"] == 3
    # 2 methods x 4 activations x (epoch 0 + 1 epoch)
    assert len(payload["results"]) == 2 * 4 * 2
    with (out_dir / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 16
    for method in fig7_8.METHODS:
        for activation in fig7_8.ACTIVATIONS:
            run_dir = out_dir / "models" / f"{method}-{activation}"
            assert (run_dir / "history.json").exists() and (run_dir / "epochs.json").exists()
    assert "![fig7-8](fig7-8.png)" in (out_dir / "report.md").read_text()


def test_rows_measure_the_layer_and_the_backbone(suite: tuple[Path, dict]) -> None:
    _, payload = suite
    for row in payload["results"]:
        assert row["num_instances"] == 2
        assert row["objective_mbps"] > 0  # the layers return feasible allocations here
        assert row["violation_probability"] == 0.0  # both layers are hard at test
        assert 0.0 <= row["raw_violation_probability"] <= 1.0
        if row["epoch"] == 1:
            assert "validation_violation_probability" in row and "train_loss" in row
    by = {(r["method"], r["activation"], r["epoch"]): r for r in payload["results"]}
    # sigmoid outputs lie in (0, 1) per entry: 3 channels can exceed the budget of 1; a
    # softmax over each BS's channels sums to exactly 1 and relu/affine are unbounded
    assert by[("dipnet", "softmax", 0)]["raw_violation_probability"] <= 1.0
    checks = payload["checks"]
    assert set(checks) == {"dipnet", "depnet"}
    assert sorted(checks["depnet"]["ranking_by_final_sum_rate"]) == sorted(fig7_8.ACTIVATIONS)


def test_epoch_zero_is_the_initial_network(suite: tuple[Path, dict]) -> None:
    out_dir, payload = suite
    train_set, _, _ = storage.read_training_splits(out_dir / "dataset.h5")
    test, _ = storage.read_dataset(out_dir / "dataset.h5", "test")
    assert isinstance(train_set, PowerControlInstances)
    assert isinstance(test, PowerControlInstances)
    config = fig7_8.method_config("depnet", "sigmoid")
    again = fig7_8.evaluate_epoch(fig7_8._initial_model(config, train_set, 0), test, 1e-6)
    saved = next(
        r
        for r in payload["results"]
        if (r["method"], r["activation"], r["epoch"]) == ("depnet", "sigmoid", 0)
    )
    assert again["objective_mbps"] == pytest.approx(saved["objective_mbps"], rel=1e-9)


def test_rerun_reuses_everything_and_report_rerenders(suite: tuple[Path, dict]) -> None:
    out_dir, _ = suite
    logged: list[str] = []
    fig7_8.run(_options(out_dir, log=logged.append))
    assert any("reusing" in line for line in logged)
    assert not any("epoch 1/1" in line for line in logged)  # nothing trained or evaluated
    (out_dir / "fig7-8.png").unlink()
    result = CliRunner().invoke(app, ["report", str(out_dir)])
    assert result.exit_code == 0, result.output
    assert (out_dir / "fig7-8.png").exists()
    assert "fig7-8" in SUITES


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="methods"):
        fig7_8.run(_options(tmp_path, methods=("pnet",)))
    with pytest.raises(ValueError, match="points"):
        fig7_8.run(_options(tmp_path, points=(1.0,)))
    with pytest.raises(ValueError, match="guard"):
        fig7_8.run(_options(tmp_path, guard=True))
    with pytest.raises(ValueError, match="samples"):
        fig7_8.run(_options(tmp_path, samples=10))
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_a_data_set_for_other_settings_needs_force(suite: tuple[Path, dict]) -> None:
    out_dir, _ = suite
    with pytest.raises(RunFolderError, match="force"):
        fig7_8.ensure_dataset(out_dir / "dataset.h5", SAMPLES, seed=1, log=lambda *a: None)
