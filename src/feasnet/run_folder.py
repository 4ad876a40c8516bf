"""Run folders: refuse to overwrite another run unless the user says ``resume`` or ``force``.

``feasnet train`` and ``feasnet bench`` write into a run folder (``--out``). A folder that already
holds a run is only reused when the user asks to continue it (``--resume``) or to replace what
it holds (``--force``); otherwise the command stops and says which flag does what. Inside a
resumed folder, cached data sets, models and solutions made for other settings are an error
too, unless ``force`` drops them.
"""

from __future__ import annotations

from pathlib import Path


class RunFolderError(ValueError):
    """A run folder holds results the command would overwrite; names the folder and the fix."""


def check_run_folder(out_dir: Path, resume: bool, force: bool, what: str) -> None:
    """Refuse a non-empty ``out_dir`` unless ``resume`` or ``force`` is set.

    Args:
        out_dir: the run folder a command is about to write.
        resume: continue the run the folder holds.
        force: replace what the folder holds (stale caches are dropped by the writers).
        what: what the command makes, for the message (e.g. ``"a training run"``).

    Raises:
        RunFolderError: ``out_dir`` is a file, or holds files and neither flag is set.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise RunFolderError(f"out: {out_dir} is a file, expected a run folder")
    if resume or force or not out_dir.exists():
        return
    held = sorted(p.name for p in out_dir.iterdir())
    if held:
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        raise RunFolderError(
            f"out: {out_dir} already holds files ({shown}); pass --resume to continue {what} "
            "in it, --force to replace its results, or choose another --out"
        )


def stale(path: Path, reason: str, force: bool) -> None:
    """Say that cached ``path`` was made for other settings: an error unless ``force``.

    Raises:
        RunFolderError: ``force`` is not set.
    """
    if not force:
        raise RunFolderError(
            f"out: {path} was made for other settings ({reason}); pass --force to replace it, "
            "or choose another --out"
        )
