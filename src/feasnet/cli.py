"""The ``feasnet`` command: data sets, classical solvers and benchmarks."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from feasnet.bench.suites import SUITES as SUITE_REGISTRY
from feasnet.train_config import TrainConfig

app = typer.Typer(
    help="Feasibility-guaranteed learning-to-optimize for wireless power control and MISO "
    "beamforming.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Generate, inspect, import and export instance sets.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

# wide enough for the tables when output goes to a file or a pipe (rich assumes 80 columns)
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


THREADS_HELP = (
    "torch intra-op threads for the learned models (default: chosen by work size; small "
    "batched work runs on one thread)."
)
EXECUTOR_HELP = (
    "Where classical solves run: process (local worker processes) or ray (a local Ray "
    "instance, or the cluster given by --address; needs feasnet[ray])."
)
ADDRESS_HELP = "Ray cluster to join (host:port or auto); implies --executor ray."
DEFAULT_RTOL = 1e-6
"""Relative tolerance of every float64 feasibility check unless --rtol says otherwise."""


WORKERS_HELP = "Worker processes of the classical solvers (default: the available cores)."


class UserError(Exception):
    """An error caused by the input; shown as one line, exit status 2."""


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


RESUME_HINTS = {
    "train_command": "rerun the same command with --resume to continue from the last "
    "finished epoch",
    "bench": "rerun the same command with --resume to reuse the finished data, trainings "
    "and solutions",
    "data_label": "rerun the same command to continue from the last finished chunk",
}
"""What to tell a user who pressed Ctrl-C, per command function (default: nothing was lost)."""


def _guarded(fn):  # type: ignore[no-untyped-def]
    """Turn the library's input errors into a one-line message and exit status 2, and Ctrl-C
    into a line that says what was kept and how to continue (exit status 130)."""
    import functools

    from pydantic import ValidationError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            _fail(_validation_message(exc))
        except (UserError, ValueError, KeyError, FileNotFoundError, OSError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            _fail(str(message))
        except KeyboardInterrupt:
            hint = RESUME_HINTS.get(fn.__name__, "files already written are complete")
            err_console.print(f"[bold yellow]interrupted:[/] {hint}", highlight=False)
            raise typer.Exit(code=130) from None

    return wrapper


def _validation_message(exc: Any) -> str:
    """The first pydantic error as ``field: problem (got value)``."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "value"
    return f"{field}: {first['msg']} (got {first.get('input')!r})"


TRAIN_DEFAULTS = TrainConfig()
"""The library's training defaults, shown by ``--help`` and used when an option is not given."""


