"""Figs. 7 and 8 of the power-control paper: the final activation of the backbone.

The paper (section VIII-B-1) trains DIPNet (``qp+mlp``) and DEPNet (``correction+mlp``) with
four final activations of the backbone ``N_r`` (the candidate handed to the feasibility
layer): ``affine`` (none), ``relu``, ``sigmoid`` and ``softmax`` (per BS over its channels,
so each BS's budget is met with equality), on a path-loss data set with ``B = 4`` BSs and
``U = 12`` users. After every epoch it records the network sum rate (Fig. 7) and the QoS
violation probability (Fig. 8) of the model on the test set.

This suite does the same on preset ``table2-8`` (path loss, ``B = 4``, ``U = 12``, ``Q = 3``,
2.5 Mbit/s; the paper's text says "dataset ID 3 with U = 12", but its Table II lists ID 3 as
``U = 20`` and ID 8 as ``B = 4, U = 12``). Every run is trained one epoch at a time
(:func:`feasnet.training.train` resumed from its checkpoint) and the checkpoint's weights are
evaluated on the test split after every epoch, and before the first (epoch 0, the same
initial weights training starts from). Per epoch and run it records

* the layer's output: mean sum rate with violating allocations counted as 0 (as in the
  paper), its standard error, and the violation probability by the float64 check at ``rtol``
  (no guard: the layer alone);
* the backbone's output before the layer (the candidate the activation shapes): its
  violation probability and mean sum rate (violations as 0), which show what the activation
  leaves for the layer to repair;
* training's own per-epoch record from ``history.json`` (training loss, validation sum rate
  and violation probability).

Early stopping is off (patience = epochs) so every curve has every epoch.

Files (each written atomically; a rerun reuses them, an unfinished run resumes):
``dataset.h5``, ``models/<method>-<activation>/`` (training run, ``epochs.json``),
``results.json``, ``results.csv``, ``report.md``, ``fig7-8.png`` and ``training.png``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from feasnet.atomic import write_text
from feasnet.bench import report
from feasnet.bench.runner import ensure_dataset_file, solve_methods
from feasnet.bench.suites import SuiteOptions
from feasnet.data import storage
from feasnet.data.presets import Scenario, get_preset
from feasnet.methods import MethodConfig, get_method
from feasnet.metrics import evaluate, standard_error
from feasnet.models import LearnedModel, build_model
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import DEFAULT_RTOL
from feasnet.run_folder import stale
from feasnet.training import TrainConfig, train

Log = Callable[[str], Any]

SUITE = "fig7-8"
PRESET = "table2-8"
"""Path loss, ``B = 4``, ``U = 12`` (``Q = 3``), 2.5 Mbit/s."""
METHODS = ("dipnet", "depnet")
REFERENCE = "sca"
"""Classical reference drawn as a horizontal line in the sum-rate panels."""
ACTIVATIONS = ("affine", "relu", "sigmoid", "softmax")
"""The paper's four final activations, in its order."""

QUICK_SAMPLES = 5000
FULL_SAMPLES = 100_000
QUICK_EPOCHS = 10
FULL_EPOCHS = 20
SPLITS = (0.9, 0.05, 0.05)
"""Train / validation / test (the paper's split): 250 test instances in the quick default,
5,000 at full scale."""

PAPER_CLAIMS = (
    "Sigmoid and softmax reach a higher network sum rate than affine and ReLU, for both "
    "DIPNet and DEPNet (Fig. 7).",
    "Sigmoid reaches the highest sum rate and the lowest QoS violation probability for both "
    "DIPNet and DEPNet (Figs. 7, 8); the paper concludes sigmoid performs best overall.",
)
"""What the paper states about Figs. 7 and 8 (section VIII-B-1); it prints no numbers."""


# ---------------------------------------------------------------------------- data
def scenario() -> Scenario:
    """The suite's scenario (preset :data:`PRESET`)."""
    preset = get_preset(PRESET)
    assert isinstance(preset, Scenario)
    return preset


def check_samples(samples: int, splits: tuple[float, float, float] = SPLITS) -> int:
    """``samples``, validated: every split must get at least two instances (batch norm).

    Raises:
        ValueError: a one-line message naming ``samples``.
    """
    try:
        smallest = min(storage.split_sizes(samples, storage.validate_splits(splits)))
    except ValueError:
        smallest = 0
    if smallest < 2:
        raise ValueError(
            f"samples: {samples} instances leave a split of {'/'.join(map(str, splits))} with "
            "fewer than 2 instances; give more"
        )
    return samples


