"""HDF5 storage of generated instance sets, split into train / validation / test.

Two problem families share the layout and the code; the root attribute ``feasnet_format`` says
which one a file holds: ``"power-control-dataset"`` or ``"miso-dataset"``.

Layout of a power-control file written by :func:`write_dataset`::

    /                       root attributes (see below)
    /train/H                (N_train, B, Q, B) float64, linear power gain
    /train/pmax             (N_train,) float64 [W]
    /train/noise            (N_train,) float64 [W]
    /train/bandwidth        (N_train,) float64 [Hz]
    /train/min_rate         (N_train, B, Q) float64 [bit/s]
    /validation/...         same datasets
    /test/...               same datasets

Layout of a MISO file (``feasnet_format = "miso-dataset"``)::

    /train/H                (N_train, K, Nt) complex128, channel amplitudes (y_k = h_k^T v)
    /train/pmax             (N_train,) float64 [W]
    /train/pc               (N_train,) float64 [W], circuit power
    /train/eta              (N_train,) float64, amplifier efficiency
    /train/noise            (N_train,) float64 [W]
    /train/sinr_min         (N_train, K) float64, linear SINR targets
    /train/weights          (N_train, K) float64, rate weights
    /validation/...         same datasets (0 instances with the default MISO splits)
    /test/...               same datasets

Root attributes: ``feasnet_format``, ``format_version = 1``, ``scenario_json`` (the full
:class:`~feasnet.data.presets.Scenario` or :class:`~feasnet.data.miso_presets.MisoScenario` as
JSON) and every scenario
field under its own name (fields that are ``None`` are left out), ``noise_power`` [W],
``seed``, ``drawn``, ``rejected``, ``num_instances``, ``split_train``, ``split_validation``,
``split_test`` (fractions), ``created`` (UTC, ISO 8601) and ``feasnet_version``. Each split
group carries ``num_instances``.

Splits are contiguous slices in the order the instances were generated (train first). The
generated instances are independent draws, so the order carries no information and no shuffle
is needed; keeping it makes a file a pure function of the generation run. Split sizes are
``round(fraction * N)`` for validation and test, the rest for train. Default fractions:
(0.9, 0.05, 0.05) for power control (the power-control paper), (0.7, 0, 0.3) for MISO (the
survey's 7:3 train/test split, no validation set). The validation fraction may be 0: the
group is then written with 0 instances, and :func:`read_dataset` on it raises
:class:`EmptySplitError` (check ``info.split_sizes["validation"]`` first, or catch it).

Files are written to a temporary name and renamed (:func:`feasnet.atomic.atomic_path`), so an
interrupted write never leaves a partial file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pydantic

from feasnet import __version__
from feasnet.atomic import atomic_path
from feasnet.data.generate import GenerationStats
from feasnet.data.presets import AnyScenario, ScenarioFamily, scenario_family, scenario_model
from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances
from feasnet.problems.miso import MisoInstances
from feasnet.problems.registry import family_of, get_family, hdf5_marker

FORMAT_MARKER = "power-control-dataset"
"""Value of the root attribute ``feasnet_format`` of a power-control file."""
MISO_FORMAT_MARKER = "miso-dataset"
"""Value of the root attribute ``feasnet_format`` of a MISO file."""
FORMAT_MARKERS: dict[ScenarioFamily, str] = {
    "power-control": hdf5_marker("power-control"),
    "miso": hdf5_marker("miso"),
}
"""Root ``feasnet_format`` per family."""
FORMAT_VERSION = 1
"""Value of the root attribute ``format_version`` written by this version."""
SPLIT_NAMES = ("train", "validation", "test")
"""Split groups, in file order."""
DEFAULT_SPLITS = (0.9, 0.05, 0.05)
"""Train, validation and test fractions of the power-control paper."""
DEFAULT_MISO_SPLITS = (0.7, 0.0, 0.3)
"""Train, validation and test fractions of MISO data sets: the survey's 7:3, no validation."""
DEFAULT_SPLITS_OF: dict[str, tuple[float, float, float]] = {
    "power-control": DEFAULT_SPLITS,
    "miso": DEFAULT_MISO_SPLITS,
}
"""Default split fractions per family (a family not listed gets :data:`DEFAULT_SPLITS`)."""


def default_splits(scenario: AnyScenario) -> tuple[float, float, float]:
    """:data:`DEFAULT_MISO_SPLITS` for a MISO scenario, else :data:`DEFAULT_SPLITS`."""
    return DEFAULT_SPLITS_OF.get(scenario_family(scenario), DEFAULT_SPLITS)