def _version(value: bool) -> None:
    if value:
        from feasnet import __version__

        console.print(f"feasnet {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


def _check_device(device: str) -> None:
    """``device`` must name a torch device this machine has (cpu, cuda, cuda:N)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"device: expected cpu, cuda or cuda:N, got {device!r}") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device: {device!r} requested, but torch sees no CUDA device on this machine; "
            "use --device cpu"
        )
    if parsed.type not in {"cpu", "cuda"}:
        raise UserError(f"device: expected cpu, cuda or cuda:N, got {device!r}")


def _workers(workers: int | None) -> int:
    """Worker processes for the command line: the available cores unless given."""
    from feasnet.solvers.parallel import default_workers

    return default_workers() if workers is None else workers


# ------------------------------------------------------------------------------ data
@data_app.command("presets")
def data_presets() -> None:
    """List the named scenarios with their parameters."""
    from feasnet.data.presets import PRESETS, scenario_family

    rows: dict[str, list[dict[str, str]]] = {}
    for scenario in PRESETS.values():
        rows.setdefault(scenario_family(scenario), []).append(scenario.table_row())
    for family, family_rows in rows.items():
        table = Table(title=f"{family} presets (feasnet data generate NAME --out FILE.h5)")
        for column in family_rows[0]:
            table.add_column(column, no_wrap=True)
        for row in family_rows:
            table.add_row(*row.values())
        console.print(table)
    console.print("Descriptions and the channel models: docs/datasets.md, docs/miso-datasets.md")


@data_app.command("generate")
@_guarded
def data_generate(
    preset: Annotated[str, typer.Argument(help="Preset name (see `feasnet data presets`).")],
    out: Annotated[Path, typer.Option(help="HDF5 file to write.")],
    samples: Annotated[
        int | None,
        typer.Option(min=1, help="Feasible instances to keep (default: the preset's count)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    train: Annotated[float | None, typer.Option(help=SPLIT_HELP)] = None,
    validation: Annotated[float | None, typer.Option(help="Validation fraction.")] = None,
    test: Annotated[float | None, typer.Option(help="Test fraction.")] = None,
    drop: Annotated[
        str | None,
        typer.Option(
            help="Path-loss user drop: uniform (over the square, the paper's) or cell (within "
            "--cell-radius of the user's BS). Default: the preset's (table2-*: cell)."
        ),
    ] = None,
    cell_radius: Annotated[
        float | None,
        typer.Option(help="Radius of the cell drop [m] (default: the preset's, 50 m)."),
    ] = None,
    csi_error: Annotated[
        float | None,
        typer.Option(
            help="Power control: store CSI estimates with this relative error sigma in [0, 1) "
            "(key csi_error; kept when feasible under the exact robust corner). See "
            "docs/imperfect-csi.md."
        ),
    ] = None,
) -> None:
    """Draw feasible instances of a preset and store them, split, in HDF5."""
    from feasnet.data import storage
    from feasnet.data.generate import GenerationError, generate
    from feasnet.data.presets import Scenario, get_preset

    scenario = get_preset(preset)
    if drop is not None or cell_radius is not None:
        if not isinstance(scenario, Scenario) or scenario.kind != "path-loss":
            raise UserError(f"drop: {preset} is not a path-loss preset; --drop applies to those")
        changes: dict[str, Any] = {} if drop is None else {"drop": drop.strip().lower()}
        if cell_radius is not None:
            changes["cell_radius_m"] = cell_radius
        scenario = scenario.with_overrides(**changes)
    if csi_error is not None:
        if not isinstance(scenario, Scenario):
            raise UserError(f"csi_error: {preset} is not a power-control preset")
        scenario = scenario.with_overrides(csi_error=csi_error)
    n = samples or scenario.num_samples
    try:
        instances, stats = generate(scenario, n, seed=seed)
    except GenerationError as error:
        raise UserError(str(error)) from error
    storage.write_dataset(
        out,
        instances,
        scenario,
        seed=seed,
        stats=stats,
        splits=_splits(storage.default_splits(scenario), train, validation, test),
    )
    console.print(
        f"wrote {out}: {n} feasible instances of {scenario.name} "
        f"({stats.drawn} drawn, {stats.rejected} infeasible rejected)"
    )


SPLIT_HELP = (
    "Train fraction (defaults: 0.9/0.05/0.05 train/validation/test for power control, "
    "0.7/0/0.3 for MISO as in the survey)."
)


ROBUST_HELP = (
    "Power control with imperfect CSI (data carrying csi_error): exact (constraints at the "
    "worst-case corner, guaranteed; the default), heuristic (the paper's chi search) or none."
)


def _check_robust(robust: str | None) -> None:
    """Reject an unknown ``--robust`` before any work."""
    from feasnet.problems.csi import check_robust_mode

    if robust is not None:
        try:
            check_robust_mode(robust)
        except ValueError as exc:
            raise UserError(str(exc)) from exc


NO_CSI_ERROR = (
    "robust: {what} carries no csi_error (perfect CSI), so --robust has nothing to act on; "
    "drop it, or make data with `feasnet data generate PRESET --csi-error SIGMA`"
)


def _robust(instances: Any, robust: str | None) -> Any:
    """Power-control instances carrying ``csi_error`` in robust mode ``robust`` (default exact);
    anything else unchanged. An explicit ``robust`` on instances without ``csi_error`` is an
    input error (it would silently change nothing)."""
    from feasnet.problems.csi import with_robust
    from feasnet.problems.instances import PowerControlInstances

    if robust is not None and getattr(instances, "csi_error", None) is None:
        raise UserError(NO_CSI_ERROR.format(what="the data"))
    if not isinstance(instances, PowerControlInstances) or len(instances) == 0:
        return instances
    return with_robust(instances, robust)


def _splits(
    default: tuple[float, float, float],
    train: float | None,
    validation: float | None,
    test: float | None,
) -> tuple[float, float, float]:
    """The family's default split fractions with the ones given on the command line."""
    given = (train, validation, test)
    return tuple(d if g is None else g for d, g in zip(default, given, strict=True))  # type: ignore[return-value]


@data_app.command("info")
@_guarded
def data_info(dataset: Annotated[Path, typer.Argument(help="HDF5 data set.")]) -> None:
    """Show a data set's scenario, seed and split sizes."""
    from feasnet.data import storage

    info = storage.read_info(dataset)
    console.print(f"{info.path} ({info.family}): {info.scenario.summary()}")
    console.print(f"  {info.scenario.description}")
    sizes = ", ".join(f"{k} {v}" for k, v in info.split_sizes.items())
    console.print(f"  splits: {sizes} (total {info.num_instances})")
    console.print(
        f"  seed {info.seed}, drawn {info.drawn}, rejected {info.rejected}, "
        f"created {info.created} by feasnet {info.feasnet_version}"
    )
    from feasnet.data.labels import stored_labels

    for method, splits in stored_labels(dataset).items():
        console.print(f"  labels: {method} ({', '.join(splits)})")


@data_app.command("export")
@_guarded
def data_export(
    dataset: Annotated[Path, typer.Argument(help="HDF5 data set.")],
    out: Annotated[Path, typer.Option(help=".npz file to write.")],
    split: Annotated[str, typer.Option(help="train, validation or test.")] = "test",
) -> None:
    """Write one split as a plain .npz (power control: H, pmax, noise, bandwidth, min_rate;
    MISO: H, pmax, pc, eta, noise, sinr_min, weights)."""
    from feasnet.data import exchange, storage

    instances, _ = storage.read_dataset(dataset, split)
    exchange.save_npz(out, instances)
    console.print(f"wrote {out}: {len(instances)} instances from the {split} split")


@data_app.command("label")
@_guarded
def data_label(
    dataset: Annotated[Path, typer.Argument(help="HDF5 data set (labels are stored in it).")],
    method: Annotated[
        str | None,
        typer.Option(help="Classical solver (default: sca for power control, wmmse for MISO)."),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="Comma-separated splits to label (default: every non-empty split)."),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help=WORKERS_HELP)] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "process",
    address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="Solver option KEY=VALUE (JSON value), repeatable, e.g. tolerance=1e-7."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace labels of this method made with other settings.")
    ] = False,
) -> None:
    """Solve a data set's instances with a classical solver and store the solutions as labels
    (HDF5 group labels/METHOD) for supervised and hybrid training.

    Runs in chunks; an interrupted run continues from its finished chunks when the same
    command runs again. The file is rewritten atomically after each split."""
    from feasnet.data.labels import label_dataset

    chosen = _executor(executor, address)
    splits = None if split is None else [s.strip() for s in split.split(",") if s.strip()]
    label_dataset(
        dataset,
        method,
        splits=splits,
        workers=_workers(workers),
        executor=chosen,
        address=address,
        force=force,
        options=_solver_options(option or []),
        log=console.print,
    )


