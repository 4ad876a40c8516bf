"""Where per-instance classical solves run: local worker processes (default) or a Ray cluster.

Design. The executor is *ambient*: an :class:`Executor` spec lives in a context variable, set by
:func:`executor_scope`, and :func:`~feasnet.solvers.parallel.solve_each` consults it. The
alternative, an ``executor=`` argument threaded through every solver module's ``solve``, would
touch every solver and every caller for a choice that none of them needs to make: a solver
only says *what* to compute per instance; where it runs is the caller's business (the CLI, a
benchmark sweep, a user script). The scope also owns the lifetime of a Ray instance it starts,
so one ``with executor_scope("ray"):`` around a whole benchmark pays Ray's start-up once, and
:func:`feasnet.solvers.solve` (``executor=``, ``address=``, ``checkpoint_dir=``) enters one
for a single solve. Scopes nest; a field left ``None`` is inherited from the enclosing scope.

Kinds (:data:`EXECUTORS`):

* ``"process"``: a local spawn process pool with ``workers`` processes, one thread each
  (``workers=None`` or 1 runs in this process).
* ``"ray"``: chunks of instances are Ray tasks (one CPU, one thread each). Without ``address``
  a local Ray instance is started with ``num_cpus=workers`` (default: the available cores);
  with ``address="host:port"`` or ``"auto"`` the scope joins an existing cluster and uses all
  of its CPUs. If Ray is already initialized in this process (``ray.init`` by the caller), it
  is used as it is and left running.

Only solvers that go through ``solve_each`` (``gp``, ``sca``, MISO ``min-power``, ``wmmse``,
``wmmse-sdr``) are affected; batched solvers (``min-power``, ``fw``, ``ga``) run in this
process whatever the scope says.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

EXECUTORS = ("process", "ray")
"""Executor kinds: a local process pool, or Ray (local instance or cluster)."""

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""Environment of every worker: one BLAS/OpenMP thread (parallelism is across instances)."""


def default_workers() -> int:
    """Worker processes to use by default on the command line: the available cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Executor:
    """Where :func:`~feasnet.solvers.parallel.solve_each` runs its chunks of instances.

    Attributes:
        kind: ``"process"`` or ``"ray"`` (:data:`EXECUTORS`).
        address: Ray only: ``"host:port"`` or ``"auto"`` to join a running cluster; ``None``
            starts a local Ray instance.
        workers: Ray only: CPUs of a local Ray instance started by the scope (default: the
            available cores). The process pool takes its size from ``solve_each(workers=)``.
        checkpoint_dir: when set, every finished chunk is saved under
            ``checkpoint_dir/<label>/`` and a rerun skips it (see ``solve_each``).
    """

    kind: str = "process"
    address: str | None = None
    workers: int | None = None
    checkpoint_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.address is not None and self.kind != "ray":
            raise ValueError("address: only meaningful with executor 'ray'")


_CURRENT: contextvars.ContextVar[Executor | None] = contextvars.ContextVar(
    "feasnet_executor", default=None
)


def current_executor() -> Executor:
    """The executor of the innermost :func:`executor_scope` (a local process pool if none)."""
    return _CURRENT.get() or Executor()


@contextlib.contextmanager
def executor_scope(
    kind: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> Iterator[Executor]:
    """Run the classical solves inside the block on the given executor.

    Every argument left ``None`` is inherited from the enclosing scope (the outermost default
    is the local process pool, no checkpoints); an ``address`` alone implies ``kind="ray"``.
    With ``kind="ray"`` and Ray not yet initialized, a Ray instance is started (or joined, with
    ``address``) on entry and shut down on exit.

    Example::

        with executor_scope("ray", address="auto", checkpoint_dir="runs/x/chunks"):
            gp_result = solvers.solve("gp", instances)
            sca_result = solvers.solve("sca", instances)

    Raises:
        ValueError: an unknown ``kind``, or an ``address`` with ``kind="process"``.
        RuntimeError: ``kind="ray"`` but Ray is not installed ("install feasnet[ray]").
    """
    outer = current_executor()
    if kind is None:
        kind = "ray" if address is not None else outer.kind
    if address is None and kind == outer.kind:
        address = outer.address
    spec = replace(
        outer,
        kind=kind,
        address=address,
        workers=outer.workers if workers is None else workers,
        checkpoint_dir=outer.checkpoint_dir if checkpoint_dir is None else Path(checkpoint_dir),
    )
    started = spec.kind == "ray" and start_ray(spec)
    token = _CURRENT.set(spec)
    try:
        yield spec
    finally:
        _CURRENT.reset(token)
        if started:
            import_ray().shutdown()


def import_ray() -> Any:
    """The ``ray`` module, imported on first use; a clear error when it is not installed."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError(
            "executor 'ray' needs Ray, which is not installed: install feasnet[ray] "
            "(pip install 'feasnet[ray]')"
        ) from exc
    return ray


def start_ray(spec: Executor) -> bool:
    """Initialize Ray for ``spec`` unless it already is; True when this call started it.

    Workers get :data:`SINGLE_THREAD_ENV` through the job's ``runtime_env``.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": dict(SINGLE_THREAD_ENV)}
    if spec.address is not None:
        ray.init(address=spec.address, runtime_env=runtime_env, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=max(1, spec.workers or default_workers()),
            include_dashboard=False,
            runtime_env=runtime_env,
            logging_level=logging.WARNING,
        )
    return True


__all__ = [
    "EXECUTORS",
    "SINGLE_THREAD_ENV",
    "Executor",
    "current_executor",
    "default_workers",
    "executor_scope",
    "import_ray",
    "start_ray",
]
