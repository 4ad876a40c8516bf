"""The survey's MISO case study: Fig. 4 (sweep over SNR) and Fig. 5 (sweep over Nakagami-m).

For every sweep point the suite generates a data set of 1,000 feasible instances (7:3
train/test, as in the survey), runs WMMSE (the upper-bound baseline) on the test split, trains
every learned method (``{penalty,dc3,hop}+{mlp,du}``) on the train split and evaluates it on the
test split. Everything is cached in the run folder, so an interrupted run resumes:

``<point>/dataset.h5``, ``<point>/models/<method>/``, ``<point>/solutions/<method>.npz`` per
sweep point, then ``results.json``, ``results.csv``, ``report.md`` and ``sweep.png`` (WSR and
violation rate against the swept parameter, one line per method) for the whole sweep.

Violations are counted by the float64 check at relative tolerance 1e-6; a violating output
counts as zero WSR in the mean (the mean over feasible outputs only is reported too).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.markup import escape

from feasnet import solvers
from feasnet.bench import report
from feasnet.bench.comparison import ensure_dataset, forget_stale_results, learned_result
from feasnet.data import storage
from feasnet.evaluate import MethodMetrics, evaluate
from feasnet.methods_miso import MISO_METHODS
from feasnet.problems.miso import DEFAULT_RTOL
from feasnet.solvers.result import BeamformingResult
from feasnet.train import TrainConfig


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
}
"""Suite name -> sweep."""

LEARNED_METHODS = tuple(MISO_METHODS)
"""``penalty+mlp, dc3+mlp, hop+mlp, penalty+du, dc3+du, hop+du``."""
REFERENCE = "wmmse"
DEFAULT_METHODS = (REFERENCE, "min-power", *LEARNED_METHODS)
HARD_CONSTRAINED = tuple(m for m in LEARNED_METHODS if not m.startswith("penalty"))
DEFAULT_SAMPLES = 1000
DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 32
TARGET_RATIO_AT_10_DB = 0.95
TARGET_SPEEDUP = 100.0


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
) -> tuple[list[MethodMetrics], Any]:
    """Results of every method on one sweep point's test split."""
    dataset = ensure_dataset(point_dir, preset, samples, seed, log, force=force)
    instances, info = storage.read_dataset(dataset, "test")
    forget_stale_results(point_dir, dataset, "test", train_config, log, force)
    results: dict[str, BeamformingResult] = {}
    for name in methods:
        path = point_dir / "solutions" / f"{name}.npz"
        if path.exists():
            cached = BeamformingResult.load_npz(path)
            if len(cached) == len(instances):
                results[name] = cached
                continue
        start = time.perf_counter()
        if name in MISO_METHODS:
            result = learned_result(name, point_dir, dataset, train_config, log)(instances)
        else:
            result = solvers.solve(name, instances, workers=workers)
        result.save_npz(path)
        results[name] = result
        log(f"{preset} {name}: done in {time.perf_counter() - start:.1f} s")
    reference = results.get(REFERENCE)
    metrics = [evaluate(results[m], reference=reference, baseline=reference) for m in methods]
    return metrics, info