def ensure_dataset(
    path: Path,
    samples: int,
    seed: int,
    log: Log = print,
    force: bool = False,
    splits: tuple[float, float, float] = SPLITS,
) -> Path:
    """Write (or reuse) the suite's data set at ``path``: ``samples`` feasible instances of
    :data:`PRESET` drawn with ``seed``. One made for other settings is an error unless
    ``force`` (then it is replaced)."""
    check_samples(samples, splits)
    return ensure_dataset_file(path, scenario(), samples, seed, splits, force, log)


def method_config(method: str, activation: str) -> MethodConfig:
    """``method`` (``dipnet`` / ``depnet``) with the backbone's final ``activation``."""
    return get_method(method, backbone={"kind": "mlp", "options": {"activation": activation}})


def check_methods(methods: Sequence[str] | None) -> tuple[str, ...]:
    """The methods to run (default both), validated.

    Raises:
        ValueError: a method other than ``dipnet`` / ``depnet`` (named).
    """
    chosen = tuple(methods) if methods else METHODS
    bad = [m for m in chosen if m not in METHODS]
    if bad:
        raise ValueError(f"methods: {SUITE} runs {', '.join(METHODS)}; got {bad[0]!r}")
    return tuple(m for m in METHODS if m in chosen)


# ---------------------------------------------------------------------------- evaluation
def reference_row(
    out_dir: Path,
    dataset: Path,
    test: PowerControlInstances,
    workers: int | None,
    rtol: float,
    log: Log = print,
) -> dict[str, Any]:
    """SCA on the test split (cached in ``out_dir/solutions/sca.npz``): the sum rate the
    learned methods are read against. Returns ``method``, ``objective_mbps`` (violations as 0)
    with its standard error, ``violation_probability`` and ``num_not_converged``."""
    result = solve_methods(out_dir, dataset, test, [REFERENCE], workers, None, log, rtol)[REFERENCE]
    metrics = evaluate(result)
    return {
        "method": REFERENCE,
        "objective_mbps": metrics.mean_objective / 1e6,
        "objective_mbps_se": metrics.objective_standard_error / 1e6,
        "violation_probability": metrics.violation_probability,
        "num_not_converged": metrics.num_not_converged,
    }


