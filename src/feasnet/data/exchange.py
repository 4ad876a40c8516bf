"""Bring-your-own-channels: instances as a plain NumPy ``.npz`` archive.

Every registered family has its format (:attr:`feasnet.problems.base.Problem.file_keys`);
:func:`load_npz` tells them apart by their keys (:func:`feasnet.problems.registry.family_of`).

**Power control** (all values real numbers, SI units; read with ``allow_pickle=False``):

* ``H``: ``(N, B, Q, B)`` linear power gains (not dB, not amplitudes); ``H[n, b, q, c]`` is the
  gain from BS ``c`` to the user on channel ``q`` of BS ``b``. Finite and ``>= 0``; the direct
  gains ``H[n, b, q, b]`` must be ``> 0``.
* ``pmax``: scalar or ``(N,)``, power budget of every BS [W], ``> 0``.
* ``noise``: scalar or ``(N,)``, receiver noise power [W], ``> 0``.
* ``bandwidth``: scalar or ``(N,)``, bandwidth of one channel [Hz], ``> 0``.
* ``min_rate``: scalar, ``(N,)`` or ``(N, B, Q)``, minimum rate of every user [bit/s], ``>= 0``.
* ``min_energy_efficiency`` (optional): scalar, ``(N,)`` or ``(N, B, Q)``, minimum energy
  efficiency ``R / P`` of every user [bit/J], ``>= 0``, enforced as ``R >= ee P``. Its
  presence selects the ``energy-efficiency`` constraint set.
* ``csi_error`` (optional): scalar or ``(N,)`` in ``[0, 1)``, relative CSI error ``sigma``:
  ``H`` is then an estimate and the true gains lie in ``[H / (1 + sigma), H / (1 - sigma)]``;
  the constraints are written for the worst case unless another robust mode is chosen.
* ``csi_corner`` (optional, needs ``csi_error``): ``(N, 2)`` multipliers (direct, cross) of
  ``H`` that the constraints use; written only for a robust mode other than the default
  ``exact`` (see docs/imperfect-csi.md).

**MISO beamforming** (see :class:`feasnet.problems.miso.MisoInstances`):

* ``H``: ``(N, K, Nt)`` complex channel amplitudes, ``y_k = h_k^T v`` with ``h_k = H[n, k]``
  (a real array is accepted as complex); finite, no user's row all zero.
* ``pmax``: scalar or ``(N,)``, total power budget including circuit power [W], ``> 0``.
* ``pc``: scalar or ``(N,)``, circuit power [W], ``>= 0``.
* ``eta``: scalar or ``(N,)``, amplifier efficiency in ``(0, 1]``.
* ``noise``: scalar or ``(N,)``, receiver noise power [W], ``> 0``.
* ``sinr_min``: scalar, ``(K,)`` or ``(N, K)``, linear SINR targets, ``>= 0``.
* ``weights``: scalar, ``(K,)`` or ``(N, K)``, rate weights, ``>= 0``.

(``(N,)`` is also accepted for ``sinr_min`` / ``weights`` when ``N != K``: one value per
instance.) Family detection: a file with any of ``pc``, ``eta``, ``sinr_min``, ``weights`` and
fewer of ``bandwidth``, ``min_rate`` is MISO; one with more of ``bandwidth``, ``min_rate`` is
power control; a tie (e.g. neither) is decided by ``H``: 3 dimensions or complex -> MISO,
otherwise power control. Missing keys are then reported for that family.

Any other key is an error naming the key (a key of the other family says so: "this file is
a miso file ..."); nothing in a file is silently ignored. A scalar applies to every instance
(and every user, for the per-user values). :func:`save_npz` writes scalars when a value is
the same everywhere, ``(K,)`` for MISO per-user values the same in every instance, and full
arrays otherwise. Any problem raises
:class:`InstanceFileError` naming the file and the key.

Example (NumPy only)::

    np.savez("mine.npz", H=gains, pmax=1e-3, noise=1e-8, bandwidth=5e6, min_rate=2.5e6)
    np.savez("beams.npz", H=h, pmax=1.0, pc=0.1, eta=0.5, noise=3e-12, sinr_min=1.0,
             weights=1.0)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from feasnet.atomic import atomic_path
from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances
from feasnet.problems.miso import MisoInstances
from feasnet.problems.registry import FAMILIES, FileFamilyError, family_of_arrays, problem_of

REQUIRED_KEYS = ("H", "pmax", "noise", "bandwidth", "min_rate")
"""Keys every power-control exchange file must hold."""
MISO_REQUIRED_KEYS = ("H", "pmax", "pc", "eta", "noise", "sinr_min", "weights")
"""Keys every MISO exchange file must hold."""

Family = Literal["power-control", "miso"]
_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64}
_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


class InstanceFileError(InvalidInstanceError):
    """An ``.npz`` instance file is missing, unreadable or invalid; the message names the key."""


def save_npz(
    path: str | os.PathLike[str], instances: PowerControlInstances | MisoInstances
) -> Path:
    """Write ``instances`` to ``path`` in their family's exchange format (atomically).

    Power control: float64, constant ``pmax``, ``noise``, ``bandwidth``, ``min_rate`` (and
    ``min_energy_efficiency`` when the instances carry one) are stored as scalars. MISO: ``H``
    complex128, the rest float64; constant values as scalars, ``sinr_min`` / ``weights`` equal
    in every instance as ``(K,)``.

    Returns:
        The path written.
    """
    out: dict[str, Any] = problem_of(instances).instances_to_arrays(instances)
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        # A file object keeps numpy from appending ".npz" to the temporary name.
        np.savez(fh, **out)
    return target


def detect_family(keys: list[str] | set[str], h: np.ndarray | None = None) -> Family:
    """The family an exchange file with ``keys`` most likely holds (see the module doc);
    unknown keys are not judged here (:func:`load_npz` does).

    Args:
        keys: the archive's keys.
        h: the ``H`` array when readable, to break ties (3-D or complex -> MISO).
    """
    arrays: dict[str, np.ndarray] = {key: np.zeros(0) for key in keys}
    if h is not None:
        arrays["H"] = h
    known = {
        key: arrays[key] for key in arrays if any(key in c.file_keys for c in FAMILIES.values())
    }
    return family_of_arrays(known, "keys").family  # type: ignore[return-value]


def load_npz(
    path: str | os.PathLike[str],
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    family: Family | None = None,
) -> PowerControlInstances | MisoInstances:
    """Read and validate an exchange ``.npz`` file of any registered family.

    Args:
        path: the file.
        dtype: float64 / float32 (or complex128 / complex64). Power control uses the real
            dtype, MISO the matching complex dtype for the channel.
        device: where the tensors go.
        family: ``"power-control"`` or ``"miso"``: the family the caller needs; a file of
            another family is an error saying which family it is.

    Returns:
        :class:`PowerControlInstances` (``gain (N, B, Q, B)`` etc.) or :class:`MisoInstances`
        (``channel (N, K, Nt)`` etc.) in ``dtype`` on ``device``.

    Raises:
        InstanceFileError: missing file, not an ``.npz`` archive, a key the family's format
            does not know (named; a key of another family says which family it belongs to), a
            missing key (the message lists the family's required keys), object / non-numeric
            arrays (complex only for a MISO ``H``), wrong shapes, NaN / inf, out-of-range
            values (negative gains, noise, weights or energy efficiencies, non-positive
            ``pmax``, ``eta`` outside ``(0, 1]``, ...).
    """
    p = Path(path)
    if not p.exists():
        raise InstanceFileError(f"{p}: no such file")
    if not p.is_file() or not zipfile.is_zipfile(p):
        raise InstanceFileError(f"{p}: not an .npz archive (expected a NumPy savez file)")
    if family is not None and family not in FAMILIES:
        raise ValueError(
            f"family: expected one of {', '.join(repr(f) for f in FAMILIES)}, got {family!r}"
        )
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(p, allow_pickle=False) as archive:
            for key in archive.files:
                arrays[key] = _load_key(p, archive, key)
    except InstanceFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InstanceFileError(f"{p}: cannot read as .npz ({exc})") from exc
    try:
        cls = family_of_arrays(arrays, str(p), expect=family)
    except FileFamilyError as exc:
        raise InstanceFileError(str(exc)) from exc
    required = [key for key, spec in cls.file_keys.items() if spec.required]
    missing = [key for key in required if key not in arrays]
    if missing:
        others = [
            f"{name} needs {', '.join(k for k, v in other.file_keys.items() if v.required)}"
            for name, other in FAMILIES.items()
            if other is not cls
        ]
        raise InstanceFileError(
            f"{p}: missing key {missing[0]!r}"
            + (f" (also {', '.join(repr(k) for k in missing[1:])})" if missing[1:] else "")
            + f"; required keys: {', '.join(required)} (read as a {cls.family} file"
            + (f"; {'; '.join(others)}" if others else "")
            + ")"
        )
    for key, value in arrays.items():
        kinds = "biufc" if (cls.complex_variable and key == "H") else "biuf"
        if value.dtype.kind not in kinds:
            expected = "complex or real numbers" if kinds == "biufc" else "real numbers"
            raise InstanceFileError(
                f"{p}: {key}: expected {expected}, got array of dtype {value.dtype}"
            )
    real = _REAL_OF.get(dtype, dtype)
    if real not in _COMPLEX_OF:
        raise ValueError(f"dtype: expected float32/64 or complex64/128, got {dtype}")
    try:
        return cls().instances_from_arrays(
            arrays,
            str(p),
            dtype=_COMPLEX_OF[real] if cls.complex_variable else real,
            device=device,
        )
    except InvalidInstanceError as exc:
        raise InstanceFileError(str(exc)) from exc


def _load_key(p: Path, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays need pickle
        raise InstanceFileError(
            f"{p}: {key}: cannot be loaded without pickle ({exc}); store numbers"
        ) from exc
