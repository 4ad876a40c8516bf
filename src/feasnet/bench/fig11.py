"""Fig. 11 of the power-control paper: convergence of DEPNet's correction.

The paper (section VIII-B-2) feeds the backbone's output ``r`` of a DEPNet, once before
training (random weights) and once after, to the correction of eqs. (12)-(22) and follows it
per iteration: heavy-ball gradient descent on the squared violation
``V(x) = ||max(G x - h, 0)||^2`` at step sizes 0.1, 0.01, 0.007, 0.001 and 0.0001 (momentum
0.5), and the regularized Newton step (Hessian ridge ``1e-8``).

This suite does the same on preset ``table2-8`` (path loss, ``B = 4``, ``U = 12``, the
setting of the paper's Figs. 7-8): it trains one DEPNet (``correction+mlp``, sigmoid output,
our training defaults) and runs :func:`feasnet.layers.correction.correct` on the test split
from the backbone output of the initial weights (the weights training starts from) and of
the trained ones, every rule for the same number of iterations (no early exit), in float64.
Per iteration it records, averaged over the test instances:

* the violation probability of the iterate (float64 check at ``rtol``, the original rows);
* the mean squared violation ``V`` of the iterate on the rows as given (normalized powers
  ``x = p / pmax``, each QoS row divided by its direct gain), the quantity the paper's
  gradient descends;
* the mean sum rate of the iterate [Mbit/s] (violating iterates counted at their value, so
  the curve shows where the correction moves the allocation, not only whether it is done).

Step sizes mean different things on different rows. The rows of ``G`` differ in scale by
orders of magnitude on path-loss data (a QoS row holds cross/direct gain ratios), so the
suite runs gradient descent twice: on the rows as given (``rows = "given"``, the paper's
``V``) and on equilibrated rows (``rows = "equilibrated"``, every row scaled to unit norm,
the rule our DEPNet trains with; :func:`feasnet.layers.correction.equilibrate_rows`). Newton
is run with our bound-aware step (``newton``, the default of the layer) and with the paper's
plain clamp (``newton-plain``, ``bound_passes = 0``).

Files (each written atomically; a rerun reuses them): ``dataset.h5``, ``models/depnet/``,
``results.json``, ``results.csv``, ``report.md``, ``fig11.png`` (rows as given),
``fig11-equilibrated.png`` and ``training.png``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from feasnet.bench import report
from feasnet.bench.fig7_8 import (
    _initial_model,
    check_samples,
    claim_run_folder,
    ensure_dataset,
    scenario,
)
from feasnet.bench.runner import train_once
from feasnet.bench.suites import SuiteOptions
from feasnet.data import storage
from feasnet.layers.correction import (
    DEFAULT_BOUND_PASSES,
    DEFAULT_MOMENTUM,
    DEFAULT_NEWTON_REGULARIZATION,
    correct,
    squared_violation,
)
from feasnet.methods import get_method
from feasnet.models import LearnedModel
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import DEFAULT_RTOL, LinearConstraints
from feasnet.training import TrainConfig, load_model

Log = Callable[[str], Any]

SUITE = "fig11"
METHOD = "depnet"
STEP_SIZES = (0.1, 0.01, 0.007, 0.001, 0.0001)
"""The paper's gradient-descent step sizes."""
MOMENTUM = DEFAULT_MOMENTUM
"""0.5, as in the paper."""
REGULARIZATION = DEFAULT_NEWTON_REGULARIZATION
"""1e-8, as in the paper."""
ROWS = ("given", "equilibrated")
STAGES = ("before", "after")
"""Backbone output of the initial weights, and of the trained ones."""
ITERATIONS = 100
"""Correction iterations per rule (the paper's test-time Newton budget)."""

QUICK_SAMPLES = 5000
FULL_SAMPLES = 100_000
QUICK_EPOCHS = 10
FULL_EPOCHS = 20

PAPER_CLAIMS = (
    "Newton is the only correction that reaches zero violation probability, before and "
    "after training.",
    "Before training, gradient descent with step sizes 0.01 and 0.007 reaches a lower "
    "violation probability than the other step sizes; 0.1 and 0.0001 make no progress.",
    "After training every rule converges better; gradient descent with 0.01, 0.007 and 0.001 "
    "does better than before training, with fluctuations from the fixed step and momentum.",
    "Newton converges after about 10 iterations after training, about 20 before.",
)
"""What the paper states about its Fig. 11 (section VIII-B-2); it prints no numbers."""


