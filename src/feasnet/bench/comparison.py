"""Side-by-side comparison of classical solvers and learned methods on one preset.

One run folder holds everything a run produces, each file written atomically:
``dataset.h5`` (generated once, reused), ``models/<method>/`` (training run of each learned
method, resumable), ``solutions/<method>.npz`` (one per method; a method whose file exists is
not solved again, so an interrupted run resumes), ``results.json``, ``results.csv``,
``report.md``, ``comparison.png`` and ``training.png`` (training curves of the learned
methods).

Learned methods are trained on the train split (validation split for early stopping) and,
like the classical ones, evaluated on the test split. ``+fw`` variants reuse the weights of
their base method; only the Frank-Wolfe refinement is added at inference.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from feasnet.bench import report
from feasnet.bench.runner import ensure_dataset_file, solve_methods
from feasnet.data import storage
from feasnet.data.presets import get_preset
from feasnet.metrics import MethodMetrics, evaluate, tightest_upper_bound
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import DEFAULT_RTOL
from feasnet.run_folder import stale
from feasnet.training import TrainConfig

DEFAULT_PRESET = "small"
CLASSICAL_METHODS = ("min-power", "gp", "sca", "fw", "ga")
LEARNED_METHODS = (
    "pnet",
    "dipnet",
    "dipnet-cvxpylayers",
    "dipnet+fw",
    "depnet",
    "depnet+fw",
)
DEFAULT_METHODS = CLASSICAL_METHODS + LEARNED_METHODS
REFERENCE = "sca"
BASELINE = "gp"


def ensure_dataset(
    out_dir: Path,
    preset: str,
    num_samples: int | None,
    seed: int,
    log: Any = print,
    force: bool = False,
) -> Path:
    """Generate ``out_dir/dataset.h5`` for the preset unless a matching one exists.

    A data set made for other settings is an error (:class:`RunFolderError`) unless ``force``
    allows replacing it.
    """
    scenario = get_preset(preset)
    samples = num_samples or scenario.num_samples
    # every scenario field counts: a changed preset (e.g. its drop) is stale; any splits
    return ensure_dataset_file(out_dir / "dataset.h5", scenario, samples, seed, None, force, log)


def forget_stale_results(
    out_dir: Path,
    dataset: Path,
    split: str,
    train_config: TrainConfig,
    log: Any,
    force: bool = False,
) -> None:
    """Drop cached models and solutions made for other data or training settings (only with
    ``force``; without it they are an error, :class:`RunFolderError`).

    ``out_dir/run.json`` records what the cached results were made from: the data set
    (scenario, seed, size, creation time), the evaluated split and the training settings.
    """
    info = storage.read_info(dataset)
    key = {
        "scenario": info.scenario.name,
        "seed": info.seed,
        "num_instances": info.num_instances,
        "created": info.created,
        "split": split,
        "train_config": train_config.model_dump(mode="json"),
    }
    record = out_dir / "run.json"
    if record.exists() and json.loads(record.read_text()) != key:
        stale(out_dir / "models", "data set, split or training settings differ", force)
        for folder in ("models", "solutions"):
            shutil.rmtree(out_dir / folder, ignore_errors=True)
        log(f"{out_dir}: settings changed since the last run; cached models and solutions dropped")
    report.write_json(record, key)


def run(
    out_dir: Path,
    preset: str = DEFAULT_PRESET,
    num_samples: int | None = None,
    seed: int = 0,
    methods: Sequence[str] = DEFAULT_METHODS,
    workers: int | None = None,
    split: str = "test",
    log: Any = print,
    train_config: TrainConfig | None = None,
    reference: str = REFERENCE,
    force: bool = False,
    rtol: float = DEFAULT_RTOL,
    guard: bool = False,
) -> list[MethodMetrics]:
    """Run the comparison into ``out_dir`` and return one metrics row per method.

    ``reference`` names the method the "% of reference" column divides by (default ``sca``).
    When a result carries per-instance upper bounds (``upper_bound``, from a global solver),
    the rows also get "% of upper bound" against the tightest of them. Cached data, models and
    solutions in ``out_dir`` made for other settings are an error
    (:class:`~feasnet.run_folder.RunFolderError`) unless ``force`` replaces them. Every
    result is evaluated as :func:`checked_result` makes it (``rtol``, ``guard``); the saved
    solution files hold the methods' own outputs.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = ensure_dataset(out_dir, preset, num_samples, seed, log, force=force)
    read, info = storage.read_dataset(dataset, split)
    instances = cast(PowerControlInstances, read)  # the suite's presets are power control
    forget_stale_results(out_dir, dataset, split, train_config or TrainConfig(), log, force)
    log(
        f"{split} split: {len(instances)} instances, "
        f"B={instances.num_bs}, Q={instances.num_channels}"
    )
    results = solve_methods(
        out_dir, dataset, instances, methods, workers, train_config, log, rtol, guard
    )
    upper_bound = tightest_upper_bound(results.values())
    metrics = [
        evaluate(
            results[m],
            reference=results.get(reference),
            baseline=results.get(BASELINE),
            upper_bound=upper_bound,
        )
        for m in methods
    ]
    payload = {
        "suite": "comparison",
        "preset": info.scenario.name,
        "scenario": info.scenario.model_dump(),
        "seed": seed,
        "split": split,
        "num_instances": len(instances),
        "num_bs": instances.num_bs,
        "num_channels": instances.num_channels,
        "reference": reference,
        "baseline": BASELINE,
        "rtol": rtol,
        "guard": guard,
        "machine": report.machine(workers),
        "results": report.metric_rows(metrics),
    }
    report.write_json(out_dir / "results.json", payload)
    write_reports(out_dir, payload, log)
    return metrics