class DatasetFileError(ValueError):
    """A dataset file is missing, unreadable or not a valid feasnet dataset."""


class EmptySplitError(DatasetFileError):
    """The requested split exists but holds 0 instances (e.g. MISO's default validation)."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset file says about itself.

    Attributes:
        path: the file.
        format_version: layout version.
        scenario: the scenario the instances were drawn from (:class:`Scenario` or
            :class:`MisoScenario`; :attr:`family` tells which).
        seed: generation seed (``None`` if not recorded).
        drawn, rejected: generation counts (``None`` if not recorded).
        splits: fraction per split name.
        split_sizes: instances per split name.
        created: creation time, UTC ISO 8601.
        feasnet_version: version of feasnet that wrote the file.
    """

    path: Path
    format_version: int
    scenario: AnyScenario
    seed: int | None
    drawn: int | None
    rejected: int | None
    splits: dict[str, float]
    split_sizes: dict[str, int]
    created: str
    feasnet_version: str

    @property
    def num_instances(self) -> int:
        """Instances over all splits."""
        return sum(self.split_sizes.values())

    @property
    def family(self) -> ScenarioFamily:
        """``"power-control"`` or ``"miso"``."""
        return scenario_family(self.scenario)


# ---------------------------------------------------------------------------- writing
def validate_splits(splits: tuple[float, float, float] | list[float]) -> tuple[float, float, float]:
    """Check train / validation / test fractions: three finite values summing to 1, train and
    test ``> 0``, validation ``>= 0`` (0: no validation set).

    Raises:
        ValueError: naming the problem.
    """
    values = tuple(float(s) for s in splits)
    if len(values) != 3:
        raise ValueError(
            f"splits: expected three fractions (train, validation, test), got {len(values)}"
        )
    train, validation, test = values
    if not (all(math.isfinite(v) for v in values) and train > 0 and test > 0 and validation >= 0):
        raise ValueError(
            f"splits: train and test fractions must be > 0 and validation >= 0, got {values}"
        )
    if not math.isclose(sum(values), 1.0, rel_tol=0, abs_tol=1e-9):
        raise ValueError(f"splits: fractions must sum to 1, got {values} (sum {sum(values):g})")
    return values  # type: ignore[return-value]


def split_sizes(num_instances: int, splits: tuple[float, float, float]) -> tuple[int, int, int]:
    """Instances per split: validation and test rounded, train takes the rest.

    Raises:
        ValueError: when some split with a fraction > 0 would be empty.
    """
    validation = round(splits[1] * num_instances)
    test = round(splits[2] * num_instances)
    train = num_instances - validation - test
    sizes = (train, validation, test)
    if (
        any(size < 1 for size, fraction in zip(sizes, splits, strict=True) if fraction > 0)
        or min(sizes) < 0
    ):
        raise ValueError(
            f"splits: {num_instances} instances are too few for fractions {splits}; "
            f"split sizes would be {dict(zip(SPLIT_NAMES, sizes, strict=True))}"
        )
    return sizes


def _check_match(instances: PowerControlInstances | MisoInstances, scenario: AnyScenario) -> None:
    """Raise ``ValueError`` unless the batch has the scenario's family and sizes."""
    family, got_family = scenario_family(scenario), family_of(instances).family
    if got_family != family:
        raise ValueError(
            f"instances: {_LABEL.get(got_family, got_family)} instances do not match "
            f"{_LABEL.get(family, family)} scenario {scenario.name!r}"
        )
    got, expected = scenario.check_sizes(instances)
    if got != expected:
        raise ValueError(f"instances: {got} do not match scenario {scenario.name!r} ({expected})")


_LABEL = {"miso": "MISO", "power-control": "power-control"}


