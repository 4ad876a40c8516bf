"""Run a per-instance solver over a batch in worker processes, one thread each.

Works for both problem families: the per-instance dict is built generically from
``instances.as_numpy()`` (every array indexed at the instance, 0-d results as ``float``), and the
shape of the NaN output that stands in for a failed instance is given by the caller.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from feasnet.progress import progress_bar

InstanceSolver = Callable[[dict[str, Any], dict[str, Any]], tuple[np.ndarray, str]]
"""``solve(instance, options) -> (output, message)``; ``instance`` holds one instance's arrays
keyed as in ``instances.as_numpy()``, each indexed at the instance (``(N,)`` arrays become
``float``). Power control: ``H`` (B, Q, B), ``pmax``, ``noise``, ``bandwidth``, ``min_rate``
(B, Q) -> power (B, Q) [W]. MISO: ``H`` (K, Nt) complex, ``pmax``, ``pc``, ``eta``, ``noise``,
``sinr_min`` (K,), ``weights`` (K,) -> beams (Nt, K) complex [sqrt(W)]."""

OutputShape = tuple[int, ...] | Callable[[dict[str, Any]], tuple[int, ...]] | None
"""Shape of the NaN output of a failed instance: a tuple, a function of the instance dict, or
None for the power-control default (the shape of ``min_rate``)."""


def default_workers() -> int:
    """Worker processes to use by default: the available cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _single_thread() -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)


def _fallback_shape(instance: dict[str, Any], output_shape: OutputShape) -> tuple[int, ...]:
    if output_shape is None:
        return tuple(np.shape(instance["min_rate"]))
    if callable(output_shape):
        return tuple(output_shape(instance))
    return tuple(output_shape)


def _timed(
    job: tuple[InstanceSolver, dict[str, Any], dict[str, Any], OutputShape, bool],
) -> tuple[np.ndarray, str, float]:
    solve, instance, options, output_shape, complex_output = job
    start = time.perf_counter()
    try:
        output, message = solve(instance, options)
    except Exception as exc:  # a failure on one instance must not lose the others
        nan = complex(np.nan, np.nan) if complex_output else np.nan
        output = np.full(_fallback_shape(instance, output_shape), nan)
        message = f"solver error: {type(exc).__name__}: {exc}"
    return output, message, time.perf_counter() - start


def instance_dicts(instances: Any) -> list[dict[str, Any]]:
    """One dict per instance from ``instances.as_numpy()`` (arrays indexed at the instance;
    entries that become 0-d are given as ``float``, or ``complex`` for complex arrays)."""
    arrays = instances.as_numpy()
    out = []
    for i in range(len(instances)):
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


def solve_each(
    solve: InstanceSolver,
    instances: Any,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
    label: str = "solving",
    output_shape: OutputShape = None,
    complex_output: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Apply ``solve`` to every instance, in parallel when ``workers > 1``.

    Args:
        solve: the per-instance solver (:data:`InstanceSolver`); a module-level function so
            that spawned workers can import it.
        instances: any batch with ``as_numpy()`` and ``len()`` (power control or MISO).
        options: passed to every call.
        workers: worker processes (default: the available cores; 1 runs in-process).
        label: progress-bar label.
        output_shape: shape of the NaN output for an instance whose solver raised
            (:data:`OutputShape`; None: the power-control ``min_rate`` shape).
        complex_output: the NaN fallback is complex (``nan + nan j``).

    Returns:
        ``(outputs, seconds, messages)``: the stacked outputs (``(N, B, Q)`` float64 power
        [W], or ``(N, Nt, K)`` complex128 beams), ``(N,)`` per-instance wall time measured
        inside the worker [s], and one message per instance.
    """
    jobs = [
        (solve, item, options or {}, output_shape, complex_output)
        for item in instance_dicts(instances)
    ]
    workers = default_workers() if workers is None else max(1, workers)
    workers = min(workers, len(jobs))
    outputs: list[tuple[np.ndarray, str, float]] = []
    with progress_bar(label, total=len(jobs)) as advance:
        if workers <= 1:
            for job in jobs:
                outputs.append(_timed(job))
                advance()
        else:
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_single_thread) as pool:
                for out in pool.map(_timed, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
                    outputs.append(out)
                    advance()
    stacked = np.stack([np.asarray(o[0]) for o in outputs])
    stacked = stacked.astype(np.complex128 if np.iscomplexobj(stacked) else np.float64)
    seconds = np.array([o[2] for o in outputs], dtype=np.float64)
    messages = [o[1] for o in outputs]
    return stacked, seconds, messages
