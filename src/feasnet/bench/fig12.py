"""Fig. 12 of the power-control paper: DEPNet on convex and non-convex QoS constraints.

The paper trains DEPNet (``correction+mlp``) on three formulations of the users' requirement
in a path-loss network with ``B = 4`` BSs and ``U = 8`` users (``Q = 2``) and plots the
average network sum rate (left) and the QoS violation probability (right) against the
requirement:

(i) ``rate``: the non-linear rows ``R_bq(P) >= alpha_bq`` (300 Newton steps at test),
(ii) ``linear-rate``: the same set written as ``C p >= d`` (100 Newton steps at test),
(iii) ``energy-efficiency``: ``R_bq(P) >= ee_bq P_bq`` (300 Newton steps at test).

The sweep. Every point uses the **same channels**: drawn once from the path-loss scenario and
kept when they are feasible at the largest requirement of the sweep (:data:`CHANNEL_RATE_MBPS`),
hence at every smaller one. The sum rate then moves only because the requirement does (with a
fresh draw per point, a higher requirement would also keep only the better channels and raise
the sum rate). At minimum rate ``alpha`` the rate formulations use the targets ``alpha``; the
energy-efficiency formulation (no minimum rate) uses ``ee = alpha Q / Pmax`` [bit/J], the
energy efficiency of a user who gets exactly ``alpha`` from its fair share ``Pmax / Q`` of its
BS's budget (:func:`energy_efficiency_of`). The paper gives no EE values.

For every point the suite writes, each file atomically and reused on a rerun:

``rate-<alpha>/dataset.h5`` (targets ``alpha``; formulations (i) and (ii)),
``rate-<alpha>/models/depnet-rate/``, ``.../models/depnet-linear-rate/``,
``rate-<alpha>/solutions/{sca,depnet-rate,depnet-linear-rate}.npz``,
``ee-<ee>/dataset.h5``, ``ee-<ee>/models/depnet-energy-efficiency/``,
``ee-<ee>/solutions/{sca,depnet-energy-efficiency}.npz`` and each folder's ``training.png``;
then ``results.json``, ``results.csv``, ``report.md`` and ``fig12.png`` for the sweep.

SCA is the reference of each data set: on ``rate-<alpha>`` it solves the rate set (the one
feasible set of (i) and (ii)), on ``ee-<ee>`` the energy-efficiency set. Violations are counted
by the float64 check (relative tolerance ``rtol``); a violating allocation counts as zero sum
rate, as in the paper.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch

from feasnet.bench import report
from feasnet.bench.comparison import forget_stale_results
from feasnet.bench.runner import (
    reusable_dataset,
    solve_methods,
    train_once,
    warm_model_result,
)
from feasnet.data import storage
from feasnet.data.generate import generate
from feasnet.data.presets import Scenario, get_preset
from feasnet.methods import MethodConfig, get_method
from feasnet.metrics import evaluate
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import DEFAULT_RTOL
from feasnet.problems.power_control_problem import PowerControlProblem
from feasnet.solvers.result import Result
from feasnet.training import TrainConfig, load_model

Log = Callable[[str], Any]

FORMULATIONS = ("rate", "linear-rate", "energy-efficiency")
"""The paper's (i), (ii), (iii), named by the constraint set DEPNet trains on."""
LABELS = {
    "rate": "(i) rate, non-linear: R >= alpha",
    "linear-rate": "(ii) rate, linear: C p >= d",
    "energy-efficiency": "(iii) energy efficiency: R >= ee P",
}
TEST_NEWTON_STEPS = {"rate": 300, "linear-rate": 100, "energy-efficiency": 300}
"""Newton steps of the correction at test time (the paper: 100 for the linear form, 300 for
the two non-convex ones)."""
REFERENCE = "sca"
METHOD = "depnet"

NUM_BS = 4
QUOTA = 2
"""``B = 4`` BSs with ``Q = 2`` channels each: the paper's ``U = 8`` users."""
BASE_PRESET = "table2-8"
"""Path-loss scenario the channels come from (its ``B = 4``; ``Q`` set to 2)."""
CHANNEL_RATE_MBPS = 4.0
"""Channels are kept when feasible at this minimum rate, the top of the sweep; every point's
requirement must be at most this."""

