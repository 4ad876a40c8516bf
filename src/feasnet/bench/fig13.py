"""Fig. 13 of the power-control paper: power control under imperfect CSI.

Path loss, ``B = 4`` BSs, ``U = 8`` users (``Q = 2``), ``alpha = 2.5`` Mbit/s. For every
relative CSI error ``sigma`` of the sweep the methods see estimates ``Ĥ`` only (error model
of :mod:`feasnet.problems.csi`) and are compared on **fresh true channels** drawn consistent
with each estimate (``draws`` per test instance, the same draws for every series):

* ``none``: the constraints are written for ``Ĥ`` (perfect-CSI design on an estimate);
* ``distorted`` (learned methods only): trained on artificially distorted CSI, the loss
  seeing ``Ĥ (1 + e)``, ``e ~ U[-sigma, sigma]`` (the paper's reference [39]); run like
  ``none``;
* ``heuristic``: the paper's worst-case heuristic (appendix, eq. 27, ``chi`` searched on
  ``0, 0.01, ..., sigma``);
* ``exact``: our counterpart, the exact worst-case corner of the error box; every allocation
  it returns meets every rate target on every true channel of the model.

Data. Each point draws path-loss channels, turns them into estimates with error ``sigma`` and
keeps the estimates that are feasible as seen (``Ĥ`` feasible, as the paper checks its data).
Some of them are infeasible under the uncertainty: the ``exact`` mode reports those as
infeasible (``infeasible_fraction``) and returns no allocation; violation statistics are over
the instances a mode declares feasible. Learned methods train in the mode they are evaluated
in (the robust corner shapes the feasibility layer during training too).

Files (each written atomically, reused on a rerun): ``sigma-<s>/dataset.h5``,
``sigma-<s>/<series>/solutions/<method>.npz``, ``sigma-<s>/<series>/models/<method>/``, then
``results.json``, ``results.csv``, ``report.md`` and ``fig13.png``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from feasnet.bench import report
from feasnet.bench.runner import ensure_dataset_file, solve_methods, warm_model_result
from feasnet.bench.suites import SuiteOptions
from feasnet.data import storage
from feasnet.data.generate import draw_instances
from feasnet.data.presets import Scenario, get_preset
from feasnet.methods import METHODS, get_method
from feasnet.models import method_applies
from feasnet.problems import csi
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.progress import progress_bar
from feasnet.solvers import available
from feasnet.solvers.result import Result
from feasnet.training import TrainConfig, load_model, train

Log = Callable[[str], Any]

SUITE = "fig13"
NUM_BS, QUOTA, RATE_MBPS = 4, 2, 2.5
BASE_PRESET = "table2-8"
"""Path-loss preset the channels come from (its ``B = 4``; ``Q`` set to 2, uniform drop)."""

QUICK_POINTS = (0.05, 0.1, 0.2)
FULL_POINTS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
"""Relative CSI errors ``sigma`` of the quick default and of ``full``."""
QUICK_SAMPLES, FULL_SAMPLES = 500, 100_000
QUICK_SPLITS, FULL_SPLITS = (0.8, 0.1, 0.1), (0.9, 0.05, 0.05)
QUICK_EPOCHS, FULL_EPOCHS = 5, 20
QUICK_DRAWS, FULL_DRAWS = 100, 1000
"""True-channel draws per test instance."""
DEFAULT_METHODS = ("sca", "depnet")
SERIES = ("none", "distorted", "heuristic", "exact")
"""Series in plotting order; ``distorted`` applies to learned methods only."""

PAPER_CLAIMS = (
    "The QoS violation probability of the methods designed on the estimate (trained with the "
    "artificially distorted CSI of [39]) grows with the CSI error.",
    "The chi heuristic gives zero violations for small sigma and some for larger sigma, "
    "significantly fewer than [39].",
)
"""What the paper states about its Fig. 13 (section VIII-D); it prints no numbers."""


# ---------------------------------------------------------------------------- setup
def base_scenario() -> Scenario:
    """Path loss, ``B = 4``, ``Q = 2``, 2.5 Mbit/s, uniform drop (perfect CSI)."""
    base = get_preset(BASE_PRESET)
    assert isinstance(base, Scenario)
    return base.with_overrides(
        name="fig13-channels",
        num_channels=QUOTA,
        min_rate=RATE_MBPS * 1e6,
        drop="uniform",
        description=(
            f"power-control paper, Fig. 13: path loss, {NUM_BS} BSs, {NUM_BS * QUOTA} users, "
            f"{RATE_MBPS:g} Mbit/s"
        ),
    )


def point_scenario(sigma: float) -> Scenario:
    """The scenario of one sweep point (estimates with error ``sigma``)."""
    return base_scenario().with_overrides(
        name=f"fig13-sigma-{sigma:g}",
        csi_error=sigma,
        description=f"Fig. 13: estimates with relative CSI error {sigma:g}, Ĥ feasible",
    )


def check_points(points: Sequence[float] | None, full: bool) -> tuple[float, ...]:
    """The CSI errors, validated: in ``[0, 1)``, no repeats.

    Raises:
        ValueError: naming ``points`` and the bad value.
    """
    values = tuple(float(v) for v in (points or (FULL_POINTS if full else QUICK_POINTS)))
    bad = [v for v in values if not (0.0 <= v < 1.0)]
    if bad:
        raise ValueError(f"points: CSI errors sigma must lie in [0, 1), got {bad[0]:g}")
    if len(set(values)) != len(values):
        raise ValueError("points: repeated CSI error")
    return tuple(sorted(values))


def check_methods(methods: Sequence[str] | None) -> tuple[str, ...]:
    """Power-control classical solvers (not ``global``) and learned methods.

    Raises:
        ValueError: naming ``methods`` and the method.
    """
    chosen = tuple(methods or DEFAULT_METHODS)
    classical = set(available("power-control")) - {"global"}
    for name in chosen:
        learned = name in METHODS and method_applies(METHODS[name], "power-control")
        if name not in classical and not learned:
            raise ValueError(
                f"methods: {name!r} cannot run in the {SUITE} suite (power-control classical "
                "solvers except global, or learned power-control methods)"
            )
    return chosen


def check_series(robust: Sequence[str] | None) -> tuple[str, ...]:
    """The series to run: every one, or those of the given robust modes (``none`` brings
    ``distorted`` along).

    Raises:
        ValueError: naming ``robust``.
    """
    if robust is None:
        return SERIES
    for mode in robust:
        if mode not in csi.ROBUST_MODES:
            raise ValueError(
                f"robust: expected modes among {', '.join(csi.ROBUST_MODES)}, got {mode!r}"
            )
    wanted = set(robust) | ({"distorted"} if "none" in robust else set())
    return tuple(s for s in SERIES if s in wanted)


def is_learned(name: str) -> bool:
    return name not in available("power-control")


# ---------------------------------------------------------------------------- data
def draw_point(
    sigma: float, samples: int, seed: int, batch: int = 2000
) -> tuple[PowerControlInstances, int]:
    """``samples`` estimates with error ``sigma`` whose estimate is feasible, and the number
    drawn. The returned instances are in the default (exact) robust mode."""
    scenario = point_scenario(sigma)
    generator = torch.Generator().manual_seed(int(seed))
    kept: list[PowerControlInstances] = []
    accepted = drawn = 0
    with progress_bar(f"{SUITE}: drawing sigma {sigma:g}", total=samples) as advance:
        while accepted < samples:
            if drawn > 1000 * samples:
                raise ValueError(f"samples: too few feasible estimates at sigma {sigma:g}")
            est = cast(PowerControlInstances, draw_instances(scenario, batch, generator))
            ok = pc.minimum_power(csi.with_robust(est, csi.NONE)).feasible
            index = torch.nonzero(ok).squeeze(1)[: samples - accepted]
            kept.append(est[index])
            accepted += int(index.numel())
            drawn += batch
            advance(int(index.numel()))
    return PowerControlInstances.concatenate(kept), drawn


def ensure_dataset(
    folder: Path,
    sigma: float,
    samples: int,
    seed: int,
    splits: tuple[float, float, float],
    log: Log,
    force: bool,
) -> Path:
    """Write (or reuse) the point's data set (:func:`draw_point`, no generation stats)."""

    def draw() -> tuple[PowerControlInstances, None, str]:
        instances, drawn = draw_point(sigma, samples, seed)
        return instances, None, f"sigma {sigma:g}: feasible as seen out of {drawn} drawn"

    scenario = point_scenario(sigma)
    return ensure_dataset_file(
        folder / "dataset.h5", scenario, samples, seed, splits, force, log, draw=draw
    )


