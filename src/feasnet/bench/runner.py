"""The one cached, resumable "solve or train each method" loop of the benchmark suites.

:func:`ensure_dataset_file` writes (or reuses) a suite point's data set.

A run folder (``point_dir``) keeps ``solutions/<method>.npz`` per method and
``models/<method>/`` per trained model. :func:`solve_methods` reuses a solution file that
covers the instances, else solves the method (classical) or trains and evaluates it
(learned), saves it, and returns every result as the benchmark evaluates it
(:func:`checked_result`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from feasnet import solvers
from feasnet.bench.report import write_json
from feasnet.data import storage
from feasnet.data.generate import GenerationStats, generate
from feasnet.data.presets import AnyScenario
from feasnet.layers.guard import guard_result
from feasnet.layers.registry import build_layer
from feasnet.methods import MethodConfig, get_method
from feasnet.problems.base import DEFAULT_RTOL, Problem
from feasnet.run_folder import stale
from feasnet.solvers.result import Result, with_tolerance
from feasnet.training import TrainConfig, load_model, model_result, train

TRAINED_AS = {"dipnet-cvxpylayers": "dipnet"}
"""Methods evaluated with the weights of another (same network, another implementation)."""

Learner = Callable[[str], Result]
"""Trains (or reuses) learned method ``name`` and returns its result on the instances."""


Draw = Callable[[], tuple[Any, GenerationStats | None, str]]
"""Draws a data set's instances: ``() -> (instances, stats or None, what to log about it)``."""


def reusable_dataset(
    path: Path,
    scenario: AnyScenario,
    samples: int,
    seed: int,
    splits: tuple[float, float, float] | None,
    force: bool,
) -> bool:
    """Whether ``path`` holds the data set of ``scenario`` (every field: a changed preset is
    another data set), ``seed``, ``samples`` instances and ``splits`` (``None``: any splits).
    ``False`` when it is missing, or made for other settings and ``force`` allows replacing it.

    Raises:
        RunFolderError: ``path`` was made for other settings and ``force`` is not set.
    """
    if not path.exists():
        return False
    info = storage.read_info(path)
    if (
        info.scenario == scenario
        and info.seed == seed
        and info.num_instances == samples
        and (splits is None or info.splits == dict(zip(storage.SPLIT_NAMES, splits, strict=True)))
    ):
        return True
    made_for = f"{info.scenario.name}, seed {info.seed}, {info.num_instances} instances"
    stale(path, made_for, force)
    return False


def generate_draw(scenario: AnyScenario, samples: int, seed: int) -> Draw:
    """The default :data:`Draw`: :func:`~feasnet.data.generate.generate`'s ``samples``
    feasible instances of ``scenario`` with ``seed``."""

    def draw() -> tuple[Any, GenerationStats | None, str]:
        instances, stats = generate(scenario, samples, seed=seed)
        return (
            instances,
            stats,
            f"acceptance {stats.acceptance_rate:.1%}, {stats.rejected} infeasible draws rejected",
        )

    return draw


def ensure_dataset_file(
    path: Path,
    scenario: AnyScenario,
    samples: int,
    seed: int,
    splits: tuple[float, float, float] | None,
    force: bool,
    log: Any,
    draw: Draw | None = None,
) -> Path:
    """Write (or reuse) the data set at ``path``: ``samples`` instances of ``scenario`` drawn
    with ``seed``, split by ``splits`` (``None``: the family's default splits, and a reused
    data set may have any).

    A data set made for other settings (:func:`reusable_dataset`) is an error unless
    ``force`` (then it is replaced). ``draw`` draws the instances (default
    :func:`generate_draw`: feasible instances of ``scenario``); the data set records its
    generation stats (``None`` when ``draw`` gives none). ``log`` gets a line per step.

    Raises:
        RunFolderError: ``path`` was made for other settings and ``force`` is not set.
    """
    if reusable_dataset(path, scenario, samples, seed, splits, force):
        log(f"reusing {path} ({samples} instances)")
        return path
    if path.exists():
        log(f"{path} was made for other settings; regenerating (--force)")
    start = time.perf_counter()
    instances, stats, note = (draw or generate_draw(scenario, samples, seed))()
    storage.write_dataset(path, instances, scenario, seed=seed, stats=stats, splits=splits)
    log(
        f"generated {samples} instances of {scenario.name} in "
        f"{time.perf_counter() - start:.1f} s ({note}) -> {path}"
    )
    return path


def checked_result(result: Result, instances: Any, rtol: float, guard: bool) -> Result:
    """``result`` as a benchmark evaluates it: moved into the feasible set by the guard when
    ``guard`` is set (:func:`~feasnet.layers.guard.guard_result`), and checked in float64 at
    ``rtol``. The guard's time is not counted."""
    if guard:
        return guard_result(result, instances, rtol)
    return result if result.rtol == rtol else with_tolerance(result, instances, rtol)


