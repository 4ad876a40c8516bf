"""Benchmark reports: a rich table on the console, JSON, CSV, Markdown and a PNG chart."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from feasnet.atomic import atomic_path, write_text

__all__ = [
    "bar_chart",
    "markdown_table",
    "metric_rows",
    "print_table",
    "write_csv",
    "write_json",
    "write_text",
]
from feasnet.evaluate import MethodMetrics

COLUMNS: list[tuple[str, str]] = [
    ("method", "method"),
    ("mean_objective_mbps", "sum rate [Mbit/s] (violations = 0)"),
    ("percent_of_reference", "% of reference"),
    ("violation_probability", "violation prob."),
    ("time_per_sample_ms", "time / sample [ms]"),
    ("speedup_over_baseline", "speed-up"),
]


def metric_rows(metrics: Sequence[MethodMetrics]) -> list[dict[str, Any]]:
    """One flat, display-ready dict per method (rates in Mbit/s, times in ms)."""
    rows = []
    for m in metrics:
        rows.append(
            {
                "method": m.method,
                "num_instances": m.num_instances,
                "mean_objective_mbps": m.mean_objective / 1e6,
                "mean_objective_feasible_mbps": m.mean_objective_feasible / 1e6,
                "percent_of_reference": 100.0 * m.ratio_to_reference,
                "violation_probability": m.violation_probability,
                "rtol": m.rtol,
                "time_per_sample_ms": 1e3 * m.time_per_sample,
                "speedup_over_baseline": m.speedup_over_baseline,
            }
        )
    return rows


def _fmt(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key in ("violation_probability", "violation_rate"):
        return f"{value:.4f}"
    if key.startswith("speedup"):
        return f"{value:.1f}x"
    if key in ("wsr", "wsr_feasible"):
        return f"{value:.3f}"
    if key == "time_per_sample_ms":
        return f"{value:.3g}"
    return f"{value:.2f}"


def print_table(
    rows: list[dict[str, Any]], title: str, columns: Sequence[tuple[str, str]] = COLUMNS
) -> None:
    """Print the comparison as a rich table on stdout (``columns``: (key, header) pairs)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    for key, header in columns:  # escaped: "[ms]" would otherwise be read as markup
        table.add_column(escape(header), justify="left" if key == "method" else "right")
    for row in rows:
        table.add_row(*(_fmt(row[key], key) for key, _ in columns))
    Console(width=max(100, len(title) + 4)).print(table)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The same table as Markdown."""
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |"]
    lines.append("|" + "|".join("---" if k == "method" else "---:" for k, _ in COLUMNS) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[k], k) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write valid JSON (NaN and inf become ``null``)."""
    text = json.dumps(_finite(payload), indent=2, default=_json_default, allow_nan=False)
    write_text(path, text + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return str(value)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def bar_chart(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Three horizontal bar panels: sum rate, violation probability, time per sample (log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["method"] for r in rows]
    height = 1.2 + 0.38 * len(rows)
    fig, axes = plt.subplots(1, 3, figsize=(15, height), sharey=True)
    colors = plt.get_cmap("tab20").colors
    panels = [
        ("mean_objective_mbps", "mean sum rate [Mbit/s]\n(violating samples count as 0)", False),
        ("violation_probability", "violation probability", False),
        ("time_per_sample_ms", "time per sample [ms]", True),
    ]
    positions = list(range(len(rows)))
    for ax, (key, label, log) in zip(axes, panels, strict=True):
        values = [r[key] for r in rows]
        bars = ax.barh(
            positions, values, color=[colors[i % len(colors)] for i in positions], height=0.7
        )
        ax.set_xlabel(label)
        top = max((v for v in values if v == v), default=1.0)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(right=top * 8)
        if key == "violation_probability":
            ax.set_xlim(0, max(0.05, top * 1.3))
        elif not log:
            ax.set_xlim(0, top * 1.2)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                " " + _fmt(value, key),
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                ha="left",
                va="center",
                fontsize=8,
            )
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, names)
    axes[0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