def _solver_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict (values parsed as JSON where they parse, else text)."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"option: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@data_app.command("import")
@_guarded
def data_import(
    source: Annotated[Path, typer.Argument(help=".npz file in the exchange format.")],
    out: Annotated[Path, typer.Option(help="HDF5 data set to write.")],
    seed: Annotated[int, typer.Option(help="Seed of the split shuffle.")] = 0,
    train: Annotated[float | None, typer.Option(help=SPLIT_HELP)] = None,
    validation: Annotated[float | None, typer.Option(help="Validation fraction.")] = None,
    test: Annotated[float | None, typer.Option(help="Test fraction.")] = None,
) -> None:
    """Check your own channels (.npz) and store them as a split HDF5 data set."""
    import torch

    from feasnet.data import exchange, storage
    from feasnet.data.generate import feasible_mask
    from feasnet.data.presets import imported_scenario

    instances = exchange.load_npz(source)
    feasible = feasible_mask(instances)
    dropped = int((~feasible).sum())
    why = _infeasible_summary(instances[~feasible]) if dropped else ""
    if not feasible.any():
        raise UserError(f"{source}: none of the {len(instances)} instances is feasible ({why})")
    instances = instances[feasible]
    order = torch.randperm(len(instances), generator=torch.Generator().manual_seed(seed))
    instances = instances[order]
    scenario = imported_scenario(
        instances,
        name=f"imported-{source.stem}",
        description=f"imported from {source.name}; per-instance values are stored in the data",
    )
    splits = _splits(storage.default_splits(scenario), train, validation, test)
    dropped_note = f"{dropped} of {dropped + len(instances)} instances dropped as infeasible"
    try:
        storage.write_dataset(out, instances, scenario, seed=seed, stats=None, splits=splits)
    except ValueError as exc:
        raise UserError(f"{exc} ({dropped_note}: {why})" if dropped else str(exc)) from exc
    console.print(
        f"wrote {out}: {len(instances)} instances, shuffled with seed {seed}"
        + (f" ({dropped_note}: {why})" if dropped else "")
    )


def _infeasible_summary(instances: Any, shown: int = 3) -> str:
    """The exact test's reasons for infeasible ``instances``, most frequent first, counted."""
    import re
    from collections import Counter

    from feasnet.problems.registry import problem_of

    # reasons differ in their numbers (user indices, powers); count them without those
    reasons = Counter(
        re.sub(r"(?<==)[-+]?\d+|\b\d+\.\d+(e[-+]?\d+)?\b|\b\d+e[-+]?\d+\b", "#", reason)
        for reason in problem_of(instances).feasibility(instances).reasons
    )
    parts = [f"{count}x {reason or 'infeasible'}" for reason, count in reasons.most_common(shown)]
    if len(reasons) > shown:
        parts.append("...")
    return "; ".join(parts)


# ------------------------------------------------------------------------------ solving
@app.command("methods")
def methods() -> None:
    """List the methods `feasnet solve --method` and `feasnet train --method` accept."""
    from feasnet import solvers
    from feasnet.methods import METHODS, method_family

    table = Table(title="feasnet methods")
    table.add_column("name")
    table.add_column("problem")
    table.add_column("kind")
    table.add_column("description")
    for family in ("power-control", "miso"):
        for name, description in solvers.available(family=family).items():
            table.add_row(name, family, "classical (feasnet solve --method)", description)
    for name, config in METHODS.items():
        table.add_row(
            name, method_family(config), "learned (feasnet train --method)", config.description
        )
    console.print(table)


