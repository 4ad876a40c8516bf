"""Executors for per-instance solves: Ray gives the process pool's results, chunk checkpoints
resume, and a checkpoint of another solve is refused."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feasnet import solvers
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances
from feasnet.solvers import gp
from feasnet.solvers.executor import (
    SINGLE_THREAD_ENV,
    Executor,
    current_executor,
    executor_scope,
    import_ray,
)
from feasnet.solvers.parallel import CheckpointMismatchError, default_chunk_size, solve_each

ray = pytest.importorskip("ray")

N = 20
CHUNK = 4  # 5 chunks of 4 instances


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Any:
    """One local Ray instance with 2 CPUs for the whole module."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": dict(SINGLE_THREAD_ENV)},
        logging_level="WARNING",
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def small() -> PowerControlInstances:
    instances, _ = generate(get_preset("small"), num_samples=N, seed=11)
    assert isinstance(instances, PowerControlInstances)
    return instances


@pytest.fixture(scope="module")
def miso_small() -> MisoInstances:
    instances, _ = generate(get_preset("miso-small"), num_samples=12, seed=5)
    assert isinstance(instances, MisoInstances)
    return instances


@pytest.fixture(scope="module")
def gp_reference(small: PowerControlInstances) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """GP on every instance in this process (the library default)."""
    return solve_each(gp.solve_instance, small, {}, label="gp", chunk_size=CHUNK)


# ------------------------------------------------------------------------- same results
def test_ray_gives_the_default_executors_gp_allocations(
    small: PowerControlInstances, gp_reference: Any
) -> None:
    on_ray = solvers.solve("gp", small, executor="ray")
    np.testing.assert_allclose(on_ray.power, gp_reference[0], rtol=1e-9, atol=0)
    assert on_ray.messages == gp_reference[2]
    assert on_ray.feasible.all()
    # wall time is measured per instance inside the Ray worker
    assert on_ray.seconds.shape == (N,) and (on_ray.seconds > 0).all()
    # Ray was started by the fixture: the scope used it and left it running
    assert ray.is_initialized()


def test_ray_gives_the_default_executors_miso_min_power_beams(miso_small: MisoInstances) -> None:
    from feasnet.threads import intra_op_threads

    with intra_op_threads(1):  # single-threaded like the workers (see the sca test)
        reference = solvers.solve("min-power", miso_small)
    on_ray = solvers.solve("min-power", miso_small, executor="ray")
    assert on_ray.beams.dtype == np.complex128 and on_ray.messages == reference.messages
    # the solvers re-solve cached cvxpy problems without warm starts, so a result does not
    # depend on what the process solved before (Ray and the pool share instances out
    # differently)
    np.testing.assert_allclose(on_ray.beams, reference.beams, rtol=1e-9, atol=1e-12)


def test_ray_gives_the_default_executors_sca_allocations(small: PowerControlInstances) -> None:
    from feasnet.threads import intra_op_threads

    subset = small[:6]
    # the workers of both executors run single-threaded; so does the reference, because the
    # summation order of multi-threaded BLAS moves an iterative solver's result by ~1e-6
    with intra_op_threads(1):
        reference = solvers.solve("sca", subset)
    on_ray = solvers.solve("sca", subset, executor="ray")
    np.testing.assert_allclose(on_ray.power, reference.power, rtol=1e-9, atol=1e-15)


def _threads(instance: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray, str]:
    import os

    import torch

    env = ",".join(os.environ.get(var, "") for var in SINGLE_THREAD_ENV)
    return np.zeros((1,)), f"{torch.get_num_threads()}|{env}"


def test_ray_tasks_run_single_threaded(small: PowerControlInstances) -> None:
    _, _, messages = solve_each(_threads, small, executor=Executor("ray"), output_shape=(1,))
    assert set(messages) == {"1|1,1,1"}


# ------------------------------------------------------------------------- checkpoints
CALLS = {"count": 0, "stop_after": 0}


def _counting_gp(instance: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray, str]:
    """GP that counts its calls in this process and can simulate a Ctrl-C."""
    CALLS["count"] += 1
    if CALLS["stop_after"] and CALLS["count"] > CALLS["stop_after"]:
        raise KeyboardInterrupt
    return gp.solve_instance(instance, options)