def metric_row(sweep: Sweep, value: float, m: MethodMetrics) -> dict[str, Any]:
    """One flat, display-ready row: WSR in bit/s/Hz, time in ms."""
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
        metrics, info = _solve_point(
            out_dir / preset, preset, samples, seed, methods, workers, train_config, log, force
        )
        scenarios[preset] = info.scenario.model_dump(mode="json")
        point_rows = [metric_row(sweep, value, m) for m in metrics]
        report.print_table(
            [{k: v for k, v in r.items() if k in dict(MISO_COLUMNS)} for r in point_rows],
            f"{preset}: {point_rows[0]['num_instances']} test instances, violations at rtol "
            f"{DEFAULT_RTOL:g} (float64)",
            columns=MISO_COLUMNS,
        )
        rows.extend(point_rows)
    checks = target_checks(sweep, rows)
    payload = {
        "suite": suite,
        "figure": sweep.figure,
        "parameter": sweep.parameter,
        "values": list(chosen_values),
        "samples_per_point": samples,
        "seed": seed,
        "reference": REFERENCE,
        "rtol": DEFAULT_RTOL,
        "train_config": train_config.model_dump(mode="json"),
        "scenarios": scenarios,
        "seconds": time.perf_counter() - started,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "workers": workers,
        },
        "checks": checks,
        "results": rows,
    }
    report.write_json(out_dir / "results.json", payload)
    report.write_csv(out_dir / "results.csv", rows)
    sweep_plot(out_dir / "sweep.png", sweep, rows)
    report.write_text(out_dir / "report.md", markdown_report(sweep, suite, rows, checks))
    for line in checks_lines(checks):
        log(line)
    log(f"wrote {out_dir}/results.json, results.csv, report.md, sweep.png")
    return rows


MISO_COLUMNS: list[tuple[str, str]] = [
    ("method", "method"),
    ("wsr", "WSR [bit/s/Hz] (violations = 0)"),
    ("percent_of_wmmse", "% of WMMSE"),
    ("violation_rate", "violation rate"),
    ("time_per_sample_ms", "time / sample [ms]"),
    ("speedup_over_wmmse", "speed-up vs WMMSE"),
]


