"""Size generalization: train once on one network size, run unchanged on every other size.

Backbones whose weights and input normalization do not depend on the size (``gnn``, and
``du``, whose learned scalars are per unrolled layer) give one model that serves every size;
the feasibility layers are built per problem and read each instance's own constraints, so a
hard layer keeps its guarantee at every size. This suite measures what the model loses away
from its training size.

Two parts, each with its own reference solver on every size:

* **power control**: path loss (the ``table2-8`` scenario: 1 W, 2.5 Mbit/s targets, the
  500 m square), ``Q = 2`` channels per BS; trained on ``B = 4`` BSs, evaluated on ``B`` in
  2, 4, 6, 8 (quick) or 2 ... 8 (``full``); reference SCA. More BSs in the same square means
  denser interference.
* **MISO**: the survey's case study (``miso-snr-10``: ``Nt = 20``, 10 dB, Rayleigh) with ``K``
  users; trained on ``K = 4``, evaluated on ``K`` in 2, 4, 6 (quick) or 2 ... 6 (``full``);
  reference WMMSE.

Every size gets its own data set (``samples`` instances, train/validation/test split
:data:`SPLITS`, seed ``seed + size``); models train on the training size's train split
(validation split for early stopping) and every method is evaluated on each size's test split.
Violations are counted by the float64 check at ``rtol``; a violating output counts as 0.

Run folder (each file atomic; a rerun reuses what exists, ``--force`` replaces what was made
for other settings)::

    <family>/models/<method>/            training run on the training size
    <family>/<S><size>/dataset.h5        S = B (power control) or K (MISO)
    <family>/<S><size>/solutions/<method>.npz
    results.json, results.csv, report.md, generalize.png

``--configs`` chooses the power-control sizes ``B`` (the training size is always added),
``--methods`` the learned methods (each runs on the families it applies to; its backbone must
serve any size), ``--samples`` the instances per size, ``--epochs`` the training epochs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feasnet.atomic import atomic_path
from feasnet.bench import report
from feasnet.bench.comparison import forget_stale_results
from feasnet.bench.runner import (
    ensure_dataset_file,
    solve_methods,
    train_once,
    warm_model_result,
)
from feasnet.bench.suites import Log, SuiteOptions
from feasnet.data import storage
from feasnet.data.presets import AnyScenario, get_preset
from feasnet.methods import get_method
from feasnet.metrics import evaluate
from feasnet.models import method_applies
from feasnet.solvers.result import Result
from feasnet.training import TrainConfig, load_model

SPLITS = (0.8, 0.1, 0.1)
"""Train / validation / test fractions of every size's data set."""
ANY_SIZE_BACKBONES = ("gnn", "du")


@dataclass(frozen=True)
class Part:
    """One problem family of the suite: its scenario, sizes, reference and methods."""

    family: str
    size_symbol: str
    preset: str
    train_size: int
    quick_sizes: tuple[int, ...]
    full_sizes: tuple[int, ...]
    reference: str
    methods: tuple[str, ...]
    quick_samples: int
    full_samples: int
    quick_epochs: int
    full_epochs: int
    batch_size: int
    objective_label: str

    def scenario(self, size: int) -> AnyScenario:
        """The part's scenario at ``size`` (``B`` with ``Q = 2``, or ``K``)."""
        base = get_preset(self.preset)
        if self.family == "power-control":
            return base.with_overrides(
                name=f"generalize-B{size}",
                num_bs=size,
                num_channels=2,
                description=f"{self.preset} with B = {size}, Q = 2 (size generalization)",
            )
        return base.with_overrides(
            name=f"generalize-K{size}",
            num_users=size,
            description=f"{self.preset} with K = {size} users (size generalization)",
        )

    def folder(self, size: int) -> str:
        return f"{self.size_symbol}{size}"

    def train_config(self, epochs: int | None, full: bool, seed: int) -> TrainConfig:
        return TrainConfig(
            epochs=epochs or (self.full_epochs if full else self.quick_epochs),
            batch_size=self.batch_size,
            learning_rate=1e-3,
            seed=seed,
        )


