"""Parameter sweeps of the power-control paper: Figs. 4-6, 9 and 10, one generic runner.

Each figure of the paper plots, against one swept quantity, the average network sum rate
(violating allocations counted as zero), the QoS violation probability and the computation
time per sample of GP, the genetic algorithm, PNet, DIPNet, DIPNet+FW and DEPNet:

``fig4-6``
    the number of users ``U = 4 Q`` (``B = 4``), on the Gaussian data (Figs. 4-6, left) and on
    the path-loss data (right); 2.5 Mbit/s per user.
``fig9``
    the minimum rate ``alpha`` [Mbit/s] on the path-loss data, ``B = 4``, ``U = 12``.
``fig10``
    the number of BSs ``B`` on the path-loss data, ``Q = 2`` (``U = 2 B``), 2.5 Mbit/s.

A :class:`Sweep` says what is swept and how a point becomes a :class:`~feasnet.data.presets.
Scenario`; :func:`run` does the rest. Every (data set, point) pair gets its own folder
``<dataset>-<x><value>/`` with ``dataset.h5`` (drawn for that point, feasible instances only,
as the paper generates one data set per configuration), ``models/`` and ``solutions/`` (the
cached, resumable loop of :func:`feasnet.bench.runner.solve_methods`). After each point
``results.json`` is rewritten (``"complete": false`` until the last), then ``results.csv``,
``report.md`` and the PNG figures; ``feasnet report RUN_DIR`` re-renders them.

SCA, iterated to convergence, is our reference (``% of reference``): it is not in the paper's
figures. The path-loss points use the channel model and user drop of the ``table2-*`` presets
(users within 50 m of their BS, see :mod:`feasnet.channels.path_loss`); the Gaussian points
the ``gaussian-4x*`` presets. The paper does not list the points of its figures; ours are in
:data:`SWEEPS` and docs/sweeps.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from feasnet.bench import report
from feasnet.bench.comparison import forget_stale_results
from feasnet.bench.runner import ensure_dataset_file, solve_methods
from feasnet.bench.suites import SuiteOptions
from feasnet.data import storage
from feasnet.data.generate import GenerationError
from feasnet.data.presets import Scenario, get_preset
from feasnet.methods import METHODS
from feasnet.metrics import evaluate
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import DEFAULT_RTOL
from feasnet.training import TrainConfig

Log = Callable[[str], Any]

REFERENCE = "sca"
"""Every point's reference (``% of reference``), solved whatever ``methods`` says."""
BASELINE = "gp"
"""The method speed-ups refer to (the paper's optimization benchmark)."""
DEFAULT_METHODS = ("gp", "ga", "pnet", "dipnet", "dipnet+fw", "depnet", REFERENCE)
"""The paper's methods of Figs. 4-6, 9, 10 (GP, genetic algorithm, PNet, DIPNet, DIPNet+FW,
DEPNet) and our reference SCA."""
LABELS = {
    "gp": "GP",
    "ga": "Genetic",
    "pnet": "PNet",
    "dipnet": "DIPNet",
    "dipnet+fw": "DIPNet+FW",
    "depnet": "DEPNet",
    "depnet+fw": "DEPNet+FW",
    "sca": "SCA (reference)",
}
"""Legend names: the paper's for its methods."""

QUICK_SAMPLES = 600
FULL_SAMPLES = 100_000
"""Feasible instances per (data set, point), all splits."""
QUICK_EPOCHS = 3
FULL_EPOCHS = 20
QUICK_SPLITS = (0.8, 0.1, 0.1)
FULL_SPLITS = (0.9, 0.05, 0.05)
"""Train / validation / test fractions: quick 480 / 60 / 60 of 600; full the paper's 90/5/5."""

