"""The survey's Table I, measured: every layer x backbone x objective that applies, on both
problem families.

The survey on feasibility-guaranteed learning-to-optimize (Table I) rates six approaches
(supervised learning, primal-dual learning, gauge mapping, homeomorphic learning, DC3, HoP) in
words: optimality, constraint category, feasibility, training difficulty and inference speed.
This suite measures numbers for those columns, for whatever is registered when it runs:

* **combinations**: every layer of :data:`feasnet.layers.registry.LAYERS` with every backbone
  of :data:`feasnet.nets.registry.BACKBONES` that serves the family, kept when the model builds
  (a :class:`~feasnet.problems.base.UnsupportedProblemError` is a skip with its reason), each
  with every training objective :class:`feasnet.train_config.TrainConfig` knows
  (``self-supervised``; ``supervised`` and ``hybrid`` fit the reference solver's labels,
  :func:`feasnet.data.labels.label_dataset`);
* **families** (:data:`CASES`): power control on the ``small`` preset (reference SCA) and the
  survey's MISO case study, ``miso-snr-10`` (Nt = 20, K = 3, 10 dB; reference WMMSE);
* **columns**: objective in % of the reference (violating outputs count as 0), violation
  probability (float64 check at ``rtol``), training time (wall time of the whole training
  call, layer fitting included), inference CPU time per sample at batch 1 (median over
  single-instance calls) and at batch 1024 (one call on the test instances repeated to 1024,
  divided by 1024), both with one torch thread (wall times are kept too).

The quick default leaves out :data:`QUICK_EXCLUDED` and trains the supervised and hybrid
objectives on :data:`QUICK_LABELLED_BACKBONES` only; ``--full`` runs everything.

Run folder, each file written atomically and reused by a rerun (``--resume``)::

    <family>/dataset.h5, <family>/run.json
    <family>/solutions/<reference>.npz, <family>/solutions/<key>.npz
    <family>/models/<key>/            training run (history.json, model.pt, done,
                                      training.json: wall time of the training call)
    <family>/models/<key>/inference.json   batch-1 / batch-1024 timings (wall and CPU)
    results.json, results.csv, report.md, survey.png, survey-<family>.png

``<key>`` is ``LAYER+BACKBONE`` for the self-supervised objective and
``LAYER+BACKBONE@OBJECTIVE`` otherwise. A combination whose training or evaluation raises is
recorded under ``failed`` with the error and the suite goes on.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feasnet.bench import report
from feasnet.bench.comparison import forget_stale_results
from feasnet.bench.suites import SuiteOptions
from feasnet.data import storage
from feasnet.metrics import evaluate
from feasnet.progress import progress_bar
from feasnet.train_config import OBJECTIVES, TrainConfig

Log = Callable[[str], Any]

SUITE = "survey"


@dataclass(frozen=True)
class Case:
    """One problem family of the suite: the preset it draws, its classical reference and the
    sizes of the quick default and of ``--full``."""

    family: str
    preset: str
    reference: str
    quick_samples: int
    full_samples: int
    objective_label: str
    splits: tuple[float, float, float] = (0.6, 0.1, 0.3)


CASES: dict[str, Case] = {
    "power-control": Case("power-control", "small", "sca", 300, 5000, "sum rate [Mbit/s]"),
    "miso": Case("miso", "miso-snr-10", "wmmse", 200, 1000, "WSR [bit/s/Hz]"),
}
"""Family -> case (power control: ``small``, B = 3, Q = 2; MISO: the survey's case study).
Splits train / validation / test 0.6 / 0.1 / 0.3 (the survey's 7:3, with a validation part for
early stopping); the supervised and hybrid objectives need the reference's labels on the train
split, so the train split is kept small in the quick default."""

QUICK_EPOCHS = 4
FULL_EPOCHS = 40
BATCH_SIZES = (1, 1024)
"""Inference batch sizes timed per combination."""
SINGLE_CALLS = 16
"""Single-instance calls whose median is the batch-1 time."""

QUICK_EXCLUDED: dict[str, str] = {
    "qp-cvxpylayers": (
        "the qp projection again through cvxpylayers (one conic solve per sample, minutes); "
        "--full runs it"
    ),
}
"""Layers the quick default leaves out, with the reason (``--full`` or ``--methods`` runs
them)."""

QUICK_LABELLED_BACKBONES = ("mlp",)
"""Backbones the quick default also trains with the supervised and hybrid objectives (every
backbone trains self-supervised; ``--full`` trains every backbone with every objective)."""


# ---------------------------------------------------------------------------- Table I
@dataclass(frozen=True)
class TableIRow:
    """One row of the survey's Table I: its ratings (in the survey's words) and the
    composition of ours that implements the approach."""

    approach: str
    optimality: str
    constraints: str
    feasibility: str
    training: str
    inference: str
    layer: str
    objective: str = "self-supervised"


TABLE_I: tuple[TableIRow, ...] = (
    TableIRow(
        "supervised learning", "High", "General", "Weak", "Easy", "Fast", "penalty", "supervised"
    ),
    TableIRow("primal-dual learning", "Mid", "General", "Weak", "Mid", "Fast", "primal-dual"),
    TableIRow("gauge mapping", "High", "Linear bounded", "Hard", "Mid", "Mid", "gauge"),
    TableIRow("homeomorphic learning", "High", "Bounded", "Hard", "Hard", "Mid", "hp"),
    TableIRow("DC3", "High", "General", "Hard", "Easy", "Fast", "dc3"),
    TableIRow("HoP", "High", "General", "Hard", "Easy", "Slow", "hop"),
)
"""The survey's Table I ratings (optimality, constraint category, feasibility, training
difficulty, inference speed) and the layer (and objective) that implements each approach here:
supervised learning is the plain network (``penalty`` layer) fitted to solver labels."""


def table_i_approach(layer: str, objective: str) -> str:
    """The Table I approach a combination implements (``""`` when none)."""
    for row in TABLE_I:
        if row.layer == layer and row.objective == objective:
            return row.approach
    return ""


# ---------------------------------------------------------------------------- enumeration
@dataclass(frozen=True)
class Combination:
    """One measured method: layer + backbone trained with one objective."""

    layer: str
    backbone: str
    objective: str = "self-supervised"

    @property
    def method(self) -> str:
        """The method name ``LAYER+BACKBONE``."""
        return f"{self.layer}+{self.backbone}"

    @property
    def key(self) -> str:
        """Folder and row name: the method, ``@objective`` unless self-supervised."""
        suffix = "" if self.objective == "self-supervised" else f"@{self.objective}"
        return self.method + suffix


@dataclass(frozen=True)
class Skipped:
    """A layer x backbone pair that was not run on a family, and why."""

    layer: str
    backbone: str
    reason: str

    @property
    def method(self) -> str:
        return f"{self.layer}+{self.backbone}"


def objectives() -> tuple[str, ...]:
    """The training objectives :class:`TrainConfig` accepts
    (:data:`feasnet.train_config.OBJECTIVES`)."""
    return OBJECTIVES


def parse_method(name: str) -> Combination:
    """``LAYER+BACKBONE`` or ``LAYER+BACKBONE@OBJECTIVE`` as a combination.

    Raises:
        ValueError: the layer, backbone or objective is not registered (naming ``methods``).
    """
    from feasnet.layers.registry import LAYERS
    from feasnet.nets.registry import BACKBONES

    text = name.strip().lower()
    method, _, objective = text.partition("@")
    layer, plus, backbone = method.partition("+")
    objective = objective or "self-supervised"
    if not plus or layer not in LAYERS or backbone not in BACKBONES:
        raise ValueError(
            f"methods: {name!r} is not LAYER+BACKBONE[@OBJECTIVE] with LAYER in "
            f"{', '.join(LAYERS)} and BACKBONE in {', '.join(BACKBONES)}"
        )
    if objective not in objectives():
        raise ValueError(
            f"methods: {name!r}: unknown objective {objective!r}; choose one of "
            f"{', '.join(objectives())}"
        )
    return Combination(layer, backbone, objective)


def enumerate_combinations(
    family: str,
    instances: Any,
    objective_names: Sequence[str] | None = None,
    excluded: dict[str, str] | None = None,
    only: Sequence[Combination] | None = None,
    labelled_backbones: Sequence[str] | None = None,
) -> tuple[list[Combination], list[Skipped]]:
    """Every registered layer x backbone (x objective) that applies to ``instances``.

    Applicability is decided by building the model (:func:`feasnet.models.build_model`) on
    two of the instances: an :class:`~feasnet.problems.base.UnsupportedProblemError` skips the
    pair with its message, as does any other error while building (``could not be built``).

    Args:
        family: the instances' family (for messages).
        instances: at least one instance of the family.
        objective_names: objectives to combine with each applicable pair (default
            :func:`objectives`).
        excluded: layer -> reason for layers left out on purpose (the quick default's).
        only: restrict to these combinations (``--methods``); pairs outside are not listed.
        labelled_backbones: backbones that get the objectives other than self-supervised
            (default: every backbone).

    Returns:
        ``(applicable, skipped)``: combinations in registry order (layer-major, then backbone,
        then objective), and the pairs not run with a one-line reason.
    """
    from feasnet.layers.registry import LAYERS
    from feasnet.methods import get_method
    from feasnet.models import build_model
    from feasnet.nets.registry import BACKBONES, backbone_families
    from feasnet.problems.base import UnsupportedProblemError

    chosen = tuple(objective_names or objectives())
    wanted = {(c.layer, c.backbone) for c in only} if only is not None else None
    sample = instances[: min(2, len(instances))]
    applicable: list[Combination] = []
    skipped: list[Skipped] = []
    for layer in LAYERS:
        for backbone in BACKBONES:
            if wanted is not None and (layer, backbone) not in wanted:
                continue
            if family not in backbone_families(backbone):
                skipped.append(
                    Skipped(
                        layer,
                        backbone,
                        f"backbone {backbone!r} serves {', '.join(backbone_families(backbone))}",
                    )
                )
                continue
            if excluded and layer in excluded:
                skipped.append(Skipped(layer, backbone, excluded[layer]))
                continue
            try:
                build_model(get_method(f"{layer}+{backbone}"), sample)
            except UnsupportedProblemError as exc:
                skipped.append(Skipped(layer, backbone, str(exc)))
                continue
            except Exception as exc:  # a layer under construction must not stop the survey
                skipped.append(
                    Skipped(layer, backbone, f"could not be built: {type(exc).__name__}: {exc}")
                )
                continue
            for objective in chosen:
                combo = Combination(layer, backbone, objective)
                if only is not None and combo not in only:
                    continue
                if (
                    only is None
                    and objective != "self-supervised"
                    and labelled_backbones is not None
                    and backbone not in labelled_backbones
                ):
                    continue
                applicable.append(combo)
    return applicable, skipped


# ---------------------------------------------------------------------------- measuring
def inference_times(
    model: Any, instances: Any, batch_sizes: Sequence[int] = BATCH_SIZES
) -> dict[str, float]:
    """Time per sample [s] of ``model.allocate`` with one torch thread: wall time and the
    process's CPU time (the CPU time does not count the waits for a core, so it stays
    meaningful on a machine shared with other jobs).

    Batch 1: the medians over up to :data:`SINGLE_CALLS` single-instance calls (after one
    warm-up call). Larger batches: one call on the instances repeated to that size (after a
    warm-up on 8 of them), divided by the batch size.

    Returns:
        ``{"batch_<size>": wall seconds per sample, "cpu_batch_<size>": CPU seconds per
        sample}``.
    """
    import torch

    from feasnet.threads import intra_op_threads

    def timed(batch: Any) -> tuple[float, float]:
        cpu = time.process_time()
        wall = float(model.allocate(batch)[2])
        return wall, time.process_time() - cpu

    out: dict[str, float] = {}
    n = len(instances)
    with intra_op_threads(1):
        for size in batch_sizes:
            if size == 1:
                model.allocate(instances[:1])
                calls = [timed(instances[i : i + 1]) for i in range(min(n, SINGLE_CALLS))]
                out["batch_1"] = float(statistics.median(w for w, _ in calls))
                out["cpu_batch_1"] = float(statistics.median(c for _, c in calls))
            else:
                batch = instances[torch.arange(size) % n]
                model.allocate(batch[:8])
                wall, cpu = timed(batch)
                out[f"batch_{size}"] = wall / size
                out[f"cpu_batch_{size}"] = cpu / size
    return out


def _ensure_dataset(
    family_dir: Path, case: Case, samples: int, seed: int, log: Log, force: bool
) -> Path:
    """``family_dir/dataset.h5``: ``samples`` feasible instances of the case's preset split
    by ``case.splits``; reused when it matches (the whole scenario, seed, count and splits),
    else an error unless ``force``."""
    from feasnet.bench.runner import ensure_dataset_file
    from feasnet.data.presets import get_preset

    return ensure_dataset_file(
        family_dir / "dataset.h5", get_preset(case.preset), samples, seed, case.splits, force, log
    )


def _train_config(base: TrainConfig, objective: str, reference: str) -> TrainConfig:
    if objective == "self-supervised":
        return base
    return base.model_copy(update={"objective": objective, "label_method": reference})


def _training_labels(dataset: Path, case: Case, workers: int | None, log: Log) -> Any:
    """The train split's reference-solver allocations ``(N_train, *shape)`` (physical
    units), solved and stored in the data set first when missing
    (:func:`feasnet.data.labels.label_dataset`, resumable)."""
    from feasnet.data.labels import label_dataset

    return label_dataset(dataset, case.reference, splits=("train",), workers=workers, log=log)[
        "train"
    ].allocation


def _train_once(
    model_dir: Path,
    config: Any,
    dataset: Path,
    train_config: TrainConfig,
    labels: Any,
    log: Log,
) -> None:
    """:func:`feasnet.bench.runner.train_once` with solver labels for the supervised and
    hybrid objectives, recording the training call's wall time (``training.json``): train
    into ``model_dir`` unless ``model_dir/done`` exists (an unfinished run resumes)."""
    from feasnet.bench.runner import train_once

    supervised = train_config.objective != "self-supervised"
    train_once(
        model_dir,
        config,
        dataset,
        train_config,
        log,
        labels=labels if supervised else None,
        record_seconds=True,
    )


def _training_seconds(model_dir: Path) -> tuple[float, float, int]:
    """``(wall time of the whole training call [s], sum of the epochs' wall times [s],
    epochs run)``; the first includes building the model and fitting a layer (hp's invertible
    network), NaN for a run trained before it was recorded (or resumed after a kill)."""
    path = model_dir / "history.json"
    if not path.exists():
        return math.nan, math.nan, 0
    history = json.loads(path.read_text())
    epochs = float(sum(float(h.get("seconds", 0.0)) for h in history))
    record = model_dir / "training.json"
    wall = json.loads(record.read_text())["wall_seconds"] if record.exists() else math.nan
    return float(wall), epochs, len(history)


def _measure(
    combo: Combination,
    case: Case,
    family_dir: Path,
    dataset: Path,
    test: Any,
    reference: Any,
    train_config: TrainConfig,
    options: SuiteOptions,
    labels: Any = None,
) -> dict[str, Any]:
    """Train (or reuse) ``combo``, evaluate it on the test split, time it; one table row."""
    from feasnet.bench.runner import cached_result, checked_result, warm_model_result
    from feasnet.methods import get_method
    from feasnet.training import load_model

    model_dir = family_dir / "models" / combo.key
    config = get_method(combo.method)
    started = time.perf_counter()
    _train_once(
        model_dir,
        config,
        dataset,
        _train_config(train_config, combo.objective, case.reference),
        labels,
        options.log,
    )
    model, _ = load_model(model_dir)
    solution = family_dir / "solutions" / f"{combo.key}.npz"
    result = cached_result(solution, len(test))
    if result is None:
        result = warm_model_result(model, test, combo.key)
        result.save_npz(solution)
    timing_path = model_dir / "inference.json"
    timings = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    if "cpu_batch_1" not in timings:  # missing, or written before CPU times were recorded
        timings = inference_times(model, test)
        report.write_json(timing_path, timings)
    checked = checked_result(result, test, options.rtol, options.guard)
    m = evaluate(checked, reference=reference, baseline=reference)
    train_seconds, epoch_seconds, epochs = _training_seconds(model_dir)
    options.log(f"{case.family} {combo.key}: done in {time.perf_counter() - started:.1f} s")
    return {
        **_row_head(case, combo.key, combo.layer, combo.backbone, combo.objective, "learned"),
        "num_instances": m.num_instances,
        "objective": m.mean_objective,
        "objective_se": m.objective_standard_error,
        "percent_of_reference": 100.0 * m.ratio_to_reference,
        "percent_of_reference_se": 100.0 * m.ratio_standard_error,
        "violation_probability": m.violation_probability,
        "violation_probability_se": m.violation_standard_error,
        "rtol": m.rtol,
        "train_seconds": train_seconds,
        "train_epoch_seconds": epoch_seconds,
        "epochs": epochs,
        "time_batch1_ms": 1e3 * timings.get("cpu_batch_1", math.nan),
        "time_batch1024_ms": 1e3 * timings.get("cpu_batch_1024", math.nan),
        "wall_batch1_ms": 1e3 * timings.get("batch_1", math.nan),
        "wall_batch1024_ms": 1e3 * timings.get("batch_1024", math.nan),
    }


def _row_head(
    case: Case, key: str, layer: str, backbone: str, objective: str, kind: str
) -> dict[str, Any]:
    return {
        "family": case.family,
        "preset": case.preset,
        "method": key,
        "layer": layer,
        "backbone": backbone,
        "objective_kind": objective,
        "table_i": table_i_approach(layer, objective) if kind == "learned" else "",
        "kind": kind,
        "timing": "batched" if kind == "learned" else "per instance",
    }


def _reference_row(case: Case, result: Any) -> dict[str, Any]:
    m = evaluate(result, reference=result, baseline=result)
    per_instance = 1e3 * m.time_per_sample
    return {
        **_row_head(case, case.reference, "", "", "", "classical"),
        "num_instances": m.num_instances,
        "objective": m.mean_objective,
        "objective_se": m.objective_standard_error,
        "percent_of_reference": 100.0,
        "percent_of_reference_se": 0.0,
        "violation_probability": m.violation_probability,
        "violation_probability_se": m.violation_standard_error,
        "rtol": m.rtol,
        "train_seconds": math.nan,
        "epochs": 0,
        "time_batch1_ms": per_instance,
        "time_batch1024_ms": math.nan,
        "num_not_converged": m.num_not_converged,
    }


def _scale_objective(row: dict[str, Any]) -> dict[str, Any]:
    """Power-control sum rates in Mbit/s (the results keep bit/s/Hz for MISO)."""
    if row["family"] == "power-control":
        for key in ("objective", "objective_se"):
            row[key] = row[key] / 1e6
    return row


# ---------------------------------------------------------------------------- the suite
def _check_options(options: SuiteOptions) -> tuple[Combination, ...] | None:
    if options.points:
        raise ValueError("points: the survey suite has no sweep points")
    if options.configs:
        raise ValueError("configs: the survey suite takes no --configs")
    if options.samples is not None and options.samples < 20:
        raise ValueError(f"samples: at least 20 instances per family, got {options.samples}")
    if not options.methods:
        return None
    return tuple(parse_method(name) for name in options.methods)


def run(options: SuiteOptions) -> None:
    """Run the survey suite into ``options.run_dir`` (see the module docstring)."""
    from feasnet.bench.runner import solve_methods

    only = _check_options(options)
    log = options.log
    epochs = options.epochs or (FULL_EPOCHS if options.full else QUICK_EPOCHS)
    train_config = TrainConfig(
        epochs=epochs,
        batch_size=32,
        learning_rate=1e-3,
        lr_decay=0.98,
        patience=10,
        seed=options.seed,
    )
    run_dir = options.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    samples: dict[str, int] = {}
    for family, case in CASES.items():
        family_dir = run_dir / family
        n = options.samples or (case.full_samples if options.full else case.quick_samples)
        samples[family] = n
        log(f"survey: {family} on {case.preset} ({n} instances), reference {case.reference}")
        dataset = _ensure_dataset(family_dir, case, n, options.seed, log, options.force)
        test, _ = storage.read_dataset(dataset, "test")
        forget_stale_results(family_dir, dataset, "test", train_config, log, options.force)
        excluded = {} if options.full or only is not None else QUICK_EXCLUDED
        applicable, passed = enumerate_combinations(
            family,
            test,
            excluded=excluded,
            only=only,
            labelled_backbones=None if options.full else QUICK_LABELLED_BACKBONES,
        )
        skipped += [{"family": family, "method": s.method, "reason": s.reason} for s in passed]
        if not applicable:
            log(f"survey: no combination applies to {family}; skipped")
            continue
        reference = solve_methods(
            family_dir,
            dataset,
            test,
            [case.reference],
            options.workers,
            None,
            log,
            options.rtol,
            options.guard,
            label=f"{family} ",
        )[case.reference]
        rows.append(_scale_objective(_reference_row(case, reference)))
        labels = None
        if any(c.objective != "self-supervised" for c in applicable):
            labels = _training_labels(dataset, case, options.workers, log)
        with progress_bar(f"survey {family}", len(applicable)) as advance:
            for combo in applicable:
                try:
                    row = _measure(
                        combo,
                        case,
                        family_dir,
                        dataset,
                        test,
                        reference,
                        train_config,
                        options,
                        labels,
                    )
                    rows.append(_scale_objective(row))
                except Exception as exc:  # one broken combination must not stop the survey
                    log(f"{family} {combo.key}: failed: {type(exc).__name__}: {exc}")
                    failed.append(
                        {
                            "family": family,
                            "method": combo.key,
                            "error": f"{type(exc).__name__}: {exc}",
                            "where": traceback.format_exc(limit=3).splitlines()[-3:][0].strip(),
                        }
                    )
                advance(1)
    payload = {
        "suite": SUITE,
        "full": options.full,
        "samples": samples,
        "seed": options.seed,
        "epochs": epochs,
        "rtol": options.rtol,
        "guard": options.guard,
        "objectives": list(objectives()),
        "labelled_backbones": "all" if options.full else list(QUICK_LABELLED_BACKBONES),
        "cases": {f: vars(c) for f, c in CASES.items()},
        "train_config": train_config.model_dump(mode="json"),
        "seconds": time.perf_counter() - started,
        "machine": report.machine(options.workers),
        "table_i": [vars(r) for r in TABLE_I],
        "skipped": skipped,
        "failed": failed,
        "results": rows,
    }
    report.write_json(run_dir / "results.json", payload)
    write_reports(run_dir, payload, log)


# ---------------------------------------------------------------------------- reports
def _fmt(value: Any, digits: str = ".3g") -> str:
    number = report.number(value)
    return "-" if not math.isfinite(number) else format(number, digits)


def _with_se(row: dict[str, Any], key: str, digits: str) -> str:
    text = _fmt(row.get(key), digits)
    se = report.number(row.get(f"{key}_se"))
    if text != "-" and math.isfinite(se) and se > 0:
        text += f" ± {format(se, digits)}"
    return text


MEASURED_HEADS = (
    "% of ref.",
    "violation prob.",
    "training [s]",
    "epochs",
    "inference CPU / sample, batch 1 [ms]",
    "batch 1024 [ms]",
)
"""Headers of the measured columns of the report's tables (:func:`_measured_cells`)."""