PARTS: tuple[Part, ...] = (
    Part(
        family="power-control",
        size_symbol="B",
        preset="table2-8",
        train_size=4,
        quick_sizes=(2, 4, 6, 8),
        full_sizes=(2, 3, 4, 5, 6, 7, 8),
        reference="sca",
        methods=("qp+gnn", "correction+gnn", "qp+du"),
        quick_samples=2000,
        full_samples=20_000,
        quick_epochs=5,
        full_epochs=20,
        batch_size=128,
        objective_label="sum rate [Mbit/s]",
    ),
    Part(
        family="miso",
        size_symbol="K",
        preset="miso-snr-10",
        train_size=4,
        quick_sizes=(2, 4, 6),
        full_sizes=(2, 3, 4, 5, 6),
        reference="wmmse",
        methods=("hop+gnn", "penalty+gnn"),
        quick_samples=400,
        full_samples=3000,
        quick_epochs=10,
        full_epochs=40,
        batch_size=32,
        objective_label="weighted sum rate [bit/s/Hz]",
    ),
)
"""The suite's two parts, in run order."""


# ---------------------------------------------------------------------------- options
def _check_methods(methods: Sequence[str] | None) -> dict[str, tuple[str, ...]]:
    """``{family: learned methods}``; each given method must exist, have a size-independent
    backbone and apply to some part's family.

    Raises:
        ValueError: naming the method.
    """
    if methods is None:
        return {part.family: part.methods for part in PARTS}
    chosen: dict[str, list[str]] = {part.family: [] for part in PARTS}
    references = {part.reference for part in PARTS}
    for name in methods:
        if name in references:
            continue  # every part runs its reference anyway
        try:
            config = get_method(name)
        except KeyError as exc:
            raise ValueError(f"methods: {exc.args[0]}") from None
        if config.backbone.kind not in ANY_SIZE_BACKBONES:
            raise ValueError(
                f"methods: {name} has the {config.backbone.kind!r} backbone, whose weights "
                f"depend on the size; the generalize suite needs one of "
                f"{', '.join(ANY_SIZE_BACKBONES)}"
            )
        families = [part.family for part in PARTS if method_applies(config, part.family)]
        if not families:
            raise ValueError(f"methods: {name} applies to none of power-control, miso")
        for family in families:
            chosen[family].append(name)
    return {family: tuple(names) for family, names in chosen.items()}


def _sizes(part: Part, options: SuiteOptions) -> tuple[int, ...]:
    if part.family == "power-control" and options.configs:
        bad = [b for b in options.configs if not 1 <= b <= 12]
        if bad:
            raise ValueError(f"configs: the number of BSs B must lie in [1, 12], got {bad[0]}")
        return tuple(sorted({*options.configs, part.train_size}))
    return part.full_sizes if options.full else part.quick_sizes


def _samples(part: Part, options: SuiteOptions) -> int:
    samples = options.samples or (part.full_samples if options.full else part.quick_samples)
    try:
        storage.split_sizes(samples, SPLITS)
    except ValueError:
        raise ValueError(
            f"samples: {samples} instances leave a split of {SPLITS} empty; give at least 10"
        ) from None
    return samples


# ---------------------------------------------------------------------------- data
def ensure_dataset(
    path: Path, scenario: AnyScenario, samples: int, seed: int, log: Log, force: bool
) -> Path:
    """Write (or reuse) the data set of one size; one made for other settings is an error
    unless ``force``."""
    return ensure_dataset_file(path, scenario, samples, seed, SPLITS, force, log)