# ---------------------------------------------------------------------------- solving
def _mode(series: str) -> str:
    return csi.NONE if series == "distorted" else series


def train_in_mode(
    run_dir: Path,
    method: str,
    dataset: Path,
    series: str,
    sigma: float,
    train_config: TrainConfig,
    log: Log,
) -> None:
    """Train ``method`` on the data set's train split in the series' robust mode (resuming an
    unfinished run; ``run_dir/done`` marks a finished one)."""
    if (run_dir / "done").exists():
        return
    train_set, validation_set, info = storage.read_training_splits(dataset)
    mode = _mode(series)
    train_set = csi.with_robust(cast(PowerControlInstances, train_set), mode)
    validation_set = csi.with_robust(cast(PowerControlInstances, validation_set), mode)
    config = train_config
    if series == "distorted":
        config = train_config.model_copy(update={"csi_distortion": sigma})
    log(f"{SUITE}: training {method} ({series}, sigma {sigma:g}) on {len(train_set)} instances")
    train(
        get_method(method),
        train_set,
        validation_set,
        run_dir,
        config,
        resume=True,
        metadata={"scenario": info.scenario.model_dump(mode="json"), "robust": series},
        log=log,
    )
    (run_dir / "done").touch()


def series_results(
    folder: Path,
    dataset: Path,
    test: PowerControlInstances,
    series: str,
    methods: Sequence[str],
    sigma: float,
    workers: int | None,
    train_config: TrainConfig,
    log: Log,
    rtol: float,
    guard: bool,
) -> dict[str, Result]:
    """Every method's result on the test estimates in the series' mode (cached)."""
    mode_test = csi.with_robust(test, _mode(series))
    names = [m for m in methods if series != "distorted" or is_learned(m)]
    series_dir = folder / series

    def learn(name: str) -> Result:
        run_dir = series_dir / "models" / name
        train_in_mode(run_dir, name, dataset, series, sigma, train_config, log)
        model, _ = load_model(run_dir)
        return warm_model_result(model, mode_test, name)

    return solve_methods(
        series_dir,
        dataset,
        mode_test,
        names,
        workers,
        train_config,
        log,
        rtol,
        guard,
        label=f"sigma {sigma:g} {series}: ",
        learn=learn,
    )