def _measured_cells(row: dict[str, Any]) -> list[str]:
    return [
        _with_se(row, "percent_of_reference", ".1f"),
        _with_se(row, "violation_probability", ".3f"),
        _fmt(row.get("train_seconds"), ".1f"),
        str(row.get("epochs") or "-"),
        _fmt(row.get("time_batch1_ms")),
        _fmt(row.get("time_batch1024_ms")),
    ]


def feasibility_verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """What the violation column says about each Table I feasibility rating: ``Hard`` is
    supported when every measured combination of the approach had zero violations."""
    lines = []
    for entry in TABLE_I:
        measured = [r for r in rows if r.get("table_i") == entry.approach]
        if not measured:
            lines.append(
                f"{entry.approach}: not measured (layer {entry.layer!r} not registered "
                "or not applicable)"
            )
            continue
        worst = max(report.number(r.get("violation_probability")) for r in measured)
        where = ", ".join(
            f"{r['family']} {r['method']} {report.number(r['violation_probability']):.3f}"
            for r in measured
        )
        if entry.feasibility == "Hard":
            verdict = "supported" if worst == 0 else "contradicted"
        else:
            verdict = (
                "consistent (violations measured)"
                if worst > 0
                else ("not seen: no violations at this size")
            )
        lines.append(
            f"{entry.approach}: feasibility rated {entry.feasibility}; violation probability "
            f"{where}: {verdict}"
        )
    return lines


