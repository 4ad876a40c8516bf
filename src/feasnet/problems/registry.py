"""The one registry of problem families, and the one place that tells which family a thing is.

:data:`FAMILIES` maps a family name to its :class:`~feasnet.problems.base.Problem` subclass;
:func:`register` adds one (a family defined outside the package registers itself the same
way). :func:`family_of` answers for anything that belongs to a family: a family name, a
problem, a batch of instances, the arrays of an exchange file, an HDF5 data set (file or
path), a scenario, a model-file payload or a method configuration. :func:`problem_of` returns
the problem object (family and constraint set) for instances or any of those things.

No other module branches on the family: it asks this one and then calls the problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from feasnet.problems.base import Problem, UnsupportedProblemError
from feasnet.problems.instances import InvalidInstanceError
from feasnet.problems.miso_problem import MisoProblem
from feasnet.problems.power_control_problem import PowerControlProblem

FAMILIES: dict[str, type[Problem]] = {}
"""Family name -> Problem subclass, in registration order (the first is the default)."""

HDF5_MARKER_SUFFIX = "-dataset"
"""An HDF5 data set's root attribute ``feasnet_format`` is ``<family>-dataset``."""


class FileFamilyError(InvalidInstanceError):
    """An exchange file holds keys of another family than the one expected, or keys no
    family knows; the message names the file, the family and the key."""


