"""The registry of benchmark suites that ``feasnet bench --suite NAME`` runs through one door.

A registered suite is a module with two functions:

``run(options: SuiteOptions) -> None``
    Generate its data, solve, train and evaluate into ``options.run_dir`` (every file written
    atomically and reused when ``options.resume`` is set), then write ``results.json`` whose
    ``"suite"`` field is the suite's name, and the tables and plots.
``write_reports(run_dir: Path, payload: dict, log) -> list[Path]``
    Rebuild the tables and plots from a saved ``results.json`` payload (``feasnet report``).

Input errors (an unknown point, a method the suite cannot run, a flag it does not take) are
raised as ``ValueError`` naming the option, before anything is written.

The older suites (``default``, ``classical``, ``table2``, ``fig12`` and the MISO sweeps) keep
their own option handling in the command line; every new suite goes through this registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

Log = Callable[[str], Any]


@dataclass(frozen=True)
class SuiteOptions:
    """Everything ``feasnet bench`` passes to a registered suite.

    ``None`` means "the suite's default" (quick default, or paper scale with ``full``).
    """

    run_dir: Path
    samples: int | None = None
    seed: int = 0
    methods: tuple[str, ...] | None = None
    epochs: int | None = None
    points: tuple[float, ...] | None = None
    configs: tuple[int, ...] | None = None
    workers: int = 1
    full: bool = False
    resume: bool = False
    force: bool = False
    rtol: float = 1e-6
    guard: bool = False
    robust: tuple[str, ...] | None = None
    log: Log = print


@dataclass(frozen=True)
class Suite:
    """A registered suite: where it lives and what it reproduces (shown by ``--help``)."""

    name: str
    module: str
    description: str
    family: str = "power-control"


SUITES: dict[str, Suite] = {}
"""Registered suites by name, in the order ``feasnet bench --help`` lists them."""


def register(suite: Suite) -> None:
    """Add a suite to the registry (its module is imported only when the suite runs)."""
    SUITES[suite.name] = suite


def get_suite(name: str) -> ModuleType:
    """The module of the registered suite ``name``.

    Raises:
        ValueError: no suite of that name is registered.
    """
    if name not in SUITES:
        raise ValueError(f"suite: unknown suite {name!r}; registered: {', '.join(SUITES)}")
    return importlib.import_module(SUITES[name].module)


def run(name: str, options: SuiteOptions) -> None:
    """Run the registered suite ``name`` with ``options``."""
    get_suite(name).run(options)


def write_reports(
    name: str, run_dir: Path, payload: dict[str, Any], log: Log = print
) -> list[Path]:
    """Re-render a finished run of the registered suite ``name`` from its payload."""
    written: list[Path] = get_suite(name).write_reports(run_dir, payload, log=log)
    return written


# One line per suite; the module is imported only when the suite runs or is re-rendered.
register(
    Suite(
        "fig7-8",
        "feasnet.bench.fig7_8",
        "power-control paper, Figs. 7-8: final activation (affine/relu/sigmoid/softmax) of "
        "DIPNet and DEPNet, test sum rate and violation probability per epoch",
    )
)
register(
    Suite(
        "fig11",
        "feasnet.bench.fig11",
        "power-control paper, Fig. 11: DEPNet's correction (GD at five step sizes, Newton) "
        "from the untrained and the trained backbone's output, per iteration",
    )
)
register(
    Suite(
        "fig4-6",
        "feasnet.bench.fig4_6",
        "power-control paper, Figs. 4-6: sum rate, violation probability and time per sample "
        "vs the number of users (B = 4), Gaussian and path-loss data",
    )
)
register(
    Suite(
        "fig9",
        "feasnet.bench.fig9",
        "power-control paper, Fig. 9: the same vs the minimum rate (path loss, B = 4, U = 12)",
    )
)
register(
    Suite(
        "fig10",
        "feasnet.bench.fig10",
        "power-control paper, Fig. 10: the same vs the number of BSs (path loss, Q = 2)",
    )
)
register(
    Suite(
        "survey",
        "feasnet.bench.survey",
        "survey, Table I measured: every layer x backbone x objective on power control and MISO",
        family="power-control, miso",
    )
)
register(
    Suite(
        "generalize",
        "feasnet.bench.generalize",
        "size generalization: GNN methods trained on B = 4 (K = 4), run on B = 2..8 (K = 2..6)",
        family="power-control, miso",
    )
)
register(
    Suite(
        "fig13",
        "feasnet.bench.fig13",
        "power-control paper, Fig. 13: imperfect CSI, robust modes none / distorted training / "
        "chi heuristic / exact worst case, on fresh true channels vs the CSI error",
    )
)
