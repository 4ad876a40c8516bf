"""Bring-your-own-channels: instances as a plain NumPy ``.npz`` archive.

Two families share the format; :func:`load_npz` tells them apart by their keys.

**Power control** (all values real numbers, SI units; read with ``allow_pickle=False``):

* ``H``: ``(N, B, Q, B)`` linear power gains (not dB, not amplitudes); ``H[n, b, q, c]`` is the
  gain from BS ``c`` to the user on channel ``q`` of BS ``b``. Finite and ``>= 0``; the direct
  gains ``H[n, b, q, b]`` must be ``> 0``.
* ``pmax``: scalar or ``(N,)``, power budget of every BS [W], ``> 0``.
* ``noise``: scalar or ``(N,)``, receiver noise power [W], ``> 0``.
* ``bandwidth``: scalar or ``(N,)``, bandwidth of one channel [Hz], ``> 0``.
* ``min_rate``: scalar, ``(N,)`` or ``(N, B, Q)``, minimum rate of every user [bit/s], ``>= 0``.

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

Other keys are ignored. A scalar applies to every instance (and every user, for the per-user
values). :func:`save_npz` writes scalars when a value is the same everywhere, ``(K,)`` for
MISO per-user values the same in every instance, and full arrays otherwise. Any problem raises
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
from typing import Literal

import numpy as np
import torch

from feasnet.atomic import atomic_path
from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances
from feasnet.problems.miso import MisoInstances

REQUIRED_KEYS = ("H", "pmax", "noise", "bandwidth", "min_rate")
"""Keys every power-control exchange file must hold."""
MISO_REQUIRED_KEYS = ("H", "pmax", "pc", "eta", "noise", "sinr_min", "weights")
"""Keys every MISO exchange file must hold."""
_MISO_ONLY = ("pc", "eta", "sinr_min", "weights")
_POWER_CONTROL_ONLY = ("bandwidth", "min_rate")

Family = Literal["power-control", "miso"]
_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64}
_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


class InstanceFileError(InvalidInstanceError):
    """An ``.npz`` instance file is missing, unreadable or invalid; the message names the key."""


def _compact(value: np.ndarray, per_user: bool = False) -> np.ndarray:
    """A scalar when constant; for ``per_user`` ``(N, K)`` values, ``(K,)`` when every
    instance has the same row; else ``value`` itself."""
    flat = value.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return np.asarray(flat[0])
    if per_user and value.shape[0] > 0 and np.all(value == value[:1]):
        return value[0].copy()
    return value


def save_npz(
    path: str | os.PathLike[str], instances: PowerControlInstances | MisoInstances
) -> Path:
    """Write ``instances`` to ``path`` in the exchange format (atomically).

    Power control: float64, constant ``pmax``, ``noise``, ``bandwidth`` and ``min_rate`` are
    stored as scalars. MISO: ``H`` complex128, the rest float64; constant values as scalars,
    ``sinr_min`` / ``weights`` equal in every instance as ``(K,)``.

    Returns:
        The path written.
    """
    arrays = instances.as_numpy()
    out: dict[str, np.ndarray] = {"H": arrays["H"]}
    if isinstance(instances, MisoInstances):
        for key in MISO_REQUIRED_KEYS[1:]:
            out[key] = _compact(arrays[key], per_user=key in ("sinr_min", "weights"))
    else:
        for key in REQUIRED_KEYS[1:]:
            out[key] = _compact(arrays[key])
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        # A file object keeps numpy from appending ".npz" to the temporary name.
        np.savez(fh, **out)
    return target


def detect_family(keys: list[str] | set[str], h: np.ndarray | None = None) -> Family:
    """The family an exchange file with ``keys`` most likely holds (see the module doc).

    Args:
        keys: the archive's keys.
        h: the ``H`` array when readable, to break ties (3-D or complex -> MISO).
    """
    miso = sum(key in keys for key in _MISO_ONLY)
    power = sum(key in keys for key in _POWER_CONTROL_ONLY)
    if miso != power:
        return "miso" if miso > power else "power-control"
    if h is not None and (h.ndim == 3 or h.dtype.kind == "c"):
        return "miso"
    return "power-control"


def load_npz(
    path: str | os.PathLike[str],
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    family: Family | None = None,
) -> PowerControlInstances | MisoInstances:
    """Read and validate an exchange ``.npz`` file of either family.

    Args:
        path: the file.
        dtype: float64 / float32 (or complex128 / complex64). Power control uses the real
            dtype, MISO the matching complex dtype for the channel.
        device: where the tensors go.
        family: ``"power-control"`` or ``"miso"`` to skip detection (missing keys are then
            reported for that family).

    Returns:
        :class:`PowerControlInstances` (``gain (N, B, Q, B)`` etc.) or :class:`MisoInstances`
        (``channel (N, K, Nt)`` etc.) in ``dtype`` on ``device``.

    Raises:
        InstanceFileError: missing file, not an ``.npz`` archive, a missing key (the message
            lists the family's required keys), object / non-numeric arrays (complex only for
            a MISO ``H``), wrong shapes, NaN / inf, out-of-range values (negative gains, noise
            or weights, non-positive ``pmax``, ``eta`` outside ``(0, 1]``, ...).
    """
    p = Path(path)
    if not p.exists():
        raise InstanceFileError(f"{p}: no such file")
    if not p.is_file() or not zipfile.is_zipfile(p):
        raise InstanceFileError(f"{p}: not an .npz archive (expected a NumPy savez file)")
    if family not in (None, "power-control", "miso"):
        raise ValueError(f"family: expected 'power-control' or 'miso', got {family!r}")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(p, allow_pickle=False) as archive:
            files = set(archive.files)
            if family is None:
                h = _load_key(p, archive, "H") if "H" in files else None
                family = detect_family(files, h)
            required = MISO_REQUIRED_KEYS if family == "miso" else REQUIRED_KEYS
            missing = [key for key in required if key not in files]
            if missing:
                label = "a MISO file" if family == "miso" else "a power-control file"
                other = REQUIRED_KEYS if family == "miso" else MISO_REQUIRED_KEYS
                raise InstanceFileError(
                    f"{p}: missing key {missing[0]!r}"
                    + (f" (also {', '.join(repr(k) for k in missing[1:])})" if missing[1:] else "")
                    + f"; required keys: {', '.join(required)} (read as {label}; the other "
                    f"family needs {', '.join(other)})"
                )
            for key in required:
                arrays[key] = _load_key(p, archive, key)
    except InstanceFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InstanceFileError(f"{p}: cannot read as .npz ({exc})") from exc
    for key, value in arrays.items():
        kinds = "biufc" if (family == "miso" and key == "H") else "biuf"
        if value.dtype.kind not in kinds:
            expected = "complex or real numbers" if kinds == "biufc" else "real numbers"
            raise InstanceFileError(
                f"{p}: {key}: expected {expected}, got array of dtype {value.dtype}"
            )
    real = _REAL_OF.get(dtype, dtype)
    try:
        if family == "miso":
            if real not in _COMPLEX_OF:
                raise ValueError(f"dtype: expected float32/64 or complex64/128, got {dtype}")
            return MisoInstances.from_numpy(arrays, dtype=_COMPLEX_OF[real], device=device)
        return PowerControlInstances.from_arrays(
            arrays["H"],
            arrays["pmax"],
            arrays["noise"],
            arrays["bandwidth"],
            arrays["min_rate"],
            dtype=real,
            device=device,
        )
    except InvalidInstanceError as exc:
        raise InstanceFileError(f"{p}: {exc}") from exc


def _load_key(p: Path, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays need pickle
        raise InstanceFileError(
            f"{p}: {key}: cannot be loaded without pickle ({exc}); store numbers"
        ) from exc