def _mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (:func:`feasnet.metrics.standard_error`) of ``(N,)`` values."""
    return float(values.mean()), standard_error(values.numpy())


@torch.no_grad()
def evaluate_epoch(
    model: LearnedModel, instances: PowerControlInstances, rtol: float
) -> dict[str, float]:
    """Test metrics of ``model`` (eval mode) on ``instances``.

    Returns:
        ``objective_mbps`` / ``objective_mbps_se`` (layer output, violations as 0, mean and
        standard error [Mbit/s]), ``violation_probability`` (layer output, float64 check at
        ``rtol``), ``raw_violation_probability`` and ``raw_objective_mbps`` (the backbone's
        output before the layer), ``seconds`` (the layer's forward pass on the batch).
    """
    model.eval()
    problem = model.problem
    inst64 = problem.float64(instances, "cpu")
    inst32 = instances.to(torch.float32, "cpu")
    start = time.perf_counter()
    x = model(inst32)
    seconds = time.perf_counter() - start
    raw, _ = model.backbone.propose(inst32)  # type: ignore[operator]
    out: dict[str, float] = {"seconds": seconds}
    for prefix, point in (("", x), ("raw_", raw)):
        x64 = torch.nan_to_num(point.detach().to(torch.float64), nan=0.0)
        ok = problem.is_feasible(x64, inst64, rtol=rtol) & torch.isfinite(point).flatten(1).all(1)
        value = torch.where(ok, problem.objective(x64, inst64), torch.zeros(len(ok)).double())
        mean, se = _mean_se(value / 1e6)
        out[f"{prefix}objective_mbps"] = mean
        out[f"{prefix}objective_mbps_se"] = se
        out[f"{prefix}violation_probability"] = float(1.0 - ok.double().mean())
    return out


def _read_records(path: Path) -> dict[int, dict[str, Any]]:
    if not path.exists():
        return {}
    return {int(r["epoch"]): r for r in json.loads(path.read_text())}


def _write_records(path: Path, records: dict[int, dict[str, Any]]) -> None:
    rows = [records[k] for k in sorted(records)]
    write_text(path, json.dumps(rows, indent=2, allow_nan=False, default=str) + "\n")


def _initial_model(
    config: MethodConfig, train_set: PowerControlInstances, seed: int
) -> LearnedModel:
    """The weights training starts from (same seed, same construction order)."""
    torch.manual_seed(seed)
    model = build_model(config, train_set)
    model.fit_normalizer(train_set)
    return model


def train_and_track(
    run_dir: Path,
    config: MethodConfig,
    dataset: Path,
    test: PowerControlInstances,
    epochs: int,
    seed: int,
    rtol: float,
    log: Log = print,
) -> list[dict[str, Any]]:
    """Train ``config`` for ``epochs`` epochs in ``run_dir``, evaluating on ``test`` before
    training and after every epoch; returns the per-epoch records (also in
    ``run_dir/epochs.json``). Epochs already recorded are reused; an unfinished run resumes
    from its checkpoint.

    Raises:
        ValueError: ``run_dir`` holds a run further on than its records (written for other
            settings); pass another folder or remove it.
    """
    train_set, validation_set, _ = storage.read_training_splits(dataset)
    assert isinstance(train_set, PowerControlInstances)
    records_path = run_dir / "epochs.json"
    records = _read_records(records_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    if 0 not in records:
        records[0] = {
            "epoch": 0,
            **evaluate_epoch(_initial_model(config, train_set, seed), test, rtol),
        }
        _write_records(records_path, records)
    for epoch in range(1, epochs + 1):
        if epoch in records:
            continue
        train_config = TrainConfig(epochs=epoch, seed=seed, patience=max(epochs, 1))
        train(
            config,
            train_set,
            validation_set,
            run_dir,
            train_config,
            resume=True,
            metadata={"scenario": scenario().model_dump(mode="json"), "suite": SUITE},
            log=log,
        )
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True, map_location="cpu")
        if int(state["epoch"]) != epoch:
            raise ValueError(
                f"out: {run_dir} holds a training run at epoch {int(state['epoch'])}, but its "
                f"records stop before epoch {epoch}; use --force or another --out"
            )
        model = build_model(config, train_set)
        model.load_state_dict(state["model"])
        history = {int(r["epoch"]): r for r in state["history"]}[epoch]
        records[epoch] = {
            "epoch": epoch,
            **evaluate_epoch(model, test, rtol),
            "train_loss": history["train_loss"],
            "validation_objective_mbps": history["validation_objective"] / 1e6,
            "validation_violation_probability": history["validation_violation_probability"],
            "train_seconds": history["seconds"],
        }
        _write_records(records_path, records)
        r = records[epoch]
        log(
            f"{run_dir.name} epoch {epoch}/{epochs}: test sum rate {r['objective_mbps']:.2f} "
            f"Mbit/s, violation prob. {r['violation_probability']:.4f} (backbone output "
            f"{r['raw_violation_probability']:.4f})"
        )
    return [records[k] for k in range(epochs + 1)]


# ---------------------------------------------------------------------------- entry point
def run(options: SuiteOptions) -> None:
    """Run the activation ablation (registered suite ``fig7-8``).

    Uses ``samples`` (default 5,000; 100,000 with ``full``), ``epochs`` (default 10; 20 with
    ``full``), ``seed``, ``methods`` (``dipnet``, ``depnet``), ``rtol``, ``force``.

    Raises:
        ValueError: a flag this suite does not take (``points``, ``configs``, ``guard``), an
            unknown method, or too few samples.
    """
    for name in ("points", "configs"):
        if getattr(options, name) is not None:
            raise ValueError(f"{name}: the {SUITE} suite sweeps the four activations; drop it")
    if options.guard:
        raise ValueError(f"guard: the {SUITE} suite measures the layer alone; drop --guard")
    methods = check_methods(options.methods)
    samples = check_samples(options.samples or (FULL_SAMPLES if options.full else QUICK_SAMPLES))
    epochs = options.epochs or (FULL_EPOCHS if options.full else QUICK_EPOCHS)
    if epochs < 1:
        raise ValueError(f"epochs: expected at least 1, got {epochs}")
    out_dir, log = options.run_dir, options.log
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dataset = ensure_dataset(out_dir / "dataset.h5", samples, options.seed, log, options.force)
    test, _ = storage.read_dataset(dataset, "test")
    assert isinstance(test, PowerControlInstances)
    reference = reference_row(out_dir, dataset, test, options.workers, options.rtol, log)
    rows: list[dict[str, Any]] = []
    run_seconds: dict[str, float] = {}
    for method in methods:
        for activation in ACTIVATIONS:
            name = f"{method}-{activation}"
            run_dir = out_dir / "models" / name
            settings = {"seed": options.seed, "samples": samples, "rtol": options.rtol}
            claim_run_folder(run_dir, settings, options.force)
            start = time.perf_counter()
            records = train_and_track(
                run_dir,
                method_config(method, activation),
                dataset,
                test,
                epochs,
                options.seed,
                options.rtol,
                log,
            )
            run_seconds[name] = time.perf_counter() - start
            rows += [
                {"method": method, "activation": activation, "num_instances": len(test), **r}
                for r in records
            ]
    payload = {
        "suite": SUITE,
        "figure": "Figs. 7 and 8",
        "full": options.full,
        "preset": PRESET,
        "scenario": scenario().model_dump(mode="json"),
        "samples": samples,
        "splits": list(SPLITS),
        "num_test_instances": len(test),
        "epochs": epochs,
        "seed": options.seed,
        "methods": list(methods),
        "activations": list(ACTIVATIONS),
        "rtol": options.rtol,
        "reference": reference,
        "seconds": time.perf_counter() - started,
        "run_seconds": run_seconds,
        "machine": report.machine(options.workers),
        "paper_claims": list(PAPER_CLAIMS),
        "checks": measured_summary(rows),
        "results": rows,
    }
    report.write_json(out_dir / "results.json", payload)
    write_reports(out_dir, payload, log)


def claim_run_folder(run_dir: Path, settings: dict[str, Any], force: bool) -> None:
    """Mark ``run_dir`` as made for ``settings`` (``settings.json``). A folder made for other
    settings is an error unless ``force``, which empties it."""
    path = run_dir / "settings.json"
    if path.exists():
        held = json.loads(path.read_text())
        if held == settings:
            return
        stale(run_dir, ", ".join(f"{k} {v}" for k, v in held.items()), force)
        shutil.rmtree(run_dir)
    elif run_dir.exists() and any(run_dir.iterdir()):
        stale(run_dir, "no settings.json", force)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(settings) + "\n")


# ---------------------------------------------------------------------------- summary
def final_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last epoch's row of every (method, activation) run."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["method"], r["activation"])
        if key not in last or r["epoch"] > last[key]["epoch"]:
            last[key] = r
    return list(last.values())


def measured_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: the activations ranked by final-epoch test sum rate, the best one, whether
    sigmoid and softmax both beat affine and ReLU, and the largest violation probability of
    the layer output over all epochs (epoch 0 excluded)."""
    out: dict[str, Any] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        finals = {r["activation"]: r for r in final_rows(rows) if r["method"] == method}
        ranking = sorted(finals, key=lambda a: -report.number(finals[a]["objective_mbps"]))
        bounded = [a for a in ("sigmoid", "softmax") if a in finals]
        unbounded = [a for a in ("affine", "relu") if a in finals]
        beat = (
            min(report.number(finals[a]["objective_mbps"]) for a in bounded)
            > max(report.number(finals[a]["objective_mbps"]) for a in unbounded)
            if bounded and unbounded
            else None
        )
        trained = [r for r in rows if r["method"] == method and r["epoch"] > 0]
        out[method] = {
            "ranking_by_final_sum_rate": ranking,
            "final_sum_rate_mbps": {a: finals[a]["objective_mbps"] for a in ranking},
            "sigmoid_and_softmax_beat_affine_and_relu": beat,
            "max_violation_probability": max(
                (report.number(r["violation_probability"]) for r in trained), default=math.nan
            ),
            "final_backbone_violation_probability": {
                a: finals[a]["raw_violation_probability"] for a in ranking
            },
        }
    return out


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The measured summary as sentences."""
    lines = []
    for method, s in summary.items():
        rates = ", ".join(f"{a} {v:.2f}" for a, v in s["final_sum_rate_mbps"].items())
        beat = s["sigmoid_and_softmax_beat_affine_and_relu"]
        verdict = {True: "yes", False: "no", None: "n/a"}[beat]
        raw = ", ".join(
            f"{a} {v:.3f}" for a, v in s["final_backbone_violation_probability"].items()
        )
        lines.append(
            f"{method}: final-epoch test sum rate [Mbit/s] {rates}; sigmoid and softmax above "
            f"affine and ReLU: {verdict}; largest violation probability of the layer output "
            f"over the epochs {s['max_violation_probability']:.4f}; violation probability of "
            f"the backbone output before the layer (final epoch): {raw}"
        )
    return lines


# ---------------------------------------------------------------------------- outputs
TABLE_KEYS: list[tuple[str, str]] = [
    ("objective_mbps", "test sum rate [Mbit/s]"),
    ("violation_probability", "violation prob."),
    ("raw_violation_probability", "backbone violation prob."),
    ("raw_objective_mbps", "backbone sum rate [Mbit/s]"),
    ("validation_objective_mbps", "validation sum rate [Mbit/s]"),
]


def _fmt(row: dict[str, Any], key: str) -> str:
    value = report.number(row.get(key))
    if not math.isfinite(value):
        return "-"
    if key == "objective_mbps" and math.isfinite(report.number(row.get(f"{key}_se"))):
        return f"{value:.2f} ± {report.number(row[f'{key}_se']):.2f}"
    return f"{value:.4f}" if "violation" in key else f"{value:.2f}"


def final_table(rows: list[dict[str, Any]], reference: dict[str, Any] | None = None) -> str:
    """Markdown table of the final epoch: one line per (method, activation), then the
    reference (SCA on the same test instances) with each run's sum rate in % of it."""
    ref = report.number((reference or {}).get("objective_mbps"))
    body: list[tuple[list[str], list[str]]] = []
    for r in final_rows(rows):
        share = 100 * report.number(r["objective_mbps"]) / ref if ref > 0 else math.nan
        cells = [_fmt(r, k) for k, _ in TABLE_KEYS]
        cells.append(f"{share:.2f}" if math.isfinite(share) else "-")
        body.append(([r["method"], r["activation"]], cells))
    if reference:
        shown = ["-"] * len(TABLE_KEYS) + ["100"]
        shown[0] = _fmt(reference, "objective_mbps")
        shown[1] = _fmt(reference, "violation_probability")
        body.append(([f"{reference['method']} (reference)", "-"], shown))
    heads = [t for _, t in TABLE_KEYS] + ["% of SCA"]
    return report.grid_markdown(["method", "activation"], heads, body)


def epoch_table(rows: list[dict[str, Any]], key: str) -> str:
    """Markdown table of ``key`` per epoch: one line per (method, activation)."""
    epochs = sorted({r["epoch"] for r in rows})
    by = {(r["method"], r["activation"], r["epoch"]): r for r in rows}
    runs = list(dict.fromkeys((r["method"], r["activation"]) for r in rows))
    fmt = ".4f" if "violation" in key else ".2f"

    def cell(run: tuple[str, str], epoch: int) -> str:
        row = by.get((*run, epoch))
        value = report.number(row.get(key)) if row else math.nan
        return f"{value:{fmt}}" if math.isfinite(value) else "-"

    body = (([*run], [cell(run, e) for e in epochs]) for run in runs)
    return report.grid_markdown(["method", "activation"], [str(e) for e in epochs], body)


def markdown_report(payload: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The run's ``report.md``."""
    scen = payload.get("scenario", {})
    sections = [
        "# `fig7-8`: final activation of the backbone (power-control paper, Figs. 7 and 8)",
        f"Preset {payload.get('preset', PRESET)} (path loss, B = {scen.get('num_bs')}, Q = "
        f"{scen.get('num_channels')}, U = {scen.get('num_bs', 0) * scen.get('num_channels', 0)},"
        f" {report.number(scen.get('min_rate')) / 1e6:g} Mbit/s); {payload.get('samples')} "
        f"instances, split {payload.get('splits')}; {payload.get('epochs')} epochs, no early "
        f"stop, seed {payload.get('seed')}. Metrics on the {payload.get('num_test_instances')} "
        "test instances after every epoch (epoch 0: the initial weights); violations by the "
        f"float64 check at rtol {payload.get('rtol', DEFAULT_RTOL):g}, no guard; violating "
        "allocations count as 0 sum rate. 'backbone' columns: the activation's output before "
        "the feasibility layer.",
        "## Final epoch\n\n" + final_table(rows, payload.get("reference")),
        "## Test sum rate per epoch [Mbit/s] (Fig. 7)\n\n" + epoch_table(rows, "objective_mbps"),
        "## Violation probability of the layer output per epoch (Fig. 8)\n\n"
        + epoch_table(rows, "violation_probability"),
        "## Violation probability of the backbone output per epoch\n\n"
        + epoch_table(rows, "raw_violation_probability"),
    ]
    sections += report.closing_sections(
        summary_lines(payload.get("checks") or measured_summary(rows)),
        payload.get("paper_claims") or PAPER_CLAIMS,
        payload.get("seconds"),
        (payload.get("machine") or {}).get("threads"),
    )
    sections.append("![fig7-8](fig7-8.png)\n\n![training](training.png)")
    return "\n\n".join(sections) + "\n"


COLORS = {"affine": "#1f77b4", "relu": "#d62728", "sigmoid": "#2ca02c", "softmax": "#9467bd"}
MARKERS = {"affine": "o", "relu": "s", "sigmoid": "^", "softmax": "D"}
TITLES = {"dipnet": "DIPNet (qp+mlp)", "depnet": "DEPNet (correction+mlp)"}


def figure(path: Path, rows: list[dict[str, Any]], payload: dict[str, Any]) -> None:
    """Figs. 7 and 8 side by side: one column per method (DIPNet left, DEPNet right), rows
    sum rate (Fig. 7), violation probability of the layer output (Fig. 8) and of the
    backbone output before the layer; one curve per activation against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    panels = [
        ("objective_mbps", "test sum rate [Mbit/s]\n(violations count 0)"),
        ("violation_probability", "violation probability\n(layer output)"),
        ("raw_violation_probability", "violation probability\n(backbone output, before layer)"),
    ]
    fig, axes = plt.subplots(
        len(panels), len(methods), figsize=(6.2 * len(methods), 9.6), squeeze=False
    )
    for col, method in enumerate(methods):
        for row_index, (key, label) in enumerate(panels):
            ax = axes[row_index][col]
            for i, activation in enumerate(ACTIVATIONS):
                found = sorted(
                    (r for r in rows if r["method"] == method and r["activation"] == activation),
                    key=lambda r: r["epoch"],
                )
                if not found:
                    continue
                ax.plot(
                    [r["epoch"] for r in found],
                    [report.number(r.get(key)) for r in found],
                    color=COLORS[activation],
                    marker=MARKERS[activation],
                    markersize=max(3.0, 7.0 - i),
                    markerfacecolor="none",
                    linestyle=("-", "--", "-.", ":")[i],
                    lw=1.4,
                    label=activation,
                )
            reference = payload.get("reference") or {}
            if key == "objective_mbps" and reference:
                ax.axhline(
                    report.number(reference.get("objective_mbps")),
                    color="black",
                    linestyle="--",
                    lw=1.0,
                    label=f"{reference.get('method', REFERENCE)} (reference)",
                )
            if "violation" in key:
                ax.set_ylim(-0.03, 1.03)
                mine = [report.number(r.get(key)) for r in rows if r["method"] == method]
                if mine and max(mine) == 0:
                    ax.text(0.5, 0.5, "no violation at any epoch", transform=ax.transAxes,
                            ha="center", color="#555555")  # fmt: skip
            ax.set_xlabel("epoch (0: before training)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
            if row_index == 0:
                ax.set_title(TITLES.get(method, method))
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    scen = payload.get("scenario", {})
    fig.suptitle(
        f"Final activation of the backbone, path loss B = {scen.get('num_bs')}, U = "
        f"{scen.get('num_bs', 0) * scen.get('num_channels', 0)} (power-control paper, Figs. 7-8);"
        f" n = {payload.get('num_test_instances')} test instances, rtol "
        f"{payload.get('rtol', DEFAULT_RTOL):g}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.035, 1, 0.97))
    with report.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_reports(out_dir: Path, payload: dict[str, Any], log: Log = print) -> list[Path]:
    """Print the final-epoch table and write ``results.csv``, ``report.md``, ``fig7-8.png``
    and ``training.png`` (training's own curves) from a ``results.json`` payload."""
    rows = [dict(r) for r in payload["results"]]
    log(f"final epoch\n{final_table(rows, payload.get('reference'))}")
    for line in summary_lines(payload.get("checks") or measured_summary(rows)):
        log(line)
    written = [out_dir / "results.csv", out_dir / "report.md", out_dir / "fig7-8.png"]
    report.write_csv(written[0], rows)
    figure(written[2], rows, payload)
    png = report.training_curves_of(out_dir / "models", out_dir / "training.png")
    if png is not None:
        written.append(png)
    report.write_text(written[1], markdown_report(payload, rows))
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written
