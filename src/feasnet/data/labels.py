"""Solver labels stored in a data set's HDF5 file, for supervised and hybrid training.

``label_dataset(path, method)`` solves the instances of a data set's splits with a classical
solver (``sca`` for power control and ``wmmse`` for MISO by default; any solver registered for
the file's family) and stores the solutions next to the instances::

    /labels/<method>/                  attributes: solver, family, settings_json,
                                       feasnet_version, created, rtol
    /labels/<method>/<split>/allocation  (N, *shape) physical units: power control (N, B, Q)
                                         float64 [W]; MISO (N, Nt, K) complex128 [sqrt(W)]
    /labels/<method>/<split>/objective   (N,) float64, the family's objective (bit/s, bit/s/Hz)
    /labels/<method>/<split>/feasible    (N,) bool, float64 check at ``rtol``
    /labels/<method>/<split>/converged   (N,) bool, the solver met its stopping tolerance
    /labels/<method>/<split>/seconds     (N,) float64 wall time per instance [s]
    /labels/<method>/<split>/message     (N,) UTF-8 strings, "" when nothing needs saying
    (split group attributes: num_instances, instances_sha256, created)

``settings_json`` holds the solver's complete settings (the defaults of its ``solve`` function
merged with the options given); labels made with other settings are refused unless ``force``
is set, and ``instances_sha256`` ties each split's labels to the exact instance bytes.

Safety: the solves run in chunks through :func:`feasnet.solvers.solve` with a checkpoint
folder next to the data set (``<file>.labels-<method>.chunks/<split>/``), so an interrupted
run continues from its last finished chunk; each finished split is written into a copy of the
file that then replaces the original by an atomic rename (:func:`feasnet.atomic.atomic_path`),
so a crash never leaves a half-written data set. Two label runs on the same file at the same
time are not supported (the last rename wins).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from feasnet import __version__
from feasnet.atomic import atomic_path
from feasnet.data import storage
from feasnet.problems.base import DEFAULT_RTOL
from feasnet.solvers.parallel import CheckpointMismatchError

LABELS_GROUP = "labels"
"""Root group of the labels."""
DEFAULT_LABEL_METHODS: dict[str, str] = {"power-control": "sca", "miso": "wmmse"}
"""The reference solver of each family, used when no method is named."""
LABEL_KEYS = ("allocation", "objective", "feasible", "converged", "seconds", "message")
"""Datasets of every labelled split group."""


class LabelError(ValueError):
    """Labels are missing, made with other settings, or do not match the instances."""


@dataclass(frozen=True)
class Labels:
    """The labels of one split.

    Attributes:
        method: the solver's registry name.
        family: the problem family.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        allocation: ``(N, *shape)`` physical units (power control float64 [W]; MISO
            complex128 [sqrt(W)]); NaN rows where the solver returned nothing.
        objective: ``(N,)`` float64 in the family's objective unit.
        feasible: ``(N,)`` bool, float64 check at :attr:`rtol`.
        converged: ``(N,)`` bool.
        seconds: ``(N,)`` float64 [s].
        messages: one line per instance.
        settings: the solver settings the labels were made with.
        feasnet_version: the version that made them.
        rtol: tolerance of :attr:`feasible`.
    """

    method: str
    family: str
    split: str
    allocation: np.ndarray
    objective: np.ndarray
    feasible: np.ndarray
    converged: np.ndarray
    seconds: np.ndarray
    messages: list[str]
    settings: dict[str, Any]
    feasnet_version: str
    rtol: float

    def __len__(self) -> int:
        return int(self.objective.shape[0])


# ---------------------------------------------------------------------------- settings
def default_label_method(family: str) -> str:
    """The reference solver of ``family`` (:data:`DEFAULT_LABEL_METHODS`)."""
    if family not in DEFAULT_LABEL_METHODS:
        raise LabelError(
            f"method: no default label solver for the {family} family; name one with --method"
        )
    return DEFAULT_LABEL_METHODS[family]


def solver_settings(
    family: str, method: str, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The complete settings of solver ``method``: its ``solve`` defaults updated with
    ``options`` (unknown options are an error naming them).

    Raises:
        LabelError: ``method`` is not a classical solver of ``family``, or an unknown option.
    """
    from feasnet.solvers import CLASSICAL

    registry = CLASSICAL.get(family, {})
    key = method.lower()
    if key not in registry:
        raise LabelError(
            f"method: {method!r} is not a classical {family} solver; choose one of "
            f"{', '.join(registry) or 'none'}"
        )
    module, function, _ = registry[key]
    signature = inspect.signature(getattr(importlib.import_module(module), function))
    settings: dict[str, Any] = {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if name not in {"instances", "workers"}
        and parameter.default is not inspect.Parameter.empty
        and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }
    for name, value in (options or {}).items():
        if name not in settings:
            known = ", ".join(settings) or "none"
            raise LabelError(f"option: {key} has no option {name!r}; known: {known}")
        settings[name] = value
    return json.loads(json.dumps(settings, sort_keys=True, default=repr))