NUM_BS = 4
"""``B`` of Figs. 4-6 and 9."""
RATE_MBPS = 2.5
"""Minimum rate of Figs. 4-6 and 10 [Mbit/s] (the paper's default)."""
FIG9_QUOTA = 3
"""``Q`` of Fig. 9 (``U = 12`` with ``B = 4``)."""
FIG10_QUOTA = 2
"""``Q`` of Fig. 10."""
PATH_LOSS_BASE = "table2-8"
"""The path-loss preset every path-loss point starts from (its geometry, drop, budget)."""
GAUSSIAN_BASE = "gaussian-4x1"
"""The Gaussian preset every Gaussian point starts from."""


# ---------------------------------------------------------------------------- sweeps
@dataclass(frozen=True)
class Sweep:
    """One figure: what is swept and how a point becomes a scenario.

    Attributes:
        name: suite name (``feasnet bench --suite NAME``).
        figure: the paper's figure(s), e.g. ``"Figs. 4-6"``.
        title: one line on what is plotted.
        x_key: the row column holding the swept value (``num_users``, ``min_rate_mbps``,
            ``num_bs``).
        x_label: axis label of the swept value.
        folder_tag: short tag of a point's folder (``U`` -> ``path-loss-U12``).
        datasets: data sets every point is run on (``"gaussian"``, ``"path-loss"``).
        quick_points, full_points: swept values of the quick default and of ``full``.
        scenario: ``(dataset, value) -> Scenario``; raises ``ValueError`` for a bad value.
        paper_claims: what the paper states about the figure (it prints no numbers).
    """

    name: str
    figure: str
    title: str
    x_key: str
    x_label: str
    folder_tag: str
    datasets: tuple[str, ...]
    quick_points: tuple[float, ...]
    full_points: tuple[float, ...]
    scenario: Callable[[str, float], Scenario]
    paper_claims: tuple[str, ...]


def _integer(value: float, field: str, low: int) -> int:
    if not math.isfinite(value) or value != int(value) or value < low:
        raise ValueError(f"points: {field} must be an integer >= {low}, got {value:g}")
    return int(value)


def _base(dataset: str) -> Scenario:
    if dataset not in ("gaussian", "path-loss"):
        raise ValueError(f"dataset: expected gaussian or path-loss, got {dataset!r}")
    base = get_preset(GAUSSIAN_BASE if dataset == "gaussian" else PATH_LOSS_BASE)
    assert isinstance(base, Scenario)
    return base


def _sized(dataset: str, num_bs: int, quota: int, rate_mbps: float, name: str) -> Scenario:
    base = _base(dataset)
    drop = f", {base.drop} drop" if dataset == "path-loss" else ""
    return base.with_overrides(
        name=name,
        num_bs=num_bs,
        num_channels=quota,
        min_rate=rate_mbps * 1e6,
        description=(
            f"power-control paper sweep: {dataset}{drop}, B={num_bs}, Q={quota}, "
            f"U={num_bs * quota}, {rate_mbps:g} Mbit/s"
        ),
    )