def _run(instances: Any, folder: Path, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return solve_each(
        _counting_gp, instances, {}, label="gp", checkpoint_dir=folder, chunk_size=CHUNK, **kwargs
    )


def test_an_interrupted_solve_resumes_at_chunk_granularity(
    small: PowerControlInstances, gp_reference: Any, tmp_path: Path
) -> None:
    CALLS.update(count=0, stop_after=10)  # dies inside the third chunk
    with pytest.raises(KeyboardInterrupt):
        _run(small, tmp_path)
    folder = tmp_path / "gp"
    assert sorted(p.name for p in folder.iterdir()) == [
        "chunk-00000.npz",
        "chunk-00001.npz",
        "manifest.json",
    ]  # two whole chunks, no half-written file

    CALLS.update(count=0, stop_after=0)
    power, seconds, messages = _run(small, tmp_path)
    assert CALLS["count"] == N - 2 * CHUNK  # only the missing chunks ran
    np.testing.assert_array_equal(power, gp_reference[0])
    assert messages == gp_reference[2] and seconds.shape == (N,)
    assert len(list(folder.glob("chunk-*.npz"))) == N // CHUNK

    CALLS.update(count=0)
    again = _run(small, tmp_path)
    assert CALLS["count"] == 0
    np.testing.assert_array_equal(again[0], power)
    np.testing.assert_array_equal(again[1], seconds)  # times as measured when they ran


def test_resume_on_another_executor_computes_only_missing_chunks(
    small: PowerControlInstances, gp_reference: Any, tmp_path: Path
) -> None:
    CALLS.update(count=0, stop_after=0)
    _run(small, tmp_path)  # all chunks, in this process
    folder = tmp_path / "gp"
    chunks = sorted(folder.glob("chunk-*.npz"))
    kept = {p: p.stat().st_mtime_ns for p in chunks[::2]}
    for path in chunks[1::2]:
        path.unlink()

    power, _, messages = _run(small, tmp_path, executor=Executor("ray"))
    np.testing.assert_array_equal(power, gp_reference[0])
    assert messages == gp_reference[2]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished chunks were not redone
    assert sorted(folder.glob("chunk-*.npz")) == chunks

    for path in chunks[1::2]:
        path.unlink()
    pooled = _run(small, tmp_path, workers=2)  # and on the process pool
    np.testing.assert_array_equal(pooled[0], gp_reference[0])
    assert {p: p.stat().st_mtime_ns for p in kept} == kept


def test_a_checkpoint_of_another_solve_is_refused(
    small: PowerControlInstances, tmp_path: Path
) -> None:
    CALLS.update(count=0, stop_after=0)
    first = small[0:8]
    _run(first, tmp_path)
    with pytest.raises(CheckpointMismatchError, match="options"):
        solve_each(
            _counting_gp, first, {"solver": "SCS"}, label="gp", checkpoint_dir=tmp_path,
            chunk_size=CHUNK,
        )  # fmt: skip
    other = small[8:16]
    with pytest.raises(CheckpointMismatchError, match="instance_data"):
        _run(other, tmp_path)
    # a chunk file copied in from another solve is caught by its key
    elsewhere = tmp_path / "elsewhere"
    _run(other, elsewhere)
    (tmp_path / "gp" / "chunk-00001.npz").write_bytes(
        (elsewhere / "gp" / "chunk-00001.npz").read_bytes()
    )
    with pytest.raises(CheckpointMismatchError, match=r"chunk-00001\.npz"):
        _run(first, tmp_path)
    assert CALLS["count"] == 16  # nothing was solved for the refused runs


# ------------------------------------------------------------------------- scopes
def test_scopes_nest_and_inherit() -> None:
    assert current_executor() == Executor()
    with executor_scope("ray", checkpoint_dir="x") as outer:
        assert outer.kind == "ray" and outer.checkpoint_dir == Path("x")
        with executor_scope() as inner:
            assert inner == outer
        with executor_scope("process") as local:
            assert local.kind == "process" and local.address is None
            assert local.checkpoint_dir == Path("x")
    assert current_executor() == Executor()
    assert ray.is_initialized()  # started by the fixture, so not shut down by the scope


def test_bad_executor_arguments() -> None:
    with pytest.raises(ValueError, match="executor"):
        Executor("dask")
    with pytest.raises(ValueError, match="address"):
        Executor("process", address="auto")
    with pytest.raises(ValueError, match="address"), executor_scope("process", address="auto"):
        pass


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RuntimeError, match=r"install feasnet\[ray\]"):
        import_ray()


def test_chunk_size_depends_on_the_batch_only() -> None:
    assert default_chunk_size(20) == 1
    assert default_chunk_size(200) == 2
    assert default_chunk_size(10**6) == 50
