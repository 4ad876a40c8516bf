"""Benchmark reports: tables (console, Markdown, CSV, JSON), plots, and re-rendering a run.

Tables show every mean as ``mean ± standard error`` next to ``n``, the number of instances
behind it (the CSV and JSON files keep the error in a separate ``<column>_se`` column). Plots
use one colour per method name, the same in every plot (:func:`method_color`), and one marker
per kind of method: squares for classical solvers, circles for learned methods; filled when
the method is timed per instance, hollow when it is timed per batch (batch time / batch size).

:func:`rerender` rebuilds a run folder's tables and plots from its ``results.json`` (or
``table2.json``) without recomputing anything; ``feasnet report RUN_DIR`` calls it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from feasnet.atomic import atomic_path, write_text
from feasnet.metrics import MethodMetrics

__all__ = [
    "bar_chart",
    "markdown_table",
    "method_chart",
    "method_color",
    "metric_rows",
    "print_table",
    "rerender",
    "training_curves",
    "write_csv",
    "write_json",
    "write_text",
]

COLUMNS: list[tuple[str, str]] = [
    ("method", "method"),
    ("num_instances", "n"),
    ("mean_objective_mbps", "sum rate [Mbit/s] (violations = 0)"),
    ("percent_of_reference", "% of reference"),
    ("percent_of_upper_bound", "% of upper bound"),
    ("violation_probability", "violation prob."),
    ("num_not_converged", "not converged"),
    ("time_per_sample_ms", "time / sample [ms]"),
    ("timing", "timing"),
    ("speedup_over_baseline", "speed-up"),
]
"""(row key, header) of the power-control table; a cell shows ``row[key] ± row[key_se]``."""

OPTIONAL_COLUMNS = frozenset({"percent_of_upper_bound", "num_not_converged"})
"""Columns shown only when some row has a value (an upper bound, a convergence report)."""

ZOOM_FLOOR = 90.0
"""Percent panels zoom onto the methods at or above this many percent of the reference."""


# ------------------------------------------------------------------------------ rows
def method_kind(name: str) -> str:
    """``"learned"`` for a method trained with ``feasnet train``, else ``"classical"``."""
    from feasnet.methods import METHODS

    return "learned" if name in METHODS else "classical"


def metric_rows(metrics: Sequence[MethodMetrics]) -> list[dict[str, Any]]:
    """One flat, display-ready dict per method (rates in Mbit/s, times in ms).

    Standard errors are in ``<key>_se``; ``kind`` is classical / learned, ``timing`` per
    instance / batched, ``num_not_converged`` None where the method does not report it.
    """
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
                "mean_objective_mbps_se": m.objective_standard_error / 1e6,
                "percent_of_reference_se": 100.0 * m.ratio_standard_error,
                "percent_of_upper_bound": 100.0 * m.ratio_to_upper_bound,
                "percent_of_upper_bound_se": 100.0 * m.upper_bound_ratio_standard_error,
                "violation_probability_se": m.violation_standard_error,
                "time_per_sample_ms_se": 1e3 * m.time_standard_error,
                "num_not_converged": m.num_not_converged,
                "kind": method_kind(m.method),
                "timing": "batched" if m.batched_timing else "per instance",
            }
        )
    return rows


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if key in ("violation_probability", "violation_rate"):
        return f"{value:.4f}"
    if key.startswith("speedup"):
        return f"{value:.1f}x"
    if key in ("wsr", "wsr_feasible"):
        return f"{value:.3f}"
    if key == "time_per_sample_ms":
        return f"{value:.3g}"
    return f"{value:.2f}"


def machine(workers: int | None) -> dict[str, Any]:
    """What a results file records about where it was measured (timings depend on it)."""
    import platform

    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "workers": workers,
    }


def _labelled_point(
    ax: Any,
    x: float,
    y: float,
    xerr: Any,
    label: str,
    row: Mapping[str, Any],
    color: Any,
    markersize: float,
) -> None:
    """One method's marker (shape by kind and timing) with its error bar and value above it."""
    kind, timing = row_kind(row)
    ax.errorbar(
        [x],
        [y],
        xerr=xerr,
        capsize=3,
        linestyle="none",
        markersize=markersize,
        **marker_style(kind, timing, color),
    )
    ax.annotate(
        label,
        (x, y),
        xytext=(0, 7),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=7,
    )