def markdown_report(payload: dict[str, Any]) -> str:
    """The run's ``report.md``: Table I with measured columns, every combination, skips."""
    rows: list[dict[str, Any]] = payload["results"]
    rtol = payload.get("rtol", 1e-6)
    samples = payload.get("samples", {})
    cases = payload.get("cases", {})
    sections = [
        "# The survey's Table I, measured",
        f"Quick default: {not payload.get('full')}; {payload.get('epochs')} epochs; instances "
        "per family (train/validation/test by the preset's splits): "
        + ", ".join(f"{f} {n}" for f, n in samples.items())
        + f"; violations by the float64 check at rtol {rtol:g}; violating outputs count as 0 "
        "in the objective; inference: CPU time per sample with one torch thread (wall times in "
        "results.csv; the references: wall time per instance); training: wall time of the "
        "whole training call (model building and layer fitting included; the epochs alone in "
        "results.csv, train_epoch_seconds). Objectives run: "
        f"{', '.join(payload.get('objectives', []))}. "
        f"Wall time of the run: {report.number(payload.get('seconds')):.0f} s.",
    ]
    body: list[tuple[list[str], list[str]]] = []
    for entry in payload.get("table_i", []):
        ratings = " / ".join(
            entry[k] for k in ("optimality", "constraints", "feasibility", "training", "inference")
        )
        measured = [r for r in rows if r.get("table_i") == entry["approach"]]
        if not measured:
            body.append(
                (
                    [entry["approach"], ratings, "-", f"{entry['layer']} (not measured)"],
                    ["-"] * len(MEASURED_HEADS),
                )
            )
        body += [
            ([entry["approach"], ratings, r["family"], r["method"]], _measured_cells(r))
            for r in measured
        ]
    table = report.grid_markdown(
        [
            "Table I approach",
            "survey: optimality / constraints / feasibility / training / inference",
            "family",
            "method",
        ],
        MEASURED_HEADS,
        body,
    )
    sections.append("## Table I with measured columns\n\n" + table)
    sections.append(
        "## Feasibility ratings against the measured violations\n\n"
        + "\n".join(f"- {line}" for line in feasibility_verdicts(rows))
    )
    for family in dict.fromkeys(r["family"] for r in rows):
        case = cases.get(family, {})
        unit = case.get("objective_label", "objective")
        lines = report.grid_markdown(
            ["method", "objective", "Table I"],
            [unit, *MEASURED_HEADS],
            (
                (
                    [r["method"], r.get("objective_kind") or "-", r.get("table_i") or "-"],
                    [_with_se(r, "objective", ".3g"), *_measured_cells(r)],
                )
                for r in rows
                if r["family"] == family
            ),
        )
        n = next((r["num_instances"] for r in rows if r["family"] == family), "?")
        sections.append(
            f"## Every combination: {family} ({case.get('preset', '?')}, n = {n} test "
            f"instances, reference {case.get('reference', '?')})\n\n" + lines
        )
    skipped = payload.get("skipped", [])
    if skipped:
        sections.append(
            "## Not run\n\n"
            + "\n".join(f"- {s['family']} {s['method']}: {s['reason']}" for s in skipped)
        )
    failed = payload.get("failed", [])
    if failed:
        sections.append(
            "## Failed\n\n"
            + "\n".join(f"- {f['family']} {f['method']}: {f['error']}" for f in failed)
        )
    figures = ["![trade-off](survey.png)"] + [
        f"![{family}](survey-{family}.png)" for family in dict.fromkeys(r["family"] for r in rows)
    ]
    sections.append("\n\n".join(figures))
    return "\n\n".join(sections) + "\n"