def rules(step_sizes: Sequence[float]) -> list[dict[str, Any]]:
    """Every correction rule of the sweep: gradient descent at each step size on both row
    scalings, then Newton (bound-aware) and Newton with the plain clamp."""
    out: list[dict[str, Any]] = [
        {"rule": f"gd {step:g}", "mode": "gradient", "step_size": step, "rows": rows}
        for rows in ROWS
        for step in step_sizes
    ]
    out.append({"rule": "newton", "mode": "newton", "bound_passes": DEFAULT_BOUND_PASSES})
    out.append({"rule": "newton-plain", "mode": "newton", "bound_passes": 0})
    return out


def check_step_sizes(points: Sequence[float] | None) -> tuple[float, ...]:
    """The step sizes (default :data:`STEP_SIZES`), validated: positive and finite.

    Raises:
        ValueError: a one-line message naming ``points``.
    """
    values = tuple(float(v) for v in points) if points else STEP_SIZES
    bad = [v for v in values if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"points: step sizes must be positive, got {bad[0]:g}")
    if len(set(values)) != len(values):
        raise ValueError("points: repeated step size")
    return tuple(sorted(values, reverse=True))


# ---------------------------------------------------------------------------- measurement
@torch.no_grad()
def backbone_output(model: LearnedModel, instances: PowerControlInstances) -> torch.Tensor:
    """``(N, U)`` float64 flattened normalized powers of the backbone (eval mode), columns in
    ``x.flatten(1)`` order (``b Q + q``), the order of the problem's ``linear_form``."""
    model.eval()
    raw, _ = model.backbone.propose(instances.to(torch.float32, "cpu"))  # type: ignore[operator]
    return raw.reshape(raw.shape[0], -1).to(torch.float64)


def trajectory(
    model: LearnedModel,
    instances: PowerControlInstances,
    x0: torch.Tensor,
    rule: dict[str, Any],
    iterations: int,
    rtol: float,
) -> dict[str, Any]:
    """Run ``rule`` for ``iterations`` steps from ``x0`` ``(N, U)`` and measure every iterate.

    Returns:
        ``violation_probability``, ``mean_squared_violation`` (``V`` on the rows as given) and
        ``mean_sum_rate_mbps``: lists of ``iterations + 1`` floats (entry 0 is ``x0``), and
        ``seconds`` (the correction's wall time, measurement excluded).
    """
    problem = model.problem
    inst64 = problem.float64(instances, "cpu")
    form = problem.linear_form(inst64)
    if form is None:
        raise ValueError(f"{SUITE}: the correction study needs the linear-rate constraint set")
    constraints = LinearConstraints(G=form.G, h=form.h)
    points: list[torch.Tensor] = []
    start = time.perf_counter()
    correct(
        x0,
        constraints,
        iterations,
        rule["mode"],
        step_size=rule.get("step_size", 1.0),
        momentum=MOMENTUM,
        regularization=REGULARIZATION,
        bound_passes=rule.get("bound_passes", DEFAULT_BOUND_PASSES),
        equilibrate=rule.get("rows") == "equilibrated",
        early_exit=False,
        iterates=points,
    )
    seconds = time.perf_counter() - start
    shape = (x0.shape[0], *model.shape)
    violation, residual, rate = [], [], []
    for x in points:
        finite = torch.isfinite(x).all(dim=1)
        x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        ok = problem.is_feasible(x.reshape(shape), inst64, rtol=rtol) & finite
        v = torch.where(
            finite, squared_violation(x, constraints), torch.full_like(x[:, 0], math.inf)
        )
        violation.append(float(1.0 - ok.double().mean()))
        residual.append(float(v.mean()))
        rate.append(float(problem.objective(x.reshape(shape), inst64).mean()) / 1e6)
    return {
        "violation_probability": violation,
        "mean_squared_violation": residual,
        "mean_sum_rate_mbps": rate,
        "seconds": seconds,
    }


def first_zero(values: Sequence[float]) -> int | None:
    """The first iteration from which ``values`` stays at 0 (None if it does not end at 0)."""
    if not values or values[-1] != 0:
        return None
    k = len(values) - 1
    while k > 0 and values[k - 1] == 0:
        k -= 1
    return k


