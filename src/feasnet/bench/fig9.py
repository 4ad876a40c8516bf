"""The ``fig9`` suite: the power-control paper's Fig. 9 sweep (see :mod:`feasnet.bench.sweeps`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from feasnet.bench import sweeps
from feasnet.bench.suites import Log, SuiteOptions

SWEEP = sweeps.SWEEPS["fig9"]


def run(options: SuiteOptions) -> None:
    """Run the sweep into ``options.run_dir`` (:func:`feasnet.bench.sweeps.run`)."""
    sweeps.run(SWEEP, options)


def write_reports(run_dir: Path, payload: dict[str, Any], log: Log = print) -> list[Path]:
    """Re-render a finished run (:func:`feasnet.bench.sweeps.write_reports`)."""
    return sweeps.write_reports(run_dir, payload, log)