QUICK_POINTS = (0.5, 2.0, 4.0)
FULL_POINTS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
"""Minimum rates [Mbit/s] of the quick default and of ``full``."""
QUICK_SAMPLES = 1000
FULL_SAMPLES = 100_000
"""Instances per point (all splits)."""
QUICK_EPOCHS = 5
FULL_EPOCHS = 20
QUICK_SPLITS = (0.8, 0.1, 0.1)
FULL_SPLITS = (0.9, 0.05, 0.05)
"""Train / validation / test fractions. Quick: 100 test instances of 1,000; full: the
paper's-size 100,000 with the default 90/5/5 split (5,000 test instances)."""

PAPER_CLAIMS = (
    "DEPNet handles all three formulations (the correction works on non-convex constraints).",
    "Zero QoS violations for the data-rate constraint, both non-linear (i) and linear (ii).",
    "Sum rate decreases as the requirement increases.",
)
"""What the paper states about its Fig. 12 (section VIII-C); it prints no numbers."""


# ---------------------------------------------------------------------------- sweep setup
def energy_efficiency_of(rate_mbps: float, pmax: float, quota: int = QUOTA) -> float:
    """The EE requirement [bit/J] paired with minimum rate ``rate_mbps``: the ratio ``R / P``
    of a user who gets exactly that rate from its fair share ``pmax / quota`` [W]."""
    return rate_mbps * 1e6 * quota / pmax


def base_scenario() -> Scenario:
    """The channel scenario: path loss, ``B = 4``, ``Q = 2``, filtered at
    :data:`CHANNEL_RATE_MBPS`."""
    base = get_preset(BASE_PRESET)
    assert isinstance(base, Scenario)
    return base.with_overrides(
        name=f"fig12-channels-{CHANNEL_RATE_MBPS:g}",
        num_channels=QUOTA,
        min_rate=CHANNEL_RATE_MBPS * 1e6,
        drop="uniform",  # the paper's drop (the table2 presets drop users around their BS)
        description=(
            f"power-control paper, Fig. 12: path loss, {NUM_BS} BSs, {NUM_BS * QUOTA} users, "
            f"channels feasible at {CHANNEL_RATE_MBPS:g} Mbit/s"
        ),
    )


def point_scenarios(rate_mbps: float) -> dict[str, Scenario]:
    """``{"rate": ..., "energy-efficiency": ...}``: the scenarios of one sweep point (the
    channel scenario with its targets replaced)."""
    base = base_scenario()
    ee = energy_efficiency_of(rate_mbps, base.pmax)
    note = f"; channels drawn feasible at {CHANNEL_RATE_MBPS:g} Mbit/s"
    return {
        "rate": base.with_overrides(
            name=f"fig12-sweep-rate-{rate_mbps:g}",
            min_rate=rate_mbps * 1e6,
            description=f"Fig. 12 sweep: minimum rate {rate_mbps:g} Mbit/s{note}",
        ),
        "energy-efficiency": base.with_overrides(
            name=f"fig12-sweep-ee-{ee / 1e6:g}",
            min_rate=0.0,
            min_energy_efficiency=ee,
            description=(
                f"Fig. 12 sweep: R >= {ee / 1e6:g} Mbit/J x P (= {rate_mbps:g} Mbit/s at "
                f"Pmax/Q), no minimum rate{note}"
            ),
        ),
    }


def with_targets(instances: PowerControlInstances, scenario: Scenario) -> PowerControlInstances:
    """``instances`` (same channels) with the scenario's minimum rate and energy efficiency."""
    ee = scenario.min_energy_efficiency
    return dataclasses.replace(
        instances,
        min_rate=torch.full_like(instances.min_rate, scenario.min_rate),
        min_energy_efficiency=None if ee is None else torch.full_like(instances.min_rate, ee),
    )