# ---------------------------------------------------------------------------- one part
def training_seconds(run_dir: Path) -> float:
    """Sum of the epoch times in ``run_dir/history.json`` [s] (0 without one): the training
    time, also when a rerun reuses the model."""
    path = run_dir / "history.json"
    if not path.exists():
        return 0.0
    return float(sum(row["seconds"] for row in json.loads(path.read_text())))


def _row(part: Part, size: int, name: str, result: Result, reference: Result) -> dict[str, Any]:
    m = evaluate(result, reference=reference, baseline=reference)
    scale = 1e-6 if part.family == "power-control" else 1.0
    return {
        "family": part.family,
        "size_symbol": part.size_symbol,
        "size": size,
        "train_size": part.train_size,
        "method": name,
        "kind": "classical" if name == part.reference else "learned",
        "num_instances": m.num_instances,
        "objective": m.mean_objective * scale,
        "objective_se": m.objective_standard_error * scale,
        "objective_label": part.objective_label,
        "percent_of_reference": 100.0 * m.ratio_to_reference,
        "percent_of_reference_se": 100.0 * m.ratio_standard_error,
        "violation_probability": m.violation_probability,
        "violation_probability_se": m.violation_standard_error,
        "rtol": m.rtol,
        "time_per_sample_ms": 1e3 * m.time_per_sample,
        "time_per_sample_ms_se": 1e3 * m.time_standard_error,
        "num_not_converged": m.num_not_converged,
        "reference": part.reference,
    }


