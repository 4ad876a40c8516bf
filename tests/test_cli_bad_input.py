"""Garbage fed to the options and files added with labels, objectives, imperfect CSI and user
drops: each is a one-line error naming the field, exit status 2, no traceback, no files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from feasnet.cli import app

runner = CliRunner()


def _fails(args: list[str], message: str) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert message in text and "Traceback" not in result.output


@pytest.fixture(scope="module")
def perfect_csi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "small.h5"
    result = runner.invoke(
        app, ["data", "generate", "small", "--samples", "40", "--out", str(path)]
    )
    assert result.exit_code == 0, result.output
    return path


def test_label_missing_and_non_hdf5_files(tmp_path: Path) -> None:
    _fails(["data", "label", tmp_path / "nope.h5"], "no such file")
    garbage = tmp_path / "garbage.h5"
    garbage.write_text("not a data set")
    _fails(["data", "label", garbage], "not an HDF5 file")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--csi-distortion", "1.5"], "csi_distortion"),
        (["--csi-distortion", "-0.1"], "csi_distortion"),
        (["--objective", "hybrid", "--hybrid-weight", "-1"], "hybrid"),
        (["--robust", "exact"], "robust: --preset small carries no csi_error"),
    ],
)
def test_train_options_out_of_range(tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "run"
    _fails(["train", "--method", "qp+mlp", "--preset", "small", "--out", out, *extra], message)
    assert not out.exists()


def test_robust_on_perfect_csi_data_is_refused(tmp_path: Path, perfect_csi: Path) -> None:
    out = tmp_path / "x.npz"
    _fails(
        ["solve", perfect_csi, "--method", "min-power", "--robust", "exact", "--out", out],
        "robust: the data carries no csi_error",
    )
    assert not out.exists()
    run = tmp_path / "run"
    _fails(
        ["train", "--method", "qp+mlp", "--data", perfect_csi, "--out", run, "--robust", "none"],
        "carries no csi_error",
    )
    assert not run.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--csi-error", "1.2"], "csi_error"),
        (["--csi-error", "nan"], "csi_error"),
        (["--drop", "cell", "--cell-radius", "-5"], "cell_radius_m"),
    ],
)
def test_generate_options_out_of_range(tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "d.h5"
    _fails(["data", "generate", "small", "--out", out, *extra], message)
    assert not out.exists()