def write_dataset(
    path: str | os.PathLike[str],
    instances: PowerControlInstances | MisoInstances,
    scenario: AnyScenario,
    seed: int | None,
    stats: GenerationStats | None,
    splits: tuple[float, float, float] | None = None,
) -> DatasetInfo:
    """Write ``instances`` (in order) as train / validation / test groups of an HDF5 file.

    Args:
        path: target file; written atomically, parent folders created.
        instances: the batch: power control, ``gain (N, B, Q, B)`` with ``B, Q`` matching a
            :class:`Scenario`; or MISO, ``channel (N, K, Nt)`` with ``K, Nt`` matching a
            :class:`MisoScenario` (stored as complex128 / float64).
        scenario: recorded in the root attributes; its type picks the family.
        seed: generation seed (``None`` for data not drawn by feasnet).
        stats: generation counts (``None`` to leave ``drawn`` / ``rejected`` out).
        splits: train, validation and test fractions summing to 1 (train, test > 0,
            validation >= 0); ``None``: :func:`default_splits` of the scenario.

    Returns:
        The file's :class:`DatasetInfo`.

    Raises:
        ValueError: on invalid splits or a batch that does not match the scenario.
    """
    fractions = validate_splits(default_splits(scenario) if splits is None else splits)
    _check_match(instances, scenario)
    family = scenario_family(scenario)
    n = instances.num_instances
    sizes = split_sizes(n, fractions)
    arrays = instances.as_numpy()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    target = Path(path)
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["feasnet_format"] = hdf5_marker(family)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["scenario_json"] = scenario.model_dump_json()
        for key, value in scenario.model_dump().items():
            if value is not None:
                f.attrs[key] = value
        f.attrs["noise_power"] = scenario.noise_power
        if seed is not None:
            f.attrs["seed"] = int(seed)
        if stats is not None:
            f.attrs["drawn"] = int(stats.drawn)
            f.attrs["rejected"] = int(stats.rejected)
        f.attrs["num_instances"] = n
        for name, fraction in zip(SPLIT_NAMES, fractions, strict=True):
            f.attrs[f"split_{name}"] = fraction
        f.attrs["created"] = created
        f.attrs["feasnet_version"] = __version__
        start = 0
        for name, size in zip(SPLIT_NAMES, sizes, strict=True):
            group = f.create_group(name)
            group.attrs["num_instances"] = size
            for key, value in arrays.items():
                group.create_dataset(key, data=value[start : start + size])
            start += size
    return DatasetInfo(
        path=target,
        format_version=FORMAT_VERSION,
        scenario=scenario,
        seed=None if seed is None else int(seed),
        drawn=None if stats is None else int(stats.drawn),
        rejected=None if stats is None else int(stats.rejected),
        splits=dict(zip(SPLIT_NAMES, fractions, strict=True)),
        split_sizes=dict(zip(SPLIT_NAMES, sizes, strict=True)),
        created=created,
        feasnet_version=__version__,
    )