def point_folders(rate_mbps: float) -> dict[str, str]:
    """Folder names of one point's two data sets, by data-set kind."""
    ee = energy_efficiency_of(rate_mbps, base_scenario().pmax)
    return {"rate": f"rate-{rate_mbps:g}", "energy-efficiency": f"ee-{ee / 1e6:g}"}


def check_points(points: Sequence[float]) -> tuple[float, ...]:
    """The requirements, validated: positive, at most :data:`CHANNEL_RATE_MBPS`, no repeats.

    Raises:
        ValueError: a one-line message naming the bad value.
    """
    values = tuple(float(v) for v in points)
    if not values:
        raise ValueError("points: give at least one minimum rate [Mbit/s]")
    bad = [v for v in values if not (0 < v <= CHANNEL_RATE_MBPS) or not math.isfinite(v)]
    if bad:
        raise ValueError(
            f"points: minimum rates must lie in (0, {CHANNEL_RATE_MBPS:g}] Mbit/s (the channels "
            f"are drawn feasible at {CHANNEL_RATE_MBPS:g} Mbit/s), got {bad[0]:g}"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"points: repeated value in {', '.join(f'{v:g}' for v in values)}")
    return tuple(sorted(values))


def check_samples(samples: int, splits: tuple[float, float, float]) -> int:
    """``samples``, validated: every split of ``splits`` must get at least one instance.

    Raises:
        ValueError: a one-line message saying how many instances are needed.
    """

    def fits(n: int) -> bool:
        try:
            storage.split_sizes(n, storage.validate_splits(splits))
        except ValueError:
            return False
        return True

    if not fits(samples):
        smallest = next(n for n in itertools.count(samples + 1) if fits(n))
        raise ValueError(
            f"samples: {samples} instances leave a split empty; give at least {smallest}"
        )
    return samples


def depnet_config(formulation: str) -> MethodConfig:
    """DEPNet with the paper's test-time Newton steps for ``formulation``."""
    return get_method(
        METHOD,
        layer={"kind": "correction", "options": {"test_steps": TEST_NEWTON_STEPS[formulation]}},
    )


# ---------------------------------------------------------------------------- data
def ensure_datasets(
    out_dir: Path,
    points: Sequence[float],
    samples: int,
    seed: int,
    splits: tuple[float, float, float],
    log: Log = print,
    force: bool = False,
) -> dict[tuple[float, str], Path]:
    """Write (or reuse) every point's two data sets; returns ``{(point, kind): path}``.

    The channels are drawn once (only when some data set is missing or stale) and shared by
    every point. A data set made for other settings is an error unless ``force``.
    """
    check_samples(samples, splits)  # fail before drawing
    paths: dict[tuple[float, str], Path] = {}
    missing: list[tuple[Path, Scenario]] = []
    for point in points:
        folders = point_folders(point)
        for kind, scenario in point_scenarios(point).items():
            path = out_dir / folders[kind] / "dataset.h5"
            paths[(point, kind)] = path
            if not reusable_dataset(path, scenario, samples, seed, splits, force):
                missing.append((path, scenario))
    if not missing:
        log(f"reusing the {len(paths)} data sets of {len(points)} point(s)")
        return paths
    start = time.perf_counter()
    channels, stats = generate(base_scenario(), samples, seed=seed)
    log(
        f"drew {samples} channel sets feasible at {CHANNEL_RATE_MBPS:g} Mbit/s in "
        f"{time.perf_counter() - start:.1f} s (acceptance {stats.acceptance_rate:.1%})"
    )
    for path, scenario in missing:
        instances = with_targets(cast(PowerControlInstances, channels), scenario)
        storage.write_dataset(path, instances, scenario, seed=seed, stats=stats, splits=splits)
        log(f"wrote {path} ({scenario.name})")
    return paths


