"""The survey's MISO case study: Fig. 4 (sweep over SNR) and Fig. 5 (sweep over Nakagami-m).

For every sweep point the suite generates a data set of 1,000 feasible instances (7:3
train/test, as in the survey), runs WMMSE (the upper-bound baseline) on the test split, trains
every learned method (``{penalty,dc3,hop}+{mlp,du}``) on the train split and evaluates it on the
test split. Everything is cached in the run folder, so an interrupted run resumes:

``<point>/dataset.h5``, ``<point>/models/<method>/``, ``<point>/solutions/<method>.npz`` and
``<point>/training.png`` (training curves) per sweep point, then ``results.json``,
``results.csv``, ``report.md`` and ``sweep.png`` for the whole sweep. ``sweep.png`` shows WSR,
WSR in % of WMMSE (zoomed onto the methods close to it), violation rate and time per sample
against the swept parameter, with standard-error bars; a single-point run gets the per-method
chart of :func:`feasnet.bench.report.method_chart` instead.

Violations are counted by the float64 check at relative tolerance 1e-6; a violating output
counts as zero WSR in the mean (the mean over feasible outputs only is reported too).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from feasnet.bench import report
from feasnet.bench.comparison import ensure_dataset, forget_stale_results
from feasnet.bench.runner import solve_methods
from feasnet.data import storage
from feasnet.metrics import MethodMetrics, evaluate, tightest_upper_bound
from feasnet.problems.miso import DEFAULT_RTOL
from feasnet.training import TrainConfig


@dataclass(frozen=True)
class Sweep:
    """One figure of the survey: a scenario parameter swept over preset values."""

    parameter: str
    label: str
    values: tuple[float, ...]
    preset_prefix: str
    figure: str

    def preset(self, value: float) -> str:
        return f"{self.preset_prefix}{value:g}"


SWEEPS: dict[str, Sweep] = {
    "miso-snr": Sweep("snr_db", "SNR [dB]", (0, 5, 10, 15, 20), "miso-snr-", "Fig. 4"),
    "miso-nakagami": Sweep("nakagami_m", "Nakagami m", (0.5, 1, 2, 4, 8), "miso-m-", "Fig. 5"),
    "miso-sinr": Sweep(
        "sinr_min_db",
        "SINR target [dB]",
        (0, 5, 10, 12.5, 15),
        "miso-sinr-",
        "case study, SINR targets at 0 dB SNR (ours)",
    ),
}
"""Suite name -> sweep."""

LEARNED_METHODS = tuple(
    f"{layer}+{backbone}" for backbone in ("mlp", "du") for layer in ("penalty", "dc3", "hop")
)
"""The survey's six learned methods (:data:`feasnet.methods.METHODS`): ``penalty+mlp,
dc3+mlp, hop+mlp, penalty+du, dc3+du, hop+du``."""
REFERENCE = "wmmse"
DEFAULT_METHODS = (REFERENCE, "min-power", *LEARNED_METHODS)
HARD_CONSTRAINED = tuple(m for m in LEARNED_METHODS if not m.startswith("penalty"))
DEFAULT_SAMPLES = 1000
DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 32
QOS_ACTIVE_TOLERANCE = 1e-3
"""A QoS row counts as active (binding) when ``|SINR_k / gamma_k - 1| <= 1e-3``."""


def qos_active_fraction(
    beams: Any, instances: Any, tolerance: float = QOS_ACTIVE_TOLERANCE
) -> float:
    """Fraction of instances in which at least one user's SINR sits at its target.

    Args:
        beams: ``(N, Nt, K)`` complex beamformers in physical units (a result's allocation).
        instances: the ``N`` MISO instances.
        tolerance: relative distance to the target that counts as active.

    Returns:
        The fraction in ``[0, 1]`` (0 when no user has a target); computed in complex128.
    """
    import torch

    from feasnet.problems.miso import sinr
    from feasnet.problems.registry import problem_of

    inst = problem_of(instances).float64(instances)
    v = torch.as_tensor(beams).to(torch.complex128)
    if len(inst) == 0:
        return math.nan
    target = inst.sinr_min
    ratio = sinr(v, inst) / torch.where(target > 0, target, torch.ones_like(target))
    active = ((ratio - 1).abs() <= tolerance) & (target > 0)
    return float(active.any(dim=1).double().mean())


def default_train_config(epochs: int | None = None, seed: int = 0) -> TrainConfig:
    """Training settings of the suite (Adam 1e-3, batch 32, early stopping on validation)."""
    return TrainConfig(
        epochs=epochs or DEFAULT_EPOCHS,
        batch_size=DEFAULT_BATCH_SIZE,
        learning_rate=1e-3,
        lr_decay=0.98,
        patience=10,
        seed=seed,
    )


def _solve_point(
    point_dir: Path,
    preset: str,
    samples: int,
    seed: int,
    methods: Sequence[str],
    workers: int | None,
    train_config: TrainConfig,
    log: Any,
    force: bool = False,
    rtol: float = DEFAULT_RTOL,
    guard: bool = False,
) -> tuple[list[MethodMetrics], Any, dict[str, float]]:
    """Results of every method on one sweep point's test split."""
    dataset = ensure_dataset(point_dir, preset, samples, seed, log, force=force)
    instances, info = storage.read_dataset(dataset, "test")
    forget_stale_results(point_dir, dataset, "test", train_config, log, force)
    results = solve_methods(
        point_dir,
        dataset,
        instances,
        methods,
        workers,
        train_config,
        log,
        rtol,
        guard,
        label=f"{preset} ",
    )
    reference = results.get(REFERENCE)
    upper_bound = tightest_upper_bound(results.values())
    metrics = [
        evaluate(results[m], reference=reference, baseline=reference, upper_bound=upper_bound)
        for m in methods
    ]
    active = {m: qos_active_fraction(results[m].allocation, instances) for m in methods}
    return metrics, info, active


def metric_row(
    sweep: Sweep, value: float, m: MethodMetrics, qos_active: float | None = None
) -> dict[str, Any]:
    """One flat, display-ready row: WSR in bit/s/Hz, time in ms; ``<key>_se`` are standard
    errors, ``kind`` classical / learned, ``timing`` per instance / batched, ``qos_active``
    the fraction of instances whose output has a binding SINR row
    (:func:`qos_active_fraction`)."""
    return {
        sweep.parameter: value,
        "method": m.method,
        "num_instances": m.num_instances,
        "wsr": m.mean_objective,
        "wsr_feasible": m.mean_objective_feasible,
        "percent_of_wmmse": 100.0 * m.ratio_to_reference,
        "violation_rate": m.violation_probability,
        "rtol": m.rtol,
        "time_per_sample_ms": 1e3 * m.time_per_sample,
        "speedup_over_wmmse": m.speedup_over_baseline,
        "wsr_se": m.objective_standard_error,
        "percent_of_wmmse_se": 100.0 * m.ratio_standard_error,
        "percent_of_upper_bound": 100.0 * m.ratio_to_upper_bound,
        "percent_of_upper_bound_se": 100.0 * m.upper_bound_ratio_standard_error,
        "violation_rate_se": m.violation_standard_error,
        "time_per_sample_ms_se": 1e3 * m.time_standard_error,
        "num_not_converged": m.num_not_converged,
        "kind": report.method_kind(m.method),
        "timing": "batched" if m.batched_timing else "per instance",
        "qos_active": qos_active,
    }


def run(
    suite: str,
    out_dir: Path,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    methods: Sequence[str] = DEFAULT_METHODS,
    workers: int | None = None,
    train_config: TrainConfig | None = None,
    values: Sequence[float] | None = None,
    log: Any = print,
    force: bool = False,
    rtol: float = DEFAULT_RTOL,
    guard: bool = False,
) -> list[dict[str, Any]]:
    """Run sweep ``suite`` (``miso-snr`` or ``miso-nakagami``) into ``out_dir``.

    Args:
        suite: a key of :data:`SWEEPS`.
        out_dir: run folder (created; reused to resume).
        samples: instances per sweep point (train and test together).
        seed: data and training seed.
        methods: classical (``wmmse``, ``wmmse-sdr``, ``min-power``) and learned method names.
        workers: worker processes of the classical solvers.
        train_config: training settings (default :func:`default_train_config`).
        values: sweep values to run (default: all of the suite's).
        log: where progress lines go.
        force: replace cached data, models and solutions made for other settings (without
            it they are an error).
        rtol, guard: how results are evaluated (see
            :func:`feasnet.bench.runner.checked_result`).

    Returns:
        One row per (sweep value, method), see :func:`metric_row`.
    """
    if suite not in SWEEPS:
        raise ValueError(f"suite: unknown MISO suite {suite!r}; choose one of {', '.join(SWEEPS)}")
    sweep = SWEEPS[suite]
    chosen_values = tuple(values) if values else sweep.values
    unknown = [v for v in chosen_values if v not in sweep.values]
    if unknown:
        raise ValueError(f"values: {suite} has points {sweep.values}, got {unknown}")
    methods = tuple(methods)
    if REFERENCE not in methods:
        methods = (REFERENCE, *methods)
    train_config = train_config or default_train_config(seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    scenarios = {}
    started = time.perf_counter()
    for value in chosen_values:
        preset = sweep.preset(value)
        log(f"[bold]{suite}[/]: {escape(sweep.label)} = {value:g} ({preset})")
        metrics, info, active = _solve_point(
            out_dir / preset,
            preset,
            samples,
            seed,
            methods,
            workers,
            train_config,
            log,
            force,
            rtol,
            guard,
        )
        scenarios[preset] = info.scenario.model_dump(mode="json")
        point_rows = [metric_row(sweep, value, m, active.get(m.method)) for m in metrics]
        _print_point(point_rows, preset, rtol)
        rows.extend(point_rows)
    payload = {
        "suite": suite,
        "figure": sweep.figure,
        "parameter": sweep.parameter,
        "values": list(chosen_values),
        "samples_per_point": samples,
        "seed": seed,
        "reference": REFERENCE,
        "rtol": rtol,
        "guard": guard,
        "train_config": train_config.model_dump(mode="json"),
        "scenarios": scenarios,
        "seconds": time.perf_counter() - started,
        "machine": report.machine(workers),
        "checks": measured_summary(sweep, rows),
        "results": rows,
    }
    report.write_json(out_dir / "results.json", payload)
    write_reports(out_dir, payload, log, print_tables=False)
    return rows


MISO_COLUMNS: list[tuple[str, str]] = [
    ("method", "method"),
    ("num_instances", "n"),
    ("wsr", "WSR [bit/s/Hz] (violations = 0)"),
    ("percent_of_wmmse", "% of WMMSE"),
    ("percent_of_upper_bound", "% of upper bound"),
    ("violation_rate", "violation rate"),
    ("num_not_converged", "not converged"),
    ("qos_active", "QoS active"),
    ("time_per_sample_ms", "time / sample [ms]"),
    ("timing", "timing"),
    ("speedup_over_wmmse", "speed-up vs WMMSE"),
]


def _print_point(point_rows: list[dict[str, Any]], preset: str, rtol: float) -> None:
    report.print_table(
        point_rows,
        f"{preset}: {point_rows[0]['num_instances']} test instances, violations at rtol "
        f"{rtol:g} (float64)",
        columns=MISO_COLUMNS,
    )


def write_reports(
    out_dir: Path, payload: dict[str, Any], log: Any = print, print_tables: bool = True
) -> list[Path]:
    """Write ``results.csv``, ``report.md``, ``sweep.png`` and each point's ``training.png``
    from a ``results.json`` payload (printing the per-point tables if ``print_tables``)."""
    sweep = SWEEPS[payload["suite"]]
    rows = [dict(r) for r in payload["results"]]
    if print_tables:
        for value in sorted({r[sweep.parameter] for r in rows}):
            _print_point(
                [r for r in rows if r[sweep.parameter] == value],
                sweep.preset(value),
                payload.get("rtol", DEFAULT_RTOL),
            )
    summary = measured_summary(sweep, rows)
    written = [out_dir / "results.csv", out_dir / "report.md", out_dir / "sweep.png"]
    report.write_csv(written[0], rows)
    trainings = []
    for value in sorted({r[sweep.parameter] for r in rows}):
        point = sweep.preset(value)
        png = report.training_curves_of(
            out_dir / point / "models", out_dir / point / "training.png"
        )
        if png is not None:
            trainings.append(png)
    report.write_text(
        written[1], markdown_report(sweep, payload["suite"], rows, summary, out_dir, trainings)
    )
    sweep_plot(written[2], sweep, rows)
    for line in summary_lines(summary):
        log(line)
    written += trainings
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written


# ---------------------------------------------------------------------------- summary
def measured_summary(sweep: Sweep, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the sweep measured on the survey's headline questions (``None`` where a quantity
    was not run): do the hard-constrained methods violate, how close does the best learned
    method get to WMMSE at 10 dB, how much faster is the slowest learned method."""
    hard = [r for r in rows if r["method"] in HARD_CONSTRAINED]
    violating = [
        f"{r['method']} at {sweep.parameter}={r[sweep.parameter]:g}: {r['violation_rate']:.4f}"
        for r in hard
        if r["violation_rate"] > 0
    ]
    learned = [r for r in rows if r["method"] in LEARNED_METHODS]
    # the 10 dB point: snr_db = 10 on the SNR sweep, the Rayleigh point m = 1 (at 10 dB) on m's
    # on the SINR-target sweep (all at 0 dB SNR): the highest target run
    values = [r[sweep.parameter] for r in rows]
    ten_db_value = {"snr_db": 10, "nakagami_m": 1}.get(sweep.parameter, max(values, default=0))
    at_ten_db = [r for r in learned if r[sweep.parameter] == ten_db_value]
    best = max(at_ten_db, key=lambda r: _finite(r["percent_of_wmmse"]), default=None)
    slowest_speedup = min((_finite(r["speedup_over_wmmse"]) for r in learned), default=math.nan)
    return {
        "hard_constrained_zero_violations": not violating if hard else None,
        "hard_constrained_violations": violating,
        "best_learned_at_10_db": best["method"] if best else None,
        "best_learned_percent_of_wmmse_at_10_db": best["percent_of_wmmse"] if best else None,
        "best_learned_percent_of_wmmse_se_at_10_db": (
            best.get("percent_of_wmmse_se") if best else None
        ),
        "min_speedup_over_wmmse": slowest_speedup if learned else None,
        "best_learned_point": f"{sweep.parameter}={ten_db_value:g}",
    }


target_checks = measured_summary
"""The former name of :func:`measured_summary`."""


def _finite(value: Any) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else -math.inf


def _point_words(summary: dict[str, Any]) -> str:
    """Where the best learned method was picked (``10 dB`` for the survey's sweeps)."""
    point = summary.get("best_learned_point")
    if point is None or point in ("snr_db=10", "nakagami_m=1"):
        return "10 dB"
    return point


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The measured summary as sentences (no thresholds: the numbers speak for themselves)."""
    lines = []
    zero = summary.get("hard_constrained_zero_violations")
    if zero is not None:
        lines.append(
            "hard-constrained methods (dc3, hop): "
            + ("zero violations at every point" if zero else "violations measured:")
        )
        lines += [f"  {v}" for v in summary.get("hard_constrained_violations") or []]
    if summary.get("best_learned_at_10_db") is not None:
        se = summary.get("best_learned_percent_of_wmmse_se_at_10_db")
        spread = f" ± {se:.1f}" if se is not None and math.isfinite(se) else ""
        lines.append(
            f"best learned method at {_point_words(summary)}: "
            f"{summary['best_learned_at_10_db']}, "
            f"{summary['best_learned_percent_of_wmmse_at_10_db']:.1f}{spread} % of WMMSE"
        )
    slowest = summary.get("min_speedup_over_wmmse")
    if slowest is not None and math.isfinite(slowest):
        lines.append(f"slowest learned method: {slowest:.0f}x faster than WMMSE per sample")
    return lines


# ---------------------------------------------------------------------------- outputs
def pivot(rows: list[dict[str, Any]], parameter: str, key: str) -> dict[str, dict[float, Any]]:
    """``{method: {value: row[key]}}`` in first-seen method order."""
    table: dict[str, dict[float, Any]] = {}
    for r in rows:
        table.setdefault(r["method"], {})[r[parameter]] = r.get(key)
    return table


def markdown_report(
    sweep: Sweep,
    suite: str,
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    out_dir: Path | None = None,
    trainings: Sequence[Path] = (),
) -> str:
    """The run's ``report.md``: pivot tables (mean ± standard error), the summary, the plots."""
    values = sorted({r[sweep.parameter] for r in rows})
    by_point = {(r["method"], r[sweep.parameter]): r for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))

    def table(key: str) -> str:
        body = report.cell_grid(by_point, methods, values, key)
        return report.grid_markdown(["method"], [f"{v:g}" for v in values], body)

    counts = sorted({int(r["num_instances"]) for r in rows if r.get("num_instances") is not None})
    n_text = ", ".join(str(c) for c in counts) or "?"
    sections = [
        f"# `{suite}`: the survey's {sweep.figure}, swept over {sweep.label}",
        f"Test split of each point (n = {n_text} instances); infeasible outputs count as zero "
        f"WSR; violations by the float64 check at rtol {_rtol_of(rows):g}. Cells are mean ± "
        "standard error over the n instances (% of WMMSE: delta method on paired instances; "
        "methods timed per batch report batch time / n, without spread).",
        f"## Weighted sum rate [bit/s/Hz]\n\n{table('wsr')}",
        f"## % of WMMSE\n\n{table('percent_of_wmmse')}",
    ]
    if any(math.isfinite(report.number(r.get("percent_of_upper_bound"))) for r in rows):
        sections.append(f"## % of upper bound\n\n{table('percent_of_upper_bound')}")
    sections.append(f"## Violation rate\n\n{table('violation_rate')}")
    if any(r.get("qos_active") is not None for r in rows):
        sections.append(
            "## Fraction of instances with a binding QoS row\n\n"
            f"(some user's SINR within {QOS_ACTIVE_TOLERANCE:g} of its target)\n\n"
            f"{table('qos_active')}"
        )
    if any(r.get("num_not_converged") is not None for r in rows):
        sections.append(f"## Instances not converged\n\n{table('num_not_converged')}")
    sections.append(f"## Time per sample [ms]\n\n{table('time_per_sample_ms')}")
    lines = summary_lines(summary)
    if lines:
        sections.append("## Summary\n\n" + "\n".join(f"- {line}" for line in lines))
    figures = ["![sweep](sweep.png)"]
    for png in trainings:
        rel = png.relative_to(out_dir) if out_dir is not None else png
        figures.append(f"![training curves, {rel.parent}]({rel.as_posix()})")
    sections.append("\n\n".join(figures))
    return "\n\n".join(sections) + "\n"


def _rtol_of(rows: list[dict[str, Any]]) -> float:
    """The tolerance the rows' violation figures were checked at."""
    return float(rows[0].get("rtol", DEFAULT_RTOL)) if rows else DEFAULT_RTOL


def sweep_plot(path: Path, sweep: Sweep, rows: list[dict[str, Any]]) -> None:
    """The sweep's figure: with two or more points, four panels against the parameter (WSR,
    % of WMMSE zoomed onto the methods within 90 % of it, violation rate, time per sample on a
    log axis), standard-error bars, small x offsets so tied methods stay visible; with one
    point, :func:`feasnet.bench.report.method_chart` (a row per method)."""
    values = sorted({r[sweep.parameter] for r in rows})
    title = f"MISO WSR with QoS, survey {sweep.figure}"
    if len(values) == 1:
        report.method_chart(
            path,
            rows,
            f"{title}: {sweep.label} = {values[0]:g}",
            objective=("wsr", "WSR [bit/s/Hz]"),
            percent=("percent_of_wmmse", "WSR in % of WMMSE"),
            violation="violation_rate",
        )
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_x = sweep.parameter == "nakagami_m"
    methods = list(dict.fromkeys(r["method"] for r in rows))
    span = math.log2(values[-1] / values[0]) if log_x else values[-1] - values[0]
    offsets = dict(zip(methods, report.x_offsets(len(methods), span, log=log_x), strict=True))
    by_point = {(r["method"], r[sweep.parameter]): r for r in rows}
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    ax_wsr, ax_pct, ax_vio, ax_time = axes.flat

    percents = [report.number(r.get("percent_of_wmmse")) for r in rows]
    errors = [report.number(r.get("percent_of_wmmse_se")) for r in rows]
    lo, hi = report.zoom_limits(percents, errors)
    off_scale: list[str] = []
    panels = [
        (ax_wsr, "wsr", "weighted sum rate [bit/s/Hz]\n(violating outputs count as 0)"),
        (ax_pct, "percent_of_wmmse", "WSR in % of WMMSE"),
        (ax_vio, "violation_rate", f"violation rate (rtol {_rtol_of(rows):g})"),
        (ax_time, "time_per_sample_ms", "time per sample [ms], log scale"),
    ]
    for ax, key, label in panels:
        for method in methods:
            points = [(v, by_point[(method, v)]) for v in values if (method, v) in by_point]
            xs = [v * offsets[method] if log_x else v + offsets[method] for v, _ in points]
            ys = [report.number(r.get(key)) for _, r in points]
            es = [report.number(r.get(f"{key}_se")) for _, r in points]
            color = report.method_color(method)
            kind, timing = report.row_kind(points[0][1])
            style = report.marker_style(kind, timing, color)
            if key == "percent_of_wmmse":
                shown = [y >= lo for y in ys]
                if not any(shown):
                    finite = [y for y in ys if math.isfinite(y)]
                    if finite:
                        off_scale.append(f"{method}: {min(finite):.1f}–{max(finite):.1f} %")
                    continue
                below = [(x, y) for x, y in zip(xs, ys, strict=True) if y < lo]
                for x, y in below:  # a point of a method otherwise on scale
                    ax.plot([x], [lo], "v", color=color, markersize=8, clip_on=False)
                    ax.annotate(
                        f"{y:.1f}",
                        (x, lo),
                        xytext=(0, 6),
                        textcoords="offset points",
                        ha="center",
                        fontsize=7,
                        color=color,
                    )
                ys = [y if y >= lo else math.nan for y in ys]
            yerr = [e if math.isfinite(e) and e > 0 else 0.0 for e in es]
            if key == "time_per_sample_ms":
                yerr = [
                    min(e, 0.9 * y) if math.isfinite(y) else 0.0
                    for e, y in zip(yerr, ys, strict=True)
                ]
            linestyle = "--" if method.endswith("+mlp") else "-"
            ax.errorbar(
                xs,
                ys,
                yerr=yerr,
                capsize=3,
                linestyle=linestyle,
                lw=1.3,
                markersize=6,
                label=method,
                **style,
            )
        ax.set_xlabel(sweep.label)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(values, [f"{v:g}" for v in values])
    ax_pct.set_ylim(lo, hi)
    if lo < 100 < hi:
        ax_pct.axhline(100, color="#999999", lw=0.8, ls=":")
    ax_pct.set_title(f"zoomed onto methods >= {report.ZOOM_FLOOR:g} % of WMMSE", fontsize=9)
    if off_scale:
        fig.text(
            0.83,
            0.28,
            "off scale in the % panel\n(below its axis):\n" + "\n".join(off_scale),
            fontsize=8,
            va="top",
        )
    ax_vio.set_ylim(bottom=-0.02)
    ax_time.set_yscale("log")
    handles, labels = ax_wsr.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(0.83, 0.93),
        fontsize=8,
        title="method (dashed: MLP backbone)",
        title_fontsize=8,
    )
    report.kind_legend(fig, rows, loc="upper left", bbox_to_anchor=(0.83, 0.45), fontsize=8)
    n_values = sorted({int(r["num_instances"]) for r in rows if r.get("num_instances")})
    fig.suptitle(
        f"{title}: over {sweep.label}\nn = {', '.join(map(str, n_values))} test instances per "
        "point; error bars: standard error; methods offset slightly along x"
    )
    fig.tight_layout(rect=(0, 0, 0.82, 0.96))
    with report.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
