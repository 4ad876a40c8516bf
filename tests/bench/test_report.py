"""Benchmark reports: mean ± se cells, optional columns, plots, training curves, rerender."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from feasnet.bench import comparison, miso, report, table2
from feasnet.cli import app
from feasnet.metrics import MethodMetrics, evaluate, tightest_upper_bound
from feasnet.solvers.result import AllocationResult

PNG = b"\x89PNG\r\n\x1a\n"


def _metrics(method: str, mean: float, **kw: Any) -> MethodMetrics:
    defaults: dict[str, Any] = {
        "num_instances": 50,
        "mean_objective_feasible": mean,
        "violation_probability": 0.0,
        "rtol": 1e-6,
        "time_per_sample": 1e-3,
        "ratio_to_reference": mean / 100e6,
        "objective_standard_error": 0.5e6,
        "ratio_standard_error": 0.002,
        "time_standard_error": 1e-4,
        "violation_standard_error": 0.0,
    }
    defaults.update(kw)
    return MethodMetrics(method=method, mean_objective=mean, **defaults)


def _result(method: str, rates: list[float], **extra: Any) -> AllocationResult:
    n = len(rates)
    result = AllocationResult(
        method=method,
        allocation=np.zeros((n, 1, 1)),
        feasible=np.ones(n, dtype=bool),
        objective=np.asarray(rates, dtype=float),
        seconds=np.linspace(0.01, 0.02, n),
    )
    for key, value in extra.items():  # the optional fields a solver may report
        setattr(result, key, value)
    return result


# ------------------------------------------------------------------------------ tables
def test_rows_and_tables_show_mean_se_n_and_timing() -> None:
    rows = report.metric_rows(
        [
            _metrics("sca", 100e6, ratio_to_reference=1.0, ratio_standard_error=0.0),
            _metrics("dipnet", 97.5e6, batched_timing=True, time_standard_error=0.0),
        ]
    )
    assert rows[0]["kind"] == "classical" and rows[1]["kind"] == "learned"
    assert rows[0]["timing"] == "per instance" and rows[1]["timing"] == "batched"
    assert rows[1]["mean_objective_mbps_se"] == pytest.approx(0.5)
    assert rows[1]["percent_of_reference_se"] == pytest.approx(0.2)
    assert report.cell(rows[1], "mean_objective_mbps") == "97.50 ± 0.50"
    assert report.cell(rows[1], "percent_of_reference") == "97.50 ± 0.20"
    assert report.cell(rows[0], "percent_of_reference") == "100.00"  # zero error: no "±"
    assert report.cell(rows[1], "time_per_sample_ms") == "1"  # batched: no spread shown
    table = report.markdown_table(rows)
    header = table.splitlines()[0]
    assert "| n |" in header and "timing" in header
    # nothing reports convergence or an upper bound: those columns stay out
    assert "not converged" not in header and "upper bound" not in header
    assert "| dipnet | 50 | 97.50 ± 0.50 | 97.50 ± 0.20 |" in table


def test_not_converged_and_upper_bound_columns_appear_when_reported() -> None:
    bound = np.array([12.0, 12.0, 12.0, 12.0])
    sca = _result("sca", [10.0, 11.0, 10.0, 11.0], converged=np.array([1, 1, 0, 1], bool))
    glob = _result("global", [11.0, 11.5, 11.0, 11.5], upper_bound=bound)
    upper = tightest_upper_bound([sca, glob])
    assert upper is not None
    rows = report.metric_rows([evaluate(r, reference=sca, upper_bound=upper) for r in (sca, glob)])
    assert rows[0]["num_not_converged"] == 1 and rows[1]["num_not_converged"] is None
    assert rows[0]["percent_of_upper_bound"] == pytest.approx(100 * 42 / 48)
    header = report.markdown_table(rows).splitlines()[0]
    assert "not converged" in header and "% of upper bound" in header
    assert report.cell(rows[1], "num_not_converged") == "-"


def test_rows_of_an_older_results_file_still_render() -> None:
    old = [
        {
            "method": "gp",
            "mean_objective_mbps": 100.0,
            "percent_of_reference": None,
            "violation_probability": 0.0,
            "time_per_sample_ms": 4.2,
            "speedup_over_baseline": 1.0,
        }
    ]
    table = report.markdown_table(old)
    assert "| gp | 100.00 | - | 0.0000 | 4.2 | 1.0x |" in table
    assert "| n |" not in table  # no such key in old rows: the column is left out


def test_zoom_limits_keep_the_close_methods_and_drop_the_far_ones() -> None:
    lo, hi = report.zoom_limits([13.8, 97.6, 100.0, 99.9, 83.0], [0.5, 0.25, 0.0, 0.1, 1.5])
    assert 97.0 < lo < 97.35 and 100.0 < hi < 101.0
    assert report.zoom_limits([10.0, 20.0]) == (0.0, pytest.approx(22.0))  # nothing >= 90


def test_colours_are_distinct_within_a_family_and_stable_across_plots() -> None:
    power_control = comparison.DEFAULT_METHODS
    assert len({report.method_color(m) for m in power_control}) == len(power_control)
    assert len({report.method_color(m) for m in miso.DEFAULT_METHODS}) == len(miso.DEFAULT_METHODS)
    assert report.method_color("some-new-solver") == report.method_color("some-new-solver")
    batched = report.marker_style("learned", "batched", "#123456")
    assert batched["marker"] == "o" and batched["markerfacecolor"] == "white"
    assert report.marker_style("classical", "per instance", "#123456")["marker"] == "s"


# ------------------------------------------------------------------------------ training
def _history(folder: Path, objective: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "epoch": e,
            "train_loss": -objective * e,
            "validation_objective": objective * e,
            "validation_violation_probability": 0.1 / e,
            "seconds": 1.0,
            "best": e != 2,
        }
        for e in (1, 2, 3)
    ]
    (folder / "history.json").write_text(json.dumps(rows))
    return folder / "history.json"


def test_training_curves_from_history_files(tmp_path: Path) -> None:
    a = _history(tmp_path / "models" / "dipnet", 1e8)
    _history(tmp_path / "models" / "depnet", 0.9e8)
    out = report.training_curves([a, tmp_path / "models" / "depnet"], tmp_path / "t.png")
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 20_000
    assert report.training_curves_of(tmp_path / "models", tmp_path / "all.png") is not None
    assert report.training_curves_of(tmp_path / "nothing", tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    with pytest.raises(ValueError, match="no such history"):
        report.training_curves(tmp_path / "missing.json", tmp_path / "x.png")
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        report.training_curves({"bad": tmp_path / "bad.json"}, tmp_path / "x.png")


# ------------------------------------------------------------------------------ rerender
@pytest.fixture(scope="module")
def comparison_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cmp")
    comparison.run(
        out, num_samples=300, methods=("min-power", "fw"), workers=1, log=lambda *a: None
    )
    return out


def test_rerender_a_comparison_without_recomputing(comparison_run: Path) -> None:
    out = comparison_run
    payload = json.loads((out / "results.json").read_text())
    row = payload["results"][1]
    assert row["method"] == "fw" and row["num_instances"] == 15
    for key in (
        "mean_objective_mbps_se",
        "percent_of_reference_se",
        "time_per_sample_ms_se",
        "violation_probability_se",
        "kind",
        "timing",
        "num_not_converged",
    ):
        assert key in row, key
    before = (out / "results.json").read_bytes()
    for name in ("report.md", "results.csv", "comparison.png"):
        (out / name).unlink()
    solutions = out / "solutions"
    solutions.rename(out / "moved")  # nothing may be solved again: hide the solutions
    try:
        lines: list[str] = []
        written = report.rerender(out, log=lines.append)
        assert not solutions.exists()  # nothing was solved (or written) again
    finally:
        (out / "moved").rename(solutions)
    assert {p.name for p in written} >= {"report.md", "results.csv", "comparison.png"}
    assert (out / "comparison.png").read_bytes()[:8] == PNG
    assert (out / "results.json").read_bytes() == before  # left as it was
    markdown = (out / "report.md").read_text()
    assert "| n |" in markdown and " ± " in markdown
    with open(out / "results.csv") as handle:
        header = next(csv.reader(handle))
    assert "mean_objective_mbps_se" in header and "num_instances" in header


def _miso_payload(values: tuple[float, ...]) -> dict[str, Any]:
    sweep = miso.SWEEPS["miso-snr"]
    rows = []
    for value in values:
        for method, pct, seconds, batched in (
            ("wmmse", 1.0, 0.2, False),
            ("hop+du", 0.995 + value * 1e-4, 1e-4, True),
            ("dc3+du", 0.995 + value * 1e-4, 1e-4, True),
            ("penalty+mlp", 0.06, 1e-5, True),
        ):
            metrics = _metrics(
                method,
                20.0 * pct,
                ratio_to_reference=pct,
                speedup_over_baseline=0.2 / seconds,
                time_per_sample=seconds,
                objective_standard_error=0.4,
                batched_timing=batched,
                violation_probability=0.8 if method == "penalty+mlp" else 0.0,
            )
            rows.append(miso.metric_row(sweep, value, metrics))
    return {"suite": "miso-snr", "values": list(values), "results": rows}


@pytest.mark.parametrize("values", [(10.0,), (0.0, 10.0)])
def test_rerender_a_miso_sweep(tmp_path: Path, values: tuple[float, ...]) -> None:
    report.write_json(tmp_path / "results.json", _miso_payload(values))
    _history(tmp_path / "miso-snr-10" / "models" / "hop+du", 20.0)
    lines: list[str] = []
    written = report.rerender(tmp_path, log=lines.append)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"results.csv", "report.md", "sweep.png", "miso-snr-10/training.png"} <= names
    assert (tmp_path / "sweep.png").stat().st_size > 20_000
    markdown = (tmp_path / "report.md").read_text()
    assert "## Summary" in markdown and "![sweep](sweep.png)" in markdown
    assert "miso-snr-10/training.png" in markdown
    assert "20.000 ± 0.400" in markdown  # wmmse's WSR, mean ± se
    text = markdown + "\n".join(lines)
    for word in ("PASS", "FAIL", "target"):
        assert word not in text, word
    assert "hard-constrained methods (dc3, hop): zero violations at every point" in text
    assert "best learned method at 10 dB: hop+du, 99.6 ± 0.2 % of WMMSE" in text


def test_rerender_table2(tmp_path: Path) -> None:
    rows = []
    for config in (2, 7):
        row = table2._base_row(config)
        row["num_test_instances"] = 50
        metrics = {
            "gp": _metrics("gp", 100e6, ratio_to_reference=1.0, ratio_standard_error=0.0),
            "dipnet": _metrics("dipnet", 95e6, ratio_to_reference=0.95, batched_timing=True),
        }
        table2._fill_ours(row, ("gp", "dipnet"), metrics)
        rows.append(row)
    table2.write_outputs(
        tmp_path, rows, ("gp", "dipnet"), samples=1000, epochs=2, seed=0, workers=1
    )
    (tmp_path / "table2.md").unlink()
    written = report.rerender(tmp_path, log=lambda *a: None)
    assert {p.name for p in written} == {"table2.csv", "table2.md", "table2.png"}
    markdown = (tmp_path / "table2.md").read_text()
    assert "| n |" in markdown and "95.0 ± 0.2" in markdown
    assert (tmp_path / "table2.png").read_bytes()[:8] == PNG
    payload = json.loads((tmp_path / "table2.json").read_text())
    assert payload["rows"][0]["dipnet_percent_of_gp_se"] == pytest.approx(0.2)
    assert payload["rows"][0]["dipnet_timing"] == "batched"


def test_rerender_rejects_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such run folder"):
        report.rerender(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no results\.json"):
        report.rerender(tmp_path)
    (tmp_path / "results.json").write_text('{"suite": "comparison", "results": [')
    with pytest.raises(ValueError, match="not valid JSON"):
        report.rerender(tmp_path)
    (tmp_path / "results.json").write_text('{"suite": "fig-9", "results": []}')
    with pytest.raises(ValueError, match="unknown suite 'fig-9'"):
        report.rerender(tmp_path)
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        report.rerender(tmp_path)


def test_report_command(tmp_path: Path, comparison_run: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(comparison_run)])
    assert result.exit_code == 0, result.output
    assert "re-rendered" in result.output and "fw" in result.output
    cases = {
        tmp_path / "missing": "no such run folder",
        tmp_path: "no results.json",
    }
    for folder, message in cases.items():
        result = runner.invoke(app, ["report", str(folder)])
        assert result.exit_code == 2 and message in result.output
        assert len(result.output.strip().splitlines()) == 1  # one line, no traceback
    (tmp_path / "results.json").write_text("{not json")
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not valid JSON" in result.output
    (tmp_path / "results.json").write_text('{"suite": "nope"}')
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "unknown suite" in result.output
