"""A user script without ``if __name__ == "__main__":``: the library default (in this process)
works, and asking for worker processes fails with a message that says what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """\
import numpy as np
from feasnet import solvers
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset

instances, _ = generate(get_preset("small"), num_samples=4, seed=1)
result = solvers.solve("gp", instances, workers={workers})
print("solved", int(np.sum(result.feasible)))
"""


def run_script(tmp_path: Path, workers: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"unguarded_{workers}.py"
    script.write_text(SCRIPT.format(workers=workers), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_unguarded_script_solves_in_process_by_default(tmp_path: Path) -> None:
    done = run_script(tmp_path, "None")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "solved 4"


@pytest.mark.slow
def test_unguarded_script_asking_for_workers_gets_a_clear_error(tmp_path: Path) -> None:
    done = run_script(tmp_path, "2")
    assert done.returncode != 0
    assert "solved" not in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("feasnet.solvers.parallel.WorkerStartError:")
    assert 'if __name__ == "__main__":' in last and "workers=1" in last
    # the spawned workers exit with one line each instead of a bootstrapping traceback
    assert "bootstrapping phase" not in done.stderr