@app.command("train")
@_guarded
def train_command(
    method: Annotated[str, typer.Option(help="Learned method (see `feasnet methods`).")],
    out: Annotated[Path, typer.Option(help="Run folder for checkpoints and the model.")],
    preset: Annotated[
        str | None, typer.Option(help="Scenario preset to generate data for.")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Existing HDF5 data set instead.")] = None,
    samples: Annotated[
        int | None,
        typer.Option(min=1, help="Instances to generate with --preset (default: the preset's)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Data and training seed.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Maximal epochs.")] = TRAIN_DEFAULTS.epochs,
    batch_size: Annotated[
        int, typer.Option(min=2, help="Mini-batch size.")
    ] = TRAIN_DEFAULTS.batch_size,
    learning_rate: Annotated[
        float, typer.Option(help="Adam learning rate (> 0).")
    ] = TRAIN_DEFAULTS.learning_rate,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP)] = None,
    objective: Annotated[
        str,
        typer.Option(
            help="self-supervised (the problem's own loss, no labels), supervised (mean "
            "squared error to a classical solver's labels, normalized units) or hybrid "
            "(supervised + --hybrid-weight x self-supervised)."
        ),
    ] = TRAIN_DEFAULTS.objective,
    hybrid_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the self-supervised term in hybrid.")
    ] = TRAIN_DEFAULTS.hybrid_weight,
    label_method: Annotated[
        str | None,
        typer.Option(
            help="Classical solver of the labels (default: sca for power control, wmmse for "
            "MISO); labels missing from the data set are made and stored first."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    force: Annotated[
        bool, typer.Option(help="Start over in an OUT that already holds a run, replacing it.")
    ] = False,
    constraint_set: Annotated[
        str | None,
        typer.Option(
            help="Formulation of the constraints to train on (power control: linear-rate or "
            "rate, the non-linear R >= alpha; energy-efficiency where the data carries "
            "min_energy_efficiency). Default: what the data calls for."
        ),
    ] = None,
    robust: Annotated[str | None, typer.Option(help=ROBUST_HELP)] = None,
    csi_distortion: Annotated[
        float,
        typer.Option(
            help="Train on artificially distorted CSI: each batch's loss sees H(1 + e), "
            "e ~ U[-s, s] per entry (s in [0, 1); 0: off)."
        ),
    ] = 0.0,
) -> None:
    """Train a learned method (self-supervised, supervised on solver labels, or hybrid) with
    checkpoints and early stopping."""
    import torch

    from feasnet.data import storage
    from feasnet.data.presets import get_preset, scenario_family
    from feasnet.methods import get_method
    from feasnet.models import check_method
    from feasnet.problems.registry import get_family, problem_of
    from feasnet.run_folder import check_run_folder
    from feasnet.training import TrainConfig, train

    # every argument is checked before any data is generated or any file is written
    config = get_method(method)
    if (preset is None) == (data is None):
        raise UserError("give exactly one of --preset (generate data) or --data (an HDF5 file)")
    if resume and force:
        raise UserError("give at most one of --resume (continue) and --force (start over)")
    _check_device(device)
    train_config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        device=device,
        threads=threads,
        objective=objective,  # type: ignore[arg-type]  # pydantic checks the value
        hybrid_weight=hybrid_weight,
        label_method=label_method,
        csi_distortion=csi_distortion,
    )
    _check_robust(robust)
    if data is not None:
        info = storage.read_info(data)
        family, scenario, source = info.family, info.scenario, f"--data {data}"
    else:
        scenario = get_preset(preset or "")
        family, source = scenario_family(scenario), f"--preset {preset}"
    if robust is not None and getattr(scenario, "csi_error", None) is None:
        raise UserError(NO_CSI_ERROR.format(what=source))
    problem = get_family(family)(constraint_set) if constraint_set else None
    try:
        check_method(config, problem or family)
    except ValueError as exc:
        raise UserError(f"{exc} ({source}; see feasnet methods)") from None
    if train_config.objective != "self-supervised":
        from feasnet.data.labels import default_label_method, solver_settings

        solver_settings(family, label_method or default_label_method(family))
    check_run_folder(out, resume, force, "the training run")
    if resume and not (out / "checkpoint.pt").exists():
        err_console.print(
            f"[yellow]note:[/] {out} holds no checkpoint.pt yet; starting a new training",
            highlight=False,
        )
    if data is None:
        from feasnet.bench.comparison import ensure_dataset

        data = ensure_dataset(out, preset or "", samples, seed, console.print, force=force)
    train_set, validation_set, info = storage.read_training_splits(data)
    train_set, validation_set = _robust(train_set, robust), _robust(validation_set, robust)
    labels = None
    if train_config.objective != "self-supervised":
        labels = _training_labels(data, label_method)
    try:
        if problem is None:  # the constraint set the data calls for (e.g. energy efficiency)
            problem = problem_of(train_set)
            check_method(config, problem)
        else:  # the asked-for set must fit what the data carries
            sample = problem.float64(train_set[:1])
            dtype = torch.complex128 if problem.complex_variable else torch.float64
            zero = torch.zeros(1, *problem.variable_shape(sample), dtype=dtype)
            problem.constraints(zero, sample)
    except ValueError as exc:
        raise UserError(f"{exc} ({source}; see feasnet methods)") from None
    summary = train(
        config,
        train_set,
        validation_set,
        out,
        train_config,
        resume=resume,
        force=force,
        problem=problem,
        labels=labels,
        metadata={"scenario": info.scenario.model_dump(mode="json"), "data": str(data)},
        log=console.print,
    )
    console.print(f"best epoch {summary['best_epoch']}; model: {out / 'model.pt'}")