def train_once(
    run_dir: Path,
    config: MethodConfig,
    dataset: Path,
    train_config: TrainConfig | None,
    log: Any,
    problem: Problem | None = None,
    labels: Any = None,
    record_seconds: bool = False,
) -> None:
    """Train ``config`` into ``run_dir`` on ``dataset``'s train split (validation split for
    early stopping) unless ``run_dir/done`` marks a finished run; an unfinished run resumes.
    ``problem``: the constraint set to train on (default: the one the data calls for).
    ``labels``: the train split's solver allocations ``(N_train, *shape)`` in physical units,
    for the supervised and hybrid objectives (:func:`~feasnet.training.train`).
    ``record_seconds``: also write ``run_dir/training.json`` ``{"wall_seconds": ...}``, the
    wall time [s] of the training call (model building and layer fitting included)."""
    if (run_dir / "done").exists():
        return
    train_set, validation_set, info = storage.read_training_splits(dataset)
    log(f"training {run_dir.name} on {len(train_set)} instances ...")
    started = time.perf_counter()
    train(
        config,
        train_set,
        validation_set,
        run_dir,
        train_config,
        resume=True,
        metadata={"scenario": info.scenario.model_dump(mode="json")},
        log=log,
        problem=problem,
        labels=labels,
    )
    if record_seconds:
        write_json(run_dir / "training.json", {"wall_seconds": time.perf_counter() - started})
    (run_dir / "done").touch()


def warm_model_result(model: Any, instances: Any, name: str) -> Result:
    """The trained ``model``'s result on ``instances`` named ``name``, timed after a warm-up
    on the first 8 instances (lazy imports, first-call allocations)."""
    model_result(model, instances[:8])
    return model_result(model, instances, name=name)


def learned_result(
    name: str, out_dir: Path, dataset: Path, train_config: TrainConfig | None, log: Any
) -> Callable[[Any], Result]:
    """Train (or reuse, resuming an unfinished run) the base model of learned method ``name``
    in ``out_dir/models/<base>`` (:func:`train_once`); return its evaluator
    ``instances -> Result``. ``+fw`` variants and :data:`TRAINED_AS` reuse the weights of
    their base method."""
    config = get_method(name)
    base = TRAINED_AS.get(name, name.removesuffix("+fw"))
    run_dir = out_dir / "models" / base
    train_once(run_dir, get_method(base), dataset, train_config, log)
    model, _ = load_model(run_dir)
    if config.layer != model.config.layer:  # same weights, another projection implementation
        model.layer = build_layer(config.layer.kind, config.layer.options, model.problem)
    model.config = config  # the +fw variants differ from their base only at inference

    def evaluate_on(instances: Any) -> Result:
        return warm_model_result(model, instances, name)

    return evaluate_on


def cached_result(path: Path, count: int) -> Result | None:
    """The result saved at ``path`` (``.npz``) when it holds ``count`` instances, else
    ``None`` (missing, or made for another number of instances)."""
    if path.exists():
        cached = Result.load_npz(path)
        if len(cached) == count:
            return cached
    return None


def solve_methods(
    point_dir: Path,
    dataset: Path,
    instances: Any,
    methods: Sequence[str],
    workers: int | None,
    train_config: TrainConfig | None,
    log: Any,
    rtol: float = DEFAULT_RTOL,
    guard: bool = False,
    label: str = "",
    learn: Learner | None = None,
) -> dict[str, Result]:
    """Every method's result on ``instances``, cached in ``point_dir/solutions/<name>.npz``.

    Args:
        point_dir: the run folder (``solutions/``, ``models/``).
        dataset: the HDF5 data set ``instances`` come from (learned methods train on it).
        instances: the ``N`` instances to solve (any registered family).
        methods: method names; the family's classical solvers
            (:func:`feasnet.solvers.available`) are solved, the others are learned.
        workers: worker processes of the classical solvers.
        train_config: training settings of the learned methods.
        log: where progress lines go (prefixed with ``label``).
        rtol, guard: how the results are evaluated (:func:`checked_result`); the solution
            files hold the methods' own outputs.
        learn: trains and evaluates a learned method by name (default
            :func:`learned_result` on ``point_dir`` and ``dataset``).

    Returns:
        ``{name: checked result}`` in the order of ``methods``; each result holds ``N``
        allocations in physical units.
    """
    classical = solvers.available(solvers.family_of(instances))
    if learn is None:

        def learn(name: str) -> Result:
            return learned_result(name, point_dir, dataset, train_config, log)(instances)

    results: dict[str, Result] = {}
    for name in methods:
        path = point_dir / "solutions" / f"{name}.npz"
        cached = cached_result(path, len(instances))
        if cached is not None:
            log(f"{label}{name}: reusing {path}")
            results[name] = cached
            continue
        start = time.perf_counter()
        if name in classical:
            result: Result = solvers.solve(name, instances, workers=workers)
        else:
            result = learn(name)
        result.save_npz(path)
        results[name] = result
        log(f"{label}{name}: done in {time.perf_counter() - start:.1f} s")
    return {name: checked_result(r, instances, rtol, guard) for name, r in results.items()}
