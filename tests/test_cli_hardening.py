"""What a new user hits: overwrites, bad arguments, foreign files, interrupts, file modes.

Every case must answer at once with exit status 0 or 2 (130 for Ctrl-C) and one line, never
a traceback, and must leave the files already written untouched.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from feasnet.cli import app

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, " ".join(result.output.split())  # undo the console's line wraps


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small power-control data set, its test split as npz, and a 1-epoch DEPNet run."""
    folder = tmp_path_factory.mktemp("hardening")
    code, out = invoke("data", "generate", "small", "--out", folder / "pc.h5", "--samples", "300")
    assert code == 0, out
    code, out = invoke("data", "export", folder / "pc.h5", "--out", folder / "pc.npz")
    assert code == 0, out
    code, out = invoke(
        "train", "--method", "depnet", "--data", folder / "pc.h5", "--out", folder / "run",
        "--epochs", "1",
    )  # fmt: skip
    assert code == 0, out
    return folder


def _snapshot(folder: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_train_refuses_to_overwrite_a_finished_run(workdir: Path) -> None:
    run = workdir / "run"
    before = _snapshot(run)
    args = ("train", "--method", "depnet", "--data", workdir / "pc.h5", "--out", run)
    code, out = invoke(*args, "--epochs", "1")
    assert code == 2 and "--resume" in out and "--force" in out
    assert _snapshot(run) == before  # nothing rewritten
    code, out = invoke(*args, "--epochs", "1", "--resume", "--force")
    assert code == 2 and "at most one" in out


def test_train_force_starts_over_and_resume_without_checkpoint_says_so(
    workdir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "fresh"
    args = ("train", "--method", "pnet", "--data", workdir / "pc.h5", "--out", run)
    code, out = invoke(*args, "--epochs", "1", "--resume")
    assert code == 0 and "no checkpoint" in out and "starting a new training" in out
    code, out = invoke(*args, "--epochs", "1", "--force")
    assert code == 0, out
    assert "resumed" not in out


def test_train_rejects_arguments_before_doing_any_work(workdir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "never"
    cases = [
        (("--preset", "small", "--epochs", "-3"), "--epochs"),
        (("--preset", "small", "--samples", "0"), "--samples"),
        (("--preset", "small", "--batch-size", "1"), "--batch-size"),
        (("--preset", "small", "--learning-rate", "-1"), "learning_rate"),
        (("--preset", "small", "--device", "tpu"), "device"),
        (("--data", workdir / "pc.h5", "--method", "dc3+du"), "power-control"),
        (("--preset", "miso-snr-10"), "miso"),
    ]
    for extra, expected in cases:
        args = ["train", "--out", out_dir, *extra]
        if "--method" not in extra:
            args += ["--method", "depnet"]
        started = time.perf_counter()
        code, out = invoke(*args)
        assert code == 2 and expected in out, (extra, out)
        assert time.perf_counter() - started < 2.0
        assert not out_dir.exists(), extra  # no data generated, nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_train_on_cuda_without_cuda_is_one_line(workdir: Path, tmp_path: Path) -> None:
    code, out = invoke(
        "train", "--method", "depnet", "--data", workdir / "pc.h5", "--out", tmp_path / "c",
        "--device", "cuda",
    )  # fmt: skip
    assert code == 2 and "no CUDA device" in out


def test_resume_into_a_run_of_another_size(workdir: Path, tmp_path: Path) -> None:
    code, out = invoke(
        "data", "generate", "table2-2", "--out", tmp_path / "big.h5", "--samples", "60"
    )
    assert code == 0, out
    run = tmp_path / "run"
    code, out = invoke(
        "train", "--method", "depnet", "--data", workdir / "pc.h5", "--out", run, "--epochs", "1"
    )
    assert code == 0, out
    code, out = invoke(
        "train", "--method", "depnet", "--data", tmp_path / "big.h5", "--out", run,
        "--epochs", "2", "--resume",
    )  # fmt: skip
    assert code == 2 and "another size" in out


def test_solve_with_a_file_that_is_not_a_model(workdir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "random.pt"
    torch.save({"weights": Fraction(1, 3)}, fake)  # a pickle torch refuses to load safely
    code, out = invoke("solve", workdir / "pc.npz", "--model", fake, "--out", tmp_path / "s.npz")
    assert code == 2 and "not a feasnet model file" in out
    assert "weights_only=False" not in out and "weights_only" not in out.replace(
        "weights_only=True", ""
    )
    fake.write_bytes(b"garbage")
    code, out = invoke("solve", workdir / "pc.npz", "--model", fake, "--out", tmp_path / "s.npz")
    assert code == 2 and "not a feasnet model file" in out


def test_bench_rejects_wrong_family_and_meaningless_counts(tmp_path: Path) -> None:
    cases = [
        (("--preset", "miso-snr-10", "--methods", "gp"), "MISO preset"),
        (("--suite", "classical", "--methods", "min-power,dc3+mlp"), "dc3+mlp"),
        (("--suite", "miso-snr", "--methods", "gp"), "gp"),
        (("--suite", "table2", "--methods", "dc3+du"), "dc3+du"),
        (("--suite", "miso-snr", "--preset", "small"), "preset"),
        (("--samples", "0"), "--samples"),
        (("--epochs", "0"), "--epochs"),
        (("--workers", "0"), "--workers"),
        (("--workers", "-2"), "--workers"),
    ]
    for extra, expected in cases:
        started = time.perf_counter()
        code, out = invoke("bench", "--out", tmp_path / "b", *extra)
        assert code == 2 and expected in out, (extra, out)
        assert time.perf_counter() - started < 2.0
        assert not (tmp_path / "b").exists()


def test_solve_rejects_meaningless_workers(workdir: Path, tmp_path: Path) -> None:
    for workers in ("0", "-2"):
        code, out = invoke(
            "solve", workdir / "pc.npz", "--method", "gp", "--workers", workers,
            "--out", tmp_path / "s.npz",
        )  # fmt: skip
        assert code == 2 and "--workers" in out


def test_data_generate_rejects_zero_samples(tmp_path: Path) -> None:
    code, out = invoke("data", "generate", "small", "--out", tmp_path / "x.h5", "--samples", "0")
    assert code == 2 and "--samples" in out and not (tmp_path / "x.h5").exists()


def test_import_says_how_many_instances_were_dropped_and_why(workdir: Path, tmp_path: Path) -> None:
    with np.load(workdir / "pc.npz") as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    n = arrays["H"].shape[0]
    min_rate = np.broadcast_to(np.asarray(arrays["min_rate"], dtype=float), (n, 3, 2)).copy()
    min_rate[1:] = 5e8  # unreachable for all but the first instance
    arrays["min_rate"] = min_rate
    np.savez(tmp_path / "mostly-bad.npz", **arrays)
    code, out = invoke("data", "import", tmp_path / "mostly-bad.npz", "--out", tmp_path / "m.h5")
    assert code == 2 and f"{n - 1} of {n} instances dropped as infeasible" in out
    assert "too few" in out


def test_interrupt_says_how_to_continue(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feasnet.training

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(feasnet.training, "train", interrupted)
    code, out = invoke(
        "train", "--method", "depnet", "--data", workdir / "pc.h5", "--out", tmp_path / "r"
    )
    assert code == 130 and "interrupted" in out and "--resume" in out


def test_version() -> None:
    from feasnet import __version__

    code, out = invoke("--version")
    assert code == 0 and __version__ in out
    done = subprocess.run(
        [sys.executable, "-m", "feasnet.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and __version__ in done.stdout


def test_written_files_follow_the_umask(workdir: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        code, out = invoke("data", "export", workdir / "pc.h5", "--out", tmp_path / "e.npz")
        assert code == 0, out
        code, out = invoke(
            "solve", tmp_path / "e.npz", "--method", "min-power", "--out", tmp_path / "s.npz"
        )
        assert code == 0, out
    finally:
        os.umask(old)
    for name in ("e.npz", "s.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert stat.S_IMODE((workdir / "run" / "model.pt").stat().st_mode) & 0o044


def test_bench_rtol_and_guard_are_recorded_and_applied(tmp_path: Path) -> None:
    out_dir = tmp_path / "b"
    code, out = invoke(
        "bench", "--suite", "classical", "--samples", "200", "--methods", "min-power,fw",
        "--workers", "1", "--rtol", "1e-9", "--guard", "--out", out_dir,
    )  # fmt: skip
    assert code == 0 and "rtol 1e-09" in out, out
    payload = json.loads((out_dir / "results.json").read_text())
    assert payload["rtol"] == 1e-9 and payload["guard"] is True
    assert all(row["rtol"] == 1e-9 for row in payload["results"])
    assert all(row["violation_probability"] == 0 for row in payload["results"])


def test_bench_with_the_global_solver_as_reference(tmp_path: Path) -> None:
    out_dir = tmp_path / "g"
    code, out = invoke(
        "bench", "--suite", "classical", "--preset", "small", "--samples", "40",
        "--methods", "min-power,sca", "--reference", "global", "--workers", "1",
        "--out", out_dir,
    )  # fmt: skip
    assert code == 0, out
    payload = json.loads((out_dir / "results.json").read_text())
    assert payload["reference"] == "global"
    rows = {row["method"]: row for row in payload["results"]}
    assert set(rows) == {"global", "min-power", "sca"}
    # certified: nothing beats the upper bound, the global point is within its gap
    for row in rows.values():
        assert row["percent_of_upper_bound"] <= 100.0 + 1e-9
    assert rows["global"]["percent_of_upper_bound"] >= 99.9
    code, out = invoke("bench", "--suite", "table2", "--reference", "global", "--out", out_dir)
    assert code == 2 and "fixed reference" in out


def test_train_constraint_sets(workdir: Path, tmp_path: Path) -> None:
    base = ("train", "--data", workdir / "pc.h5", "--epochs", "1")
    code, out = invoke(
        *base, "--method", "depnet", "--out", tmp_path / "a", "--constraint-set", "x"
    )
    assert code == 2 and "linear-rate" in out and "rate" in out
    # the non-linear rate rows: DEPNet trains on them; the QP layer needs a polytope
    code, out = invoke(
        *base, "--method", "dipnet", "--out", tmp_path / "b", "--constraint-set", "rate"
    )
    assert code == 2 and "dipnet" in out and not (tmp_path / "b").exists()
    code, out = invoke(
        *base, "--method", "depnet", "--out", tmp_path / "c", "--constraint-set", "rate"
    )
    assert code == 0, out
    payload = torch.load(tmp_path / "c" / "model.pt", weights_only=True)
    assert "rate" in json.dumps(payload.get("problem", payload), default=str)
    # energy-efficiency rows need data that carries min_energy_efficiency
    code, out = invoke(
        *base,
        "--method",
        "depnet",
        "--out",
        tmp_path / "d",
        "--constraint-set",
        "energy-efficiency",
    )
    assert code == 2 and "energy" in out
    # an energy-efficiency preset: the QP layer is refused (non-convex set), in one line
    code, out = invoke(
        "train", "--method", "dipnet", "--preset", "fig12-ee-10", "--samples", "50",
        "--out", tmp_path / "e",
    )  # fmt: skip
    assert code == 2 and "energy-efficiency" in out