BACKBONE_MARKERS = {"mlp": "o", "du": "s", "gnn": "^"}
"""Marker of each backbone in ``survey.png`` (others: diamonds)."""


def tradeoff_plot(path: Path, rows: list[dict[str, Any]], rtol: float) -> None:
    """One panel per family: % of the reference against inference CPU time per sample at
    batch 1 (log axis). Colour: the layer; marker: the backbone; filled: self-supervised,
    hollow: supervised or hybrid; a red ring: some violation at ``rtol``; black square: the
    reference (its wall time per instance). The Table I compositions are labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    families = list(dict.fromkeys(r["family"] for r in rows))
    layers = list(dict.fromkeys(r["layer"] for r in rows if r["kind"] == "learned"))
    palette = plt.get_cmap("tab10")
    colors = {layer: palette(i % 10) for i, layer in enumerate(layers)}
    count = max(1, len(families))
    fig, axes = plt.subplots(1, count, figsize=(7.0 * count + 2.5, 6))
    axes_list = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax, family in zip(axes_list, families, strict=False):
        for r in (r for r in rows if r["family"] == family):
            x = report.number(r.get("time_batch1_ms"))
            y = report.number(r.get("percent_of_reference"))
            if not (math.isfinite(x) and x > 0 and math.isfinite(y)):
                continue
            if r["kind"] == "classical":
                ax.plot([x], [y], "s", color="black", markersize=9)
                ax.annotate(r["method"], (x, y), xytext=(5, 3), textcoords="offset points")
                continue
            color = colors[r["layer"]]
            filled = r.get("objective_kind") in (None, "self-supervised")
            ax.plot(
                [x],
                [y],
                BACKBONE_MARKERS.get(r["backbone"], "D"),
                color=color,
                markerfacecolor=color if filled else "white",
                markersize=8,
                alpha=0.9,
            )
            if report.number(r.get("violation_probability")) > 0:
                ax.plot([x], [y], "o", markersize=15, markerfacecolor="none", color="red", lw=1)
            if r.get("table_i"):
                ax.annotate(
                    r["method"], (x, y), xytext=(5, -9), textcoords="offset points", fontsize=7
                )
        ax.set_xscale("log")
        ax.set_xlabel("inference CPU time per sample at batch 1 [ms], log scale, 1 thread")
        ax.set_ylabel("objective in % of the reference (violating outputs count as 0)")
        ax.set_title(family)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="none", color=colors[k], label=k) for k in layers]
    handles += [
        Line2D(
            [],
            [],
            marker=m,
            ls="none",
            color="black",
            markerfacecolor="none",
            label=f"backbone {b}",
        )
        for b, m in BACKBONE_MARKERS.items()
    ]
    handles += [
        Line2D(
            [],
            [],
            marker="o",
            ls="none",
            color="gray",
            markerfacecolor="white",
            label="supervised / hybrid",
        ),
        Line2D(
            [],
            [],
            marker="o",
            ls="none",
            markersize=12,
            markerfacecolor="none",
            color="red",
            label=f"violations (rtol {rtol:g})",
        ),
        Line2D([], [], marker="s", ls="none", color="black", label="reference (wall time)"),
    ]
    fig.legend(handles=handles, loc="center right", fontsize=8, title="layer (colour)")
    fig.suptitle("The survey's Table I measured: objective against inference time")
    fig.tight_layout(rect=(0, 0, 1 - 2.3 / (7.0 * count + 2.5), 0.95))
    with report.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_reports(run_dir: Path, payload: dict[str, Any], log: Log = print) -> list[Path]:
    """Write ``results.csv``, ``report.md``, ``survey.png`` and ``survey-<family>.png`` from
    a ``results.json`` payload."""
    rows = [dict(r) for r in payload["results"]]
    rtol = float(payload.get("rtol", 1e-6))
    written = [run_dir / "results.csv", run_dir / "report.md", run_dir / "survey.png"]
    report.write_csv(written[0], rows)
    report.write_text(written[1], markdown_report(payload))
    tradeoff_plot(written[2], rows, rtol)
    for family in dict.fromkeys(r["family"] for r in rows):
        family_rows = [r for r in rows if r["family"] == family]
        path = run_dir / f"survey-{family}.png"
        unit = payload.get("cases", {}).get(family, {}).get("objective_label", "objective")
        report.method_chart(
            path,
            family_rows,
            f"survey Table I measured, {family}",
            objective=("objective", unit),
            percent=("percent_of_reference", "objective in % of the reference"),
            violation="violation_probability",
            time="time_batch1_ms",
        )
        written.append(path)
    for line in feasibility_verdicts(rows):
        log(line)
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written