def run_part(
    part: Part, methods: tuple[str, ...], options: SuiteOptions
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train the part's methods on its training size and evaluate them on every size."""
    log = options.log
    sizes = _sizes(part, options)
    samples = _samples(part, options)
    train_config = part.train_config(options.epochs, options.full, options.seed)
    part_dir = options.run_dir / part.family
    datasets = {
        size: ensure_dataset(
            part_dir / part.folder(size) / "dataset.h5",
            part.scenario(size),
            samples,
            options.seed + size,
            log,
            options.force,
        )
        for size in sorted({*sizes, part.train_size})
    }
    train_set = datasets[part.train_size]
    forget_stale_results(part_dir, train_set, "train", train_config, log, options.force)
    models = {}
    train_seconds = {}
    for name in methods:
        run_dir = part_dir / "models" / name
        train_once(run_dir, get_method(name), train_set, train_config, log)
        models[name], _ = load_model(run_dir)
        train_seconds[name] = training_seconds(run_dir)
    rows = []
    for size in sizes:
        folder = part_dir / part.folder(size)
        instances, _ = storage.read_dataset(datasets[size], "test")
        forget_stale_results(folder, datasets[size], "test", train_config, log, options.force)

        def learn(name: str, instances: Any = instances) -> Result:
            return warm_model_result(models[name], instances, name)

        results = solve_methods(
            folder,
            datasets[size],
            instances,
            [part.reference, *methods],
            options.workers,
            train_config,
            log,
            options.rtol,
            options.guard,
            label=f"{part.family} {part.folder(size)} ",
            learn=learn,
        )
        reference = results[part.reference]
        rows += [_row(part, size, name, results[name], reference) for name in results]
    info = {
        "family": part.family,
        "size_symbol": part.size_symbol,
        "preset": part.preset,
        "train_size": part.train_size,
        "sizes": list(sizes),
        "reference": part.reference,
        "methods": list(methods),
        "samples_per_size": samples,
        "train_config": train_config.model_dump(mode="json"),
        "train_seconds": train_seconds,
    }
    return rows, info


# ---------------------------------------------------------------------------- entry point
def run(options: SuiteOptions) -> None:
    """The suite (module doc) into ``options.run_dir``; writes ``results.json`` and the
    reports."""
    if options.points:
        raise ValueError("points: the generalize suite takes no --points (use --configs for B)")
    chosen = _check_methods(options.methods)
    for part in PARTS:  # validate every option before any work
        _sizes(part, options)
        _samples(part, options)
    options.run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    parts = []
    for part in PARTS:
        if not chosen[part.family]:
            continue
        options.log(f"generalize: {part.family}, trained on {part.size_symbol} = {part.train_size}")
        part_rows, info = run_part(part, chosen[part.family], options)
        rows += part_rows
        parts.append(info)
    payload = {
        "suite": "generalize",
        "full": options.full,
        "seed": options.seed,
        "rtol": options.rtol,
        "guard": options.guard,
        "splits": list(SPLITS),
        "parts": parts,
        "seconds": time.perf_counter() - started,
        "machine": report.machine(options.workers),
        "checks": measured_summary(rows),
        "results": rows,
    }
    report.write_json(options.run_dir / "results.json", payload)
    write_reports(options.run_dir, payload, options.log)


# ---------------------------------------------------------------------------- summary
def measured_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per family and learned method, away from the training size: the lowest % of the
    reference and the largest violation probability (and the sizes they occur at)."""
    out: dict[str, Any] = {}
    for row in rows:
        if row["method"] == row["reference"] or row["size"] == row["train_size"]:
            continue
        entry = out.setdefault(row["family"], {}).setdefault(
            row["method"],
            {"lowest_percent": math.inf, "at": None, "largest_violation": 0.0, "sizes": []},
        )
        entry["sizes"].append(row["size"])
        percent = report.number(row["percent_of_reference"])
        if percent < entry["lowest_percent"]:
            entry["lowest_percent"], entry["at"] = percent, row["size"]
        entry["largest_violation"] = max(
            entry["largest_violation"], report.number(row["violation_probability"])
        )
    return out


def summary_lines(payload: dict[str, Any]) -> list[str]:
    lines = []
    symbols = {p["family"]: p["size_symbol"] for p in payload.get("parts", [])}
    trained = {p["family"]: p["train_size"] for p in payload.get("parts", [])}
    references = {p["family"]: p["reference"] for p in payload.get("parts", [])}
    for family, methods in (payload.get("checks") or {}).items():
        s = symbols.get(family, "size")
        for method, e in methods.items():
            lines.append(
                f"{family}, {method} trained on {s} = {trained.get(family)}: on "
                f"{s} in {{{', '.join(map(str, e['sizes']))}}} at least "
                f"{e['lowest_percent']:.1f} % of {references.get(family)} (lowest at {s} = "
                f"{e['at']}), largest violation probability {e['largest_violation']:.4f}"
            )
    return lines


# ---------------------------------------------------------------------------- outputs
TABLES: list[tuple[str, str]] = [
    ("percent_of_reference", "Objective in % of the reference on the same instances"),
    ("violation_probability", "Violation probability"),
    ("objective", "Mean objective (violations count as 0)"),
    ("time_per_sample_ms", "Time per sample [ms]"),
]


def pivot_table(rows: list[dict[str, Any]], key: str) -> str:
    """Markdown: one line per method, one column per size (``*`` marks the training size)."""
    sizes = sorted({r["size"] for r in rows})
    symbol, trained = rows[0]["size_symbol"], rows[0]["train_size"]
    by = {(r["method"], r["size"]): r for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = [f"{symbol} = {s}" + (" (train)" if s == trained else "") for s in sizes]
    return report.grid_markdown(["method"], head, report.cell_grid(by, methods, sizes, key))


def markdown_report(payload: dict[str, Any], pngs: list[str]) -> str:
    rows = payload["results"]
    sections = [
        "# `generalize`: one model per family, trained on one size, run on every size",
        "Each learned model is trained once on the training size and used unchanged on every "
        "size; the reference solver runs on every size. Violations by the float64 check at "
        f"rtol {payload.get('rtol', 1e-6):g}"
        + (" after the guard" if payload.get("guard") else " (guard off)")
        + "; cells are mean ± standard error over the n test instances of each size; a "
        "violating output counts as 0.",
    ]
    for part in payload.get("parts", []):
        family_rows = [r for r in rows if r["family"] == part["family"]]
        if not family_rows:
            continue
        n = sorted({r["num_instances"] for r in family_rows})
        config = part.get("train_config", {})
        seconds = part.get("train_seconds") or {}
        took = ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())
        sections.append(
            f"## {part['family']}: trained on {part['size_symbol']} = {part['train_size']} "
            f"({part['preset']}), reference {part['reference']}\n\n"
            f"{part['samples_per_size']} instances per size, test n = "
            f"{', '.join(map(str, n))}; at most {config.get('epochs')} epochs, batch "
            f"{config.get('batch_size')}; training time (sum of the epochs): {took}."
        )
        for key, title in TABLES:
            label = f" [{family_rows[0]['objective_label']}]" if key == "objective" else ""
            sections.append(f"### {title}{label}\n\n{pivot_table(family_rows, key)}")
    sections += report.closing_sections(summary_lines(payload), seconds=payload.get("seconds"))
    sections.append("\n\n".join(f"![{Path(p).stem}]({p})" for p in pngs))
    return "\n\n".join(sections) + "\n"


def figure(path: Path, payload: dict[str, Any]) -> None:
    """One row per family: % of the reference and violation probability against the size,
    the training size marked by a dashed vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["results"]
    parts = [p for p in payload.get("parts", []) if any(r["family"] == p["family"] for r in rows)]
    fig, axes = plt.subplots(len(parts), 2, figsize=(11, 4.2 * len(parts)), squeeze=False)
    for (left, right), part in zip(axes, parts, strict=True):
        family_rows = [r for r in rows if r["family"] == part["family"]]
        methods = list(dict.fromkeys(r["method"] for r in family_rows))
        span = max(max(part["sizes"]) - min(part["sizes"]), 1)
        shift = dict(zip(methods, report.x_offsets(len(methods), 0.5 * span), strict=True))
        for ax, key, label in (
            (left, "percent_of_reference", f"% of {part['reference']}"),
            (right, "violation_probability", "violation probability"),
        ):
            for method in methods:
                points = sorted(
                    (r["size"], report.number(r[key]), report.number(r.get(f"{key}_se", 0)))
                    for r in family_rows
                    if r["method"] == method
                )
                xs = [p[0] + shift[method] for p in points]  # shifted apart to stay visible
                ax.errorbar(
                    xs,
                    [p[1] for p in points],
                    yerr=[p[2] for p in points],
                    marker="s" if method == part["reference"] else "o",
                    color=report.method_color(method),
                    label=method,
                    capsize=3,
                )
            ax.axvline(part["train_size"], color="grey", linestyle="--", linewidth=1)
            ax.annotate(
                "training size",
                (part["train_size"], 0.02),
                xycoords=("data", "axes fraction"),
                rotation=90,
                color="grey",
                ha="right",
                fontsize=8,
            )
            ax.set_xlabel(f"{part['size_symbol']} ({part['family']})")
            ax.set_ylabel(label)
            ax.set_xticks(part["sizes"])
            ax.grid(alpha=0.3)
        right.set_ylim(bottom=-0.02)
        left.legend(fontsize=8)
    fig.suptitle(f"Size generalization (float64 check, rtol {payload.get('rtol', 1e-6):g})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_reports(run_dir: Path, payload: dict[str, Any], log: Log = print) -> list[Path]:
    """``results.csv``, ``generalize.png`` and ``report.md`` from a saved payload."""
    rows = payload["results"]
    payload = {**payload, "checks": measured_summary(rows)}
    written = [run_dir / "results.csv", run_dir / "generalize.png", run_dir / "report.md"]
    report.write_csv(written[0], rows)
    figure(written[1], payload)
    report.write_text(written[2], markdown_report(payload, [written[1].name]))
    for line in summary_lines(payload):
        log(line)
    for path in written:
        log(f"wrote {path}")
    return written