def register(cls: type[Problem]) -> type[Problem]:
    """Add a family (usable as a class decorator); its ``family`` name must be new."""
    name = cls.family
    if name in FAMILIES and FAMILIES[name] is not cls:
        raise ValueError(f"family {name!r} is already registered ({FAMILIES[name].__name__})")
    FAMILIES[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a family registered with :func:`register` (the built-in ones stay)."""
    if name in BUILT_IN:
        raise ValueError(f"family {name!r} is built in and cannot be removed")
    FAMILIES.pop(name, None)


register(PowerControlProblem)
register(MisoProblem)
BUILT_IN = frozenset(FAMILIES)


def family_names() -> list[str]:
    """Registered family names."""
    return list(FAMILIES)


def get_family(name: str) -> type[Problem]:
    """The Problem subclass called ``name`` (ValueError listing the names otherwise)."""
    if name not in FAMILIES:
        raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {name!r}")
    return FAMILIES[name]


def family_of(thing: Any, source: str | None = None) -> type[Problem]:
    """The family ``thing`` belongs to, as its Problem subclass.

    Args:
        thing: a family name; a :class:`Problem` or subclass; a batch of instances; the arrays
            of an exchange file (a mapping of NumPy arrays, judged by its keys, see
            :func:`family_of_arrays`); an HDF5 file object or the path of an ``.h5`` data set
            (root attribute ``feasnet_format``); a scenario, data-set info or method
            configuration (a ``family`` or ``problem`` attribute); a model-file payload or a
            method-config dict (key ``family`` or ``problem``).
        source: names ``thing`` in messages (e.g. the file path).

    Raises:
        ValueError: (or :class:`FileFamilyError` for arrays) when no family claims it.
    """
    label = source or type(thing).__name__
    if isinstance(thing, str) and (thing in FAMILIES or not os.path.isfile(thing)):
        return get_family(thing)
    if isinstance(thing, type) and issubclass(thing, Problem):
        return thing
    if isinstance(thing, Problem):
        return type(thing)
    for cls in FAMILIES.values():
        if isinstance(thing, cls.instances_type):
            return cls
    if isinstance(thing, str | os.PathLike):
        return _family_of_hdf5_path(Path(thing))
    attrs = getattr(thing, "attrs", None)
    if attrs is not None and "feasnet_format" in attrs:
        return _family_of_marker(attrs["feasnet_format"], label)
    if isinstance(thing, Mapping):
        for key in ("family", "problem"):
            if isinstance(thing.get(key), str) and thing[key] in FAMILIES:
                return FAMILIES[thing[key]]
        if thing and all(isinstance(v, np.ndarray | int | float | complex) for v in thing.values()):
            return family_of_arrays(thing, label)
        raise ValueError(f"{label}: cannot tell its problem family (no 'family' key)")
    for attr in ("family", "problem"):
        value = getattr(thing, attr, None)
        if isinstance(value, str) and value in FAMILIES:
            return FAMILIES[value]
    raise ValueError(
        f"{label}: cannot tell its problem family; expected one of {', '.join(FAMILIES)}"
    )


def problem_of(thing: Any, nonlinear: bool = False, source: str | None = None) -> Problem:
    """The problem object for ``thing``: for instances (and arrays) the constraint set they
    call for (``for_instances``: e.g. power control with ``min_energy_efficiency`` ->
    ``energy-efficiency``; ``nonlinear`` picks the non-linear rate rows), else the family's
    default constraint set. A :class:`Problem` comes back unchanged."""
    if isinstance(thing, Problem):
        return thing
    cls = family_of(thing, source)
    if isinstance(thing, cls.instances_type):
        return cls.for_instances(thing, nonlinear=nonlinear)
    return cls()


def family_of_arrays(
    arrays: Mapping[str, Any], source: str, expect: str | None = None
) -> type[Problem]:
    """The family of an exchange file from its keys (and, on a tie, its ``H``).

    Each family scores the keys only it knows; the highest score wins, a tie is broken by
    :meth:`Problem.recognizes` (e.g. a 3-D or complex ``H`` is MISO). Keys the chosen family
    does not know are an error naming the key (and the family that knows it, if any).

    Args:
        arrays: key -> array of the file.
        source: the file, for messages.
        expect: the family the caller needs; a file of another family is a
            :class:`FileFamilyError` ("``source``: this file is a miso file ...").
    """
    keys = set(arrays)
    own = {
        name: set(cls.file_keys)
        - set().union(*(set(o.file_keys) for n, o in FAMILIES.items() if n != name))
        for name, cls in FAMILIES.items()
    }
    scores = {name: len(keys & distinct) for name, distinct in own.items()}
    best = max(scores.values())
    tied = [name for name, score in scores.items() if score == best]
    if len(tied) > 1:
        recognized = [name for name in tied if FAMILIES[name].recognizes(arrays)]
        tied = recognized or ([expect] if expect in tied else tied)
    name = tied[0]
    if expect is not None and name != expect:
        if best == 0 and expect in scores and not (keys - set(FAMILIES[expect].file_keys)):
            name = expect  # nothing family-specific: read it as the expected family
        else:
            marks = sorted(keys & own[name]) or ["H"]
            needed = [k for k, v in FAMILIES[expect].file_keys.items() if v.required]
            missing = [k for k in needed if k not in keys]
            note = f"; missing key {missing[0]!r} of a {expect} file" if missing else ""
            raise FileFamilyError(
                f"{source}: this file is a {name} file (keys {', '.join(marks)}), not a "
                f"{expect} file{note}"
            )
    cls = FAMILIES[name]
    unknown = sorted(keys - set(cls.file_keys))
    if unknown:
        key = unknown[0]
        other = [n for n, o in FAMILIES.items() if n != name and key in o.file_keys]
        hint = f" (a key of {other[0]} files: the file mixes two families)" if other else ""
        raise FileFamilyError(
            f"{source}: unknown key {key!r} for a {name} file{hint}; known keys: "
            f"{', '.join(cls.file_keys)}"
        )
    return cls


def _family_of_marker(marker: Any, label: str) -> type[Problem]:
    text = marker.decode() if isinstance(marker, bytes) else str(marker)
    name = text.removesuffix(HDF5_MARKER_SUFFIX)
    if not text.endswith(HDF5_MARKER_SUFFIX) or name not in FAMILIES:
        raise ValueError(f"{label}: unknown data-set format {text!r}")
    return FAMILIES[name]


def _family_of_hdf5_path(path: Path) -> type[Problem]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            marker = f.attrs.get("feasnet_format")
    except OSError as exc:
        raise ValueError(f"{path}: not a feasnet HDF5 data set ({exc})") from exc
    if marker is None:
        raise ValueError(f"{path}: not a feasnet data set (no feasnet_format attribute)")
    return _family_of_marker(marker, str(path))


def hdf5_marker(family: str | type[Problem]) -> str:
    """The root ``feasnet_format`` attribute of a data set of ``family``."""
    name = family if isinstance(family, str) else family.family
    return f"{get_family(name).family}{HDF5_MARKER_SUFFIX}"


def require_supported(problem: Problem, method: str, constraint_sets: tuple[str, ...]) -> None:
    """Raise a one-line :class:`UnsupportedProblemError` unless ``problem``'s constraint set
    is one of ``constraint_sets`` (the method's)."""
    if problem.constraint_set not in constraint_sets:
        raise UnsupportedProblemError(
            f"method: {method} does not handle the {problem.constraint_set} constraints of "
            f"{problem.family} (it handles {', '.join(constraint_sets)})"
        )


__all__ = [
    "FAMILIES",
    "FileFamilyError",
    "family_names",
    "family_of",
    "family_of_arrays",
    "get_family",
    "hdf5_marker",
    "problem_of",
    "register",
    "require_supported",
]