# ---------------------------------------------------------------------------- targets
def target_checks(sweep: Sweep, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, evaluated on the rows (``None`` where a point was not run)."""
    hard = [r for r in rows if r["method"] in HARD_CONSTRAINED]
    violating = [
        f"{r['method']} at {sweep.parameter}={r[sweep.parameter]:g}: {r['violation_rate']:.4f}"
        for r in hard
        if r["violation_rate"] > 0
    ]
    learned = [r for r in rows if r["method"] in LEARNED_METHODS]
    # the 10 dB point: snr_db = 10 on the SNR sweep, the Rayleigh point m = 1 (at 10 dB) on m's
    ten_db_value = {"snr_db": 10, "nakagami_m": 1}[sweep.parameter]
    at_ten_db = [r for r in learned if r[sweep.parameter] == ten_db_value]
    best = max(at_ten_db, key=lambda r: _finite(r["percent_of_wmmse"]), default=None)
    slowest_speedup = min((_finite(r["speedup_over_wmmse"]) for r in learned), default=math.nan)
    return {
        "hard_constrained_zero_violations": not violating if hard else None,
        "hard_constrained_violations": violating,
        "best_learned_at_10_db": best["method"] if best else None,
        "best_learned_percent_of_wmmse_at_10_db": best["percent_of_wmmse"] if best else None,
        "best_learned_within_95_percent": (
            best["percent_of_wmmse"] >= 100 * TARGET_RATIO_AT_10_DB if best else None
        ),
        "min_speedup_over_wmmse": slowest_speedup,
        "speedup_at_least_100x": slowest_speedup >= TARGET_SPEEDUP if learned else None,
    }


def _finite(value: Any) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else -math.inf


def checks_lines(checks: dict[str, Any]) -> list[str]:
    """Human-readable verdicts of :func:`target_checks`."""

    def verdict(ok: Any) -> str:
        return "not run" if ok is None else ("PASS" if ok else "FAIL")

    lines = [
        "hard-constrained methods (dc3, hop) at zero violations on every point: "
        + verdict(checks["hard_constrained_zero_violations"])
    ]
    lines += [f"  violating: {v}" for v in checks["hard_constrained_violations"]]
    if checks["best_learned_at_10_db"] is not None:
        lines.append(
            f"best learned method at 10 dB: {checks['best_learned_at_10_db']} "
            f"({checks['best_learned_percent_of_wmmse_at_10_db']:.1f} % of WMMSE; target 95 %): "
            + verdict(checks["best_learned_within_95_percent"])
        )
    lines.append(
        f"slowest learned method is {checks['min_speedup_over_wmmse']:.0f}x faster than WMMSE "
        "per sample (target 100x): " + verdict(checks["speedup_at_least_100x"])
    )
    return lines


# ---------------------------------------------------------------------------- outputs
def pivot(rows: list[dict[str, Any]], parameter: str, key: str) -> dict[str, dict[float, Any]]:
    """``{method: {value: row[key]}}`` in first-seen method order."""
    table: dict[str, dict[float, Any]] = {}
    for r in rows:
        table.setdefault(r["method"], {})[r[parameter]] = r[key]
    return table


def markdown_report(
    sweep: Sweep, suite: str, rows: list[dict[str, Any]], checks: dict[str, Any]
) -> str:
    """The run's ``report.md``: both pivot tables, the checks and the plot."""
    values = sorted({r[sweep.parameter] for r in rows})
    header = f"| method | {' | '.join(f'{v:g}' for v in values)} |"
    rule = "|---|" + "---:|" * len(values)

    def table(key: str, fmt: str) -> str:
        lines = [header, rule]
        for method, by_value in pivot(rows, sweep.parameter, key).items():
            cells = [
                "-"
                if by_value.get(v) is None or not math.isfinite(by_value[v])
                else format(by_value[v], fmt)
                for v in values
            ]
            lines.append(f"| {method} | {' | '.join(cells)} |")
        return "\n".join(lines)

    return (
        f"# `{suite}`: the survey's {sweep.figure}, swept over {sweep.label}\n\n"
        f"Test split of each point; infeasible outputs count as zero WSR; violations by the "
        f"float64 check at rtol {DEFAULT_RTOL:g}.\n\n"
        f"## Weighted sum rate [bit/s/Hz]\n\n{table('wsr', '.3f')}\n\n"
        f"## % of WMMSE\n\n{table('percent_of_wmmse', '.1f')}\n\n"
        f"## Violation rate\n\n{table('violation_rate', '.4f')}\n\n"
        f"## Time per sample [ms]\n\n{table('time_per_sample_ms', '.3g')}\n\n"
        "## Targets\n\n" + "\n".join(f"- {line}" for line in checks_lines(checks)) + "\n\n"
        "![sweep](sweep.png)\n"
    )


def sweep_plot(path: Path, sweep: Sweep, rows: list[dict[str, Any]]) -> None:
    """Two panels like the survey's figures: WSR and violation rate against the parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_wsr, ax_violation) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"mlp": "--", "du": "-"}
    for method, by_value in pivot(rows, sweep.parameter, "wsr").items():
        xs = sorted(by_value)
        line = styles.get(method.rsplit("+", 1)[-1], "-")
        marker = {"penalty": "o", "dc3": "s", "hop": "^"}.get(method.split("+")[0], "D")
        width = 2.5 if method == REFERENCE else 1.5
        color = "black" if method == REFERENCE else None
        ax_wsr.plot(
            xs, [by_value[x] for x in xs], line, marker=marker, lw=width, color=color, label=method
        )
        violation = pivot(rows, sweep.parameter, "violation_rate")[method]
        ax_violation.plot(
            xs, [violation[x] for x in xs], line, marker=marker, lw=width, color=color, label=method
        )
    if sweep.parameter == "nakagami_m":
        for ax in (ax_wsr, ax_violation):
            ax.set_xscale("log", base=2)
    ax_wsr.set_xlabel(sweep.label)
    ax_wsr.set_ylabel("weighted sum rate [bit/s/Hz]\n(violating outputs count as 0)")
    ax_violation.set_xlabel(sweep.label)
    ax_violation.set_ylabel(f"constraint violation rate (rtol {DEFAULT_RTOL:g})")
    ax_violation.set_ylim(bottom=-0.02)
    for ax in (ax_wsr, ax_violation):
        ax.grid(alpha=0.3)
    ax_wsr.legend(fontsize=8, ncol=2)
    fig.suptitle(f"MISO WSR with QoS over {sweep.label} (survey {sweep.figure})")
    fig.tight_layout()
    with report.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
