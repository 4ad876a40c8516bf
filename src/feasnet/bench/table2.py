"""Table II suite: every ``table2-K`` preset, our methods next to the power-control paper.

For each configuration ``K`` (dataset ID of Table II of the power-control paper) the suite runs
:func:`feasnet.bench.comparison.run` on preset ``table2-K`` into ``out_dir/table2-K/``, so every
configuration keeps its own data set, models and solutions and an interrupted suite resumes
where it stopped. A configuration whose data cannot be generated (acceptance rate too low,
:class:`~feasnet.data.generate.GenerationError`) gets a row saying so instead of stopping the
suite.

The combined table has one row per configuration: size (``B``, ``U``, ``Q``, rate target),
and for every method our mean sum rate [Mbit/s] (infeasible allocations counted as zero),
violation probability, time per sample [ms] and sum rate in % of GP, next to the paper's
DIPNet / DEPNet / GP sum rates and times (:data:`PAPER_TABLE2`). It is written atomically to
``out_dir/table2.json``, ``table2.csv``, ``table2.md`` and ``table2.png``.

Absolute sum rates are not comparable with the paper's: the paper does not publish the
constants of its path-loss model (ours are in docs/datasets.md), and the rates depend on them.
The comparison that carries over is relative, learned methods against GP within each table.

The ``table2-*`` presets drop each BS's users within 50 m of it (``drop="cell"``,
:mod:`feasnet.channels.path_loss`), where the paper drops users uniformly over the area: with
the uniform drop configuration 5 (6 BSs, 24 users, 5 Mbit/s) accepts about 0.03 % of drawn
instances and cannot be generated. Every row records its drop (``drop``, ``cell_radius_m``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from feasnet import solvers
from feasnet.atomic import atomic_path, write_text
from feasnet.bench import comparison, report
from feasnet.data.generate import GenerationError
from feasnet.data.presets import Scenario, get_preset
from feasnet.methods import METHODS
from feasnet.problems.power_control import DEFAULT_RTOL
from feasnet.training import TrainConfig

DEFAULT_SAMPLES = 6000
"""Instances generated per configuration (90/5/5 % train/validation/test): a laptop-sized
suite. The paper uses 100,000."""
DEFAULT_EPOCHS = 10
"""Maximal training epochs per learned method (the paper trains for 20)."""
FULL_SAMPLES = 100_000
"""Instances per configuration at the paper's scale (``feasnet bench --suite table2 --full``)."""
FULL_EPOCHS = 20
"""Maximal training epochs at the paper's scale."""
ALL_CONFIGS = (1, 2, 3, 4, 5, 6, 7, 8)
DEFAULT_METHODS = ("gp", "sca", "dipnet", "depnet", "dipnet+fw", "depnet+fw")
PAPER_METHODS = ("dipnet", "depnet", "gp")
"""Methods whose results the paper reports in Table II."""
PAPER_LABELS = {"dipnet": "DIPNet", "depnet": "DEPNet", "gp": "GP"}
BASELINE = "gp"
"""Method the relative sum rates (% of GP) refer to, ours and the paper's."""


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table II.

    Attributes:
        num_bs: B, base stations.
        num_users: U = B * Q, users.
        quota: Q, users (channels) per BS.
        target_mbps: minimum rate per user [Mbit/s].
        dipnet_sum_rate_mbps, depnet_sum_rate_mbps, gp_sum_rate_mbps: mean sum rate [Mbit/s].
        dipnet_time_ms, depnet_time_ms, gp_time_ms: computation time per sample [ms].
    """

    num_bs: int
    num_users: int
    quota: int
    target_mbps: float
    dipnet_sum_rate_mbps: float
    dipnet_time_ms: float
    depnet_sum_rate_mbps: float
    depnet_time_ms: float
    gp_sum_rate_mbps: float
    gp_time_ms: float


# Table II of the power-control paper ("A comparison of DIPNet, DEPNet, and optimization
# benchmark in terms of sum-rate (in Mbps) and computation time (in msec)"), path-loss dataset,
# keyed by dataset ID: B, U, Q, target [Mbit/s], then sum rate [Mbit/s] and time [ms] of
# DIPNet, DEPNet and GP, as printed in the paper.
PAPER_TABLE2: dict[int, PaperRow] = {
    1: PaperRow(5, 5, 1, 10.0, 104.15, 2.91, 107.35, 0.69, 119.6, 478.47),
    2: PaperRow(2, 6, 3, 2.5, 243.35, 2.70, 244.6, 0.46, 244.0, 224.22),
    3: PaperRow(4, 20, 5, 5.0, 510.05, 4.06, 515.2, 3.06, 569.6, 7852.19),
    4: PaperRow(4, 20, 5, 2.5, 456.1, 4.02, 458.95, 3.05, 512.9, 7864.58),
    5: PaperRow(6, 24, 4, 5.0, 441.25, 5.85, 444.2, 4.99, 515.4, 35607.32),
    6: PaperRow(6, 24, 4, 2.5, 397.7, 6.05, 399.85, 5.81, 466.55, 36338.41),
    7: PaperRow(5, 5, 1, 2.5, 55.7, 2.92, 57.4, 0.66, 68.35, 530.52),
    8: PaperRow(4, 12, 3, 2.5, 258.7, 3.82, 261.9, 1.73, 297.0, 2244.52),
}

COMPARABILITY_NOTE = (
    "Absolute sum rates are not comparable with the paper's: the paper does not publish the "
    "constants of its path-loss model (ours are in docs/datasets.md), and rates scale with "
    "them. Compare relatively: each method's sum rate in % of GP within the same table."
)
DROP_NOTE = (
    "Users are dropped around their BS (the `cell` drop: uniform within 50 m of it), not "
    "uniformly over the 500 m square as in the paper; with the paper's uniform drop, "
    "configuration 5 accepts about 0.03 % of drawn instances and cannot be generated. The "
    "association and channel assignment are the paper's."
)


def preset_name(config: int) -> str:
    """Preset of Table II dataset ID ``config`` (1..8): ``table2-<config>``."""
    if config not in PAPER_TABLE2:
        raise ValueError(f"configs: unknown Table II dataset ID {config}; choose from 1..8")
    return f"table2-{config}"


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _base_row(config: int) -> dict[str, Any]:
    """Configuration columns and the paper's numbers; our columns are filled in later."""
    scenario = cast(Scenario, get_preset(preset_name(config)))
    paper = PAPER_TABLE2[config]
    row: dict[str, Any] = {
        "config": config,
        "preset": scenario.name,
        "num_bs": scenario.num_bs,
        "num_users": scenario.num_users,
        "quota": scenario.num_channels,
        "target_mbps": scenario.min_rate / 1e6,
        "drop": scenario.drop,
        "cell_radius_m": scenario.cell_radius_m if scenario.drop == "cell" else None,
        "status": "ok",
        "num_test_instances": 0,
        "seconds": math.nan,
    }
    paper_gp = paper.gp_sum_rate_mbps
    for m in PAPER_METHODS:
        rate = getattr(paper, f"{m}_sum_rate_mbps")
        row[f"paper_{m}_sum_rate_mbps"] = rate
        row[f"paper_{m}_time_ms"] = getattr(paper, f"{m}_time_ms")
        row[f"paper_{m}_percent_of_gp"] = 100.0 * rate / paper_gp
    return row