def title_of(payload: dict[str, Any]) -> str:
    """The table title of a comparison's ``results.json`` payload."""
    scenario = payload.get("scenario") or {}
    num_bs = payload.get("num_bs", scenario.get("num_bs", "?"))
    num_channels = payload.get("num_channels", scenario.get("num_channels", "?"))
    return (
        f"{payload.get('preset', '?')}: B={num_bs}, Q={num_channels}, "
        f"{payload.get('num_instances', '?')} {payload.get('split', 'test')} instances, "
        f"violations at rtol {payload.get('rtol', DEFAULT_RTOL):g} (float64)"
    )


def write_reports(out_dir: Path, payload: dict[str, Any], log: Any = print) -> list[Path]:
    """Print the table and write ``results.csv``, ``report.md``, ``comparison.png`` and (when
    ``models/`` holds training runs) ``training.png`` from a ``results.json`` payload."""
    rows = [dict(r) for r in payload["results"]]
    title = title_of(payload)
    reference = payload.get("reference", REFERENCE)
    baseline = payload.get("baseline", BASELINE)
    report.print_table(rows, title)
    written = [out_dir / "results.csv", out_dir / "comparison.png"]
    report.write_csv(written[0], rows)
    report.method_chart(
        written[1],
        rows,
        title,
        percent=("percent_of_reference", f"sum rate in % of {reference}"),
    )
    training = report.training_curves_of(out_dir / "models", out_dir / "training.png")
    figures = "![comparison](comparison.png)\n"
    if training is not None:
        written.append(training)
        figures += "\n![training curves](training.png)\n"
    report.write_text(
        out_dir / "report.md",
        f"# Comparison on `{payload.get('preset', '?')}`\n\n{title}.\n\n"
        "Sum rate is the mean over the split with infeasible allocations counted as zero, "
        "shown as mean ± standard error over the n instances; "
        f"'% of reference' is relative to `{reference}` (its standard error by the delta "
        f"method on paired instances), speed-up relative to `{baseline}`. "
        "'timing' says whether a method was timed per instance or once per batch "
        "(batch time / n, no spread measured).\n\n"
        f"{report.markdown_table(rows)}\n\n{figures}",
    )
    written.insert(1, out_dir / "report.md")
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written
