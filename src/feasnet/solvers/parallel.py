"""Run a per-instance solver over a batch, in chunks, on the current executor, resumably.

Works for both problem families: the per-instance dict is built generically from
``instances.as_numpy()`` (every array indexed at the instance, 0-d results as ``float``), and the
shape of the NaN output that stands in for a failed instance is given by the caller.

The batch is cut into chunks of consecutive instances (:func:`default_chunk_size`, a function
of the batch size only, so that a rerun finds the same chunks whatever the executor or the
number of workers). Chunks run in this process (``workers`` None or 1), in a spawn process
pool, or as Ray tasks (see :mod:`feasnet.solvers.executor`); every instance is solved by the
same function with the same options wherever it runs, and timed inside the worker. With a
checkpoint folder, each finished chunk is written atomically and a rerun skips it.

Library calls default to running in this process: a script that asks for worker processes
(``workers > 1``) must keep its code under ``if __name__ == "__main__":``, because spawned
workers re-import the main script; without the guard :class:`WorkerStartError` says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from feasnet.atomic import atomic_path, write_text
from feasnet.progress import progress_bar
from feasnet.solvers.executor import (
    SINGLE_THREAD_ENV,
    Executor,
    default_workers,
    executor_scope,
    import_ray,
)

InstanceSolver = Callable[[dict[str, Any], dict[str, Any]], tuple[np.ndarray, str]]
"""``solve(instance, options) -> (output, message)``; ``instance`` holds one instance's arrays
keyed as in ``instances.as_numpy()``, each indexed at the instance (``(N,)`` arrays become
``float``). Power control: ``H`` (B, Q, B), ``pmax``, ``noise``, ``bandwidth``, ``min_rate``
(B, Q) -> power (B, Q) [W]. MISO: ``H`` (K, Nt) complex, ``pmax``, ``pc``, ``eta``, ``noise``,
``sinr_min`` (K,), ``weights`` (K,) -> beams (Nt, K) complex [sqrt(W)]."""

OutputShape = tuple[int, ...] | Callable[[dict[str, Any]], tuple[int, ...]] | None
"""Shape of the NaN output of a failed instance: a tuple, a function of the instance dict, or
None for the power-control default (the shape of ``min_rate``)."""

Job = tuple[InstanceSolver, dict[str, Any], dict[str, Any], OutputShape, bool]
Solved = tuple[np.ndarray, str, float]
"""One instance's ``(output, message, seconds)``."""

MAX_CHUNK_SIZE = 50
"""Most instances in one chunk (one Ray task / one process-pool job / one checkpoint file)."""

TARGET_CHUNKS = 100
"""Chunks a batch is cut into when that keeps chunks at most :data:`MAX_CHUNK_SIZE` long."""

UNGUARDED_MAIN = (
    "worker processes could not start. If this runs from a script, the usual cause is calling "
    "feasnet solvers at module level: spawned workers re-import the main script, so put the "
    'code under `if __name__ == "__main__":` or solve in this process with workers=1 (the '
    "library default). Other causes: a worker killed for memory or by a signal."
)


class WorkerStartError(RuntimeError):
    """Worker processes died (typically: solving with ``workers > 1`` from an unguarded
    script)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint folder holds chunks of a different solve (solver, options or instances)."""


__all__ = [
    "MAX_CHUNK_SIZE",
    "TARGET_CHUNKS",
    "CheckpointMismatchError",
    "Executor",
    "InstanceSolver",
    "OutputShape",
    "WorkerStartError",
    "default_chunk_size",
    "default_workers",
    "instance_dicts",
    "solve_each",
]


def default_chunk_size(num_instances: int) -> int:
    """Instances per chunk: about :data:`TARGET_CHUNKS` chunks, at most
    :data:`MAX_CHUNK_SIZE` instances each (depends on the batch size only)."""
    return max(1, min(MAX_CHUNK_SIZE, math.ceil(num_instances / TARGET_CHUNKS)))


def _single_thread() -> None:
    os.environ.update(SINGLE_THREAD_ENV)
    import torch

    torch.set_num_threads(1)


def _fallback_shape(instance: dict[str, Any], output_shape: OutputShape) -> tuple[int, ...]:
    if output_shape is None:
        return tuple(np.shape(instance["min_rate"]))
    if callable(output_shape):
        return tuple(output_shape(instance))
    return tuple(output_shape)


def _timed(job: Job) -> Solved:
    solve, instance, options, output_shape, complex_output = job
    start = time.perf_counter()
    try:
        output, message = solve(instance, options)
    except Exception as exc:  # a failure on one instance must not lose the others
        nan = complex(np.nan, np.nan) if complex_output else np.nan
        output = np.full(_fallback_shape(instance, output_shape), nan)
        message = f"solver error: {type(exc).__name__}: {exc}"
    return output, message, time.perf_counter() - start