# ---------------------------------------------------------------------------- solving
def _depnet_result(
    folder: Path,
    formulation: str,
    dataset: Path,
    instances: PowerControlInstances,
    train_config: TrainConfig,
    log: Log,
) -> Result:
    """Train (or reuse) DEPNet on ``formulation``'s constraints and run it on ``instances``
    (trained on ``formulation``'s problem, saved as ``models/depnet-<formulation>``)."""
    name = f"{METHOD}-{formulation}"
    run_dir = folder / "models" / name
    train_once(
        run_dir,
        depnet_config(formulation),
        dataset,
        train_config,
        log,
        problem=PowerControlProblem(formulation),
    )
    model, _ = load_model(run_dir)
    return warm_model_result(model, instances, METHOD)


def _depnet_named(
    formulations: dict[str, str],
    folder: Path,
    dataset: Path,
    instances: PowerControlInstances,
    train_config: TrainConfig,
    log: Log,
    name: str,
) -> Result:
    """:func:`_depnet_result` for the solution name ``depnet-<formulation>``
    (``formulations`` maps it to the formulation)."""
    return _depnet_result(folder, formulations[name], dataset, instances, train_config, log)


def _row(
    point: float,
    formulation: str,
    method: str,
    result: Result,
    reference: Result,
    scenario: Scenario,
) -> dict[str, Any]:
    """One display-ready row (see :func:`feasnet.bench.report.metric_rows`) with the sweep
    fields: ``series`` (method and formulation), ``requirement_mbps`` (the x value), the
    point's minimum rate and EE requirement, and DEPNet's test-time Newton steps."""
    metrics = evaluate(result, reference=reference, baseline=reference)
    row = report.metric_rows([metrics])[0]
    ee = scenario.min_energy_efficiency
    return {
        "series": f"{method} ({formulation})",
        "formulation": formulation,
        "requirement_mbps": point,
        "min_rate_mbps": scenario.min_rate / 1e6,
        "min_energy_efficiency_mbit_per_j": None if ee is None else ee / 1e6,
        "newton_steps": TEST_NEWTON_STEPS[formulation] if method == METHOD else None,
        **row,
    }


def _solve_point(
    out_dir: Path,
    point: float,
    datasets: dict[tuple[float, str], Path],
    workers: int | None,
    train_config: TrainConfig,
    log: Log,
    force: bool,
    rtol: float,
    guard: bool,
) -> list[dict[str, Any]]:
    """The rows of one sweep point: SCA and DEPNet on each of its two data sets."""
    rows = []
    scenarios = point_scenarios(point)
    for kind, folder_name in point_folders(point).items():
        folder, dataset = out_dir / folder_name, datasets[(point, kind)]
        instances, _ = storage.read_dataset(dataset, "test")
        assert isinstance(instances, PowerControlInstances)
        forget_stale_results(folder, dataset, "test", train_config, log, force)
        formulations = ("rate", "linear-rate") if kind == "rate" else ("energy-efficiency",)
        learned = {f"{METHOD}-{formulation}": formulation for formulation in formulations}
        learn = functools.partial(
            _depnet_named, learned, folder, dataset, instances, train_config, log
        )
        results = solve_methods(
            folder,
            dataset,
            instances,
            [REFERENCE, *learned],
            workers,
            train_config,
            log,
            rtol,
            guard,
            label=f"{folder_name} ",
            learn=learn,
        )
        reference = results[REFERENCE]
        rows.append(_row(point, kind, REFERENCE, reference, reference, scenarios[kind]))
        for name, formulation in learned.items():
            rows.append(_row(point, formulation, METHOD, results[name], reference, scenarios[kind]))
    return rows


