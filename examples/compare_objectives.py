"""Compare the training objectives (self-supervised, supervised, hybrid) on one data set.

For each method and objective this trains a model on the data set's training split (labels of
the classical reference from ``feasnet data label``, made first if missing), allocates the test
split, and reports the objective as a percentage of the reference solver's test labels
(infeasible allocations count as 0), the violation probability at rtol 1e-6 (float64), the
same two with the feasibility guard switched on at inference, and the training time. Finished
runs are kept in ``OUT/<method>-<objective>/`` and reused on a rerun.

Usage::

    OMP_NUM_THREADS=1 python examples/compare_objectives.py DATA.h5 OUT \\
        --methods correction+mlp,primal-dual+mlp --objectives self-supervised,supervised,hybrid

Writes ``OUT/results.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from feasnet.atomic import write_text
from feasnet.data import storage
from feasnet.data.labels import default_label_method, label_dataset, labelled_splits, read_labels
from feasnet.methods import get_method
from feasnet.metrics import evaluate
from feasnet.problems.registry import problem_of
from feasnet.training import TrainConfig, load_model, model_result, train


def run(
    data: Path,
    out: Path,
    methods: list[str],
    objectives: list[str],
    epochs: int,
    hybrid_weight: float,
    label_method: str | None,
    workers: int,
    seed: int = 0,
    patience: int | None = None,
    layer_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every (method, objective); returns one row each."""
    info = storage.read_info(data)
    key = (label_method or default_label_method(info.family)).lower()
    missing = [s for s in ("train", "test") if s not in labelled_splits(data, key)]
    if missing:
        label_dataset(data, key, splits=missing, workers=workers)
    train_set, validation_set, _ = storage.read_training_splits(data)
    test, _ = storage.read_dataset(data, "test")
    problem = problem_of(test)
    test_labels = read_labels(data, key, "test", check_instances=True)
    reference = problem.result(
        key, test_labels.allocation, test, test_labels.seconds, test_labels.messages
    )
    train_labels = read_labels(data, key, "train").allocation
    rows = []
    for name in methods:
        for objective in objectives:
            folder = out / f"{name}-{objective}"
            config = TrainConfig(
                epochs=epochs,
                objective=objective,  # type: ignore[arg-type]
                hybrid_weight=hybrid_weight,
                label_method=key,
                seed=seed,
                patience=patience or TrainConfig().patience,
            )
            method = get_method(name)
            if layer_options:
                method = get_method(
                    name, layer={"kind": method.layer.kind, "options": layer_options}
                )
            started = time.perf_counter()
            summary = train(  # resumes a finished or interrupted run from its checkpoint
                method,
                train_set,
                validation_set,
                folder,
                config,
                resume=True,
                labels=train_labels if objective != "self-supervised" else None,
            )
            history = summary["history"]
            wall = time.perf_counter() - started
            model, payload = load_model(folder)
            result = model_result(model, test, name=f"{name} ({objective})")
            metrics = evaluate(result, reference=reference)
            guarded = evaluate(model_result(model, test, guard=True), reference=reference)
            rows.append(
                {
                    "method": name,
                    "objective": objective,
                    "hybrid_weight": hybrid_weight if objective == "hybrid" else None,
                    "percent_of_reference": 100 * metrics.ratio_to_reference,
                    "percent_standard_error": 100 * metrics.ratio_standard_error,
                    "violation_probability": metrics.violation_probability,
                    "percent_of_reference_with_guard": 100 * guarded.ratio_to_reference,
                    "violation_probability_with_guard": guarded.violation_probability,
                    "training_seconds": sum(row["seconds"] for row in history),
                    "epochs_run": len(history),
                    "best_epoch": int(payload.get("epoch", 0)),
                    "wall_seconds_this_call": wall,
                    "reference": key,
                    "seed": seed,
                }
            )
            write_text(out / "results.json", json.dumps(rows, indent=2) + "\n")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| method | objective | % of reference | violation prob. | with guard: % / viol. "
        "| training [s] | epochs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['objective']} | {r['percent_of_reference']:.2f} ± "
            f"{r['percent_standard_error']:.2f} | {r['violation_probability']:.4f} | "
            f"{r['percent_of_reference_with_guard']:.2f} / "
            f"{r['violation_probability_with_guard']:.4f} | "
            f"{r['training_seconds']:.1f} | {r['epochs_run']} (best {r['best_epoch']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--methods", default="correction+mlp")
    parser.add_argument("--objectives", default="self-supervised,supervised,hybrid")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hybrid-weight", type=float, default=TrainConfig().hybrid_weight)
    parser.add_argument("--label-method", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience")
    parser.add_argument(
        "--layer-options", default=None, help='JSON options of every layer, e.g. {"rho": 100}'
    )
    args = parser.parse_args()
    rows = run(
        args.data,
        args.out,
        args.methods.split(","),
        args.objectives.split(","),
        args.epochs,
        args.hybrid_weight,
        args.label_method,
        args.workers,
        args.seed,
        args.patience,
        json.loads(args.layer_options) if args.layer_options else None,
    )
    print(table(rows))


if __name__ == "__main__":
    main()