def users_scenario(dataset: str, num_users: float) -> Scenario:
    """Figs. 4-6: ``B = 4`` BSs, ``U`` users (a multiple of 4), 2.5 Mbit/s."""
    users = _integer(num_users, "the number of users U", NUM_BS)
    if users % NUM_BS:
        raise ValueError(f"points: U must be a multiple of B = {NUM_BS}, got {users}")
    return _sized(dataset, NUM_BS, users // NUM_BS, RATE_MBPS, f"fig4-6-{dataset}-U{users}")


def rate_scenario(dataset: str, rate_mbps: float) -> Scenario:
    """Fig. 9: ``B = 4``, ``U = 12``, minimum rate ``rate_mbps`` [Mbit/s] (> 0)."""
    if not math.isfinite(rate_mbps) or rate_mbps <= 0:
        raise ValueError(f"points: the minimum rate must be > 0 Mbit/s, got {rate_mbps:g}")
    return _sized(dataset, NUM_BS, FIG9_QUOTA, rate_mbps, f"fig9-{dataset}-alpha{rate_mbps:g}")


def bs_scenario(dataset: str, num_bs: float) -> Scenario:
    """Fig. 10: ``B`` BSs (>= 2) with ``Q = 2`` users each, 2.5 Mbit/s."""
    count = _integer(num_bs, "the number of BSs B", 2)
    return _sized(dataset, count, FIG10_QUOTA, RATE_MBPS, f"fig10-{dataset}-B{count}")


SWEEPS: dict[str, Sweep] = {
    "fig4-6": Sweep(
        name="fig4-6",
        figure="Figs. 4-6",
        title="sum rate, QoS violation and time per sample vs the number of users, B = 4",
        x_key="num_users",
        x_label="number of users U (B = 4, U = 4 Q)",
        folder_tag="U",
        datasets=("gaussian", "path-loss"),
        quick_points=(4.0, 8.0, 12.0),
        full_points=(4.0, 8.0, 12.0, 20.0),
        scenario=users_scenario,
        paper_claims=(
            "DIPNet and DEPNet reach a sum rate close to GP with zero QoS violations on both "
            "data sets; on the path-loss data GP is ahead and the gap grows with U.",
            "DIPNet+FW surpasses GP on every data set and is close to the genetic algorithm.",
            "PNet has the lowest sum rate; its violation probability grows with U and is much "
            "higher on the path-loss data.",
            "GP's time grows steeply with U; DEPNet is faster than DIPNet; DIPNet+FW is slower "
            "than the other networks but faster than GP.",
        ),
    ),
    "fig9": Sweep(
        name="fig9",
        figure="Fig. 9",
        title="sum rate, QoS violation and time per sample vs the minimum rate, B = 4, U = 12",
        x_key="min_rate_mbps",
        x_label="minimum rate alpha [Mbit/s] (B = 4, U = 12)",
        folder_tag="alpha",
        datasets=("path-loss",),
        quick_points=(1.0, 2.5, 5.0),
        full_points=(1.0, 2.5, 5.0, 7.5, 10.0),
        scenario=rate_scenario,
        paper_claims=(
            "The trends of Figs. 4-6 hold: DIPNet and DEPNet reach zero QoS violations at "
            "every minimum rate, at a lower computation time than the benchmarks.",
        ),
    ),
    "fig10": Sweep(
        name="fig10",
        figure="Fig. 10",
        title="sum rate, QoS violation and time per sample vs the number of BSs, Q = 2",
        x_key="num_bs",
        x_label="number of BSs B (Q = 2, U = 2 B)",
        folder_tag="B",
        datasets=("path-loss",),
        quick_points=(2.0, 4.0, 6.0),
        full_points=(2.0, 3.0, 4.0, 5.0, 6.0),
        scenario=bs_scenario,
        paper_claims=(
            "The trends of Figs. 4-6 hold: DIPNet and DEPNet reach zero QoS violations for "
            "every number of BSs, at a lower computation time than the benchmarks.",
        ),
    ),
}
"""The registered sweeps by suite name. The paper does not print the x values of its
figures: the sizes of Figs. 4-6 are those of its Gaussian data sets (``B = 4``, ``Q`` = 1, 2,
3, 5), the rates and BS counts of Figs. 9 and 10 are our choice."""


def get_sweep(name: str) -> Sweep:
    """The sweep of suite ``name`` (ValueError naming the registered ones)."""
    if name not in SWEEPS:
        raise ValueError(f"suite: unknown sweep {name!r}; sweeps: {', '.join(SWEEPS)}")
    return SWEEPS[name]


def folder_name(sweep: Sweep, dataset: str, value: float) -> str:
    """``<dataset>-<tag><value>``, e.g. ``path-loss-U12``."""
    return f"{dataset}-{sweep.folder_tag}{value:g}"


# ---------------------------------------------------------------------------- options
@dataclass(frozen=True)
class SweepSettings:
    """What one run of a sweep does (resolved from :class:`SuiteOptions`)."""

    points: tuple[float, ...]
    methods: tuple[str, ...]
    samples: int
    splits: tuple[float, float, float]
    train_config: TrainConfig


def settings(sweep: Sweep, options: SuiteOptions) -> SweepSettings:
    """Resolve and validate the options before anything is written.

    Raises:
        ValueError: a flag the sweeps do not take (``configs``), an invalid point, an unknown
            method, or too few samples for the splits; the message names the option.
    """
    from feasnet import solvers

    if options.configs is not None:
        raise ValueError(f"configs: the {sweep.name} suite takes --points, not --configs")
    points = tuple(sorted(float(p) for p in (options.points or (
        sweep.full_points if options.full else sweep.quick_points
    ))))  # fmt: skip
    if len(set(points)) != len(points):
        raise ValueError(f"points: repeated value in {', '.join(f'{p:g}' for p in points)}")
    for dataset in sweep.datasets:
        for point in points:
            sweep.scenario(dataset, point)  # raises for a bad value
    methods = tuple(dict.fromkeys(options.methods or DEFAULT_METHODS))
    known = set(solvers.available("power-control")) | set(METHODS)
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(
            f"methods: unknown {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    if REFERENCE not in methods:
        methods += (REFERENCE,)
    samples = options.samples or (FULL_SAMPLES if options.full else QUICK_SAMPLES)
    splits = FULL_SPLITS if options.full else QUICK_SPLITS
    try:
        sizes = storage.split_sizes(samples, storage.validate_splits(splits))
    except ValueError:
        sizes = (0, 0, 0)
    if min(sizes) < 1:
        raise ValueError(
            f"samples: {samples} instances leave a split of {splits} empty; give at least 20"
        )
    epochs = options.epochs or (FULL_EPOCHS if options.full else QUICK_EPOCHS)
    return SweepSettings(
        points=points,
        methods=methods,
        samples=samples,
        splits=splits,
        train_config=TrainConfig(epochs=epochs, seed=options.seed),
    )


# ---------------------------------------------------------------------------- running
def solve_point(
    sweep: Sweep,
    dataset: str,
    value: float,
    run_dir: Path,
    chosen: SweepSettings,
    options: SuiteOptions,
) -> list[dict[str, Any]]:
    """Generate, solve, train and evaluate one (data set, point); one row per method.

    Rows are :func:`feasnet.bench.report.metric_rows` plus ``dataset``, ``x`` (the swept
    value), ``num_bs``, ``num_channels``, ``num_users``, ``min_rate_mbps``, ``folder``.
    """
    scenario = sweep.scenario(dataset, value)
    folder = run_dir / folder_name(sweep, dataset, value)
    path = ensure_dataset_file(  # raises GenerationError for targets too rarely attainable
        folder / "dataset.h5",
        scenario,
        chosen.samples,
        options.seed,
        chosen.splits,
        options.force,
        options.log,
    )
    read, _ = storage.read_dataset(path, "test")
    instances = cast(PowerControlInstances, read)
    forget_stale_results(folder, path, "test", chosen.train_config, options.log, options.force)
    results = solve_methods(
        folder,
        path,
        instances,
        chosen.methods,
        options.workers,
        chosen.train_config,
        options.log,
        options.rtol,
        options.guard,
        label=f"{folder.name} ",
    )
    reference, baseline = results[REFERENCE], results.get(BASELINE)
    metrics = [evaluate(results[m], reference=reference, baseline=baseline) for m in chosen.methods]
    fields = {
        "dataset": dataset,
        "x": value,
        "num_bs": scenario.num_bs,
        "num_channels": scenario.num_channels,
        "num_users": scenario.num_users,
        "min_rate_mbps": scenario.min_rate / 1e6,
        "folder": folder.name,
    }
    return [{**fields, **row} for row in report.metric_rows(metrics)]


def run(sweep: Sweep | str, options: SuiteOptions) -> list[dict[str, Any]]:
    """Run ``sweep`` into ``options.run_dir`` and return its rows (see :func:`solve_point`).

    Defaults (quick): :attr:`Sweep.quick_points`, 600 instances per point (480 / 60 / 60),
    3 epochs. ``options.full``: the paper's scale, :attr:`Sweep.full_points`, 100,000
    instances (90/5/5), 20 epochs. ``options.points`` / ``methods`` / ``samples`` /
    ``epochs`` override. Everything finished is reused on a rerun (resume). A point whose
    data cannot be generated (:class:`GenerationError`) is recorded in ``skipped`` and the
    sweep goes on.
    """
    sweep = get_sweep(sweep) if isinstance(sweep, str) else sweep
    chosen = settings(sweep, options)
    run_dir = options.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    point_seconds: dict[str, float] = {}
    pairs = [(d, p) for d in sweep.datasets for p in chosen.points]
    for index, (dataset, value) in enumerate(pairs):
        name = folder_name(sweep, dataset, value)
        options.log(f"{sweep.name}: {name} ({index + 1}/{len(pairs)})")
        start = time.perf_counter()
        try:
            rows += solve_point(sweep, dataset, value, run_dir, chosen, options)
        except GenerationError as error:
            skipped.append({"dataset": dataset, "x": value, "reason": str(error)})
            options.log(f"{name}: not generated: {error}")
        point_seconds[name] = time.perf_counter() - start
        payload = {
            "suite": sweep.name,
            "figure": sweep.figure,
            "complete": index + 1 == len(pairs),
            "full": options.full,
            "x_key": sweep.x_key,
            "x_label": sweep.x_label,
            "datasets": list(sweep.datasets),
            "points": list(chosen.points),
            "methods": list(chosen.methods),
            "samples_per_point": chosen.samples,
            "splits": list(chosen.splits),
            "seed": options.seed,
            "reference": REFERENCE,
            "baseline": BASELINE,
            "rtol": options.rtol,
            "guard": options.guard,
            "train_config": chosen.train_config.model_dump(mode="json"),
            "seconds": time.perf_counter() - started,
            "point_seconds": point_seconds,
            "machine": report.machine(options.workers),
            "paper_claims": list(sweep.paper_claims),
            "skipped": skipped,
            "results": rows,
        }
        report.write_json(run_dir / "results.json", payload)
    write_reports(run_dir, payload, options.log)
    return rows


# ---------------------------------------------------------------------------- reports
TABLES: list[tuple[str, str]] = [
    ("mean_objective_mbps", "Average network sum rate [Mbit/s] (violations count as 0)"),
    ("percent_of_reference", "Sum rate in % of SCA (reference) on the same instances"),
    ("violation_probability", "QoS violation probability"),
    ("time_per_sample_ms", "Time per sample [ms]"),
    ("num_not_converged", "Test instances not converged (methods that report it)"),
]
PANELS: dict[str, tuple[str, bool]] = {
    "mean_objective_mbps": ("average network sum rate [Mbit/s]\n(violations count 0)", False),
    "violation_probability": ("QoS violation probability", False),
    "time_per_sample_ms": ("time per sample [ms], log scale", True),
    "percent_of_reference": ("sum rate in % of SCA", False),
}
"""Row key -> (axis label, log axis) of each plotted quantity."""


def _methods(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in rows))


def pivot_table(rows: list[dict[str, Any]], dataset: str, key: str, x_key: str = "x") -> str:
    """Markdown table of one data set: a line per method, a column per swept value
    (mean ± standard error)."""
    mine = [r for r in rows if r["dataset"] == dataset]
    points = sorted({r[x_key] for r in mine})
    by = {(r["method"], r[x_key]): r for r in mine}
    ns = {p: next(r["num_instances"] for r in mine if r[x_key] == p) for p in points}
    body = report.cell_grid(by, _methods(mine), points, key)
    return report.grid_markdown(["method"], [f"{p:g} (n={ns[p]})" for p in points], body)


def measured_summary(rows: list[dict[str, Any]]) -> list[str]:
    """What the run measured, per data set: each method's largest violation probability and
    its time per sample and % of SCA from the first to the last swept value."""
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        for method in _methods(mine):
            own = sorted((r for r in mine if r["method"] == method), key=lambda r: r["x"])
            worst = max(report.number(r["violation_probability"]) for r in own)
            first, last = own[0], own[-1]
            lines.append(
                f"{dataset}, {method}: largest violation probability {worst:.4f}; "
                f"{report.number(first['percent_of_reference']):.1f} -> "
                f"{report.number(last['percent_of_reference']):.1f} % of SCA and "
                f"{report.number(first['time_per_sample_ms']):.3g} -> "
                f"{report.number(last['time_per_sample_ms']):.3g} ms per sample from "
                f"{first['x']:g} to {last['x']:g}"
            )
    return lines


def _panel(
    ax: Any, rows: list[dict[str, Any]], key: str, x_label: str, title: str | None = None
) -> None:
    """One quantity against the swept value, one line per method (standard-error bars)."""
    label, log_axis = PANELS[key]
    points = sorted({r["x"] for r in rows})
    methods = _methods(rows)
    span = max(points[-1] - points[0], 1.0) if points else 1.0
    offsets = dict(zip(methods, report.x_offsets(len(methods), 0.5 * span), strict=True))
    by = {(r["method"], r["x"]): r for r in rows}
    for method in methods:
        found = [(p, by[(method, p)]) for p in points if (method, p) in by]
        xs = [p + offsets[method] for p, _ in found]
        ys = [report.number(r.get(key)) for _, r in found]
        es = [report.number(r.get(f"{key}_se")) for _, r in found]
        errors = [e if math.isfinite(e) else 0.0 for e in es]
        if log_axis:  # keep the lower bar above zero on a log axis
            errors = [
                min(e, 0.9 * y) if math.isfinite(y) else 0.0
                for e, y in zip(errors, ys, strict=True)
            ]
        kind, timing = report.row_kind(found[0][1])
        color = report.method_color(method)
        ax.errorbar(
            xs,
            ys,
            yerr=errors,
            capsize=3,
            linestyle="--" if method == REFERENCE else "-",
            lw=1.3,
            markersize=6,
            label=LABELS.get(method, method),
            **report.marker_style(kind, timing, color),
        )
    if log_axis:
        ax.set_yscale("log")
    if key == "violation_probability":
        worst = max((report.number(r.get(key)) for r in rows), default=0.0)
        ax.set_ylim(-0.02, max(0.1, 1.15 * worst if math.isfinite(worst) else 0.1))
    ax.set_xticks(points, [f"{p:g}" for p in points])
    ax.set_xlabel(x_label)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)