def _stats(violated: np.ndarray, rates: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Violation and sum-rate statistics over the instances in ``mask`` (``(N,)`` bool) of
    ``(N, D)`` verdicts and true sum rates [bit/s]."""
    n = int(mask.sum())
    if n == 0:
        return {"p": math.nan, "se": math.nan, "draws": 0, "instances": 0, "rate": math.nan,
                "zeroed": math.nan}  # fmt: skip
    viol, rate = violated[mask], rates[mask]
    per_instance = viol.mean(axis=1)
    return {
        "p": float(viol.mean()),
        "se": float(per_instance.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "draws": int(viol.sum()),
        "instances": int(viol.any(axis=1).sum()),
        "rate": float(rate.mean() / 1e6),
        "zeroed": float(np.where(viol, 0.0, rate).mean() / 1e6),
    }


def feasible_in_mode(test: PowerControlInstances, series: str) -> np.ndarray:
    """``(N,)`` bool: the test instances the series' robust mode declares feasible."""
    return pc.minimum_power(csi.with_robust(test, _mode(series))).feasible.numpy()


def true_channel_row(
    sigma: float,
    series: str,
    method: str,
    result: Result,
    test: PowerControlInstances,
    draws: int,
    seed: int,
    solvable: np.ndarray,
    common: np.ndarray,
) -> dict[str, Any]:
    """The row of one (point, series, method): the allocations evaluated on ``draws`` true
    channels per test instance (the same draws for every series of the point).

    The main columns are over the **common** instances ``common`` (``(N,)`` bool), those
    feasible under the exact corner (every mode returns an allocation there); ``*_declared``
    columns are over ``solvable``, the instances the series' own mode declares feasible (all
    of them for ``none`` and ``heuristic``); both from :func:`feasible_in_mode`."""
    generator = torch.Generator().manual_seed(int(seed) * 7919 + round(sigma * 1e6))
    rates, violated = csi.evaluate_on_true_channels(result.allocation, test, draws, generator)
    violated_np, rates_np = violated.numpy(), rates.numpy()
    main = _stats(violated_np, rates_np, common)
    declared = _stats(violated_np, rates_np, solvable)
    return {
        "series": f"{method} ({series})",
        "method": method,
        "mode": series,
        "kind": "learned" if is_learned(method) else "classical",
        "sigma": sigma,
        "num_instances": len(test),
        "common_instances": int(common.sum()),
        "draws": draws,
        "infeasible_fraction": float(1.0 - solvable.mean()),
        "violation_probability": main["p"],
        "violation_probability_se": main["se"],
        "violating_draws": main["draws"],
        "instances_with_violation": main["instances"],
        "mean_sum_rate_mbps": main["rate"],
        "mean_sum_rate_zeroed_mbps": main["zeroed"],
        "violation_probability_declared": declared["p"],
        "violating_draws_declared": declared["draws"],
        "mean_sum_rate_declared_mbps": declared["rate"],
        "feasible_as_designed": float(result.feasible[solvable].mean())
        if solvable.any()
        else math.nan,
        "time_per_sample_ms": float(np.mean(result.seconds) * 1e3),
    }


# ---------------------------------------------------------------------------- entry point
def run_sweep(
    out_dir: Path,
    points: Sequence[float],
    methods: Sequence[str],
    series: Sequence[str],
    samples: int,
    splits: tuple[float, float, float],
    draws: int,
    train_config: TrainConfig,
    seed: int = 0,
    workers: int | None = None,
    full: bool = False,
    rtol: float = 1e-6,
    guard: bool = False,
    force: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """Run the sweep into ``out_dir``; writes ``results.json`` and the reports and returns the
    payload."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    point_seconds: dict[str, float] = {}
    for sigma in points:
        start = time.perf_counter()
        folder = out_dir / f"sigma-{sigma:g}"
        dataset = ensure_dataset(folder, sigma, samples, seed, splits, log, force)
        test_read, _ = storage.read_dataset(dataset, "test")
        test = cast(PowerControlInstances, test_read)
        common = feasible_in_mode(test, csi.EXACT)
        for name in series:
            solvable = feasible_in_mode(test, name)
            results = series_results(
                folder, dataset, test, name, methods, sigma, workers, train_config, log, rtol,
                guard,
            )  # fmt: skip
            for method, result in results.items():
                row = true_channel_row(
                    sigma, name, method, result, test, draws, seed, solvable, common
                )
                rows.append(row)
                log(
                    f"sigma {sigma:g} {row['series']}: violation prob. "
                    f"{row['violation_probability']:.4f} ({row['violating_draws']} draws), "
                    f"true sum rate {row['mean_sum_rate_mbps']:.2f} Mbit/s, robust-infeasible "
                    f"{row['infeasible_fraction']:.1%}"
                )
        point_seconds[f"{sigma:g}"] = time.perf_counter() - start
    payload = {
        "suite": SUITE,
        "figure": "Fig. 13",
        "full": full,
        "points_sigma": list(points),
        "methods": list(methods),
        "series": list(series),
        "samples_per_point": samples,
        "splits": list(splits),
        "draws": draws,
        "seed": seed,
        "rtol": rtol,
        "guard": guard,
        "train_config": train_config.model_dump(mode="json"),
        "scenario": base_scenario().model_dump(mode="json"),
        "seconds": time.perf_counter() - started,
        "point_seconds": point_seconds,
        "machine": report.machine(workers),
        "paper_claims": list(PAPER_CLAIMS),
        "results": rows,
    }
    report.write_json(out_dir / "results.json", payload)
    write_reports(out_dir, payload, log)
    return payload


def run(options: SuiteOptions) -> None:
    """Run the imperfect-CSI sweep (registered suite ``fig13``).

    Uses ``points`` (the CSI errors sigma), ``samples`` (per point, all splits), ``methods``,
    ``epochs``, ``seed``, ``workers``, ``full``, ``rtol``, ``guard``, ``force`` and ``robust``
    (the modes to compare).

    Raises:
        ValueError: ``configs`` (not taken), a bad point, method, mode or sample count.
    """
    if options.configs is not None:
        raise ValueError(f"configs: the {SUITE} suite takes no configurations; drop it")
    points = check_points(options.points, options.full)
    methods = check_methods(options.methods)
    series = check_series(options.robust)
    splits = FULL_SPLITS if options.full else QUICK_SPLITS
    samples = options.samples or (FULL_SAMPLES if options.full else QUICK_SAMPLES)
    sizes = storage.split_sizes(samples, storage.validate_splits(splits))
    if min(sizes[0], sizes[2]) < 2:
        raise ValueError(f"samples: {samples} leaves fewer than 2 train or test instances")
    epochs = options.epochs or (FULL_EPOCHS if options.full else QUICK_EPOCHS)
    run_sweep(
        options.run_dir,
        points,
        methods,
        series,
        samples,
        splits,
        FULL_DRAWS if options.full else QUICK_DRAWS,
        TrainConfig(epochs=epochs, seed=options.seed),
        seed=options.seed,
        workers=options.workers,
        full=options.full,
        rtol=options.rtol,
        guard=options.guard,
        force=options.force,
        log=options.log,
    )


# ---------------------------------------------------------------------------- reports
TABLE_COLUMNS = (
    ("sigma", "sigma"),
    ("series", "method (mode)"),
    ("infeasible_fraction", "infeasible under mode"),
    ("violation_probability_declared", "violation prob. (declared feasible)"),
    ("violating_draws_declared", "violating draws (declared)"),
    ("violation_probability", "violation prob."),
    ("violating_draws", "violating draws"),
    ("instances_with_violation", "instances with a violation"),
    ("mean_sum_rate_mbps", "true sum rate [Mbit/s]"),
    ("mean_sum_rate_zeroed_mbps", "violations as 0 [Mbit/s]"),
    ("time_per_sample_ms", "ms / sample"),
)


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if key == "infeasible_fraction":
        return f"{value:.1%}"
    if key.startswith("violation_probability"):
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.3g}" if key in ("sigma", "time_per_sample_ms") else f"{value:.2f}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(label for _, label in TABLE_COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(r, k) for k, _ in TABLE_COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def markdown_report(payload: dict[str, Any]) -> str:
    rows = payload["results"]
    machine = payload.get("machine", {})
    lines = [
        "# Fig. 13: power control under imperfect CSI",
        "",
        f"Path loss, B = {NUM_BS}, U = {NUM_BS * QUOTA} (Q = {QUOTA}), {RATE_MBPS:g} Mbit/s; "
        f"{payload['samples_per_point']} estimates per point (splits {payload['splits']}), "
        f"each test allocation evaluated on {payload['draws']} fresh true channels; "
        f"violations at rtol {payload['rtol']:g}; {payload['train_config']['epochs']} epochs; "
        f"seed {payload['seed']}; {payload['seconds']:.0f} s in total.",
        "",
        f"Machine: {machine}.",
        "",
        "'infeasible under mode': test instances the mode reports infeasible (no allocation). "
        "'(declared)' columns: over the instances the mode declares feasible. The other "
        "columns: over the common instances, those feasible under the exact corner "
        "(every mode returns an allocation there), so the series compare on the same set.",
        "",
        markdown_table(rows),
        "",
        "![Fig. 13](fig13.png)",
        "",
        "What the paper says (no numbers printed):",
        *[f"- {claim}" for claim in payload.get("paper_claims", [])],
        "",
    ]
    exact = [r for r in rows if r["mode"] == "exact"]
    if exact:
        worst = sum(int(r["violating_draws"]) for r in exact)
        lines.append(
            f"Robust exact: {worst} violating true-channel draws in total over "
            f"{len(exact)} (sigma, method) rows."
        )
    return "\n".join(lines) + "\n"


STYLE = {"none": "-", "distorted": "--", "heuristic": "-.", "exact": ":"}


def figure(path: Path, payload: dict[str, Any]) -> None:
    """Sum rate on true channels (left) and violation probability (right) against sigma."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for series in dict.fromkeys(r["series"] for r in rows):
        found = sorted((r for r in rows if r["series"] == series), key=lambda r: r["sigma"])
        xs = [r["sigma"] for r in found]
        mode, method = found[0]["mode"], found[0]["method"]
        style = dict(linestyle=STYLE.get(mode, "-"), marker="o", color=report.method_color(method))
        left.plot(xs, [r["mean_sum_rate_mbps"] for r in found], label=series, **style)
        right.plot(xs, [r["violation_probability_declared"] for r in found], label=series, **style)
    left.set_xlabel("CSI error sigma")
    left.set_ylabel("average sum rate on true channels [Mbit/s]\n(instances feasible for exact)")
    right.set_xlabel("CSI error sigma")
    right.set_ylabel("QoS violation probability on true channels\n(instances the mode serves)")
    right.set_ylim(bottom=-0.02)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(
        f"Imperfect CSI: path loss, B = {NUM_BS}, U = {NUM_BS * QUOTA}, {RATE_MBPS:g} Mbit/s, "
        f"{payload['draws']} true channels per test instance"
    )
    fig.tight_layout()
    with report.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_reports(out_dir: Path, payload: dict[str, Any], log: Log = print) -> list[Path]:
    """Write ``results.csv``, ``report.md`` and ``fig13.png`` from the payload."""
    rows = payload["results"]
    written = [out_dir / "results.csv", out_dir / "report.md", out_dir / "fig13.png"]
    report.write_csv(written[0], rows)
    report.write_text(written[1], markdown_report(payload))
    figure(written[2], payload)
    log(markdown_table(rows))
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written


__all__ = [
    "SERIES",
    "base_scenario",
    "check_methods",
    "check_points",
    "check_series",
    "run",
    "run_sweep",
    "write_reports",
]
