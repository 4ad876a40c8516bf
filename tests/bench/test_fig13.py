"""The Fig. 13 suite (imperfect CSI) at a tiny size: files, rows, the exact mode's guarantee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feasnet.bench import fig13
from feasnet.bench.suites import SuiteOptions
from feasnet.cli import app


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("fig13")
    fig13.run(
        SuiteOptions(
            run_dir=out_dir,
            samples=40,
            points=(0.1,),
            methods=("fw", "depnet"),
            epochs=1,
            log=lambda *a: None,
        )
    )
    return out_dir


def test_writes_every_output_and_row(suite: Path) -> None:
    for name in ("results.json", "results.csv", "report.md", "fig13.png"):
        assert (suite / name).stat().st_size > 0, name
    assert (suite / "fig13.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads((suite / "results.json").read_text())
    assert payload["suite"] == "fig13" and payload["draws"] >= 100
    series = {r["series"] for r in payload["results"]}
    assert series == {
        "fw (none)", "fw (heuristic)", "fw (exact)",
        "depnet (none)", "depnet (distorted)", "depnet (heuristic)", "depnet (exact)",
    }  # fmt: skip
    for row in payload["results"]:
        assert 0.0 <= row["violation_probability"] <= 1.0
        assert row["num_instances"] == 4 and row["draws"] == fig13.QUICK_DRAWS
        if row["mode"] == "exact":  # the guarantee: no true channel of the model violates
            assert row["violating_draws"] == 0, row
    assert (suite / "sigma-0.1" / "distorted" / "models" / "depnet" / "done").exists()
    meta = json.loads(
        (suite / "sigma-0.1" / "distorted" / "models" / "depnet" / "history.json").read_text()
    )
    assert meta and meta[0]["epoch"] == 1


def test_rerun_reuses_and_report_rerenders(suite: Path) -> None:
    runner = CliRunner()
    before = (suite / "sigma-0.1" / "exact" / "solutions" / "fw.npz").stat().st_mtime
    result = runner.invoke(
        app,
        [
            "bench", "--suite", "fig13", "--samples", "40", "--points", "0.1", "--methods",
            "fw", "--epochs", "1", "--robust", "exact", "--out", str(suite), "--resume",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (suite / "sigma-0.1" / "exact" / "solutions" / "fw.npz").stat().st_mtime == before
    payload = json.loads((suite / "results.json").read_text())
    assert {r["series"] for r in payload["results"]} == {"fw (exact)"}
    result = runner.invoke(app, ["report", str(suite)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("robust", ("worst",), "robust"),
        ("points", (1.2,), "points"),
        ("methods", ("global",), "methods"),
        ("configs", (1,), "configs"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, field: str, value: tuple, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        fig13.run(SuiteOptions(run_dir=tmp_path, samples=40, **{field: value}))
    assert not (tmp_path / "results.json").exists()
