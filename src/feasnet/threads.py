"""How many threads torch (and in-process BLAS) may use: one policy for every learned model.

Why: the learned methods run *small* batched operations (a few thousand to a few hundred
thousand elements per op). With several intra-op threads every op ends in a thread barrier;
on a 2-core machine where another process keeps one core busy, each barrier waits for a
descheduled thread, and a trained DEPNet solving 512 instances ran 27x slower on torch's
default 2 threads than on 1. Idle, a second thread only pays off for large work (big training
batches, inference on tens of thousands of instances), and then by at most ~1.3x. See
``docs/threads.md`` for the measurements.

The policy (:func:`threads_for`):

* ``work`` counts multiply-adds of a model's backbone: ``batch size x parameters``, times 3
  for a training step (forward + backward); :func:`model_work` computes it.
* below :data:`WORK_PER_THREAD` units of work: 1 thread; above it, one thread per
  :data:`WORK_PER_THREAD` units, capped at the cores this process may run on.
* an explicit choice wins: ``threads=N`` (library) or ``--threads N`` (command line) uses
  exactly ``N`` threads; ``None`` (the default) means "use the policy".

Semantics of the ``threads`` settings wired through the package:

* :func:`feasnet.training.model_result` ``(..., threads=None)``: inference (and the float64
  feasibility check) runs with ``threads_for(model_work(model, len(instances)), threads)``
  intra-op threads; the caller's setting is restored afterwards.
* :class:`feasnet.training.TrainConfig` ``(threads=None)``: the whole training run uses
  ``threads_for(model_work(model, batch_size, training=True), threads)`` threads.
* ``feasnet train/solve --threads N`` pass ``N`` to the two above.

:func:`intra_op_threads` sets ``torch.set_num_threads`` for its body and caps the BLAS
libraries loaded in-process (numpy / scipy's OpenBLAS, through ``threadpoolctl``) to the same
count, restoring both on exit, also when the body raises.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from functools import cache
from typing import Any

import torch
from threadpoolctl import ThreadpoolController

WORK_PER_THREAD = 2**27
"""Units of work (multiply-adds, about 134 million) per extra intra-op thread.

Measured on a 2-core machine with DEPNet (88k parameters): idle, 2 threads break even at
about 1.8e8 (inference on 2,048 instances) and gain 1.25-1.35x from 2.7e8 upwards (training
steps of batch >= 1,024, inference on >= 8,192 instances); with a CPU-bound neighbour, 2
threads lost 1.5-70x at every size. So small and medium work stays on one thread."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def threads_for(work: float, threads: int | None = None) -> int:
    """Intra-op threads for ``work`` units (see :func:`model_work`), or ``threads`` if given.

    Args:
        work: multiply-adds of the batched computation (``batch x parameters``, x3 to train).
        threads: an explicit choice (>= 1) that overrides the policy; ``None`` = the
            enclosing :func:`user_threads` choice, else the policy.

    Returns:
        ``threads`` when given, else ``work // WORK_PER_THREAD`` clamped to
        ``[1, available_cores()]``.
    """
    if threads is None:
        threads = _USER_THREADS.get()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads: must be at least 1, got {threads}")
        return int(threads)
    return max(1, min(available_cores(), int(work // WORK_PER_THREAD)))


_USER_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "feasnet_user_threads", default=None
)


@contextlib.contextmanager
def user_threads(threads: int | None) -> Iterator[None]:
    """Inside the block, :func:`threads_for` answers ``threads`` wherever its caller passes no
    explicit choice (``None`` keeps the policy). This is how ``feasnet bench --threads N``
    reaches every training and inference of a suite without threading an argument through."""
    token = _USER_THREADS.set(threads)
    try:
        yield
    finally:
        _USER_THREADS.reset(token)


def model_work(model: torch.nn.Module, batch_size: int, training: bool = False) -> int:
    """Work of one batch through ``model``: ``batch_size x parameters`` (x3 when training)."""
    parameters = sum(p.numel() for p in model.parameters())
    return batch_size * parameters * (3 if training else 1)


@cache
def _blas_controller() -> ThreadpoolController:
    """The BLAS libraries loaded so far (scanning them takes ~2 ms, so it is done once)."""
    return ThreadpoolController()


@contextlib.contextmanager
def intra_op_threads(threads: int, blas: bool = True) -> Iterator[int]:
    """Run the body with ``threads`` torch intra-op threads, then restore the previous count.

    Args:
        threads: thread count for the body (>= 1).
        blas: also cap the in-process BLAS libraries (numpy / scipy) at ``threads``.

    Yields:
        ``threads``.
    """
    if threads < 1:
        raise ValueError(f"threads: must be at least 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with _blas_limit(threads) if blas else contextlib.nullcontext():
            yield threads
    finally:
        torch.set_num_threads(previous)


def _blas_limit(threads: int) -> Any:
    return _blas_controller().limit(limits=threads, user_api="blas")


def single_thread_worker() -> None:
    """Process-pool initializer: one torch thread and one BLAS thread in the worker."""
    torch.set_num_threads(1)
    _blas_controller().limit(limits=1, user_api="blas")