def instances_sha256(instances: Any) -> str:
    """SHA-256 over every byte of the exchange arrays of ``instances`` (keys sorted)."""
    digest = hashlib.sha256()
    for key, value in sorted(instances.as_numpy().items()):
        array = np.ascontiguousarray(value)
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _stored(path: Path, method: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """``(settings or None, {split: instances_sha256})`` of the labels of ``method``."""
    with h5py.File(path, "r") as f:
        group = f.get(f"{LABELS_GROUP}/{method}")
        if group is None:
            return None, {}
        settings = json.loads(_text(group.attrs["settings_json"]))
        splits = {
            name: _text(group[name].attrs.get("instances_sha256", ""))
            for name in group
            if isinstance(group[name], h5py.Group)
        }
        return settings, splits


def labelled_splits(path: str | os.PathLike[str], method: str) -> list[str]:
    """Splits of ``path`` that hold labels of ``method`` (empty when none)."""
    storage.read_info(path)  # a clear error for a file that is not a data set
    return sorted(_stored(Path(path), method.lower())[1])


def stored_labels(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Every labelled method of a data set with its labelled splits (empty when none)."""
    with h5py.File(Path(path), "r") as f:
        root = f.get(LABELS_GROUP)
        if root is None:
            return {}
        return {name: sorted(root[name]) for name in sorted(root)}


def chunk_folder(path: str | os.PathLike[str], method: str) -> Path:
    """Where the chunks of an unfinished label run of ``method`` on ``path`` are kept."""
    p = Path(path)
    return p.with_name(f"{p.name}.labels-{method.lower()}.chunks")


# ---------------------------------------------------------------------------- labelling
def _write_split(
    path: Path,
    method: str,
    family: str,
    settings: dict[str, Any],
    split: str,
    result: Any,
    digest: str,
    replace_group: bool,
) -> None:
    """Copy ``path``, add (or replace) the split's labels in the copy, rename it over ``path``."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    converged = result.converged
    if converged is None:
        converged = np.asarray(result.feasible, dtype=bool) & np.array(
            ["not converged" not in m for m in result.messages], dtype=bool
        )
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as f:
            root = f.require_group(LABELS_GROUP)
            if replace_group and method in root:
                del root[method]
            group = root.require_group(method)
            group.attrs["solver"] = method
            group.attrs["family"] = family
            group.attrs["settings_json"] = json.dumps(settings, sort_keys=True)
            group.attrs["feasnet_version"] = __version__
            group.attrs["created"] = created
            group.attrs["rtol"] = float(result.rtol)
            if split in group:
                del group[split]
            sub = group.create_group(split)
            sub.attrs["num_instances"] = len(result)
            sub.attrs["instances_sha256"] = digest
            sub.attrs["created"] = created
            sub.create_dataset("allocation", data=np.asarray(result.allocation))
            sub.create_dataset("objective", data=np.asarray(result.objective, dtype=np.float64))
            sub.create_dataset("feasible", data=np.asarray(result.feasible, dtype=bool))
            sub.create_dataset("converged", data=np.asarray(converged, dtype=bool))
            sub.create_dataset("seconds", data=np.asarray(result.seconds, dtype=np.float64))
            sub.create_dataset(
                "message",
                data=[m.encode("utf-8") for m in result.messages],
                dtype=h5py.string_dtype("utf-8"),
            )


def label_dataset(
    path: str | os.PathLike[str],
    method: str | None = None,
    splits: tuple[str, ...] | list[str] | None = None,
    workers: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    force: bool = False,
    options: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Labels]:
    """Solve the instances of a data set with a classical solver and store the labels in it.

    Args:
        path: an HDF5 data set (:mod:`feasnet.data.storage`); rewritten atomically per split.
        method: a classical solver of the file's family (default
            :func:`default_label_method`: ``sca`` / ``wmmse``).
        splits: splits to label (default: every split that holds instances). Splits already
            labelled with the same settings and the same instances are kept as they are.
        workers: worker processes (process executor) or CPUs of a local Ray instance.
        executor: ``"process"`` or ``"ray"`` (default: the enclosing executor scope).
        address: Ray cluster to join (implies ``"ray"``).
        force: replace labels of ``method`` made with other settings (or for other
            instances); without it they are refused.
        options: solver options (e.g. ``{"tolerance": 1e-7}``), recorded in the settings.
        log: where progress lines go.

    Returns:
        The labels of every requested split, by split name.

    Raises:
        LabelError: unknown method or option, or labels made with other settings (without
            ``force``).
        DatasetFileError: the file is not a feasnet data set, or a split is missing.
    """
    from feasnet import solvers

    p = Path(path)
    info = storage.read_info(p)
    family = info.family
    key = (method or default_label_method(family)).lower()
    settings = solver_settings(family, key, options)
    if splits is None:
        splits = [name for name, size in info.split_sizes.items() if size > 0]
    for split in splits:
        if split not in info.split_sizes:
            raise storage.DatasetFileError(
                f"{p}: no split {split!r} (available: {', '.join(info.split_sizes)})"
            )
        if info.split_sizes[split] == 0:
            raise storage.EmptySplitError(f"{p}: split {split!r} is empty (0 instances)")
    stored_settings, stored_splits = _stored(p, key)
    replace_group = False
    if stored_settings is not None and stored_settings != settings:
        differ = sorted(
            k
            for k in set(settings) | set(stored_settings)
            if settings.get(k) != stored_settings.get(k)
        )
        if not force:
            raise LabelError(
                f"labels: {p} holds {key} labels made with other settings ({', '.join(differ)} "
                "differ); pass --force (force=True) to replace them"
            )
        replace_group = True
        stored_splits = {}
    chunks = chunk_folder(p, key)
    out: dict[str, Labels] = {}
    for split in splits:
        instances, _ = storage.read_dataset(p, split)
        digest = instances_sha256(instances)
        if split in stored_splits:
            if stored_splits[split] == digest:
                log(f"{split}: {key} labels already present with these settings; kept")
                out[split] = read_labels(p, key, split)
                continue
            if not force:
                raise LabelError(
                    f"labels: the {split} labels of {key} in {p} were made for other instances; "
                    "pass --force (force=True) to replace them"
                )
        split_chunks = chunks / split
        resumed = split_chunks.exists()
        log(
            f"{split}: solving {len(instances)} instances with {key}"
            + (" (continuing from saved chunks)" if resumed else "")
        )

        def run(instances: Any = instances, folder: Path = split_chunks) -> Any:
            return solvers.solve(
                key,
                instances,
                workers=workers,
                executor=executor,
                address=address,
                checkpoint_dir=folder,
                **(options or {}),
            )

        try:
            result = run()
        except CheckpointMismatchError:
            if not force:
                raise LabelError(
                    f"labels: {split_chunks} holds chunks of an unfinished {key} run with other "
                    "settings; pass --force (force=True) to discard them"
                ) from None
            shutil.rmtree(split_chunks, ignore_errors=True)
            result = run()
        _write_split(p, key, family, settings, split, result, digest, replace_group)
        replace_group = False
        shutil.rmtree(split_chunks, ignore_errors=True)
        labels = read_labels(p, key, split)
        out[split] = labels
        log(
            f"{split}: {len(labels)} labels, {int(labels.feasible.sum())} feasible, "
            f"{int((~labels.converged).sum())} not converged -> {p}:/{LABELS_GROUP}/{key}/{split}"
        )
    if chunks.exists() and not any(chunks.iterdir()):
        chunks.rmdir()
    return out


# ---------------------------------------------------------------------------- reading
def read_labels(
    path: str | os.PathLike[str],
    method: str | None = None,
    split: str = "train",
    check_instances: bool = False,
) -> Labels:
    """The labels of ``method`` for ``split`` of a data set.

    Args:
        path: the HDF5 data set.
        method: the solver (default: the family's :func:`default_label_method`).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        check_instances: also verify that the split's instances are the ones labelled
            (reads and hashes the split).

    Raises:
        LabelError: no labels of ``method`` for ``split`` (the message names
            ``feasnet data label``), or labels of other instances.
    """
    p = Path(path)
    info = storage.read_info(p)
    key = (method or default_label_method(info.family)).lower()
    hint = f"run `feasnet data label {p} --method {key} --split {split}`"
    with h5py.File(p, "r") as f:
        group = f.get(f"{LABELS_GROUP}/{key}")
        if group is None:
            raise LabelError(f"labels: {p} holds no {key} labels; {hint}")
        if split not in group:
            have = ", ".join(sorted(group)) or "none"
            raise LabelError(
                f"labels: {p} holds no {key} labels for the {split} split (labelled: {have}); "
                f"{hint}"
            )
        sub = group[split]
        missing = [name for name in LABEL_KEYS if name not in sub]
        if missing:
            raise LabelError(f"labels: {p}: /{LABELS_GROUP}/{key}/{split} lacks {missing[0]!r}")
        digest = _text(sub.attrs.get("instances_sha256", ""))
        labels = Labels(
            method=key,
            family=_text(group.attrs.get("family", info.family)),
            split=split,
            allocation=sub["allocation"][()],
            objective=sub["objective"][()],
            feasible=sub["feasible"][()].astype(bool),
            converged=sub["converged"][()].astype(bool),
            seconds=sub["seconds"][()],
            messages=[_text(m) for m in sub["message"][()]],
            settings=json.loads(_text(group.attrs["settings_json"])),
            feasnet_version=_text(group.attrs.get("feasnet_version", "")),
            rtol=float(group.attrs.get("rtol", DEFAULT_RTOL)),
        )
    size = info.split_sizes.get(split, 0)
    if len(labels) != size:
        raise LabelError(
            f"labels: {p}: {len(labels)} {key} labels for the {split} split, which holds {size} "
            f"instances; relabel with --force"
        )
    if check_instances:
        instances, _ = storage.read_dataset(p, split)
        if instances_sha256(instances) != digest:
            raise LabelError(
                f"labels: {p}: the {split} labels of {key} were made for other instances; "
                "relabel with --force"
            )
    return labels


__all__ = [
    "DEFAULT_LABEL_METHODS",
    "LABELS_GROUP",
    "LABEL_KEYS",
    "LabelError",
    "Labels",
    "chunk_folder",
    "default_label_method",
    "instances_sha256",
    "label_dataset",
    "labelled_splits",
    "read_labels",
    "solver_settings",
    "stored_labels",
]