# ---------------------------------------------------------------------------- reading
def _open(path: str | os.PathLike[str]) -> h5py.File:
    """Open a feasnet dataset (either family) read-only, checking that it is one."""
    p = Path(path)
    if not p.exists():
        raise DatasetFileError(f"{p}: no such file")
    if not p.is_file():
        raise DatasetFileError(f"{p}: not a file")
    try:
        is_hdf5 = h5py.is_hdf5(p)
    except OSError as exc:
        raise DatasetFileError(f"{p}: cannot read the file ({exc})") from exc
    if not is_hdf5:
        raise DatasetFileError(f"{p}: not an HDF5 file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DatasetFileError(f"{p}: cannot open as HDF5 ({exc})") from exc
    marker = _attr(f, "feasnet_format")
    if marker not in FORMAT_MARKERS.values():
        f.close()
        found = "missing" if marker is None else f"{marker!r}"
        raise DatasetFileError(
            f"{p}: not a feasnet dataset (root attribute feasnet_format is {found}, expected "
            f"{FORMAT_MARKER!r} for power control or {MISO_FORMAT_MARKER!r} for MISO)"
        )
    version = _attr(f, "format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        f.close()
        raise DatasetFileError(
            f"{p}: unsupported format_version {version!r} (this feasnet reads version "
            f"{FORMAT_VERSION}); a newer file needs a newer feasnet"
        )
    return f


def _attr(f: h5py.File, key: str) -> Any:
    value = f.attrs.get(key)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _family(f: h5py.File) -> ScenarioFamily:
    return family_of(f).family  # type: ignore[return-value]


def _info(f: h5py.File, path: Path) -> DatasetInfo:
    raw = _attr(f, "scenario_json")
    if raw is None:
        raise DatasetFileError(f"{path}: root attribute scenario_json is missing")
    family = _family(f)
    try:
        scenario: AnyScenario = scenario_model(family).model_validate(json.loads(raw))
    except (json.JSONDecodeError, pydantic.ValidationError, TypeError) as exc:
        raise DatasetFileError(
            f"{path}: root attribute scenario_json is invalid for a {family} dataset ({exc})"
        ) from exc
    splits: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for name in SPLIT_NAMES:
        fraction = _attr(f, f"split_{name}")
        if fraction is not None:
            splits[name] = float(fraction)
        if name in f and isinstance(f[name], h5py.Group) and "H" in f[name]:
            sizes[name] = int(f[name]["H"].shape[0])

    def optional_int(key: str) -> int | None:
        value = _attr(f, key)
        return None if value is None else int(value)

    return DatasetInfo(
        path=path,
        format_version=int(_attr(f, "format_version")),
        scenario=scenario,
        seed=optional_int("seed"),
        drawn=optional_int("drawn"),
        rejected=optional_int("rejected"),
        splits=splits,
        split_sizes=sizes,
        created=str(_attr(f, "created") or ""),
        feasnet_version=str(_attr(f, "feasnet_version") or ""),
    )


def read_info(path: str | os.PathLike[str]) -> DatasetInfo:
    """Read a dataset file's metadata (no instance data).

    Raises:
        DatasetFileError: missing file, not HDF5, not a feasnet dataset, bad metadata.
    """
    with _open(path) as f:
        return _info(f, Path(path))


def read_dataset(
    path: str | os.PathLike[str], split: str = "test"
) -> tuple[PowerControlInstances | MisoInstances, DatasetInfo]:
    """Read one split of a dataset file.

    Args:
        path: a file written by :func:`write_dataset`.
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Returns:
        ``(instances, info)``: for a power-control file, float64
        :class:`PowerControlInstances` (``gain (N_split, B, Q, B)``); for a MISO file
        (``info.family == "miso"``), complex128 :class:`MisoInstances`
        (``channel (N_split, K, Nt)``).

    Raises:
        EmptySplitError: the split holds 0 instances (a validation fraction of 0, the MISO
            default); a :class:`DatasetFileError`.
        DatasetFileError: missing file, not HDF5, not a feasnet dataset, missing split or
            dataset, or data that fails validation (the message names path and problem).
    """
    p = Path(path)
    with _open(p) as f:
        info = _info(f, p)
        family = info.family
        if split not in f or not isinstance(f[split], h5py.Group):
            available = [name for name in SPLIT_NAMES if name in f]
            raise DatasetFileError(
                f"{p}: no split {split!r} (available: {', '.join(available) or 'none'})"
            )
        group = f[split]
        cls = get_family(family)
        for key in group:
            if key not in cls.file_keys:
                raise DatasetFileError(
                    f"{p}: split {split!r}: unknown dataset {key!r} for a {family} data set; "
                    f"known: {', '.join(cls.file_keys)}"
                )
        arrays: dict[str, np.ndarray] = {}
        for key, spec in cls.file_keys.items():
            if key not in group and not spec.required:
                continue
            if key not in group or not isinstance(group[key], h5py.Dataset):
                raise DatasetFileError(f"{p}: split {split!r} has no dataset {key!r}")
            try:
                arrays[key] = group[key][()]
            except (OSError, TypeError, ValueError) as exc:
                raise DatasetFileError(
                    f"{p}: split {split!r}, dataset {key!r} cannot be read ({exc})"
                ) from exc
    if arrays["H"].ndim >= 1 and arrays["H"].shape[0] == 0:
        raise EmptySplitError(
            f"{p}: split {split!r} is empty (0 instances; the file was written with "
            f"{split} fraction {info.splits.get(split, 0.0):g})"
        )
    try:
        instances = cls().instances_from_arrays(arrays, f"{p}: split {split!r}")
    except InvalidInstanceError as exc:
        raise DatasetFileError(str(exc)) from exc
    got, expected = info.scenario.check_sizes(instances)
    if got != expected:
        raise DatasetFileError(
            f"{p}: split {split!r}: H has {got} but the scenario says {expected}"
        )
    return instances, info


def read_training_splits(
    path: str | os.PathLike[str],
) -> tuple[
    PowerControlInstances | MisoInstances, PowerControlInstances | MisoInstances, DatasetInfo
]:
    """``(train, validation, info)`` for training; an empty validation split (the MISO default)
    comes back as a 0-instance batch, which :func:`feasnet.training.train` replaces by a hold-out
    of the training split."""
    train, info = read_dataset(path, "train")
    try:
        validation, _ = read_dataset(path, "validation")
    except EmptySplitError:
        validation = train[:0]
    return train, validation, info