QUANTITIES = ("mean_objective_mbps", "violation_probability", "time_per_sample_ms")
"""The three quantities of every figure: sum rate, violation probability, time per sample."""
PER_QUANTITY_FILES = {"fig4-6": ("fig4.png", "fig5.png", "fig6.png")}
"""PNG names of sweeps over several data sets, one PNG per quantity (the paper's figures)."""


def figure_layouts(payload: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """``[(file name, [(dataset, key), ...]), ...]``: the PNGs of a run and their panels.

    Two data sets (``fig4-6``): one PNG per quantity as in the paper (``fig4.png`` sum rate,
    ``fig5.png`` violation, ``fig6.png`` time; Gaussian left, path loss right). One data set:
    ``<suite>.png`` with sum rate, violation and time side by side. Both add
    ``<suite>-percent.png``, the sum rate in % of SCA per data set.
    """
    suite = str(payload.get("suite"))
    datasets = list(payload.get("datasets") or [])
    percent = (f"{suite}-percent.png", [(d, "percent_of_reference") for d in datasets])
    if len(datasets) > 1:
        names = PER_QUANTITY_FILES.get(suite) or tuple(f"{suite}-{k}.png" for k in QUANTITIES)
        return [
            (name, [(d, key) for d in datasets])
            for name, key in zip(names, QUANTITIES, strict=True)
        ] + [percent]
    return [(f"{suite}.png", [(d, key) for d in datasets for key in QUANTITIES]), percent]


def figure(path: Path, payload: dict[str, Any], panels: list[tuple[str, str]]) -> None:
    """One PNG: the given (data set, quantity) panels side by side, one legend below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [dict(r) for r in payload["results"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (dataset, key) in zip(axes[0], panels, strict=True):
        mine = [r for r in rows if r["dataset"] == dataset]
        if not mine:
            ax.text(0.5, 0.5, f"no {dataset} results", transform=ax.transAxes, ha="center")
            continue
        _panel(ax, mine, key, str(payload.get("x_label", "x")), title=f"{dataset} data")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=9)
    n = sorted({r["num_instances"] for r in rows})
    fig.suptitle(
        f"{payload.get('figure')} of the power-control paper, reproduced: "
        f"n = {', '.join(map(str, n))} test instances per point, violations at rtol "
        f"{payload.get('rtol', DEFAULT_RTOL):g}\nsquare = classical, circle = learned, hollow "
        "= timed per batch; bars: ± standard error",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.09, 1, 0.97))
    with report.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def markdown_report(payload: dict[str, Any], pngs: list[str]) -> str:
    """The run's ``report.md``."""
    rows = [dict(r) for r in payload["results"]]
    train = payload.get("train_config") or {}
    sections = [
        f"# `{payload.get('suite')}`: {payload.get('figure')} of the power-control paper",
        f"Swept: {payload.get('x_label')}. {payload.get('samples_per_point')} feasible instances "
        f"per point (splits {payload.get('splits')}), at most {train.get('epochs')} training "
        f"epochs, seed {payload.get('seed')}. Cells are mean ± standard error over the n test "
        f"instances; sum rates count a violating allocation as zero; violations by the float64 "
        f"check at rtol {payload.get('rtol', DEFAULT_RTOL):g}"
        + (" after the guard" if payload.get("guard") else " (guard off)")
        + ". SCA (iterated to convergence) is the reference of '% of SCA'; it is not in the "
        "paper's figures. Learned methods are timed per batch (batch time / n).",
    ]
    if not payload.get("complete", True):
        sections.append("**Incomplete run**: rerun with `--resume` to finish the remaining points.")
    for dataset in payload.get("datasets") or []:
        if not any(r["dataset"] == dataset for r in rows):
            continue
        sections.append(f"## {dataset} data")
        for key, title in TABLES:
            if key == "num_not_converged" and not any(r.get(key) is not None for r in rows):
                continue
            sections.append(f"### {title}\n\n{pivot_table(rows, dataset, key)}")
    for item in payload.get("skipped") or []:
        sections.append(f"Not generated: {item['dataset']} {item['x']:g}: {item['reason']}")
    sections += report.closing_sections(
        measured_summary(rows), payload.get("paper_claims"), payload.get("seconds")
    )
    sections.append("\n\n".join(f"![{Path(p).stem}]({p})" for p in pngs))
    return "\n\n".join(sections) + "\n"


def write_reports(run_dir: Path, payload: dict[str, Any], log: Log = print) -> list[Path]:
    """Print the tables and write ``results.csv``, ``report.md``, the figure PNGs and each
    point's ``training.png`` from a ``results.json`` payload (``feasnet report``)."""
    rows = [dict(r) for r in payload.get("results") or []]
    written = [run_dir / "results.csv", run_dir / "report.md"]
    report.write_csv(written[0], rows)
    pngs: list[str] = []
    if rows:
        for dataset in payload.get("datasets") or []:
            if any(r["dataset"] == dataset for r in rows):
                log(f"{dataset}: % of SCA\n{pivot_table(rows, dataset, 'percent_of_reference')}")
        for name, panels in figure_layouts(payload):
            figure(run_dir / name, payload, panels)
            written.append(run_dir / name)
            pngs.append(name)
        for folder in dict.fromkeys(r["folder"] for r in rows):
            png = report.training_curves_of(
                run_dir / folder / "models", run_dir / folder / "training.png"
            )
            if png is not None:
                written.append(png)
    report.write_text(written[1], markdown_report(payload, pngs))
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written