def cell(row: Mapping[str, Any], key: str) -> str:
    """``row[key]`` formatted, with ``± row[key + '_se']`` when that error is known and > 0."""
    text = _fmt(row.get(key), key)
    se = row.get(f"{key}_se")
    if text != "-" and se is not None and _finite(se) and se > 0:
        text += f" ± {_fmt(se, key)}"
    return text


def shown_columns(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS
) -> list[tuple[str, str]]:
    """``columns`` without the optional ones no row has a value for (and without keys no row
    has at all, so rows of an older results.json still render)."""
    shown = []
    for key, header in columns:
        present = [r.get(key) for r in rows if key in r]
        if not present:
            continue
        if key in OPTIONAL_COLUMNS and not any(v is not None and v == v for v in present):
            continue
        shown.append((key, header))
    return shown


def print_table(
    rows: list[dict[str, Any]], title: str, columns: Sequence[tuple[str, str]] = COLUMNS
) -> None:
    """Print the comparison as a rich table on stdout (``columns``: (key, header) pairs)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    shown = shown_columns(rows, columns)
    for key, header in shown:  # escaped: "[ms]" would otherwise be read as markup
        table.add_column(escape(header), justify="left" if key == "method" else "right")
    for row in rows:
        table.add_row(*(escape(cell(row, key)) for key, _ in shown))
    Console(width=max(150, len(title) + 4)).print(table)


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS) -> str:
    """The same table as Markdown (means as ``mean ± standard error``)."""
    shown = shown_columns(rows, columns)
    lines = ["| " + " | ".join(h for _, h in shown) + " |"]
    lines.append("|" + "|".join("---" if k in ("method", "timing") else "---:" for k, _ in shown))
    lines[-1] += "|"
    for row in rows:
        lines.append("| " + " | ".join(cell(row, k) for k, _ in shown) + " |")
    return "\n".join(lines)


def grid_markdown(
    label_heads: Sequence[str],
    value_heads: Sequence[str],
    body: Iterable[tuple[Sequence[str], Sequence[str]]],
) -> str:
    """A Markdown table of label columns (``label_heads``, left-aligned) then value columns
    (``value_heads``, right-aligned); ``body`` gives each line as ``(labels, values)``, cells
    already formatted."""
    lines = [
        "| " + " | ".join([*label_heads, *value_heads]) + " |",
        "|" + "---|" * len(label_heads) + "---:|" * len(value_heads),
    ]
    lines += ["| " + " | ".join([*labels, *values]) + " |" for labels, values in body]
    return "\n".join(lines)


def cell_grid(
    by: Mapping[tuple[Any, Any], Mapping[str, Any]],
    labels: Iterable[Any],
    columns: Sequence[Any],
    key: str,
) -> list[tuple[list[str], list[str]]]:
    """:func:`grid_markdown` lines of a pivot: one per label, holding the :func:`cell` of
    ``by[(label, column)]`` at ``key`` for each column (``-`` where ``by`` has no row)."""
    return [
        ([str(label)], [cell(by[(label, c)], key) if (label, c) in by else "-" for c in columns])
        for label in labels
    ]


def closing_sections(
    measured: Sequence[str],
    claims: Sequence[str] | None = None,
    seconds: float | None = None,
    threads: int | None = None,
) -> list[str]:
    """The closing Markdown sections of a suite's ``report.md``: ``## Measured`` (one bullet
    per line of ``measured``), ``## The paper states`` (``claims``) and the run's wall time
    ``seconds`` [s] (with the torch ``threads`` when given). Empty parts are left out."""
    sections = []
    if measured:
        sections.append("## Measured\n\n" + "\n".join(f"- {line}" for line in measured))
    if claims:
        sections.append("## The paper states\n\n" + "\n".join(f"- {c}" for c in claims))
    if seconds is not None:
        on = f" ({threads} torch threads)" if threads is not None else ""
        sections.append(f"Wall time of the run: {seconds:.0f} s{on}.")
    return sections


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write valid JSON (NaN and inf become ``null``)."""
    text = json.dumps(_nan_to_null(payload), indent=2, default=_json_default, allow_nan=False)
    write_text(path, text + "\n")