def _fill_ours(row: dict[str, Any], methods: Sequence[str], metrics: dict[str, Any]) -> None:
    """Our columns: ``<method>_sum_rate_mbps``, ``_violation_probability``, ``_time_ms``,
    ``_percent_of_gp`` (NaN where the method did not run or GP is missing), each with its
    standard error in ``<column>_se``; ``<method>_num_not_converged`` (None where the method
    does not report convergence), ``<method>_kind`` and ``<method>_timing``.

    ``metrics`` must have been evaluated with GP as the reference (the ratio's error)."""
    gp = metrics.get(BASELINE)
    gp_rate = gp.mean_objective if gp is not None else math.nan
    for m in methods:
        got = metrics.get(m)
        rate = got.mean_objective if got is not None else math.nan
        row[f"{m}_sum_rate_mbps"] = rate / 1e6
        row[f"{m}_violation_probability"] = (
            got.violation_probability if got is not None else math.nan
        )
        row[f"{m}_time_ms"] = 1e3 * got.time_per_sample if got is not None else math.nan
        row[f"{m}_percent_of_gp"] = 100.0 * rate / gp_rate if gp_rate > 0 else math.nan
        nan = math.nan
        row[f"{m}_sum_rate_mbps_se"] = got.objective_standard_error / 1e6 if got else nan
        row[f"{m}_violation_probability_se"] = got.violation_standard_error if got else nan
        row[f"{m}_time_ms_se"] = 1e3 * got.time_standard_error if got else nan
        row[f"{m}_percent_of_gp_se"] = (
            100.0 * got.ratio_standard_error if got is not None and gp_rate > 0 else nan
        )
        row[f"{m}_num_not_converged"] = got.num_not_converged if got is not None else None
        row[f"{m}_kind"] = report.method_kind(m)
        row[f"{m}_timing"] = (
            None if got is None else ("batched" if got.batched_timing else "per instance")
        )