def _training_labels(data: Path, method: str | None) -> Any:
    """The train split's label allocations of ``method`` in ``data``, made and stored first
    (chunked, resumable) when the file holds none."""
    from feasnet.data import storage
    from feasnet.data.labels import (
        default_label_method,
        label_dataset,
        labelled_splits,
        read_labels,
    )

    key = (method or default_label_method(storage.read_info(data).family)).lower()
    if "train" not in labelled_splits(data, key):
        err_console.print(
            f"[yellow]note:[/] {data} holds no {key} labels of the train split; making them "
            f"now (as `feasnet data label {data} --method {key} --split train` would; an "
            "interrupted run continues where it stopped)",
            highlight=False,
        )
        label_dataset(data, key, splits=["train"], workers=_workers(None), log=console.print)
    return read_labels(data, key, "train").allocation


@app.command("solve")
@_guarded
def solve(
    source: Annotated[Path, typer.Argument(help=".npz instances, or an HDF5 data set.")],
    out: Annotated[Path, typer.Option(help="Solution .npz to write.")],
    method: Annotated[
        str | None, typer.Option(help="Classical method (`feasnet methods`).")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Trained model (run folder or .pt).")] = None,
    split: Annotated[str, typer.Option(help="Split to solve when SOURCE is HDF5.")] = "test",
    workers: Annotated[int | None, typer.Option(min=1, help=WORKERS_HELP)] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "process",
    address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None,
    guard: Annotated[
        bool | None,
        typer.Option(
            "--guard/--no-guard",
            help="Move every allocation that fails the float64 check toward the strictly "
            "interior anchor until it passes (default: the model's setting; off for "
            "classical methods).",
        ),
    ] = None,
    rtol: Annotated[
        float, typer.Option(min=0.0, help="Relative tolerance of the float64 feasibility check.")
    ] = DEFAULT_RTOL,
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP)] = None,
    robust: Annotated[str | None, typer.Option(help=ROBUST_HELP)] = None,
) -> None:
    """Solve every instance of a file; writes P, feasible, sum_rate, seconds (power control)
    or V, feasible, wsr, seconds (MISO).

    Classical solves run in chunks of instances; an interrupted solve resumes from the chunks
    kept next to OUT (OUT.chunks/) when the same command runs again."""
    import shutil

    from feasnet import solvers
    from feasnet.data import exchange, storage
    from feasnet.layers.guard import guard_result
    from feasnet.metrics import evaluate
    from feasnet.solvers.result import with_tolerance

    if (method is None) == (model is None):
        raise UserError("give exactly one of --method (classical) or --model (trained)")
    executor = _executor(executor, address, learned=model is not None)
    _check_robust(robust)
    if source.suffix.lower() in {".h5", ".hdf5"}:
        instances, _ = storage.read_dataset(source, split)
    else:
        instances = exchange.load_npz(source)
    instances = _robust(instances, robust)
    chunks = out.with_name(out.name + ".chunks")
    if model is not None:
        result = solve_with_model(model, instances, guard=guard, threads=threads)
    else:
        family = solvers.family_of(instances)
        names = solvers.available(family=family)
        if method is None or method.lower() not in names:
            raise UserError(
                f"method: unknown method {method!r} for {family} instances; choose one of "
                f"{', '.join(names)}"
                " (learned methods are used through --model RUN_DIR)"
            )
        result = solvers.solve(
            method,
            instances,
            workers=_workers(workers),
            executor=executor,
            address=address,
            checkpoint_dir=chunks,
        )
        if guard:
            result = guard_result(result, instances, rtol)
    if rtol != result.rtol:
        result = with_tolerance(result, instances, rtol)
    result.save_npz(out)
    shutil.rmtree(chunks, ignore_errors=True)
    m = evaluate(result)
    infeasible = [i for i, msg in enumerate(result.messages) if msg]
    for i in infeasible[:10]:
        err_console.print(f"instance {i}: {result.messages[i]}", highlight=False)
    if len(infeasible) > 10:
        err_console.print(f"... and {len(infeasible) - 10} more instances with messages")
    objective = f"mean {_objective_text(m.mean_objective, result.family)}"
    console.print(
        f"{result.method}: {m.num_instances} instances, {objective} (infeasible counted as 0), "
        f"{int(result.feasible.sum())} feasible at rtol {result.rtol:g}, "
        f"{m.time_per_sample * 1e3:.3g} ms per instance -> {out}"
    )