def _nan_to_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_null(v) for v in value]
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
    """Rows as CSV; the header is the union of the rows' keys in first-seen order."""
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_json(path: Path) -> dict[str, Any]:
    """A results file as a dict; ``null`` stays None (read numbers with :func:`number`)."""
    try:
        payload = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text)") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    return payload


def number(value: Any) -> float:
    """``value`` as a float, NaN for None / missing / non-numbers (how JSON stores NaN)."""
    return float(value) if _finite(value) else math.nan


# ------------------------------------------------------------------------------ styles
PALETTE: dict[str, str] = {
    # references in black, the minimal-power point in grey
    "sca": "#000000",
    "wmmse": "#000000",
    "min-power": "#7f7f7f",
    # power control
    "gp": "#1f77b4",
    "fw": "#ff7f0e",
    "ga": "#8c564b",
    "pnet": "#e377c2",
    "dipnet": "#2ca02c",
    "dipnet-cvxpylayers": "#bcbd22",
    "dipnet+fw": "#17becf",
    "depnet": "#d62728",
    "depnet+fw": "#9467bd",
    # MISO
    "wmmse-sdr": "#8c564b",
    "penalty+mlp": "#e377c2",
    "dc3+mlp": "#ff7f0e",
    "hop+mlp": "#1f77b4",
    "penalty+du": "#d62728",
    "dc3+du": "#9467bd",
    "hop+du": "#2ca02c",
}
"""Fixed colour per method name: distinct hues within each problem family, the same colour
for the same method in every plot."""

_EXTRA_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d")


def method_color(name: str) -> str:
    """The colour of method ``name`` in every plot (a stable pick for names not listed)."""
    if name in PALETTE:
        return PALETTE[name]
    return _EXTRA_COLORS[zlib.crc32(name.encode()) % len(_EXTRA_COLORS)]


def marker_style(kind: str, timing: str, color: str) -> dict[str, Any]:
    """Matplotlib marker keywords: square = classical, circle = learned; hollow = batched."""
    return {
        "marker": "o" if kind == "learned" else "s",
        "markerfacecolor": "white" if timing == "batched" else color,
        "markeredgecolor": color,
        "markeredgewidth": 1.6,
        "color": color,
    }


