"""The `feasnet` command end to end, including its answers to bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from feasnet.cli import app

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    code, out = invoke("data", "generate", "small", "--out", folder / "d.h5", "--samples", "400")
    assert code == 0, out
    code, out = invoke(
        "data", "export", folder / "d.h5", "--split", "test", "--out", folder / "t.npz"
    )
    assert code == 0, out
    return folder


def test_presets_methods_and_info(workdir: Path) -> None:
    code, out = invoke("data", "presets")
    assert code == 0 and "table2-8" in out and "gaussian-4x3" in out
    code, out = invoke("methods")
    assert code == 0 and "sca" in out and "depnet+fw" in out
    code, out = invoke("data", "info", workdir / "d.h5")
    assert code == 0 and "test 20" in out


def test_solve_writes_the_solution_contract(workdir: Path) -> None:
    code, out = invoke(
        "solve", workdir / "t.npz", "--method", "min-power", "--out", workdir / "s.npz"
    )
    assert code == 0, out
    with np.load(workdir / "s.npz") as sol:
        assert sol["P"].shape == (20, 3, 2)
        assert sol["feasible"].dtype == bool and sol["feasible"].all()
        assert sol["sum_rate"].shape == (20,) and sol["seconds"].shape == (20,)


def test_solve_reports_infeasible_instances(workdir: Path) -> None:
    with np.load(workdir / "t.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["min_rate"] = np.full(arrays["H"].shape[:3], 5e8)  # unreachable targets
    np.savez(workdir / "hard.npz", **arrays)
    code, out = invoke(
        "solve", workdir / "hard.npz", "--method", "fw", "--out", workdir / "hard-sol.npz"
    )
    assert code == 0, out
    assert "infeasible" in out
    with np.load(workdir / "hard-sol.npz") as sol:
        assert not sol["feasible"].any()


def _broken(workdir: Path, name: str, change: dict) -> Path:
    with np.load(workdir / "t.npz") as data:
        arrays = {k: data[k] for k in data.files}
    for key, value in change.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    path = workdir / f"{name}.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("missing", {"pmax": None}, "pmax"),
        ("nan", {"H": np.full((2, 3, 2, 3), np.nan)}, "H"),
        ("negative", {"H": -np.ones((2, 3, 2, 3))}, "H"),
        ("shape", {"H": np.ones((2, 3, 2))}, "H"),
        ("noise", {"noise": np.float64(0.0)}, "noise"),
        ("bandwidth", {"bandwidth": np.float64(-5.0)}, "bandwidth"),
    ],
)
def test_bad_files_exit_nonzero_naming_the_field(
    workdir: Path, name: str, change: dict, field: str
) -> None:
    path = _broken(workdir, name, change)
    code, out = invoke("solve", path, "--method", "gp", "--out", workdir / "x.npz")
    assert code == 2
    assert field in out and "error" in out


def test_bad_arguments_exit_nonzero(workdir: Path) -> None:
    code, out = invoke("solve", workdir / "t.npz", "--method", "nope", "--out", workdir / "x.npz")
    assert code == 2 and "unknown method" in out
    code, out = invoke(
        "solve", workdir / "missing.npz", "--method", "gp", "--out", workdir / "x.npz"
    )
    assert code == 2
    (workdir / "junk.h5").write_bytes(b"junk")
    code, out = invoke("data", "export", workdir / "junk.h5", "--out", workdir / "x.npz")
    assert code == 2 and "junk.h5" in out
    code, out = invoke("data", "generate", "nope", "--out", workdir / "x.h5")
    assert code == 2 and "table2-1" in out


def test_train_then_solve_with_the_model(workdir: Path) -> None:
    run = workdir / "run"
    code, out = invoke(
        "train", "--method", "DEPNet", "--data", workdir / "d.h5", "--out", run, "--epochs", "1"
    )
    assert code == 0, out
    assert (run / "model.pt").exists() and (run / "checkpoint.pt").exists()
    code, out = invoke("solve", workdir / "t.npz", "--model", run, "--out", workdir / "m.npz")
    assert code == 0, out
    with np.load(workdir / "m.npz") as sol:
        assert sol["feasible"].all()
    # resume continues to the new epoch count
    code, out = invoke(
        "train",
        "--method",
        "depnet",
        "--data",
        workdir / "d.h5",
        "--out",
        run,
        "--epochs",
        "2",
        "--resume",
    )
    assert code == 0 and "resumed" in out
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    # a model for another (B, Q) is refused with a clear message
    code, out = invoke("data", "generate", "table2-2", "--out", workdir / "o.h5", "--samples", "40")
    assert code == 0, out
    code, out = invoke("solve", workdir / "o.h5", "--model", run, "--out", workdir / "o.npz")
    assert code == 2 and "trained for variables of shape (3, 2)" in out


def test_bench_classical_writes_every_report(workdir: Path) -> None:
    out_dir = workdir / "bench"
    code, out = invoke(
        "bench",
        "--suite",
        "classical",
        "--samples",
        "300",
        "--methods",
        "min-power,fw,ga",
        "--workers",
        "1",
        "--out",
        out_dir,
    )
    assert code == 0, out
    for name in ("results.json", "results.csv", "report.md", "comparison.png", "dataset.h5"):
        assert (out_dir / name).exists(), name
    payload = json.loads((out_dir / "results.json").read_text())
    assert [row["method"] for row in payload["results"]] == ["min-power", "fw", "ga"]
    assert all(row["violation_probability"] == 0 for row in payload["results"])


def test_bench_rerun_reuses_or_drops_cached_results(workdir: Path) -> None:
    out_dir = workdir / "bench-rerun"
    args = (
        "bench",
        "--suite",
        "classical",
        "--methods",
        "min-power,fw",
        "--workers",
        "1",
        "--out",
        out_dir,
    )
    code, out = invoke(*args, "--samples", "300")
    assert code == 0, out
    # a second run into the same folder must say whether it continues or replaces
    code, out = invoke(*args, "--samples", "300")
    assert code == 2 and "--resume" in out and "--force" in out
    code, out = invoke(*args, "--samples", "300", "--resume")
    assert code == 0 and "reusing" in out and "settings changed" not in out
    # other settings: --resume refuses to touch the cached results, --force replaces them
    code, out = invoke(*args, "--samples", "320", "--resume")
    assert code == 2 and "other settings" in out and "--force" in out
    assert json.loads((out_dir / "results.json").read_text())["num_instances"] == 15
    code, out = invoke(*args, "--samples", "320", "--force")
    assert code == 0 and "settings changed" in out
    payload = json.loads((out_dir / "results.json").read_text())
    assert payload["num_instances"] == 16


def test_train_and_bench_reject_bad_arguments(workdir: Path) -> None:
    code, out = invoke(
        "train", "--method", "nonsense", "--data", workdir / "d.h5", "--out", workdir / "r"
    )
    assert code == 2 and "unknown method" in out
    code, out = invoke("train", "--method", "dipnet", "--out", workdir / "r")
    assert code == 2 and "--preset" in out
    code, out = invoke(
        "train", "--method", "dipnet", "--data", workdir / "t.npz", "--out", workdir / "r"
    )
    assert code == 2 and "t.npz" in out
    code, out = invoke("bench", "--suite", "nope", "--out", workdir / "b")
    assert code == 2 and "unknown suite" in out
    code, out = invoke("bench", "--methods", "gp,bogus", "--out", workdir / "b")
    assert code == 2 and "bogus" in out
    code, out = invoke("bench", "--suite", "table2", "--configs", "0", "--out", workdir / "b")
    assert code == 2 and "IDs 1-8" in out
