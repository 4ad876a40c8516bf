"""The bench suite registry: ``feasnet bench --suite NAME`` and ``feasnet report`` reach a
registered suite's module with the options given on the command line."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feasnet.bench import suites
from feasnet.cli import app


@pytest.fixture
def toy_suite(monkeypatch):
    """A registered suite whose module records the options it was run with."""
    module = types.ModuleType("feasnet_toy_suite")
    seen: dict = {}

    def run(options):
        seen["options"] = options
        options.run_dir.mkdir(parents=True, exist_ok=True)
        (options.run_dir / "results.json").write_text(json.dumps({"suite": "toy"}))

    def write_reports(run_dir, payload, log=print):
        seen["payload"] = payload
        return [Path(run_dir) / "report.md"]

    module.run = run
    module.write_reports = write_reports
    monkeypatch.setitem(sys.modules, "feasnet_toy_suite", module)
    monkeypatch.setitem(suites.SUITES, "toy", suites.Suite("toy", "feasnet_toy_suite", "a toy"))
    return seen


def test_bench_passes_options_to_a_registered_suite(tmp_path, toy_suite):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        ["bench", "--suite", "toy", "--out", str(out), "--points", "1,2.5", "--configs", "3",
         "--methods", "SCA,depnet", "--full", "--samples", "40", "--rtol", "1e-5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    options = toy_suite["options"]
    assert options.run_dir == out
    assert options.points == (1.0, 2.5)
    assert options.configs == (3,)
    assert options.methods == ("sca", "depnet")
    assert options.full and options.samples == 40 and options.rtol == 1e-5


def test_report_rerenders_a_registered_suite(tmp_path, toy_suite):
    (tmp_path / "results.json").write_text(json.dumps({"suite": "toy", "rows": []}))
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert toy_suite["payload"]["rows"] == []


def test_bad_points_and_unknown_suite_are_one_line_errors(tmp_path, toy_suite):
    result = CliRunner().invoke(
        app, ["bench", "--suite", "toy", "--out", str(tmp_path / "r"), "--points", "a,b"]
    )
    assert result.exit_code == 2 and "points" in result.output
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="unknown suite"):
        suites.get_suite("no-such-suite")


def test_table2_full_asks_for_the_papers_scale(tmp_path, monkeypatch):
    from feasnet.bench import table2

    seen: dict = {}
    monkeypatch.setattr(table2, "run", lambda out, **kwargs: seen.update(kwargs))
    result = CliRunner().invoke(
        app, ["bench", "--suite", "table2", "--full", "--configs", "5", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert seen["samples"] == table2.FULL_SAMPLES == 100_000
    assert seen["epochs"] == table2.FULL_EPOCHS == 20
    assert seen["configs"] == (5,)