def run(
    out_dir: Path,
    samples: int = DEFAULT_SAMPLES,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    workers: int | None = None,
    configs: Sequence[int] = ALL_CONFIGS,
    methods: Sequence[str] = DEFAULT_METHODS,
    log: Any = print,
    force: bool = False,
    rtol: float = DEFAULT_RTOL,
    guard: bool = False,
) -> list[dict[str, Any]]:
    """Run the Table II suite into ``out_dir`` and return one row per configuration.

    Args:
        out_dir: suite folder; configuration ``K`` runs in ``out_dir/table2-K/`` (resumable:
            data, finished trainings and solutions found there are reused).
        samples: feasible instances generated per configuration, all splits (the test split
            is 5 % of them). The paper uses 100,000.
        epochs: maximal training epochs of each learned method (paper: 20).
        seed: data and training seed.
        workers: worker processes of the classical solvers (default: all cores).
        configs: Table II dataset IDs to run (1..8).
        methods: classical (``feasnet.solvers.SOLVERS``) and learned
            (``feasnet.methods.METHODS``) method names; include ``gp`` for the % of GP columns.
        log: called with progress messages.
        force: replace cached results made for other settings (without it they are an error).
        rtol, guard: how results are evaluated (see
            :func:`feasnet.bench.runner.checked_result`).

    Returns:
        One dict per configuration, in ``configs`` order: ``config``, ``preset``, ``num_bs``,
        ``num_users``, ``quota``, ``target_mbps`` [Mbit/s], ``status`` (``"ok"`` or
        ``"not generated: <reason>"``), ``num_test_instances``, ``seconds`` (wall time of the
        configuration [s]); per method ``<m>_sum_rate_mbps`` [Mbit/s, violations counted as
        0], ``<m>_violation_probability``, ``<m>_time_ms`` [ms per sample],
        ``<m>_percent_of_gp``; and the paper's ``paper_<m>_sum_rate_mbps``,
        ``paper_<m>_time_ms``, ``paper_<m>_percent_of_gp`` for DIPNet, DEPNet and GP. Values
        that do not exist are NaN (``null`` in the JSON file).

    Raises:
        ValueError: for an unknown configuration ID or method name, or ``samples <= 0``.
    """
    configs = tuple(int(c) for c in configs)
    methods = tuple(m.lower() for m in methods)
    for config in configs:  # fail fast on bad arguments, before hours of work
        preset_name(config)
    known = set(solvers.SOLVERS) | set(METHODS)
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(
            f"methods: unknown {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    if samples <= 0:
        raise ValueError(f"samples: expected > 0, got {samples}")
    out_dir.mkdir(parents=True, exist_ok=True)
    train_config = TrainConfig(epochs=epochs, seed=seed)
    rows: list[dict[str, Any]] = []
    for config in configs:
        row = _base_row(config)
        name = row["preset"]
        log(
            f"=== {name}: B={row['num_bs']}, U={row['num_users']}, Q={row['quota']}, "
            f"target {row['target_mbps']:g} Mbit/s ==="
        )
        start = time.perf_counter()
        try:
            metrics = comparison.run(
                out_dir / name,
                preset=name,
                num_samples=samples,
                seed=seed,
                methods=methods,
                workers=workers,
                log=log,
                train_config=train_config,
                force=force,
                reference=BASELINE,
                rtol=rtol,
                guard=guard,
            )
        except GenerationError as error:
            row["status"] = f"not generated: {error}"
            log(f"{name}: not generated: {error}")
            metrics = []
        row["seconds"] = time.perf_counter() - start
        if metrics:
            row["num_test_instances"] = metrics[0].num_instances
        _fill_ours(row, methods, {m.method: m for m in metrics})
        rows.append(row)
    write_outputs(
        out_dir,
        rows,
        methods,
        samples=samples,
        epochs=epochs,
        seed=seed,
        workers=workers,
        log=log,
        rtol=rtol,
    )
    return rows


# ------------------------------------------------------------------------------ reports
def _fmt(value: Any, digits: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, digits)


def _fmt_time(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _label(row: dict[str, Any]) -> str:
    n = row.get("num_test_instances") or "-"
    return (
        f"| {row['config']} | {row['num_bs']} | {row['num_users']} | {row['quota']} | "
        f"{row['target_mbps']:g} | {n} |"
    )


def _with_se(row: dict[str, Any], key: str, fmt: Any) -> str:
    """``fmt(row[key])`` with ``± fmt(row[key_se])`` when that error is known and > 0."""
    text = fmt(row.get(key))
    se = row.get(f"{key}_se")
    if text != "-" and isinstance(se, int | float) and math.isfinite(se) and se > 0:
        text += f" ± {fmt(se)}"
    return text


def _table(
    rows: list[dict[str, Any]],
    ours: list[tuple[str, str]],
    paper: list[tuple[str, str]],
    fmt: Any,
) -> str:
    """Markdown table: config columns (``n`` = our test instances), then ``(key, header)``
    columns of ours (mean ± standard error) and the paper's."""
    head = (
        "| ID | B | U | Q | target [Mbit/s] | n | " + " | ".join(h for _, h in ours + paper) + " |"
    )
    sep = "|---:|---:|---:|---:|---:|---:|" + "---:|" * (len(ours) + len(paper))
    lines = [head, sep]
    for row in rows:
        cells = [_with_se(row, k, fmt) if row["status"] == "ok" else "n/a" for k, _ in ours]
        cells += [fmt(row.get(k)) for k, _ in paper]
        lines.append(_label(row) + " " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_tables(
    rows: list[dict[str, Any]], methods: Sequence[str], rtol: float = DEFAULT_RTOL
) -> str:
    """Sum rate, % of GP, time per sample and violation probability tables (Markdown)."""
    paper_rate = [(f"paper_{m}_sum_rate_mbps", f"paper {PAPER_LABELS[m]}") for m in PAPER_METHODS]
    paper_pct = [(f"paper_{m}_percent_of_gp", f"paper {PAPER_LABELS[m]}") for m in PAPER_METHODS]
    paper_time = [(f"paper_{m}_time_ms", f"paper {PAPER_LABELS[m]}") for m in PAPER_METHODS]
    parts = [
        "### Mean sum rate [Mbit/s] (violating allocations count as 0)",
        _table(rows, [(f"{m}_sum_rate_mbps", m) for m in methods], paper_rate, _fmt),
        f"### Sum rate in % of {BASELINE.upper()} (the comparable figure)",
        _table(rows, [(f"{m}_percent_of_gp", m) for m in methods], paper_pct, _fmt),
        "### Time per sample [ms]",
        _table(rows, [(f"{m}_time_ms", m) for m in methods], paper_time, _fmt_time),
        f"### Violation probability (float64 check, rtol {rtol:g})",
        _table(
            rows,
            [(f"{m}_violation_probability", m) for m in methods],
            [],
            lambda v: _fmt(v, ".4f"),
        ),
    ]
    if any(r.get(f"{m}_num_not_converged") is not None for r in rows for m in methods):
        parts += [
            "### Test instances not converged",
            _table(
                rows,
                [(f"{m}_num_not_converged", m) for m in methods],
                [],
                lambda v: "-" if v is None else str(v),
            ),
        ]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        parts.append(
            "Configurations without results:\n\n"
            + "\n".join(f"- {r['preset']}: {r['status']}" for r in failed)
        )
    return "\n\n".join(parts)


def write_outputs(
    out_dir: Path,
    rows: list[dict[str, Any]],
    methods: Sequence[str],
    samples: int,
    epochs: int,
    seed: int,
    workers: int | None,
    log: Any = None,
    rtol: float = DEFAULT_RTOL,
) -> list[Path]:
    """Write ``table2.json``, then (:func:`render`) ``table2.csv``, ``table2.md`` and
    ``table2.png`` atomically; ``log`` (if given) gets the Markdown tables."""
    clean = [{k: _nan_to_none(v) for k, v in row.items()} for row in rows]
    payload = {
        "suite": "table2",
        "samples_per_config": samples,
        "epochs": epochs,
        "seed": seed,
        "split": "test",
        "rtol": rtol,
        "methods": list(methods),
        "baseline": BASELINE,
        "note": COMPARABILITY_NOTE,
        "drop_note": DROP_NOTE,
        "paper_table2": {str(k): asdict(v) for k, v in PAPER_TABLE2.items()},
        "machine": report.machine(workers),
        "rows": clean,
    }
    report.write_json(out_dir / "table2.json", payload)
    return [out_dir / "table2.json", *render(out_dir, payload, log=log, subfolders=False)]


def render(
    out_dir: Path, payload: dict[str, Any], log: Any = None, subfolders: bool = True
) -> list[Path]:
    """Write ``table2.csv``, ``table2.md`` and ``table2.png`` from a ``table2.json`` payload.

    With ``subfolders`` the per-configuration reports (``table2-K/``, each a comparison run
    with its own ``results.json``) are re-rendered too. Returns the files written.
    """
    rows = [dict(r) for r in payload.get("rows") or []]
    methods = list(payload.get("methods") or [])
    samples = payload.get("samples_per_config")
    epochs = payload.get("epochs")
    written: list[Path] = []
    if subfolders:
        for row in rows:
            folder = out_dir / str(row.get("preset", ""))
            if row.get("status") == "ok" and (folder / "results.json").is_file():
                sub = report.read_json(folder / "results.json")
                written += comparison.write_reports(folder, sub, log=log or (lambda *a: None))
    csv_path, md_path, png_path = (out_dir / f"table2.{ext}" for ext in ("csv", "md", "png"))
    if rows:
        report.write_csv(csv_path, rows)
    else:
        write_text(csv_path, "")
    samples_text = f"{samples:,}" if isinstance(samples, int) else "?"
    tables = markdown_tables(rows, methods, payload.get("rtol", DEFAULT_RTOL))
    write_text(
        md_path,
        "# Table II of the power-control paper, reproduced\n\n"
        f"{samples_text} feasible instances per configuration (90/5/5 % train/validation/test, "
        f"results on the test split, n instances), at most {epochs} training epochs, seed "
        f"{payload.get('seed')}. Our cells are mean ± standard error over the n test "
        "instances (% of GP: delta method on paired instances). Learned methods run batched "
        "over the test split (time per sample = batch time / instances, no spread measured); "
        "classical solvers time each instance. The paper's columns are copied from its "
        "Table II (100,000 samples, 20 epochs, its own machine and path-loss constants).\n\n"
        f"{COMPARABILITY_NOTE}\n\n{_drop_text(rows, payload)}\n\n{tables}\n\n"
        "![table2](table2.png)\n",
    )
    chart(png_path, rows, methods)
    written += [csv_path, md_path, png_path]
    if log is not None:
        log(tables)
        log(f"wrote {', '.join(str(p) for p in written)}")
    return written


def _drop_text(rows: list[dict[str, Any]], payload: dict[str, Any]) -> str:
    """How users were dropped: the note for cell drops, the drops found when they differ."""
    drops = sorted({str(r.get("drop") or "uniform") for r in rows})
    if drops == ["uniform"]:
        return "Users are dropped uniformly over the area, as in the paper."
    note = str(payload.get("drop_note") or DROP_NOTE)
    if len(drops) > 1:
        note += " Drops by configuration: " + ", ".join(
            f"{r['config']}: {r.get('drop') or 'uniform'}" for r in rows
        )
    return note


TABLE2_ZOOM_FLOOR = 75.0
"""The % of GP panel zooms onto values at or above this (the paper's learned methods sit at
81-100 % of its GP)."""


def chart(path: Path, rows: list[dict[str, Any]], methods: Sequence[str]) -> None:
    """Two panels per configuration: sum rate in % of GP (zoomed, standard-error bars) and
    time per sample on a log axis, ours as points (square = classical, circle = learned;
    hollow = timed per batch), the paper's DIPNet / DEPNet / GP as crosses in the colour of
    the same method of ours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    number = report.number
    x = np.arange(len(rows))
    series = [(m, False) for m in methods] + [(m, True) for m in PAPER_METHODS]
    offsets = report.x_offsets(len(series), 0.75 / 0.12)  # spread over 0.75 of a slot
    fig, axes = plt.subplots(2, 1, figsize=(max(9.0, 1.5 * len(rows) + 5), 9), sharex=True)
    panels = [
        ("percent_of_gp", "sum rate in % of GP\n(violating samples count as 0)", False),
        ("time_ms", "time per sample [ms], log scale", True),
    ]
    percents = [
        number(row.get(f"{'paper_' if paper else ''}{m}_percent_of_gp"))
        for row in rows
        for m, paper in series
        if paper or row.get("status") == "ok"
    ]
    lo, hi = report.zoom_limits(percents, floor=TABLE2_ZOOM_FLOOR)
    for ax, (key, label, log_axis) in zip(axes, panels, strict=True):
        for (method, paper), dx in zip(series, offsets, strict=True):
            if paper and key == "percent_of_gp" and method == BASELINE:
                continue  # the paper's GP in % of itself: 100 by definition
            color = report.method_color(method)
            for i, row in enumerate(rows):
                if not paper and row.get("status") != "ok":
                    continue
                value = number(row.get(f"{'paper_' if paper else ''}{method}_{key}"))
                if not math.isfinite(value):
                    continue
                if key == "percent_of_gp" and value < lo:  # off scale: mark the bottom edge
                    ax.plot([i + dx], [lo], "v", color=color, markersize=7, clip_on=False)
                    ax.annotate(
                        f"{value:.0f}",
                        (i + dx, lo),
                        xytext=(0, 5),
                        textcoords="offset points",
                        ha="center",
                        fontsize=6,
                        color=color,
                    )
                    continue
                if paper:
                    ax.plot([i + dx], [value], "x", color=color, markersize=8, mew=2)
                    continue
                se = number(row.get(f"{method}_{key}_se"))
                kind = row.get(f"{method}_kind") or report.method_kind(method)
                timing = row.get(f"{method}_timing") or "per instance"
                err = [[min(se, 0.9 * value)], [se]] if math.isfinite(se) and se > 0 else None
                ax.errorbar(
                    [i + dx],
                    [value],
                    yerr=err,
                    capsize=2,
                    linestyle="none",
                    markersize=6,
                    **report.marker_style(kind, timing, color),
                )
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        if log_axis:
            ax.set_yscale("log")
        for boundary in x[:-1] + 0.5:
            ax.axvline(boundary, color="#dddddd", lw=0.8)
    axes[0].set_ylim(lo, hi)
    if lo < 100 < hi:
        axes[0].axhline(100, color="#999999", lw=0.8, ls=":")
    handles = [
        Line2D([], [], linestyle="none", marker="o", color=report.method_color(m), label=m)
        for m in methods
    ]
    handles += [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="x",
            mew=2,
            color=report.method_color(m),
            label=f"paper: {PAPER_LABELS[m]}",
        )
        for m in PAPER_METHODS
    ]
    axes[0].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    kind_rows = [
        {"method": m, "kind": r.get(f"{m}_kind"), "timing": r.get(f"{m}_timing")}
        for r in rows
        for m in methods
        if r.get("status") == "ok"
    ]
    report.kind_legend(axes[1], kind_rows, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[1].set_xticks(
        x,
        [
            f"{r['config']}: B={r['num_bs']} Q={r['quota']}\n{r['target_mbps']:g} Mbit/s"
            + (f", n={r['num_test_instances']}" if r["status"] == "ok" else "\n(not run)")
            for r in rows
        ],
        fontsize=8,
    )
    axes[1].set_xlabel("Table II dataset ID")
    fig.suptitle(
        "Table II: ours (points, ± standard error) vs the paper (crosses)\n"
        f"% of GP zoomed onto >= {TABLE2_ZOOM_FLOOR:g} %, values below marked at the bottom edge",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


bar_chart = chart
"""The former name of :func:`chart`."""
