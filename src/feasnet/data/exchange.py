"""Bring-your-own-channels: instances as a plain NumPy ``.npz`` archive.

Format (all values real numbers, SI units; read with ``allow_pickle=False``):

* ``H``: ``(N, B, Q, B)`` linear power gains (not dB, not amplitudes); ``H[n, b, q, c]`` is the
  gain from BS ``c`` to the user on channel ``q`` of BS ``b``. Finite and ``>= 0``; the direct
  gains ``H[n, b, q, b]`` must be ``> 0``.
* ``pmax``: scalar or ``(N,)``, power budget of every BS [W], ``> 0``.
* ``noise``: scalar or ``(N,)``, receiver noise power [W], ``> 0``.
* ``bandwidth``: scalar or ``(N,)``, bandwidth of one channel [Hz], ``> 0``.
* ``min_rate``: scalar, ``(N,)`` or ``(N, B, Q)``, minimum rate of every user [bit/s], ``>= 0``.

Other keys are ignored. A scalar applies to every instance (and every user, for
``min_rate``). :func:`save_npz` writes scalars when a value is the same everywhere and full
arrays otherwise. Any problem raises :class:`InstanceFileError` naming the file and the key.

Example (NumPy only)::

    np.savez("mine.npz", H=gains, pmax=1e-3, noise=1e-8, bandwidth=5e6, min_rate=2.5e6)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from feasnet.atomic import atomic_path
from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances

REQUIRED_KEYS = ("H", "pmax", "noise", "bandwidth", "min_rate")
"""Keys every exchange file must hold."""


class InstanceFileError(InvalidInstanceError):
    """An ``.npz`` instance file is missing, unreadable or invalid; the message names the key."""


def save_npz(path: str | os.PathLike[str], instances: PowerControlInstances) -> Path:
    """Write ``instances`` to ``path`` in the exchange format (atomically, float64).

    Constant ``pmax``, ``noise``, ``bandwidth`` and ``min_rate`` are stored as scalars.

    Returns:
        The path written.
    """
    arrays = instances.as_numpy()
    out: dict[str, np.ndarray] = {"H": arrays["H"]}
    for key in ("pmax", "noise", "bandwidth", "min_rate"):
        value = arrays[key]
        flat = value.reshape(-1)
        out[key] = np.asarray(flat[0]) if np.all(flat == flat[0]) else value
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        # A file object keeps numpy from appending ".npz" to the temporary name.
        np.savez(fh, **out)
    return target


def load_npz(
    path: str | os.PathLike[str],
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> PowerControlInstances:
    """Read and validate an exchange ``.npz`` file.

    Returns:
        The instances (``gain (N, B, Q, B)`` etc.) in ``dtype`` on ``device``.

    Raises:
        InstanceFileError: missing file, not an ``.npz`` archive, a missing key (the message
            lists the required keys), object / complex / non-numeric arrays, wrong shapes,
            NaN / inf / negative gains, non-positive ``pmax``, ``noise`` or ``bandwidth``.
    """
    p = Path(path)
    if not p.exists():
        raise InstanceFileError(f"{p}: no such file")
    if not p.is_file() or not zipfile.is_zipfile(p):
        raise InstanceFileError(f"{p}: not an .npz archive (expected a NumPy savez file)")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(p, allow_pickle=False) as archive:
            missing = [key for key in REQUIRED_KEYS if key not in archive.files]
            if missing:
                raise InstanceFileError(
                    f"{p}: missing key {missing[0]!r}"
                    + (f" (also {', '.join(repr(k) for k in missing[1:])})" if missing[1:] else "")
                    + f"; required keys: {', '.join(REQUIRED_KEYS)}"
                )
            for key in REQUIRED_KEYS:
                try:
                    arrays[key] = archive[key]
                except ValueError as exc:  # object arrays need pickle
                    raise InstanceFileError(
                        f"{p}: {key}: cannot be loaded without pickle ({exc}); store real numbers"
                    ) from exc
    except InstanceFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InstanceFileError(f"{p}: cannot read as .npz ({exc})") from exc
    for key, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise InstanceFileError(
                f"{p}: {key}: expected real numbers, got array of dtype {value.dtype}"
            )
    try:
        return PowerControlInstances.from_arrays(
            arrays["H"],
            arrays["pmax"],
            arrays["noise"],
            arrays["bandwidth"],
            arrays["min_rate"],
            dtype=dtype,
            device=device,
        )
    except InvalidInstanceError as exc:
        raise InstanceFileError(f"{p}: {exc}") from exc