def _executor(executor: str, address: str | None, learned: bool = False) -> str:
    """The executor a command runs classical solves on: ``--executor``, or ``ray`` when only
    ``--address`` is given. Trained models run batched in this process."""
    if executor not in {"process", "ray"}:
        raise UserError(f"executor: expected process or ray, got {executor!r}")
    if learned and (executor != "process" or address is not None):
        raise UserError(
            "executor: a trained model runs batched in this process; --executor and "
            "--address apply to classical methods"
        )
    chosen = "ray" if address is not None else executor
    if chosen == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UserError("executor: Ray is not installed; pip install 'feasnet[ray]'")
    return chosen


def _objective_text(value: float, family: str) -> str:
    """``sum rate 115.380 Mbit/s`` / ``WSR 21.750 bit/s/Hz``: the family's objective, named."""
    from feasnet.problems.registry import get_family

    name = get_family(family).objective_key.replace("_", " ").replace("wsr", "WSR")
    unit = get_family(family).objective_unit
    if unit == "bit/s":
        return f"{name} {value / 1e6:.3f} Mbit/s"
    return f"{name} {value:.3f} {unit}"


def solve_with_model(  # type: ignore[no-untyped-def]
    path: Path, instances, guard: bool | None = None, threads: int | None = None
):
    """Run a trained model on instances; warns outside the training distribution."""
    import warnings

    from feasnet.training import load_model, model_result, warn_if_outside_training

    net, payload = load_model(path)
    net.check_size(instances)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_outside_training(payload, instances)
    for w in caught:
        err_console.print(f"[yellow]warning:[/] {w.message}", highlight=False)
    return model_result(net, instances, guard=guard, threads=threads)


# ------------------------------------------------------------------------------ bench
@app.command("bench")
@_guarded
def bench(
    suite: Annotated[
        str,
        typer.Option(
            help="default (power control, classical + learned), classical, table2, "
            "fig12 (DEPNet on non-convex QoS, power-control paper), miso-snr (survey Fig. 4), "
            "miso-nakagami (survey Fig. 5), or a registered suite: "
            + ", ".join(f"{s.name} ({s.description})" for s in SUITE_REGISTRY.values())
            + "."
        ),
    ] = "default",
    preset: Annotated[
        str | None, typer.Option(help="Power-control preset (default and classical suites).")
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Instances to generate, all splits (default: the preset's count; the table2 "
            "and MISO suites have their own).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Data and training seed.")] = 0,
    methods: Annotated[str | None, typer.Option(help="Comma-separated method names.")] = None,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Maximal training epochs (default: the suite's)."),
    ] = None,
    configs: Annotated[
        str | None,
        typer.Option(
            help="table2 suite: comma-separated IDs (default 1-8); generalize: the sizes B."
        ),
    ] = None,
    points: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated sweep values (default: the suite's): the MISO suites' SNR, "
            "Nakagami m or SINR target; fig12 and fig9: minimum rates in Mbit/s; fig4-6: "
            "users; fig10: base stations; fig13: CSI errors; fig11: step sizes."
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help=WORKERS_HELP)] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default runs/<suite>-<preset>-<time>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in OUT, reusing its finished results.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Use an OUT that holds another run, replacing results made for other settings."
        ),
    ] = False,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "process",
    address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None,
    guard: Annotated[
        bool,
        typer.Option(
            help="Evaluate every method with the guard: allocations failing the float64 check "
            "move toward the strictly interior anchor (the guard's time is not counted)."
        ),
    ] = False,
    rtol: Annotated[
        float, typer.Option(min=0.0, help="Relative tolerance of the float64 feasibility check.")
    ] = DEFAULT_RTOL,
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP)] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            help="default and classical suites: the method '% of reference' divides by "
            "(default sca; global = the certified optimum, for sizes it can handle). A global "
            "solver in --methods adds '% of upper bound' in every suite."
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            help="The paper's scale instead of the suite's quick default (fig12: 8 points, "
            "100,000 instances, 20 epochs; table2: 100,000 instances and 20 epochs per "
            "configuration; every registered suite has its own, see docs/)."
        ),
    ] = False,
    robust: Annotated[
        str | None,
        typer.Option(
            help="Suites on imperfect CSI (fig13): comma-separated robust modes to compare "
            "(exact, heuristic, none; default: all)."
        ),
    ] = None,
) -> None:
    """Run a benchmark suite; prints a table and writes results.json/csv, report.md, a PNG.

    Classical solves run on --executor (local worker processes, or Ray for a cluster)."""
    from feasnet.solvers.executor import executor_scope
    from feasnet.threads import user_threads

    if resume and force:
        raise UserError("give at most one of --resume (continue) and --force (replace)")
    if full and suite not in {"fig12", "table2"} and suite not in SUITE_REGISTRY:
        raise UserError(f"full: the {suite} suite has no paper-scale mode")
    with executor_scope(_executor(executor, address), address), user_threads(threads):
        _bench(
            suite, preset, samples, seed, methods, epochs, configs, points, workers, out,
            resume, force, guard, rtol, reference, full, robust,
        )  # fmt: skip