def models_for(
    out_dir: Path, dataset: Path, epochs: int, seed: int, log: Log
) -> dict[str, LearnedModel]:
    """``{"before": initial weights, "after": trained}`` DEPNet models (trained, or reused,
    in ``out_dir/models/depnet``)."""
    config = get_method(METHOD)
    train_set, _, _ = storage.read_training_splits(dataset)
    run_dir = out_dir / "models" / METHOD
    train_once(run_dir, config, dataset, TrainConfig(epochs=epochs, seed=seed), log)
    trained, _ = load_model(run_dir)
    assert isinstance(train_set, PowerControlInstances)
    return {"before": _initial_model(config, train_set, seed), "after": trained}


def run_study(
    out_dir: Path,
    samples: int,
    epochs: int,
    seed: int,
    step_sizes: Sequence[float],
    iterations: int = ITERATIONS,
    rtol: float = DEFAULT_RTOL,
    full: bool = False,
    force: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """Train (or reuse) the DEPNet, trace every rule from both backbone outputs, write
    ``results.json`` and the reports; returns the payload."""
    if iterations < 1:
        raise ValueError(f"iterations: expected at least 1, got {iterations}")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dataset = ensure_dataset(out_dir / "dataset.h5", samples, seed, log, force)
    claim_run_folder(
        out_dir / "models" / METHOD, {"seed": seed, "samples": samples, "epochs": epochs}, force
    )
    models = models_for(out_dir, dataset, epochs, seed, log)
    test, _ = storage.read_dataset(dataset, "test")
    assert isinstance(test, PowerControlInstances)
    rows: list[dict[str, Any]] = []
    for stage in STAGES:
        model = models[stage]
        x0 = backbone_output(model, test)
        for rule in rules(step_sizes):
            curves = trajectory(model, test, x0, rule, iterations, rtol)
            row = {
                "stage": stage,
                **rule,
                "num_instances": len(test),
                "iterations": iterations,
                "final_violation_probability": curves["violation_probability"][-1],
                "final_mean_squared_violation": curves["mean_squared_violation"][-1],
                "final_mean_sum_rate_mbps": curves["mean_sum_rate_mbps"][-1],
                "zero_violation_from": first_zero(curves["violation_probability"]),
                **curves,
            }
            rows.append(row)
            log(
                f"{stage} training, {_label(rule)}: violation prob. "
                f"{curves['violation_probability'][0]:.3f} -> "
                f"{row['final_violation_probability']:.3f}, mean V "
                f"{curves['mean_squared_violation'][0]:.3g} -> "
                f"{row['final_mean_squared_violation']:.3g} in {iterations} iterations"
            )
    payload = {
        "suite": SUITE,
        "figure": "Fig. 11",
        "full": full,
        "preset": scenario().name,
        "scenario": scenario().model_dump(mode="json"),
        "samples": samples,
        "num_test_instances": len(test),
        "epochs": epochs,
        "seed": seed,
        "step_sizes": list(step_sizes),
        "momentum": MOMENTUM,
        "regularization": REGULARIZATION,
        "iterations": iterations,
        "rtol": rtol,
        "seconds": time.perf_counter() - started,
        "machine": report.machine(None),
        "paper_claims": list(PAPER_CLAIMS),
        "checks": measured_summary(rows),
        "results": rows,
    }
    report.write_json(out_dir / "results.json", payload)
    write_reports(out_dir, payload, log)
    return payload


def run(options: SuiteOptions) -> None:
    """Run the convergence study (registered suite ``fig11``).

    Uses ``samples`` (default 5,000; 100,000 with ``full``), ``epochs`` (DEPNet's training,
    default 10; 20 with ``full``), ``seed``, ``points`` (the step sizes, default the paper's
    five), ``rtol``, ``force``.

    Raises:
        ValueError: a flag this suite does not take (``methods``, ``configs``, ``guard``), or
            a bad step size or sample count.
    """
    for name in ("methods", "configs"):
        if getattr(options, name) is not None:
            raise ValueError(f"{name}: the {SUITE} suite studies DEPNet's correction only; drop it")
    if options.guard:
        raise ValueError(f"guard: the {SUITE} suite measures the correction alone; drop --guard")
    step_sizes = check_step_sizes(options.points)
    samples = check_samples(options.samples or (FULL_SAMPLES if options.full else QUICK_SAMPLES))
    epochs = options.epochs or (FULL_EPOCHS if options.full else QUICK_EPOCHS)
    run_study(
        options.run_dir,
        samples,
        epochs,
        options.seed,
        step_sizes,
        rtol=options.rtol,
        full=options.full,
        force=options.force,
        log=options.log,
    )


# ---------------------------------------------------------------------------- summary
def _label(row: dict[str, Any]) -> str:
    return row["rule"] + (f" ({row['rows']} rows)" if row.get("rows") else "")


def measured_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stage: the rules that end at zero violation (and from which iteration), the final
    violation probability of every rule, and the gradient step sizes that lower the mean
    ``V`` by less than 1 % over the run ("no progress")."""
    out: dict[str, Any] = {}
    for stage in dict.fromkeys(r["stage"] for r in rows):
        mine = [r for r in rows if r["stage"] == stage]
        out[stage] = {
            "zero_violation": {
                _label(r): r["zero_violation_from"]
                for r in mine
                if r["zero_violation_from"] is not None
            },
            "final_violation_probability": {
                _label(r): r["final_violation_probability"] for r in mine
            },
            "initial_violation_probability": mine[0]["violation_probability"][0] if mine else None,
            "no_progress": [
                _label(r)
                for r in mine
                if r["mode"] == "gradient"
                and not (
                    report.number(r["final_mean_squared_violation"])
                    < 0.99 * report.number(r["mean_squared_violation"][0])
                )
            ],
        }
    return out


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The measured summary as sentences."""
    lines = []
    for stage, s in summary.items():
        zero = ", ".join(f"{k} (from iteration {v})" for k, v in s["zero_violation"].items())
        lines.append(
            f"{stage} training: backbone output violates on "
            f"{report.number(s['initial_violation_probability']):.3f} of the instances; rules "
            f"ending at zero violation: {zero or 'none'}"
        )
        finals = ", ".join(
            f"{k} {v:.3f}" for k, v in s["final_violation_probability"].items() if "gd" in k
        )
        lines.append(f"{stage} training, final violation probability of GD: {finals}")
        if s["no_progress"]:
            lines.append(
                f"{stage} training, GD making no progress on mean V (< 1 % decrease): "
                + ", ".join(s["no_progress"])
            )
    return lines


# ---------------------------------------------------------------------------- outputs
def final_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: one line per rule, before/after columns."""
    keys = [
        ("final_violation_probability", "violation prob.", ".4f"),
        ("final_mean_squared_violation", "mean V", ".3g"),
        ("final_mean_sum_rate_mbps", "mean sum rate [Mbit/s]", ".2f"),
        ("zero_violation_from", "zero violation from iteration", "d"),
    ]
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    by = {(r["stage"], _label(r)): r for r in rows}
    labels = list(dict.fromkeys(_label(r) for r in rows))

    def cells(label: str) -> list[str]:
        out = []
        for stage in stages:
            row = by.get((stage, label), {})
            for key, _, fmt in keys:
                value = row.get(key)
                out.append("-" if value is None else format(value, fmt))
        return out

    heads = [f"{title} ({stage})" for stage in stages for _, title, _ in keys]
    return report.grid_markdown(["rule"], heads, (([label], cells(label)) for label in labels))


def markdown_report(payload: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The run's ``report.md``."""
    scen = payload.get("scenario", {})
    sections = [
        "# `fig11`: convergence of DEPNet's correction (power-control paper, Fig. 11)",
        f"Preset {payload.get('preset')} (path loss, B = {scen.get('num_bs')}, U = "
        f"{scen.get('num_bs', 0) * scen.get('num_channels', 0)}); {payload.get('samples')} "
        f"instances, DEPNet trained {payload.get('epochs')} epochs (seed "
        f"{payload.get('seed')}); every rule runs {payload.get('iterations')} iterations in "
        f"float64 on the {payload.get('num_test_instances')} test instances from the backbone "
        "output of the initial ('before') and trained ('after') weights. GD: heavy ball, "
        f"momentum {payload.get('momentum')}, on the rows as given (the paper's V) or on "
        f"equilibrated rows; Newton: ridge {payload.get('regularization'):g}, bound-aware "
        "(`newton`) or with the plain clamp (`newton-plain`). Violations by the float64 check "
        f"at rtol {payload.get('rtol', DEFAULT_RTOL):g}; V is measured on the rows as given.",
        "## After the last iteration\n\n" + final_table(rows),
    ]
    sections += report.closing_sections(
        summary_lines(payload.get("checks") or measured_summary(rows)),
        payload.get("paper_claims") or PAPER_CLAIMS,
        payload.get("seconds"),
        (payload.get("machine") or {}).get("threads"),
    )
    sections.append(
        "![fig11](fig11.png)\n\n![fig11, equilibrated rows](fig11-equilibrated.png)\n\n"
        "![training](training.png)"
    )
    return "\n\n".join(sections) + "\n"


NEWTON_STYLE = {"newton": ("#000000", "-"), "newton-plain": ("#7f7f7f", "--")}
GD_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def figure(path: Path, rows: list[dict[str, Any]], payload: dict[str, Any], scaling: str) -> None:
    """The paper's Fig. 11 for one row scaling of GD: columns before / after training, rows
    violation probability, mean squared violation ``V`` (log scale) and mean sum rate of the
    iterate, against the iteration; Newton drawn in both figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if any(r["stage"] == s for r in rows)]
    panels = [
        ("violation_probability", "violation probability", "linear"),
        ("mean_squared_violation", "mean squared violation V\n(rows as given, log scale)", "log"),
        ("mean_sum_rate_mbps", "mean sum rate of the iterate\n[Mbit/s]", "linear"),
    ]
    steps = list(dict.fromkeys(r["step_size"] for r in rows if r["mode"] == "gradient"))
    colors = {s: GD_COLORS[i % len(GD_COLORS)] for i, s in enumerate(steps)}
    fig, axes = plt.subplots(
        len(panels), len(stages), figsize=(6.2 * len(stages), 10.0), squeeze=False
    )
    for col, stage in enumerate(stages):
        chosen = [
            r
            for r in rows
            if r["stage"] == stage and (r["mode"] == "newton" or r.get("rows") == scaling)
        ]
        for row_index, (key, label, scale) in enumerate(panels):
            ax = axes[row_index][col]
            for r in chosen:
                values = [report.number(v) for v in r[key]]
                if r["mode"] == "newton":
                    color, line = NEWTON_STYLE.get(r["rule"], ("#000000", "-"))
                    name = r["rule"]
                else:
                    color, line = colors[r["step_size"]], "-"
                    name = f"GD, step {r['step_size']:g}"
                if scale == "log":
                    values = [v if v > 0 else math.nan for v in values]
                ax.plot(range(len(values)), values, color=color, linestyle=line, lw=1.3, label=name)
            if scale == "log":
                ax.set_yscale("log")
            else:
                ax.set_yscale("linear")
            if key == "violation_probability":
                ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel("iteration")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if row_index == 0:
                ax.set_title(f"{stage} training")
    axes[0][-1].legend(fontsize=8)
    scen = payload.get("scenario", {})
    fig.suptitle(
        f"DEPNet's correction: GD (momentum {payload.get('momentum')}, {scaling} rows) and "
        f"Newton (ridge {payload.get('regularization'):g}); path loss B = {scen.get('num_bs')}, "
        f"U = {scen.get('num_bs', 0) * scen.get('num_channels', 0)}, n = "
        f"{payload.get('num_test_instances')} test instances (power-control paper, Fig. 11)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with report.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


CSV_DROP = ("violation_probability", "mean_squared_violation", "mean_sum_rate_mbps")


def csv_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CSV row per (stage, rule, iteration)."""
    out = []
    for r in rows:
        base = {k: v for k, v in r.items() if k not in CSV_DROP}
        for k, values in enumerate(zip(*(r[key] for key in CSV_DROP), strict=True)):
            out.append({**base, "iteration": k, **dict(zip(CSV_DROP, values, strict=True))})
    return out


def write_reports(out_dir: Path, payload: dict[str, Any], log: Log = print) -> list[Path]:
    """Print the final table and write ``results.csv`` (one row per iteration), ``report.md``,
    ``fig11.png``, ``fig11-equilibrated.png`` and ``training.png`` from a payload."""
    rows = [dict(r) for r in payload["results"]]
    log(f"after the last iteration\n{final_table(rows)}")
    for line in summary_lines(payload.get("checks") or measured_summary(rows)):
        log(line)
    written = [
        out_dir / "results.csv",
        out_dir / "report.md",
        out_dir / "fig11.png",
        out_dir / "fig11-equilibrated.png",
    ]
    report.write_csv(written[0], csv_rows(rows))
    figure(written[2], rows, payload, "given")
    figure(written[3], rows, payload, "equilibrated")
    png = report.training_curves_of(out_dir / "models", out_dir / "training.png")
    if png is not None:
        written.append(png)
    report.write_text(written[1], markdown_report(payload, rows))
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written
