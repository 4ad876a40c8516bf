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
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from feasnet import solvers
from feasnet.atomic import atomic_path, write_text
from feasnet.bench import comparison, report
from feasnet.data.generate import GenerationError
from feasnet.data.presets import get_preset
from feasnet.methods import METHODS
from feasnet.problems.power_control import DEFAULT_RTOL
from feasnet.train import TrainConfig

DEFAULT_SAMPLES = 6000
"""Instances generated per configuration (90/5/5 % train/validation/test): a laptop-sized
suite. The paper uses 100,000."""
DEFAULT_EPOCHS = 10
"""Maximal training epochs per learned method (the paper trains for 20)."""
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
    scenario = get_preset(preset_name(config))
    paper = PAPER_TABLE2[config]
    row: dict[str, Any] = {
        "config": config,
        "preset": scenario.name,
        "num_bs": scenario.num_bs,
        "num_users": scenario.num_users,
        "quota": scenario.num_channels,
        "target_mbps": scenario.min_rate / 1e6,
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
    ``_percent_of_gp`` (NaN where the method did not run or GP is missing)."""
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
        out_dir, rows, methods, samples=samples, epochs=epochs, seed=seed, workers=workers
    )
    log(markdown_tables(rows, methods))
    log(f"wrote {out_dir}/table2.json, table2.csv, table2.md, table2.png")
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
    return (
        f"| {row['config']} | {row['num_bs']} | {row['num_users']} | {row['quota']} | "
        f"{row['target_mbps']:g} |"
    )


def _table(
    rows: list[dict[str, Any]],
    ours: list[tuple[str, str]],
    paper: list[tuple[str, str]],
    fmt: Any,
) -> str:
    """Markdown table: config columns, then ``(key, header)`` columns of ours and the paper's."""
    head = "| ID | B | U | Q | target [Mbit/s] | " + " | ".join(h for _, h in ours + paper) + " |"
    sep = "|---:|---:|---:|---:|---:|" + "---:|" * (len(ours) + len(paper))
    lines = [head, sep]
    for row in rows:
        cells = [fmt(row.get(k)) if row["status"] == "ok" else "n/a" for k, _ in ours]
        cells += [fmt(row.get(k)) for k, _ in paper]
        lines.append(_label(row) + " " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_tables(rows: list[dict[str, Any]], methods: Sequence[str]) -> str:
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
        f"### Violation probability (float64 check, rtol {DEFAULT_RTOL:g})",
        _table(
            rows,
            [(f"{m}_violation_probability", m) for m in methods],
            [],
            lambda v: _fmt(v, ".4f"),
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
) -> None:
    """Write ``table2.json``, ``table2.csv``, ``table2.md`` and ``table2.png`` atomically."""
    clean = [{k: _nan_to_none(v) for k, v in row.items()} for row in rows]
    payload = {
        "suite": "table2",
        "samples_per_config": samples,
        "epochs": epochs,
        "seed": seed,
        "split": "test",
        "rtol": DEFAULT_RTOL,
        "methods": list(methods),
        "baseline": BASELINE,
        "note": COMPARABILITY_NOTE,
        "paper_table2": {str(k): asdict(v) for k, v in PAPER_TABLE2.items()},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "workers": workers,
        },
        "rows": clean,
    }
    report.write_json(out_dir / "table2.json", payload)
    if rows:
        report.write_csv(out_dir / "table2.csv", clean)
    else:
        write_text(out_dir / "table2.csv", "")
    write_text(
        out_dir / "table2.md",
        "# Table II of the power-control paper, reproduced\n\n"
        f"{samples:,} feasible instances per configuration (90/5/5 % train/validation/test, "
        f"results on the test split), at most {epochs} training epochs, seed {seed}. "
        "Learned methods run batched over the test split (time per sample = batch time / "
        "instances); classical solvers time each instance. The paper's columns are copied "
        "from its Table II (100,000 samples, 20 epochs, its own machine and path-loss "
        "constants).\n\n"
        f"{COMPARABILITY_NOTE}\n\n{markdown_tables(rows, methods)}\n\n"
        "![table2](table2.png)\n",
    )
    bar_chart(out_dir / "table2.png", rows, methods)


def bar_chart(path: Path, rows: list[dict[str, Any]], methods: Sequence[str]) -> None:
    """Two panels of grouped bars per configuration: sum rate, and time per sample (log).

    Our methods are solid bars; the paper's DIPNet / DEPNet / GP are hatched bars in the
    colour of the same method of ours.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    colors = plt.get_cmap("tab10").colors
    color = {m: colors[i % len(colors)] for i, m in enumerate(methods)}
    for m in PAPER_METHODS:
        color.setdefault(m, colors[len(color) % len(colors)])
    series = [(m, f"ours: {m}", f"{m}_", False) for m in methods]
    series += [(m, f"paper: {PAPER_LABELS[m]}", f"paper_{m}_", True) for m in PAPER_METHODS]
    x = np.arange(len(rows))
    width = 0.85 / max(1, len(series))
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 1.6 * len(rows) + 4), 8.5), sharex=True)
    panels = [
        ("sum_rate_mbps", "mean sum rate [Mbit/s]\n(violating samples count as 0)", False),
        ("time_ms", "time per sample [ms]", True),
    ]
    for ax, (key, label, log_axis) in zip(axes, panels, strict=True):
        for i, (method, name, prefix, is_paper) in enumerate(series):
            values = [
                row.get(prefix + key, math.nan) if is_paper or row["status"] == "ok" else math.nan
                for row in rows
            ]
            values = [v if v is not None and math.isfinite(v) else math.nan for v in values]
            ax.bar(
                x + (i - (len(series) - 1) / 2) * width,
                values,
                width,
                label=name,
                color=color[method],
                alpha=0.45 if is_paper else 1.0,
                hatch="//" if is_paper else None,
                edgecolor="black" if is_paper else None,
                linewidth=0.4,
            )
        ax.set_ylabel(label)
        if log_axis:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[1].set_xticks(
        x,
        [
            f"{r['config']}: B={r['num_bs']} Q={r['quota']}\n{r['target_mbps']:g} Mbit/s"
            + ("" if r["status"] == "ok" else "\n(not run)")
            for r in rows
        ],
        fontsize=8,
    )
    axes[1].set_xlabel("Table II dataset ID")
    fig.suptitle(
        "Table II: ours (solid) vs the paper (hatched); absolute rates depend on the "
        "path-loss constants",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