def _run_chunk(jobs: list[Job]) -> list[Solved]:
    """Solve one chunk, instance by instance (in a worker process or in this one)."""
    return [_timed(job) for job in jobs]


def _ray_chunk(jobs: list[Job]) -> list[Solved]:
    """:func:`_run_chunk` as a Ray task: one thread (Ray reuses its worker processes)."""
    _single_thread()
    return _run_chunk(jobs)


def _instance_dicts(arrays: dict[str, Any], n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        item: dict[str, Any] = {}
        for key, value in arrays.items():
            value = np.asarray(value)
            if value.ndim == 0:  # a batch-wide scalar
                item[key] = value.item()
                continue
            entry = value[i]
            if np.ndim(entry) == 0:
                item[key] = complex(entry) if np.iscomplexobj(entry) else float(entry)
            else:
                item[key] = entry
        out.append(item)
    return out


def instance_dicts(instances: Any) -> list[dict[str, Any]]:
    """One dict per instance from ``instances.as_numpy()`` (arrays indexed at the instance;
    entries that become 0-d are given as ``float``, or ``complex`` for complex arrays)."""
    return _instance_dicts(instances.as_numpy(), len(instances))


# ------------------------------------------------------------------------------ checkpoints
def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _run_manifest(
    solve: InstanceSolver,
    arrays: dict[str, Any],
    n: int,
    options: dict[str, Any],
    output_shape: OutputShape,
    complex_output: bool,
    chunk_size: int,
) -> dict[str, Any]:
    """What identifies a chunked solve: solver, options, instances and chunking, plus a key
    (SHA-256 over all of it, including every byte of the instance arrays)."""
    data = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        data.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
        data.update(value.tobytes())
    manifest = {
        "solver": _name(solve),
        "options": json.dumps(options, sort_keys=True, default=repr),
        "output_shape": _name(output_shape) if callable(output_shape) else repr(output_shape),
        "complex_output": complex_output,
        "instances": n,
        "instance_data": data.hexdigest(),
        "chunk_size": chunk_size,
    }
    manifest["key"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return manifest


class _ChunkStore:
    """One folder of finished chunks (``chunk-00000.npz``, ...) plus ``manifest.json``."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.key: str = manifest["key"]
        path = folder / "manifest.json"
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            if old.get("key") != self.key:
                differ = [k for k in manifest if k != "key" and old.get(k) != manifest[k]]
                self._mismatch(", ".join(differ) or "key")
        else:
            write_text(path, json.dumps(manifest, indent=1) + "\n")

    def _mismatch(self, what: str) -> None:
        raise CheckpointMismatchError(
            f"checkpoint folder {self.folder} holds chunks of a different solve ({what} "
            "differ); use another folder, or delete this one to start over"
        )

    def path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:05d}.npz"

    def load(self, index: int) -> list[Solved] | None:
        """The saved results of chunk ``index``, or None if it has not finished."""
        path = self.path(index)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != self.key or int(saved["index"]) != index:
                self._mismatch(f"{path.name}: solver, options or instances")
            outputs, messages, seconds = saved["outputs"], saved["messages"], saved["seconds"]
            return [(outputs[i], str(messages[i]), float(seconds[i])) for i in range(len(seconds))]

    def save(self, index: int, results: list[Solved]) -> None:
        """Write chunk ``index`` atomically (a crash never leaves half a chunk)."""
        with atomic_path(self.path(index)) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                key=np.str_(self.key),
                index=np.int64(index),
                outputs=np.stack([np.asarray(r[0]) for r in results]),
                messages=np.array([r[1] for r in results], dtype=np.str_),
                seconds=np.array([r[2] for r in results], dtype=np.float64),
            )


# ------------------------------------------------------------------------------ runners
Done = Callable[[int, list[Solved]], None]
"""``done(chunk_index, results)``, called in this process as each chunk finishes."""


def _run_in_process(todo: Sequence[tuple[int, list[Job]]], done: Done) -> None:
    for index, jobs in todo:
        done(index, _run_chunk(jobs))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (so that processes started in it inherit
    them), then restore the previous values."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_process_pool(todo: Sequence[tuple[int, list[Job]]], workers: int, done: Done) -> None:
    if getattr(mp.current_process(), "_inheriting", False):
        # We are a spawned worker re-importing an unguarded main script: exit quietly with one
        # line; the parent then raises WorkerStartError.
        raise SystemExit(
            "feasnet worker: the main script solves at module level (no __main__ guard); "
            "exiting, see the error in the main process"
        )
    pool = ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_single_thread
    )
    try:
        # workers start on submit and inherit this environment, before numpy loads its BLAS
        with _environment(SINGLE_THREAD_ENV):
            futures = {pool.submit(_run_chunk, jobs): index for index, jobs in todo}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done(futures[future], future.result())
    except BrokenProcessPool as exc:
        raise WorkerStartError(UNGUARDED_MAIN) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(todo: Sequence[tuple[int, list[Job]]], done: Done) -> None:
    ray = import_ray()
    task = ray.remote(num_cpus=1)(_ray_chunk)
    refs = {task.remote(jobs): index for index, jobs in todo}
    pending = list(refs)
    try:
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for ref in finished:
                done(refs[ref], ray.get(ref))
    finally:
        for ref in pending:
            ray.cancel(ref)


# ------------------------------------------------------------------------------ entry point
def solve_each(
    solve: InstanceSolver,
    instances: Any,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
    label: str = "solving",
    output_shape: OutputShape = None,
    complex_output: bool = False,
    executor: Executor | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Apply ``solve`` to every instance, chunk by chunk, on the current executor.

    Args:
        solve: the per-instance solver (:data:`InstanceSolver`); a module-level function so
            that workers can import it.
        instances: any batch with ``as_numpy()`` and ``len()`` (power control or MISO).
        options: passed to every call.
        workers: process executor: worker processes (``None`` or 1: in this process, the
            library default; from a script, ``> 1`` needs the ``if __name__ == "__main__":``
            guard). Ray executor: CPUs of a local Ray instance if this call starts one.
        label: progress-bar label, and the sub-folder of ``checkpoint_dir``.
        output_shape: shape of the NaN output for an instance whose solver raised
            (:data:`OutputShape`; None: the power-control ``min_rate`` shape).
        complex_output: the NaN fallback is complex (``nan + nan j``).
        executor: where to run (default: the innermost
            :func:`~feasnet.solvers.executor.executor_scope`, else a local process pool).
        checkpoint_dir: save every finished chunk under ``checkpoint_dir/label/`` and skip
            chunks already there (default: the executor's ``checkpoint_dir``, else none).
        chunk_size: instances per chunk (default :func:`default_chunk_size`).

    Returns:
        ``(outputs, seconds, messages)``: the stacked outputs (``(N, B, Q)`` float64 power
        [W], or ``(N, Nt, K)`` complex128 beams), ``(N,)`` per-instance wall time measured
        inside the worker [s] (for resumed chunks, as measured when they ran), and one
        message per instance, in the order of ``instances``.

    Raises:
        WorkerStartError: worker processes died, typically because of an unguarded script.
        CheckpointMismatchError: ``checkpoint_dir`` holds chunks of a different solve.
    """
    options = options or {}
    arrays = instances.as_numpy()
    n = len(instances)
    items = _instance_dicts(arrays, n)
    size = chunk_size or default_chunk_size(n)
    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
    results: list[list[Solved] | None] = [None] * len(bounds)

    scope = (
        executor_scope(executor.kind, executor.address, executor.workers or workers)
        if executor is not None
        else executor_scope()
    )
    with scope as spec:
        folder = checkpoint_dir if checkpoint_dir is not None else spec.checkpoint_dir
        store = None
        if folder is not None:
            manifest = _run_manifest(solve, arrays, n, options, output_shape, complex_output, size)
            store = _ChunkStore(Path(folder) / label, manifest)
            results = [store.load(index) for index in range(len(bounds))]
        todo = [
            (index, [(solve, items[i], options, output_shape, complex_output) for i in range(*b)])
            for index, b in enumerate(bounds)
            if results[index] is None
        ]
        with progress_bar(label, total=n) as advance:
            advance(n - sum(len(jobs) for _, jobs in todo))

            def done(index: int, chunk: list[Solved]) -> None:
                if store is not None:
                    store.save(index, chunk)
                results[index] = chunk
                advance(len(chunk))

            local_workers = 1 if workers is None else max(1, workers)
            if not todo:
                pass
            elif spec.kind == "ray":
                _run_ray(todo, done)
            elif local_workers <= 1 or len(todo) == 1:
                _run_in_process(todo, done)
            else:
                _run_process_pool(todo, min(local_workers, len(todo)), done)

    solved = [entry for chunk in results if chunk is not None for entry in chunk]
    stacked = np.stack([np.asarray(o[0]) for o in solved])
    stacked = stacked.astype(np.complex128 if np.iscomplexobj(stacked) else np.float64)
    seconds = np.array([o[2] for o in solved], dtype=np.float64)
    messages = [o[1] for o in solved]
    return stacked, seconds, messages