def _bench(
    suite: str,
    preset: str | None,
    samples: int | None,
    seed: int,
    methods: str | None,
    epochs: int | None,
    configs: str | None,
    points: str | None,
    workers: int | None,
    out: Path | None,
    resume: bool,
    force: bool,
    guard: bool,
    rtol: float,
    reference: str | None,
    full: bool = False,
    robust: str | None = None,
) -> None:
    """:func:`bench` inside its executor scope."""
    from feasnet import solvers
    from feasnet.bench import comparison
    from feasnet.data.presets import get_preset, scenario_family
    from feasnet.methods import METHODS
    from feasnet.models import method_applies
    from feasnet.run_folder import check_run_folder

    workers = _workers(workers)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    power_control_methods = set(solvers.available(family="power-control")) | {
        name for name, config in METHODS.items() if method_applies(config, "power-control")
    }
    if reference is not None and suite not in {"default", "classical"}:
        raise UserError(
            f"reference: the {suite} suite has a fixed reference; add global to --methods to "
            "see '% of upper bound' next to it"
        )
    from feasnet.bench import suites as registry

    if suite in registry.SUITES:
        if preset is not None:
            raise UserError(f"preset: the {suite} suite sweeps its own presets")
        run_dir = out or Path("runs") / f"{suite}-{stamp}"
        options = registry.SuiteOptions(
            run_dir=run_dir,
            samples=samples,
            seed=seed,
            methods=tuple(m.strip().lower() for m in methods.split(",")) if methods else None,
            epochs=epochs,
            points=_numbers(points, "points", float),
            configs=_numbers(configs, "configs", int),
            workers=workers,
            full=full,
            resume=resume,
            force=force,
            rtol=rtol,
            guard=guard,
            robust=tuple(m.strip().lower() for m in robust.split(",")) if robust else None,
            log=lambda text: console.print(text, markup=False, highlight=False),
        )
        check_run_folder(run_dir, resume, force, "the benchmark")
        console.print(f"[bold]feasnet bench[/] suite={suite} full={full} -> {run_dir}")
        registry.run(suite, options)
        return
    if robust is not None:
        raise UserError(f"robust: the {suite} suite's data carries no csi_error (try fig13)")
    if suite.startswith("miso"):
        from feasnet.bench import miso as miso_bench

        if suite not in miso_bench.SWEEPS:
            raise UserError(
                f"suite: unknown suite {suite!r}; MISO suites: {', '.join(miso_bench.SWEEPS)}"
            )
        if preset is not None:
            raise UserError(f"preset: the {suite} suite sweeps its own presets; use --points")
        values = _numbers(points, "points", float, "numbers")
        sweep_values = miso_bench.SWEEPS[suite].values
        unknown_points = [v for v in values or () if v not in sweep_values]
        if unknown_points:
            raise UserError(
                f"points: {suite} has points {', '.join(f'{v:g}' for v in sweep_values)}, "
                f"got {', '.join(f'{v:g}' for v in unknown_points)}"
            )
        chosen = _method_list(
            methods,
            miso_bench.DEFAULT_METHODS,
            set(solvers.available(family="miso"))
            | set(miso_bench.LEARNED_METHODS)
            | _learned_methods_for("miso"),
        )
        run_dir = out or Path("runs") / f"{suite}-{stamp}"
        check_run_folder(run_dir, resume, force, "the benchmark")
        console.print(f"[bold]feasnet bench[/] suite={suite} -> {run_dir}")
        miso_bench.run(
            suite,
            run_dir,
            samples=samples or miso_bench.DEFAULT_SAMPLES,
            seed=seed,
            methods=chosen,
            workers=workers,
            train_config=miso_bench.default_train_config(epochs, seed),
            values=values,
            log=console.print,
            force=force,
            rtol=rtol,
            guard=guard,
        )
        return
    if suite == "fig12":
        from feasnet.bench import fig12

        for given, name in ((preset, "preset"), (methods, "methods"), (configs, "configs")):
            if given is not None:
                raise UserError(f"{name}: the fig12 suite runs DEPNet and SCA on its own sweep")
        values = _numbers(points, "points", float, "numbers")
        values = fig12.check_points(values) if values else None
        if samples is not None:
            fig12.check_samples(samples, fig12.FULL_SPLITS if full else fig12.QUICK_SPLITS)
        run_dir = out or Path("runs") / f"fig12-{stamp}"
        check_run_folder(run_dir, resume, force, "the benchmark")
        console.print(f"[bold]feasnet bench[/] suite=fig12 full={full} -> {run_dir}")
        fig12.run(
            run_dir, points=values, samples=samples, epochs=epochs, seed=seed, workers=workers,
            full=full, log=lambda text: console.print(text, markup=False, highlight=False),
            force=force, rtol=rtol, guard=guard,
        )  # fmt: skip
        return
    if suite == "table2":
        from feasnet.bench import table2

        if preset is not None:
            raise UserError("preset: the table2 suite runs its own presets; use --configs")
        try:
            ids = tuple(int(k) for k in configs.split(",")) if configs else table2.ALL_CONFIGS
        except ValueError as exc:
            raise UserError(f"configs: expected comma-separated IDs 1-8, got {configs!r}") from exc
        bad = [k for k in ids if k not in table2.ALL_CONFIGS]
        if bad:
            raise UserError(f"configs: Table II has IDs 1-8, got {bad}")
        chosen = _method_list(methods, table2.DEFAULT_METHODS, power_control_methods)
        run_dir = out or Path("runs") / f"table2-{stamp}"
        check_run_folder(run_dir, resume, force, "the benchmark")
        console.print(f"[bold]feasnet bench[/] suite=table2 configs={ids} -> {run_dir}")
        table2.run(
            run_dir,
            samples=samples or (table2.FULL_SAMPLES if full else table2.DEFAULT_SAMPLES),
            epochs=epochs or (table2.FULL_EPOCHS if full else table2.DEFAULT_EPOCHS),
            seed=seed,
            workers=workers,
            configs=ids,
            methods=chosen,
            log=console.print,
            force=force,
            rtol=rtol,
            guard=guard,
        )
        return
    suites = {"default": comparison.DEFAULT_METHODS, "classical": comparison.CLASSICAL_METHODS}
    if suite not in suites:
        raise UserError(
            f"suite: unknown suite {suite!r}; available: {', '.join(suites)}, table2, "
            f"fig12, miso-snr, miso-nakagami, {', '.join(registry.SUITES)}"
        )
    preset = preset or comparison.DEFAULT_PRESET
    if scenario_family(get_preset(preset)) != "power-control":
        raise UserError(
            f"preset: {preset} is a MISO preset, but the {suite} suite compares power-control "
            "methods; use --suite miso-snr or miso-nakagami for MISO"
        )
    chosen = _method_list(methods, suites[suite], power_control_methods)
    if reference is not None:  # an explicit reference is solved even if not in --methods
        reference = reference.lower()
        if reference not in power_control_methods:
            raise UserError(f"reference: unknown method {reference!r}")
        if reference not in chosen:
            chosen = (reference, *chosen)
    run_dir = out or Path("runs") / f"{suite}-{preset}-{stamp}"
    check_run_folder(run_dir, resume, force, "the benchmark")
    console.print(f"[bold]feasnet bench[/] suite={suite} preset={preset} -> {run_dir}")
    comparison.run(
        run_dir,
        preset=preset,
        num_samples=samples,
        seed=seed,
        methods=chosen,
        workers=workers,
        log=console.print,
        train_config=TrainConfig(epochs=epochs or TRAIN_DEFAULTS.epochs, seed=seed),
        force=force,
        rtol=rtol,
        guard=guard,
        reference=reference or comparison.REFERENCE,
    )


