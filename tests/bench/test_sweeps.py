"""The parameter sweeps (fig4-6, fig9, fig10) at a tiny size: files, rows, resume, re-render."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from feasnet.bench import suites, sweeps
from feasnet.bench.report import rerender
from feasnet.cli import app
from feasnet.data import storage
from feasnet.data.presets import Scenario
from feasnet.solvers.result import Result

SAMPLES = 30  # 24 / 3 / 3 train / validation / test
METHODS = ("min-power", "depnet")  # cheap; sca, the reference, is added by the suite
TINY = {"fig4-6": (4.0, 8.0), "fig9": (1.0, 2.5), "fig10": (2.0, 3.0)}


def _options(run_dir: Path, name: str, messages: list[str] | None = None, **kw: object) -> object:
    log = (lambda m: messages.append(str(m))) if messages is not None else (lambda m: None)
    base: dict[str, object] = {
        "run_dir": run_dir,
        "samples": SAMPLES,
        "epochs": 1,
        "points": TINY[name],
        "methods": METHODS,
        "workers": 1,
        "log": log,
    }
    base.update(kw)
    return suites.SuiteOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=list(TINY))
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    name = request.param
    run_dir = tmp_path_factory.mktemp(name)
    suites.run(name, _options(run_dir, name))  # type: ignore[arg-type]
    return name, run_dir


def test_registered() -> None:
    for name, module in (("fig4-6", "fig4_6"), ("fig9", "fig9"), ("fig10", "fig10")):
        assert suites.SUITES[name].module == f"feasnet.bench.{module}"
        assert suites.get_suite(name).SWEEP is sweeps.SWEEPS[name]


def test_writes_files_and_rows(tiny: tuple) -> None:
    name, run_dir = tiny
    sweep = sweeps.SWEEPS[name]
    payload = json.loads((run_dir / "results.json").read_text())
    assert payload["suite"] == name and payload["complete"] is True
    assert payload["points"] == list(TINY[name]) and payload["reference"] == "sca"
    rows = payload["results"]
    methods = [*METHODS, "sca"]
    assert len(rows) == len(sweep.datasets) * len(TINY[name]) * len(methods)
    for png, _ in sweeps.figure_layouts(payload):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert (run_dir / "results.csv").read_text().count("\n") == len(rows) + 1
    text = (run_dir / "report.md").read_text()
    assert "QoS violation probability" in text and "The paper states" in text
    for row in rows:
        folder = run_dir / row["folder"]
        scenario = storage.read_info(folder / "dataset.h5").scenario
        assert isinstance(scenario, Scenario)
        assert row["x"] == {"num_users": scenario.num_users, "num_bs": scenario.num_bs}.get(
            sweep.x_key, scenario.min_rate / 1e6
        )
        assert row["num_instances"] == 3
        assert (folder / "solutions" / f"{row['method']}.npz").exists()
        if row["method"] == "sca":
            assert row["percent_of_reference"] == pytest.approx(100.0)
    if name == "fig4-6":
        assert {r["dataset"] for r in rows} == {"gaussian", "path-loss"}
        for png in ("fig4.png", "fig5.png", "fig6.png", "fig4-6-percent.png"):
            assert (run_dir / png).exists()


def test_sum_rate_matches_the_saved_solutions(tiny: tuple) -> None:
    """Independent of the metrics code: recount each saved allocation's sum rate (zero when it
    fails the float64 check) and compare with the reported mean."""
    from feasnet.problems import power_control as pc

    _, run_dir = tiny
    payload = json.loads((run_dir / "results.json").read_text())
    for row in payload["results"]:
        folder = run_dir / row["folder"]
        instances, _ = storage.read_dataset(folder / "dataset.h5", "test")
        result = Result.load_npz(folder / "solutions" / f"{row['method']}.npz")
        power = torch.as_tensor(np.asarray(result.allocation), dtype=torch.float64)
        ok = pc.is_feasible(power, instances, rtol=payload["rtol"])  # type: ignore[arg-type]
        rates = pc.sum_rate(power, instances)  # type: ignore[arg-type]
        counted = (rates * ok).double().mean().item() / 1e6
        assert row["mean_objective_mbps"] == pytest.approx(counted, rel=1e-9)
        assert row["violation_probability"] == pytest.approx(1.0 - ok.double().mean().item())


def test_resume_reuses_everything(tiny: tuple) -> None:
    name, run_dir = tiny
    messages: list[str] = []
    before = json.loads((run_dir / "results.json").read_text())["results"]
    suites.run(name, _options(run_dir, name, messages))  # type: ignore[arg-type]
    assert any("reusing" in m and "dataset.h5" in m for m in messages)
    assert not any(m.startswith("training") or "generated" in m for m in messages)
    after = json.loads((run_dir / "results.json").read_text())["results"]
    assert [r["mean_objective_mbps"] for r in after] == [r["mean_objective_mbps"] for r in before]


def test_report_rerenders(tiny: tuple) -> None:
    _, run_dir = tiny
    (run_dir / "report.md").unlink()
    written = rerender(run_dir, log=lambda m: None)
    assert run_dir / "report.md" in written and (run_dir / "report.md").exists()


def test_cli_runs_a_registered_sweep(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["bench", "--suite", "fig10", "--points", "2", "--samples", str(SAMPLES)]
    args += ["--epochs", "1", "--methods", "min-power", "--workers", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "results.json").read_text())["points"] == [2.0]
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("fig4-6", {"points": (6.0,)}, "points: U must be a multiple of B = 4"),
        ("fig10", {"points": (2.5,)}, "points: the number of BSs B must be an integer"),
        ("fig9", {"points": (0.0,)}, "points: the minimum rate must be > 0"),
        ("fig9", {"points": (1.0, 1.0)}, "points: repeated value"),
        ("fig9", {"configs": (1,)}, "configs: the fig9 suite takes --points"),
        ("fig9", {"methods": ("gp", "nonsense")}, "methods: unknown nonsense"),
        ("fig9", {"samples": 5}, "samples: 5 instances leave a split"),
    ],
)
def test_bad_options_name_the_field(tmp_path: Path, name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        suites.run(name, _options(tmp_path / "bad", name, **kwargs))  # type: ignore[arg-type]
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_full_scale_settings() -> None:
    chosen = sweeps.settings(
        sweeps.SWEEPS["fig4-6"], suites.SuiteOptions(run_dir=Path("unused"), full=True)
    )
    assert chosen.samples == 100_000 and chosen.train_config.epochs == 20
    assert chosen.splits == (0.9, 0.05, 0.05) and chosen.points == (4.0, 8.0, 12.0, 20.0)
    assert chosen.methods == sweeps.DEFAULT_METHODS