# ---------------------------------------------------------------------------- entry point
def run(
    out_dir: Path,
    points: Sequence[float] | None = None,
    samples: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    full: bool = False,
    log: Log = print,
    force: bool = False,
    rtol: float = DEFAULT_RTOL,
    guard: bool = False,
) -> list[dict[str, Any]]:
    """Run the Fig. 12 sweep into ``out_dir`` and return its rows.

    Args:
        out_dir: run folder (created; reused to resume).
        points: minimum rates [Mbit/s] in ``(0, 4]`` (default :data:`QUICK_POINTS`, or
            :data:`FULL_POINTS` with ``full``).
        samples: instances per point, all splits (default 1,000; 100,000 with ``full``).
        epochs: maximal training epochs (default 5; 20 with ``full``).
        seed: data and training seed.
        workers: worker processes of SCA.
        full: the paper's scale: 8 points, 100,000 instances, 20 epochs, 90/5/5 split.
        log: where progress lines go.
        force: replace cached data, models and solutions made for other settings (without it
            they are an error).
        rtol, guard: how results are evaluated (:func:`feasnet.bench.runner.checked_result`).

    Returns:
        One row per (point, series), see :func:`_row`.
    """
    chosen = check_points(points or (FULL_POINTS if full else QUICK_POINTS))
    samples = samples or (FULL_SAMPLES if full else QUICK_SAMPLES)
    splits = FULL_SPLITS if full else QUICK_SPLITS
    train_config = TrainConfig(epochs=epochs or (FULL_EPOCHS if full else QUICK_EPOCHS), seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    datasets = ensure_datasets(out_dir, chosen, samples, seed, splits, log, force)
    rows: list[dict[str, Any]] = []
    point_seconds = {}
    for point in chosen:
        log(f"fig12: minimum rate {point:g} Mbit/s")
        start = time.perf_counter()
        rows += _solve_point(
            out_dir, point, datasets, workers, train_config, log, force, rtol, guard
        )
        point_seconds[f"{point:g}"] = time.perf_counter() - start
    payload = {
        "suite": "fig12",
        "figure": "Fig. 12",
        "full": full,
        "points_mbps": list(chosen),
        "energy_efficiency_mbit_per_j": [
            energy_efficiency_of(p, base_scenario().pmax) / 1e6 for p in chosen
        ],
        "channel_rate_mbps": CHANNEL_RATE_MBPS,
        "samples_per_point": samples,
        "splits": list(splits),
        "seed": seed,
        "reference": REFERENCE,
        "newton_steps": TEST_NEWTON_STEPS,
        "rtol": rtol,
        "guard": guard,
        "train_config": train_config.model_dump(mode="json"),
        "scenario": base_scenario().model_dump(mode="json"),
        "seconds": time.perf_counter() - started,
        "point_seconds": point_seconds,
        "machine": report.machine(workers),
        "paper_claims": list(PAPER_CLAIMS),
        "checks": measured_summary(rows),
        "results": rows,
    }
    report.write_json(out_dir / "results.json", payload)
    write_reports(out_dir, payload, log)
    return rows


# ---------------------------------------------------------------------------- summary
def _series(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["series"] for r in rows))


def measured_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the run measured on the paper's claims: violations per DEPNet formulation, and
    whether each series' sum rate falls from the lowest to the highest requirement."""
    violations: dict[str, float] = {}
    for r in rows:
        if r["method"] == METHOD:
            worst = violations.get(r["formulation"], 0.0)
            violations[r["formulation"]] = max(worst, report.number(r["violation_probability"]))
    trend = {}
    for series in _series(rows):
        points = sorted(
            (r["requirement_mbps"], r["mean_objective_mbps"]) for r in rows if r["series"] == series
        )
        if len(points) > 1:
            trend[series] = {
                "first_mbps": points[0][1],
                "last_mbps": points[-1][1],
                "non_increasing": all(b <= a for (_, a), (_, b) in itertools.pairwise(points)),
            }
    return {"max_violation_probability": violations, "sum_rate_trend": trend}