def row_kind(row: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, timing) of a row; older results without these keys: by name, per instance."""
    kind = row.get("kind") or method_kind(str(row.get("method", "")))
    return kind, row.get("timing") or "per instance"


def kind_legend(ax: Any, rows: Iterable[Mapping[str, Any]], **legend_kw: Any) -> None:
    """A legend of the marker shapes and fills present in ``rows``."""
    from matplotlib.lines import Line2D

    names = {
        ("classical", "per instance"): "classical, timed per instance",
        ("classical", "batched"): "classical, batched (batch time / n)",
        ("learned", "per instance"): "learned, timed per instance",
        ("learned", "batched"): "learned, batched (batch time / n)",
    }
    present = {row_kind(r) for r in rows}
    handles = [
        Line2D([], [], linestyle="none", markersize=7, **marker_style(k, t, "#444444"))
        for k, t in names
        if (k, t) in present
    ]
    labels = [names[k] for k in names if k in present]
    ax.legend(handles, labels, **legend_kw)


def zoom_limits(
    values: Sequence[float], errors: Sequence[float] | None = None, floor: float = ZOOM_FLOOR
) -> tuple[float, float]:
    """Axis limits for percentages: the span of the values at or above ``floor`` (with their
    error bars) plus a margin; everything when no value reaches ``floor``."""
    errors = errors if errors is not None else [0.0] * len(values)
    pairs = [(v, e if _finite(e) else 0.0) for v, e in zip(values, errors, strict=True)]
    pairs = [(v, e) for v, e in pairs if _finite(v)]
    if not pairs:
        return 0.0, 100.0
    kept = [(v, e) for v, e in pairs if v >= floor] or pairs
    if kept is pairs:  # nothing reaches the floor: show everything from 0
        return 0.0, max(v + e for v, e in pairs) * 1.1 or 1.0
    lo = min(v - e for v, e in kept)
    hi = max(v + e for v, e in kept)
    margin = max(0.25, 0.12 * (hi - lo))
    return lo - margin, hi + margin


# ------------------------------------------------------------------------------ plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    _pyplot().close(fig)


def method_chart(
    path: Path,
    rows: list[dict[str, Any]],
    title: str,
    objective: tuple[str, str] = ("mean_objective_mbps", "mean sum rate [Mbit/s]"),
    percent: tuple[str, str] = ("percent_of_reference", "sum rate in % of reference"),
    violation: str = "violation_probability",
    time: str = "time_per_sample_ms",
) -> None:
    """One row per method, three panels: objective in % of the reference (zoomed onto the
    methods within :data:`ZOOM_FLOOR` % of it, the others marked off scale), violation
    probability, and time per sample as points on a log axis. Error bars: standard errors.

    Without any finite percentage the first panel shows the absolute ``objective`` instead.
    """
    plt = _pyplot()
    names = [r["method"] for r in rows]
    colors = [method_color(n) for n in names]
    positions = list(range(len(rows)))
    fig, axes = plt.subplots(1, 3, figsize=(16, 2.0 + 0.42 * len(rows)), sharey=True)

    # panel 1: % of reference, zoomed (or the absolute objective)
    ax = axes[0]
    key, label = percent
    values = [number(r.get(key)) for r in rows]
    if not any(math.isfinite(v) for v in values):
        key, label = objective
        values = [number(r.get(key)) for r in rows]
    errors = [number(r.get(f"{key}_se")) for r in rows]
    floor = ZOOM_FLOOR if key == percent[0] else -math.inf
    lo, hi = zoom_limits(values, errors, floor=floor)
    if key == objective[0]:
        lo = min(lo, 0.0)
    for y, (v, e, c, row) in enumerate(zip(values, errors, colors, rows, strict=True)):
        if not math.isfinite(v):
            ax.annotate(
                "no value",
                (lo, y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color="#666666",
            )
            continue
        if v < lo:  # off scale: an arrow at the left edge with the value
            ax.plot([lo], [y], marker="<", color=c, markersize=9, clip_on=False)
            ax.annotate(
                f"{cell(row, key)} (off scale)",
                (lo, y),
                xytext=(8, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=c,
            )
            continue
        _labelled_point(
            ax, v, y, [e] if math.isfinite(e) else None, cell(row, key), row, c, markersize=7
        )
    ax.set_xlim(lo, hi)
    if key == percent[0] and lo < 100 < hi:
        ax.axvline(100, color="#999999", lw=0.8, ls=":")
    zoomed = key == percent[0] and lo > 0
    ax.set_xlabel(label + (f"\n(zoomed onto methods >= {ZOOM_FLOOR:g} %)" if zoomed else ""))
    ax.set_title("objective (mean ± s.e.)", fontsize=10)

    # panel 2: violation probability, bars from zero
    ax = axes[1]
    v_values = [number(r.get(violation)) for r in rows]
    v_errors = [number(r.get(f"{violation}_se")) for r in rows]
    top = max(
        (
            v + (e if math.isfinite(e) else 0)
            for v, e in zip(v_values, v_errors, strict=True)
            if math.isfinite(v)
        ),
        default=0.0,
    )
    ax.barh(
        positions,
        [v if math.isfinite(v) else 0 for v in v_values],
        color=colors,
        height=0.6,
        xerr=[e if math.isfinite(e) else 0 for e in v_errors],
        capsize=3,
    )
    right = max(0.05, top * 1.35)
    ax.set_xlim(0, right)
    for y, (v, e) in enumerate(zip(v_values, v_errors, strict=True)):
        end = (v if math.isfinite(v) else 0.0) + (e if math.isfinite(e) else 0.0)
        ax.annotate(" " + _fmt(v, violation), (end, y), va="center", fontsize=8)
    ax.set_xlabel(f"violation probability (rtol {rows[0].get('rtol', 1e-6):g})" if rows else "")
    ax.set_title("violations (± s.e.)", fontsize=10)

    # panel 3: time per sample, points on a log axis
    ax = axes[2]
    t_values = [number(r.get(time)) for r in rows]
    t_errors = [number(r.get(f"{time}_se")) for r in rows]
    for y, (t, e, c, row) in enumerate(zip(t_values, t_errors, colors, rows, strict=True)):
        if not (math.isfinite(t) and t > 0):
            continue
        err = [[min(e, 0.9 * t)], [e]] if math.isfinite(e) and e > 0 else None
        _labelled_point(ax, t, y, err, _fmt(t, time), row, c, markersize=8)
    ax.set_xscale("log")
    finite_t = [t for t in t_values if math.isfinite(t) and t > 0]
    if finite_t:
        ax.set_xlim(min(finite_t) / 3, max(finite_t) * 3)
    ax.set_xlabel("time per sample [ms], log scale")
    ax.set_title("time (mean ± s.e. per instance)", fontsize=10)
    kind_legend(ax, rows, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))

    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(len(rows) - 0.4, -0.8)
    axes[0].set_yticks(positions, names)
    for tick, c in zip(axes[0].get_yticklabels(), colors, strict=True):
        tick.set_color(c)
    n_values = {r.get("num_instances") for r in rows}
    n_text = f"n = {n_values.pop()} instances" if len(n_values) == 1 else "n per row in the table"
    fig.suptitle(f"{title}\n{n_text}; error bars: standard error of the mean", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


bar_chart = method_chart
"""The former name of :func:`method_chart` (the comparison's ``comparison.png``)."""


def x_offsets(count: int, span: float, log: bool = False) -> list[float]:
    """Small offsets (additive, or multiplicative on a log axis) that keep ``count`` overlapping
    series apart: spread evenly over 12 % of ``span`` (the axis range; in octaves for ``log``)."""
    step = 0.12 * span / (count - 1) if count > 1 else 0.0
    raw = [(i - (count - 1) / 2) * step for i in range(count)]
    return [2.0**d for d in raw] if log else raw


# ------------------------------------------------------------------------------ training
def training_curves(
    history_paths: Path | Sequence[Path] | Mapping[str, Path],
    out_png: Path,
    objective_label: str | None = None,
) -> Path:
    """Plot training runs from their ``history.json`` files (written by :mod:`feasnet.training`).

    Args:
        history_paths: one path, a list (each run is labelled by its folder name, e.g.
            ``models/dipnet/history.json`` -> ``dipnet``), or ``{label: path}``. A path may
            also be the run folder holding ``history.json``.
        out_png: PNG to write.
        objective_label: y label of the validation objective; by default sum rate in Mbit/s
            when the values look like bit/s (above 1e4), else WSR in bit/s/Hz.

    Three panels against the epoch: training loss, validation objective, validation violation
    probability; every epoch is a marker, the best epoch (the model kept) a star.

    Returns:
        ``out_png``.

    Raises:
        ValueError: when a history file is missing, not valid JSON or has no epochs.
    """
    if isinstance(history_paths, str | Path):
        history_paths = [Path(history_paths)]
    if not isinstance(history_paths, Mapping):
        history_paths = {_run_label(Path(p)): Path(p) for p in history_paths}
    histories: dict[str, list[dict[str, Any]]] = {}
    for label, path in history_paths.items():
        path = Path(path)
        path = path / "history.json" if path.is_dir() else path
        if not path.exists():
            raise ValueError(f"{path}: no such history file")
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(rows, list) or not rows:
            raise ValueError(f"{path}: expected a list of per-epoch records")
        histories[label] = rows
    objectives = [number(r.get("validation_objective")) for h in histories.values() for r in h]
    in_bits = any(math.isfinite(v) and abs(v) > 1e4 for v in objectives)
    scale = 1e-6 if in_bits else 1.0
    if objective_label is None:
        objective_label = "validation sum rate [Mbit/s]" if in_bits else "validation WSR [bit/s/Hz]"

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16.5, 4.0))
    panels = [
        ("train_loss", "training loss (mean over the epoch)", 1.0),
        ("validation_objective", objective_label, scale),
        ("validation_violation_probability", "validation violation probability", 1.0),
    ]
    markers = ("o", "s", "^", "D", "v", "P", "X")
    styles = ("-", "--", ":", "-.")
    for ax, (key, label, factor) in zip(axes, panels, strict=True):
        drawn: list[float] = []
        for i, (name, rows) in enumerate(histories.items()):
            color = method_color(name)
            epochs = [r.get("epoch", j + 1) for j, r in enumerate(rows)]
            values = [number(r.get(key)) * factor for r in rows]
            drawn += [v for v in values if math.isfinite(v)]
            # runs that coincide (e.g. two at zero violations) stay apart: their own marker,
            # line style and a marker size that shrinks with each run drawn on top
            ax.plot(
                epochs,
                values,
                linestyle=styles[i % len(styles)],
                color=color,
                lw=1.4,
                marker=markers[i % len(markers)],
                markersize=max(3.0, 8.0 - 1.2 * i),
                markerfacecolor="none",
                label=name,
            )
            best = [j for j, r in enumerate(rows) if r.get("best")]
            if best:
                ax.plot(
                    [epochs[best[-1]]],
                    [values[best[-1]]],
                    "*",
                    color=color,
                    markersize=14,
                    markeredgecolor="black",
                    markeredgewidth=0.6,
                )
        magnitudes = [abs(v) for v in drawn if v != 0]
        if key == "train_loss" and magnitudes and max(magnitudes) > 100 * min(magnitudes):
            ax.set_yscale("symlog", linthresh=min(magnitudes))
            label += ", symlog scale"
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[2].set_ylim(bottom=-0.02)
    axes[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("training runs: one marker per epoch, star = best epoch (the model kept)")
    fig.tight_layout()
    _save(fig, Path(out_png))
    return Path(out_png)


def _run_label(path: Path) -> str:
    return (path.parent if path.name == "history.json" else path).name


def training_curves_of(models_dir: Path, out_png: Path) -> Path | None:
    """:func:`training_curves` of every ``models_dir/<method>/history.json`` (None if none)."""
    paths = sorted(Path(models_dir).glob("*/history.json"))
    return training_curves(paths, out_png) if paths else None


# ------------------------------------------------------------------------------ re-render
SUITE_FILES = ("results.json", "table2.json")
"""Files :func:`rerender` reads, in order: ``results.json`` (comparison and MISO suites),
``table2.json`` (Table II suite)."""


def rerender(run_dir: Path, log: Callable[[str], Any] = print) -> list[Path]:
    """Rebuild the tables and plots of a finished run from its saved results.

    Reads ``run_dir/results.json`` (``suite`` ``comparison``, ``fig12``, ``miso-snr`` or
    ``miso-nakagami``) or ``run_dir/table2.json`` (``table2``), prints the tables and rewrites
    ``report.md`` / ``results.csv`` (``table2.md`` / ``table2.csv``), the plots and the training
    curves of the models found in the folder. Nothing is solved or trained again, and the
    results file itself is left as it is.

    Returns:
        The files written.

    Raises:
        ValueError: the folder or its results file is missing, the file is not valid JSON, or
            its suite is unknown.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run folder")
    found = [run_dir / name for name in SUITE_FILES if (run_dir / name).is_file()]
    if not found:
        raise ValueError(f"{run_dir}: no results.json (or table2.json) in this folder")
    payload = read_json(found[0])
    suite = payload.get("suite")
    if suite == "comparison":
        from feasnet.bench import comparison

        return comparison.write_reports(run_dir, payload, log=log)
    if suite == "table2":
        from feasnet.bench import table2

        return table2.render(run_dir, payload, log=log)
    if suite == "fig12":
        from feasnet.bench import fig12

        return fig12.write_reports(run_dir, payload, log=log)
    from feasnet.bench import miso, suites

    if suite in suites.SUITES:
        return suites.write_reports(suite, run_dir, payload, log=log)
    if suite in miso.SWEEPS:
        return miso.write_reports(run_dir, payload, log=log)
    raise ValueError(
        f"{found[0]}: unknown suite {suite!r}; expected comparison, table2, fig12, "
        + ", ".join(miso.SWEEPS)
    )
