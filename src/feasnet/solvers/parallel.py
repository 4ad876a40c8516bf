"""Run a per-instance solver over a batch in worker processes, one thread each."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from feasnet.problems.instances import PowerControlInstances
from feasnet.progress import progress_bar

InstanceSolver = Callable[[dict[str, np.ndarray], dict[str, Any]], tuple[np.ndarray, str]]
"""``solve(instance, options) -> (power (B, Q) [W], message)``; ``instance`` holds one
instance's float64 arrays keyed ``H`` (B, Q, B), ``pmax``, ``noise``, ``bandwidth`` (scalars)
and ``min_rate`` (B, Q)."""


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


def _timed(
    job: tuple[InstanceSolver, dict[str, np.ndarray], dict[str, Any]],
) -> tuple[np.ndarray, str, float]:
    solve, instance, options = job
    start = time.perf_counter()
    try:
        power, message = solve(instance, options)
    except Exception as exc:  # a failure on one instance must not lose the others
        b, q = instance["min_rate"].shape
        power, message = np.full((b, q), np.nan), f"solver error: {type(exc).__name__}: {exc}"
    return power, message, time.perf_counter() - start


def solve_each(
    solve: InstanceSolver,
    instances: PowerControlInstances,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
    label: str = "solving",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Apply ``solve`` to every instance, in parallel when ``workers > 1``.

    Returns:
        ``(power, seconds, messages)``: ``(N, B, Q)`` [W], ``(N,)`` per-instance wall time
        measured inside the worker [s], and one message per instance.
    """
    arrays = instances.as_numpy()
    jobs = [
        (
            solve,
            {
                "H": arrays["H"][i],
                "pmax": float(arrays["pmax"][i]),
                "noise": float(arrays["noise"][i]),
                "bandwidth": float(arrays["bandwidth"][i]),
                "min_rate": arrays["min_rate"][i],
            },
            options or {},
        )
        for i in range(len(instances))
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
    power = np.stack([o[0] for o in outputs]).astype(np.float64)
    seconds = np.array([o[2] for o in outputs])
    messages = [o[1] for o in outputs]
    return power, seconds, messages