def summary_lines(summary: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The measured summary as sentences."""
    lines = []
    for formulation, worst in (summary.get("max_violation_probability") or {}).items():
        n = sorted({r["num_instances"] for r in rows if r["formulation"] == formulation})
        lines.append(
            f"DEPNet {LABELS.get(formulation, formulation)}: largest violation probability "
            f"{worst:.4f} over the points (n = {', '.join(map(str, n))} per point)"
        )
    for series, t in (summary.get("sum_rate_trend") or {}).items():
        shape = "never increases" if t["non_increasing"] else "does not fall monotonically"
        lines.append(
            f"{series}: sum rate {t['first_mbps']:.2f} -> {t['last_mbps']:.2f} Mbit/s from the "
            f"lowest to the highest requirement ({shape})"
        )
    return lines


# ---------------------------------------------------------------------------- outputs
TABLES: list[tuple[str, str]] = [
    ("mean_objective_mbps", "Average network sum rate [Mbit/s] (violations count as 0)"),
    ("percent_of_reference", "Sum rate in % of SCA on the same instances"),
    ("violation_probability", "QoS violation probability"),
    ("time_per_sample_ms", "Time per sample [ms]"),
    ("num_not_converged", "SCA instances not converged"),
]


def pivot_table(rows: list[dict[str, Any]], key: str) -> str:
    """Markdown table: one line per series, one column per requirement (mean ± s.e.)."""
    points = sorted({r["requirement_mbps"] for r in rows})
    by = {(r["series"], r["requirement_mbps"]): r for r in rows}
    body = report.cell_grid(by, _series(rows), points, key)
    return report.grid_markdown(["series"], [f"{p:g} Mbit/s" for p in points], body)


def markdown_report(payload: dict[str, Any], rows: list[dict[str, Any]], pngs: list[str]) -> str:
    """The run's ``report.md``."""
    steps = payload.get("newton_steps", TEST_NEWTON_STEPS)
    ee = ", ".join(f"{v:g}" for v in payload.get("energy_efficiency_mbit_per_j", []))
    n = sorted({r["num_instances"] for r in rows})
    sections = [
        "# `fig12`: DEPNet on convex and non-convex QoS constraints (power-control paper, Fig. 12)",
        f"Path loss, B = {NUM_BS}, U = {NUM_BS * QUOTA} (Q = {QUOTA}); the same channels at "
        f"every point (drawn feasible at {payload.get('channel_rate_mbps', CHANNEL_RATE_MBPS):g}"
        f" Mbit/s); {payload.get('samples_per_point')} instances per point, test split n = "
        f"{', '.join(map(str, n))}. Requirement: minimum rate alpha [Mbit/s] for (i) and (ii);"
        f" for (iii) ee = alpha Q / Pmax = {ee} Mbit/J. DEPNet's Newton steps at test: "
        + ", ".join(f"{k} {v}" for k, v in steps.items())
        + f". Violations by the float64 check at rtol {payload.get('rtol', DEFAULT_RTOL):g}"
        + (" after the guard" if payload.get("guard") else " (guard off)")
        + "; cells are mean ± standard error over the n test instances; DEPNet is timed per "
        "batch. `sca (rate)` solves the rate set, the one feasible set of (i) and (ii).",
    ]
    for key, title in TABLES:
        if key == "num_not_converged" and not any(r.get(key) is not None for r in rows):
            continue
        sections.append(f"## {title}\n\n{pivot_table(rows, key)}")
    sections += report.closing_sections(
        summary_lines(payload.get("checks") or measured_summary(rows), rows),
        payload.get("paper_claims") or PAPER_CLAIMS,
        payload.get("seconds"),
    )
    sections.append("\n\n".join(f"![{Path(p).parent.name or Path(p).stem}]({p})" for p in pngs))
    return "\n\n".join(sections) + "\n"


STYLE = {
    "depnet (rate)": ("#1f77b4", "-", "DEPNet, (i) rate, non-linear"),
    "depnet (linear-rate)": ("#ff7f0e", "-", "DEPNet, (ii) rate, linear"),
    "depnet (energy-efficiency)": ("#2ca02c", "-", "DEPNet, (iii) energy efficiency"),
    "sca (rate)": ("#000000", "--", "SCA on the rate set (reference of (i), (ii))"),
    "sca (energy-efficiency)": ("#2ca02c", "--", "SCA on the EE set (reference of (iii))"),
}
"""Colour, line and legend label of every series: one colour per formulation (SCA on the
rate set, the reference of (i) and (ii), in black), DEPNet solid, SCA dashed."""


def figure(path: Path, rows: list[dict[str, Any]], payload: dict[str, Any]) -> None:
    """The two panels of the paper's Fig. 12: sum rate (left) and violation probability
    (right) against the requirement, the minimum rate on the bottom axis and the paired EE
    requirement on the top one; standard-error bars; series shifted slightly along x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted({r["requirement_mbps"] for r in rows})
    series = _series(rows)
    span = max(points[-1] - points[0], 1.0)
    offsets = dict(zip(series, report.x_offsets(len(series), 0.5 * span), strict=True))
    pad = 0.12 * span
    by = {(r["series"], r["requirement_mbps"]): r for r in rows}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = [
        (left, "mean_objective_mbps", "average network sum rate [Mbit/s]\n(violations count 0)"),
        (right, "violation_probability", "QoS violation probability"),
    ]
    for ax, key, label in panels:
        for name in series:
            found = [(p, by[(name, p)]) for p in points if (name, p) in by]
            xs = [p + offsets[name] for p, _ in found]
            ys = [report.number(r.get(key)) for _, r in found]
            es = [report.number(r.get(f"{key}_se")) for _, r in found]
            color, line, legend = STYLE.get(name, (report.method_color(name), "-", name))
            kind, timing = report.row_kind(found[0][1])
            ax.errorbar(
                xs,
                ys,
                yerr=[e if math.isfinite(e) else 0.0 for e in es],
                capsize=3,
                linestyle=line,
                lw=1.4,
                markersize=6,
                label=legend,
                **report.marker_style(kind, timing, color),
            )
        ax.set_xlim(points[0] - pad, points[-1] + pad)
        ax.set_xlabel("minimum rate alpha [Mbit/s], formulations (i) and (ii)")
        ax.set_ylabel(label)
        ax.set_xticks(points, [f"{p:g}" for p in points])
        ax.grid(alpha=0.3)
        top = ax.secondary_xaxis("top")
        pmax = payload.get("scenario", {}).get("pmax", base_scenario().pmax)
        top.set_xticks(points, [f"{energy_efficiency_of(p, pmax) / 1e6:g}" for p in points])
        top.set_xlabel("EE requirement ee = alpha Q / Pmax [Mbit/J], formulation (iii)")
    worst = max((report.number(r["violation_probability"]) for r in rows), default=0.0)
    right.set_ylim(-0.02, max(0.1, 1.15 * worst if math.isfinite(worst) else 0.1))
    if worst == 0:
        right.text(
            0.5,
            0.5,
            "no violation by any method at any point",
            transform=right.transAxes,
            ha="center",
            color="#555555",
        )
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    n = sorted({r["num_instances"] for r in rows})
    fig.suptitle(
        f"DEPNet with convex and non-convex QoS constraints, B = {NUM_BS}, U = "
        f"{NUM_BS * QUOTA} (power-control paper, Fig. 12); n = {', '.join(map(str, n))} test "
        f"instances per point, rtol {payload.get('rtol', DEFAULT_RTOL):g}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    with report.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_reports(out_dir: Path, payload: dict[str, Any], log: Log = print) -> list[Path]:
    """Print the tables and write ``results.csv``, ``report.md``, ``fig12.png`` and each data
    set's ``training.png`` from a ``results.json`` payload."""
    rows = [dict(r) for r in payload["results"]]
    for key, title in TABLES[:3]:
        log(f"{title}\n{pivot_table(rows, key)}")
    summary = payload.get("checks") or measured_summary(rows)
    for line in summary_lines(summary, rows):
        log(line)
    written = [out_dir / "results.csv", out_dir / "report.md", out_dir / "fig12.png"]
    report.write_csv(written[0], rows)
    figure(written[2], rows, payload)
    pngs = ["fig12.png"]
    for point in sorted({r["requirement_mbps"] for r in rows}):
        for folder in point_folders(point).values():
            png = report.training_curves_of(
                out_dir / folder / "models", out_dir / folder / "training.png"
            )
            if png is not None:
                written.append(png)
                pngs.append(f"{folder}/training.png")
    report.write_text(written[1], markdown_report(payload, rows, pngs))
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written
