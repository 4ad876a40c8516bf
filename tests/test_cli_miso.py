"""The `feasnet` command on MISO beamforming files: data, solve, train, bench, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from feasnet.problems import miso

from .test_cli import invoke


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-miso")
    code, out = invoke(
        "data", "generate", "miso-small", "--out", folder / "m.h5", "--samples", "100"
    )
    assert code == 0, out
    code, out = invoke("data", "export", folder / "m.h5", "--out", folder / "m.npz")
    assert code == 0, out
    return folder


def test_presets_info_and_the_survey_split(workdir: Path) -> None:
    code, out = invoke("data", "presets")
    assert code == 0 and "miso-snr-20" in out and "miso-m-0.5" in out
    code, out = invoke("data", "info", workdir / "m.h5")
    assert code == 0 and "miso" in out and "train 70" in out and "test 30" in out
    code, out = invoke("methods")
    assert code == 0 and "wmmse-sdr" in out and "dc3+du" in out


@pytest.mark.parametrize("method", ["min-power", "wmmse"])
def test_solve_writes_beams_wsr_and_feasibility(workdir: Path, method: str) -> None:
    out_file = workdir / f"{method}.npz"
    code, out = invoke(
        "solve", workdir / "m.npz", "--method", method, "--out", out_file, "--workers", "1"
    )
    assert code == 0, out
    assert "bit/s/Hz" in out
    with np.load(out_file) as sol:
        assert sol["V"].shape == (30, 4, 2) and np.iscomplexobj(sol["V"])
        assert sol["feasible"].all() and sol["wsr"].shape == (30,)
        beams = sol["V"]
    with np.load(workdir / "m.npz") as data:
        instances = miso.MisoInstances.from_numpy(dict(data))
    import torch

    assert bool(miso.is_feasible(torch.as_tensor(beams), instances).all())


def test_power_control_method_on_miso_file_is_refused(workdir: Path) -> None:
    code, out = invoke("solve", workdir / "m.npz", "--method", "gp", "--out", workdir / "x.npz")
    assert code == 2 and "unknown method" in out and "wmmse" in out


def test_bad_miso_files_name_the_key(workdir: Path) -> None:
    with np.load(workdir / "m.npz") as data:
        arrays = dict(data)
    broken = dict(arrays, H=np.where(np.arange(4) == 0, np.nan, arrays["H"]))
    np.savez(workdir / "nan.npz", **broken)
    code, out = invoke(
        "solve", workdir / "nan.npz", "--method", "wmmse", "--out", workdir / "x.npz"
    )
    assert code == 2 and "H" in out and "NaN" in out
    missing = {k: v for k, v in arrays.items() if k != "eta"}
    np.savez(workdir / "missing.npz", **missing)
    code, out = invoke(
        "solve", workdir / "missing.npz", "--method", "wmmse", "--out", workdir / "x.npz"
    )
    assert code == 2 and "eta" in out


def test_infeasible_instance_is_reported_not_crashed_on(workdir: Path) -> None:
    with np.load(workdir / "m.npz") as data:
        arrays = dict(data)
    n = arrays["H"].shape[0]
    pmax = np.full(n, float(np.max(arrays["pmax"])))
    pmax[0] = float(np.max(arrays["pc"])) * 1.000001  # almost nothing left for transmission
    np.savez(workdir / "tight.npz", **dict(arrays, pmax=pmax))
    code, out = invoke(
        "solve",
        workdir / "tight.npz",
        "--method",
        "min-power",
        "--out",
        workdir / "t.npz",
        "--workers",
        "1",
    )
    assert code == 0, out
    assert "instance 0: infeasible" in out
    with np.load(workdir / "t.npz") as sol:
        assert not sol["feasible"][0] and sol["feasible"][1:].all()


def test_train_then_solve_with_the_model(workdir: Path) -> None:
    run = workdir / "run"
    code, out = invoke(
        "train", "--method", "hop+du", "--data", workdir / "m.h5", "--out", run, "--epochs", "2"
    )
    assert code == 0, out
    assert "holding out" in out
    code, out = invoke("solve", workdir / "m.npz", "--model", run, "--out", workdir / "l.npz")
    assert code == 0, out
    with np.load(workdir / "l.npz") as sol:
        assert sol["feasible"].all() and sol["V"].shape == (30, 4, 2)


def test_bench_miso_suite_runs_and_reports(workdir: Path) -> None:
    from feasnet.bench import miso as miso_bench

    # the sweep presets are 20x3 with 1,000 instances; run one point small and short
    out_dir = workdir / "bench"
    code, out = invoke(
        "bench",
        "--suite",
        "miso-snr",
        "--points",
        "10",
        "--samples",
        "40",
        "--epochs",
        "1",
        "--methods",
        "wmmse,hop+mlp,dc3+du",
        "--workers",
        "1",
        "--out",
        out_dir,
    )
    assert code == 0, out
    payload = json.loads((out_dir / "results.json").read_text())
    methods = [r["method"] for r in payload["results"]]
    assert methods == ["wmmse", "hop+mlp", "dc3+du"]
    assert payload["checks"]["hard_constrained_zero_violations"] is True
    assert (out_dir / "sweep.png").stat().st_size > 10_000
    assert "% of WMMSE" in (out_dir / "report.md").read_text()
    assert miso_bench.SWEEPS["miso-snr"].preset(10) == "miso-snr-10"
    code, out = invoke("bench", "--suite", "miso-snr", "--points", "7", "--out", out_dir)
    assert code == 2 and "points" in out


def test_bad_bench_and_train_arguments_exit_with_a_clear_error(workdir: Path) -> None:
    code, out = invoke("bench", "--suite", "miso-fig9", "--out", workdir / "b")
    assert code == 2 and "suite" in out and "miso-snr" in out
    code, out = invoke("bench", "--suite", "miso-snr", "--methods", "wmmse,nope", "--out", workdir)
    assert code == 2 and "unknown nope" in out
    code, out = invoke("bench", "--suite", "miso-snr", "--points", "ten", "--out", workdir)
    assert code == 2 and "points" in out
    # a power-control method on a MISO data set, and a MISO model on a power-control file
    code, out = invoke("train", "--method", "dipnet", "--data", workdir / "m.h5", "--out", workdir)
    assert code == 2 and "power-control" in out
    code, out = invoke(
        "data",
        "generate",
        "miso-small",
        "--out",
        workdir / "x.h5",
        "--train",
        "0.9",
        "--test",
        "0.3",
    )
    assert code == 2 and "error" in out
