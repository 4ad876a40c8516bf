"""Side-by-side comparison of classical solvers and learned methods on one preset.

One run folder holds everything a run produces, each file written atomically:
``dataset.h5`` (generated once, reused), ``models/<method>/`` (training run of each learned
method, resumable), ``solutions/<method>.npz`` (one per method; a method whose file exists is
not solved again, so an interrupted run resumes), ``results.json``, ``results.csv``,
``report.md`` and ``comparison.png``.

Learned methods are trained on the train split (validation split for early stopping) and,
like the classical ones, evaluated on the test split. ``+fw`` variants reuse the weights of
their base method; only the Frank-Wolfe refinement is added at inference.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from feasnet import solvers
from feasnet.bench import report
from feasnet.data import storage
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.evaluate import MethodMetrics, evaluate
from feasnet.methods import build_layer, get_method
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import DEFAULT_RTOL
from feasnet.run_folder import stale
from feasnet.solvers.result import AllocationResult
from feasnet.train import TrainConfig, load_model, model_result, train

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
TRAINED_AS = {"dipnet-cvxpylayers": "dipnet"}
"""Methods evaluated with the weights of another (same network, another implementation)."""
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
    path = out_dir / "dataset.h5"
    if path.exists():
        info = storage.read_info(path)
        if (
            info.scenario.name == scenario.name
            and info.seed == seed
            and info.num_instances == samples
        ):
            log(f"reusing {path} ({samples} instances)")
            return path
        stale(
            path,
            f"{info.scenario.name}, seed {info.seed}, {info.num_instances} instances",
            force,
        )
        log(f"{path} was made for other settings; regenerating (--force)")
    start = time.perf_counter()
    instances, stats = generate(scenario, samples, seed=seed)
    storage.write_dataset(path, instances, scenario, seed=seed, stats=stats)
    log(
        f"generated {samples} feasible instances of {scenario.name} in "
        f"{time.perf_counter() - start:.1f} s ({stats.rejected} infeasible draws rejected)"
    )
    return path


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


def learned_result(
    name: str, out_dir: Path, dataset: Path, train_config: TrainConfig | None, log: Any
) -> Any:
    """Train (or reuse) the base model of learned method ``name``; return its evaluator."""
    config = get_method(name)
    base = TRAINED_AS.get(name, name.removesuffix("+fw"))
    run_dir = out_dir / "models" / base
    if not (run_dir / "done").exists():  # unfinished or never started: (re)train, resuming
        train_set, validation_set, info = storage.read_training_splits(dataset)
        log(f"training {base} on {len(train_set)} instances ...")
        train(
            get_method(base),
            train_set,
            validation_set,
            run_dir,
            train_config,
            resume=True,
            metadata={"scenario": info.scenario.model_dump(mode="json")},
            log=log,
        )
        (run_dir / "done").touch()
    model, _ = load_model(run_dir)
    if config.layer != model.config.layer:  # same weights, another projection implementation
        model.layer = build_layer(config)
    model.config = config  # the +fw variants differ from their base only at inference

    def evaluate_on(instances: PowerControlInstances) -> AllocationResult:
        model_result(model, instances[:8])  # warm-up: lazy imports, first-call allocations
        return model_result(model, instances, name=name)

    return evaluate_on


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
    force: bool = False,
) -> list[MethodMetrics]:
    """Run the comparison into ``out_dir`` and return one metrics row per method.

    Cached data, models and solutions in ``out_dir`` made for other settings are an error
    (:class:`~feasnet.run_folder.RunFolderError`) unless ``force`` replaces them.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = ensure_dataset(out_dir, preset, num_samples, seed, log, force=force)
    instances, info = storage.read_dataset(dataset, split)
    forget_stale_results(out_dir, dataset, split, train_config or TrainConfig(), log, force)
    log(
        f"{split} split: {len(instances)} instances, "
        f"B={instances.num_bs}, Q={instances.num_channels}"
    )
    results: dict[str, AllocationResult] = {}
    for name in methods:
        path = out_dir / "solutions" / f"{name}.npz"
        if path.exists():
            cached = AllocationResult.load_npz(path)
            if len(cached) == len(instances):
                log(f"{name}: reusing {path}")
                results[name] = cached
                continue
        start = time.perf_counter()
        if name in solvers.SOLVERS:
            result = solvers.solve(name, instances, workers=workers)
        else:
            result = learned_result(name, out_dir, dataset, train_config, log)(instances)
        result.save_npz(path)
        results[name] = result
        log(f"{name}: done in {time.perf_counter() - start:.1f} s")
    reference = results.get(REFERENCE)
    baseline = results.get(BASELINE)
    metrics = [evaluate(results[m], reference=reference, baseline=baseline) for m in methods]
    rows = report.metric_rows(metrics)
    title = (
        f"{info.scenario.name}: B={instances.num_bs}, Q={instances.num_channels}, "
        f"{len(instances)} {split} instances, violations at rtol {DEFAULT_RTOL:g} (float64)"
    )
    report.print_table(rows, title)
    payload = {
        "suite": "comparison",
        "preset": info.scenario.name,
        "scenario": info.scenario.model_dump(),
        "seed": seed,
        "split": split,
        "num_instances": len(instances),
        "reference": REFERENCE,
        "baseline": BASELINE,
        "rtol": DEFAULT_RTOL,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "workers": workers,
        },
        "results": rows,
    }
    report.write_json(out_dir / "results.json", payload)
    report.write_csv(out_dir / "results.csv", rows)
    report.bar_chart(out_dir / "comparison.png", rows, title)
    report.write_text(
        out_dir / "report.md",
        f"# Comparison on `{info.scenario.name}`\n\n{title}.\n\n"
        f"Sum rate is the mean over the split with infeasible allocations counted as zero; "
        f"'% of reference' is relative to `{REFERENCE}`, speed-up relative to `{BASELINE}`.\n\n"
        f"{report.markdown_table(rows)}\n\n![comparison](comparison.png)\n",
    )
    log(f"wrote {out_dir}/results.json, results.csv, report.md, comparison.png")
    return metrics