@app.command("report")
@_guarded
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `feasnet bench`.")],
) -> None:
    """Re-render a finished run's tables and plots from its results.json (or table2.json),
    without solving or training anything."""
    from feasnet.bench.report import rerender

    written = rerender(run_dir, log=lambda text: console.print(text, markup=False))
    console.print(f"re-rendered {len(written)} files in {run_dir}", highlight=False)


def _numbers(
    text: str | None, field: str, kind: type, what: str | None = None
) -> tuple[Any, ...] | None:
    """``--points``/``--configs`` as a tuple of numbers, or None when not given; ``what``
    names the expected values in the error (default ``<kind> values``)."""
    if not text:
        return None
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError as exc:
        raise UserError(
            f"{field}: expected comma-separated {what or f'{kind.__name__} values'}, got {text!r}"
        ) from exc


def _learned_methods_for(family: str) -> set[str]:
    """Every named learned method that applies to ``family`` (e.g. ``gauge+mlp`` on MISO)."""
    from feasnet.methods import METHODS, method_families

    return {name for name, config in METHODS.items() if family in method_families(config)}


def _method_list(methods: str | None, default: tuple[str, ...], known: set[str]) -> tuple[str, ...]:
    """The ``--methods`` list (lower-cased), or ``default``; unknown names are an input error."""
    chosen = tuple(m.strip().lower() for m in methods.split(",")) if methods else default
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise UserError(
            f"methods: unknown {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return chosen


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
