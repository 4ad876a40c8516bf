"""The path-loss dataset: random drops, distance path loss, shadowing and Rayleigh fading.

Geometry (power-control paper, sec. VII-1). Per instance, ``B`` BSs and ``U = B * Q`` users
are dropped uniformly in a square of side 500 m, subject to minimum distances of 100 m between
BSs, 5 m between a BS and a user and 2 m between users. Points are placed one after another
(BSs first, then users), every point drawn uniformly over the square and redrawn until it keeps
the minimum distances to the points already placed (random sequential placement); a layout
that gets stuck is started again. The redrawing is batched over all instances still missing
a point; if some instance still has no layout after many attempts, :class:`PlacementError` is
raised.

User drops (:data:`DROPS`). ``"uniform"`` is the paper's drop above: users anywhere in the
square. ``"cell"`` (feasnet's, not the paper's) places the BSs the same way, then drops the
``Q`` users of each BS uniformly over the disc of radius ``cell_radius_m`` around it (the part
of the disc inside the square, same minimum distances); user ``u`` belongs to BS ``u // Q``.
Association and channel assignment stay the paper's greedy procedure on large-scale gains, so
a user usually, but not always, ends up served by the BS it was dropped around. With the
uniform drop the last BSs of the greedy association get whichever users are left, often far
away, and large networks with high rate targets are almost never feasible (``table2-5``,
``B = 6``, ``Q = 4``, 5 Mbit/s: no feasible instance in 4,096 draws); the cell drop keeps every
user within reach of a BS, as in a planned cellular layout (docs/datasets.md).

Channel model (the paper defers to an external reference for the details; feasnet uses the
3GPP TR 36.814 macro-cell model, a common choice in power-control studies). For user ``u``,
BS ``c`` at distance ``d`` and channel ``q``::

    PL(d) [dB]        = 128.1 + 37.6 log10(d / 1 km)
    G[u, c, q] [lin]  = 10^((-PL(d) + S[u, c]) / 10) * F[u, c, q]

* ``S[u, c] ~ N(0, 8^2)`` dB log-normal shadowing, one value per (user, BS) link, shared by
  the ``Q`` channels of that link (shadowing comes from obstacles, not from frequency);
* ``F[u, c, q] ~ Exp(1)`` Rayleigh fading power, independent for every (user, BS, channel).

The formula has no frequency term: it was fitted around 2 GHz and is used as it stands; the
2.4 GHz carrier of the paper is recorded in the scenario but does not change the gains.

Noise power is ``N0 * W`` with ``N0 = -169 dBm/Hz``: about ``6.3e-14 W`` for ``W = 5 MHz``.
The paper gives no power budget for this dataset; feasnet uses the Gaussian dataset's
``Pmax = 1 mW``. With these numbers the median gain is about ``2e-11`` and 80% of the gains
fall between about ``5e-13`` and ``2e-9``.

Association scores a user by its *large-scale* gain to a BS (path loss with shadowing, without
fading), see :mod:`feasnet.channels.association`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from feasnet.channels.association import associate_users
from feasnet.channels.gaussian import (
    DEFAULT_PMAX_W,
    _check_sizes,
    rayleigh_power,
    resolve_generator,
)
from feasnet.problems.instances import PowerControlInstances

AREA_M = 500.0
"""Side of the square deployment area [m]."""
MIN_BS_DISTANCE_M = 100.0
"""Minimum distance between two BSs [m]."""
MIN_BS_USER_DISTANCE_M = 5.0
"""Minimum distance between a BS and a user [m]."""
MIN_USER_DISTANCE_M = 2.0
"""Minimum distance between two users [m]."""
CARRIER_HZ = 2.4e9
"""Carrier frequency [Hz] (recorded; the path-loss formula has no frequency term)."""
BANDWIDTH_HZ = 5e6
"""Bandwidth of one channel [Hz]."""
NOISE_DENSITY_DBM_HZ = -169.0
"""Noise power spectral density [dBm/Hz]."""
SHADOWING_DB = 8.0
"""Standard deviation of the log-normal shadowing [dB]."""
PATH_LOSS_AT_1KM_DB = 128.1
"""Path loss at 1 km [dB] (3GPP TR 36.814 macro cell)."""
PATH_LOSS_SLOPE_DB = 37.6
"""Path-loss increase per decade of distance [dB] (exponent 3.76)."""
PMAX_W = DEFAULT_PMAX_W
"""Power budget of every BS [W] (1 mW; the paper gives none for this dataset)."""

CANDIDATES_PER_TRY = 8
"""Candidate positions drawn at once per instance and try when placing a point."""
DROPS = ("uniform", "cell")
"""User drops: ``"uniform"`` over the square (the paper's), ``"cell"`` in a disc around each BS."""
CELL_RADIUS_M = 50.0
"""Default radius of the ``"cell"`` drop [m]: half the minimum BS distance, so the discs of two
BSs never overlap."""


class PlacementError(ValueError):
    """The minimum distances could not be met in the area after many random candidates."""


def noise_power(
    noise_density_dbm_hz: float = NOISE_DENSITY_DBM_HZ, bandwidth: float = BANDWIDTH_HZ
) -> float:
    """Noise power [W] of a receiver with density [dBm/Hz] over ``bandwidth`` [Hz]."""
    return 10.0 ** ((noise_density_dbm_hz - 30.0) / 10.0) * bandwidth


def path_loss_db(distance_m: Tensor) -> Tensor:
    """Distance path loss ``128.1 + 37.6 log10(d / 1 km)`` [dB] for distances [m] (any shape)."""
    return PATH_LOSS_AT_1KM_DB + PATH_LOSS_SLOPE_DB * torch.log10(distance_m / 1000.0)


@dataclass(frozen=True)
class PathLossDraw:
    """One batch of path-loss channels with its geometry.

    Attributes:
        gain: ``(N, B, Q, B)`` float, linear power gain; ``gain[n, b, q, c]`` is the gain from
            BS ``c`` to the user on channel ``q`` of BS ``b``.
        users: ``(N, B, Q)`` int64, index of the user on channel ``q`` of BS ``b``.
        bs_positions: ``(N, B, 2)`` float, BS coordinates [m] in ``[0, area]^2``.
        user_positions: ``(N, U, 2)`` float, user coordinates [m].
        large_scale_gain: ``(N, U, B)`` float, linear path-loss-and-shadowing gain from BS
            ``c`` to user ``u`` (the association score).
    """

    gain: Tensor
    users: Tensor
    bs_positions: Tensor
    user_positions: Tensor
    large_scale_gain: Tensor


def drop_nodes(
    num_samples: int,
    num_bs: int,
    num_users: int,
    *,
    area_m: float = AREA_M,
    min_bs_distance_m: float = MIN_BS_DISTANCE_M,
    min_bs_user_distance_m: float = MIN_BS_USER_DISTANCE_M,
    min_user_distance_m: float = MIN_USER_DISTANCE_M,
    drop: str = "uniform",
    cell_radius_m: float = CELL_RADIUS_M,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    max_tries: int = 100,
    max_restarts: int = 50,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Drop BSs uniformly in a square and users over it (``drop="uniform"``) or around
    their BS (``drop="cell"``), keeping the minimum distances.

    Points are placed in order (BSs, then users); each is redrawn until it is far enough
    from every point already placed. The first try draws one candidate per instance, later
    tries :data:`CANDIDATES_PER_TRY` per instance still pending, keeping the first that fits.
    An instance whose layout gets stuck (a point still unplaced after ``max_tries`` tries,
    e.g. because the earlier points left no room) starts its layout again from scratch.

    Args:
        num_samples: ``N``; num_bs: ``B``; num_users: ``U``.
        area_m: side of the square [m].
        min_bs_distance_m, min_bs_user_distance_m, min_user_distance_m: minimum distances [m].
        drop: ``"uniform"`` (every user uniform over the square, the paper's) or ``"cell"``
            (user ``u`` uniform over the part inside the square of the disc of radius
            ``cell_radius_m`` around BS ``u // (U / B)``; ``U`` must be a multiple of ``B``).
        cell_radius_m: radius of the ``"cell"`` drop [m] (ignored by ``"uniform"``).
        generator, seed: source of randomness (see
            :func:`feasnet.channels.gaussian.resolve_generator`).
        max_tries: tries per point and layout attempt.
        max_restarts: layout attempts per instance before giving up.
        dtype: float dtype of the coordinates.

    Returns:
        ``(bs_positions, user_positions)``: ``(N, B, 2)`` and ``(N, U, 2)`` coordinates [m].

    Raises:
        PlacementError: when some instance has no complete layout after ``max_restarts``
            attempts.
        ValueError: an unknown ``drop``, a non-positive ``cell_radius_m`` or area, a negative
            distance, or (cell drop) ``U`` not a multiple of ``B``.
    """
    if area_m <= 0:
        raise ValueError(f"area_m: expected > 0, got {area_m}")
    centers = _drop_centers(drop, cell_radius_m, num_bs, num_users, min_bs_user_distance_m)
    for name, value in (
        ("min_bs_distance_m", min_bs_distance_m),
        ("min_bs_user_distance_m", min_bs_user_distance_m),
        ("min_user_distance_m", min_user_distance_m),
    ):
        if value < 0:
            raise ValueError(f"{name}: expected >= 0, got {value}")
    if max_tries < 1 or max_restarts < 1:
        raise ValueError("max_tries and max_restarts: expected >= 1")
    gen = resolve_generator(generator, seed)
    total = num_bs + num_users
    # Minimum distance between every pair of points (BSs first, then users).
    is_user = torch.arange(total) >= num_bs
    required = torch.where(
        is_user[:, None] & is_user[None, :],
        min_user_distance_m,
        torch.where(is_user[:, None] | is_user[None, :], min_bs_user_distance_m, min_bs_distance_m),
    ).to(dtype)
    positions = torch.zeros(num_samples, total, 2, dtype=dtype)
    pending = torch.arange(num_samples)
    stuck_at: dict[int, int] = {}
    for _ in range(max_restarts):
        if pending.numel() == 0:
            break
        layout, placed = _drop_layout(
            pending.numel(), required, area_m, gen, max_tries, dtype, centers, cell_radius_m
        )
        done = placed == total
        positions[pending[done]] = layout[done]
        stuck_at = {int(k): int((placed == k).sum()) for k in placed[~done].unique()}
        pending = pending[~done]
    if pending.numel():
        worst = min(stuck_at)
        label = f"user {worst - num_bs}" if worst >= num_bs else f"BS {worst}"
        raise PlacementError(
            f"could not place all nodes in {pending.numel()} of {num_samples} instances after "
            f"{max_restarts} layout attempts (the last one got stuck at {label} in "
            f"{stuck_at[worst]} of them): B={num_bs} BSs and U={num_users} users do not fit "
            f"in a {area_m:g} m square with minimum distances {min_bs_distance_m:g} m (BS-BS), "
            f"{min_bs_user_distance_m:g} m (BS-user), {min_user_distance_m:g} m (user-user)"
            + (f", users within {cell_radius_m:g} m of their BS" if centers is not None else "")
            + "; enlarge the area, reduce the minimum distances or the number of nodes"
        )
    return positions[:, :num_bs], positions[:, num_bs:]


def _drop_centers(
    drop: str, cell_radius_m: float, num_bs: int, num_users: int, min_bs_user_distance_m: float
) -> Tensor | None:
    """``None`` for the uniform drop; for the cell drop ``(B + U,)`` int64, the index of the
    BS each point is dropped around (``-1`` for the BSs themselves)."""
    if drop not in DROPS:
        raise ValueError(f"drop: unknown user drop {drop!r}; choose from {', '.join(DROPS)}")
    if drop == "uniform":
        return None
    if not math.isfinite(cell_radius_m) or cell_radius_m <= min_bs_user_distance_m:
        raise ValueError(
            f"cell_radius_m: expected a finite radius > min_bs_user_distance_m "
            f"({min_bs_user_distance_m:g} m), got {cell_radius_m}"
        )
    if num_bs <= 0 or num_users % num_bs:
        raise ValueError(
            f"drop: the cell drop needs a number of users U={num_users} that is a multiple of "
            f"the number of BSs B={num_bs}"
        )
    per_bs = num_users // num_bs
    home = torch.arange(num_users) // per_bs
    return torch.cat([torch.full((num_bs,), -1, dtype=torch.int64), home])


def _drop_layout(
    n: int,
    required: Tensor,
    area_m: float,
    gen: torch.Generator,
    max_tries: int,
    dtype: torch.dtype,
    centers: Tensor | None = None,
    cell_radius_m: float = CELL_RADIUS_M,
) -> tuple[Tensor, Tensor]:
    """One layout attempt for ``n`` instances.

    Args:
        required: ``(K, K)`` minimum distance [m] between points ``i`` and ``j``.
        centers: ``(K,)`` int64, the earlier point each point is dropped around (uniform over
            the disc of radius ``cell_radius_m`` [m], kept inside the square), ``-1`` for
            uniform over the square; ``None``: every point uniform over the square.

    Returns:
        ``(positions, placed)``: ``(n, K, 2)`` coordinates [m] and ``(n,)`` int64, the number
        of points placed (``K`` when the layout is complete).
    """
    total = required.shape[0]
    positions = torch.zeros(n, total, 2, dtype=dtype)
    placed = torch.zeros(n, dtype=torch.int64)
    alive = torch.arange(n)  # instances not stuck so far
    for k in range(total):
        if alive.numel() == 0:
            break
        required_sq = required[k, :k].pow(2)
        prev_all = positions[alive, :k]  # (A, k, 2)
        point = torch.empty(alive.numel(), 2, dtype=dtype)
        pending = torch.arange(alive.numel())  # rows of ``alive`` still without point k
        for attempt in range(max_tries):
            if pending.numel() == 0:
                break
            # One candidate on the first try (most instances accept it), several afterwards.
            per_try = 1 if attempt == 0 else CANDIDATES_PER_TRY
            center = -1 if centers is None else int(centers[k])
            if center < 0:
                cand = torch.rand(pending.numel(), per_try, 2, generator=gen, dtype=dtype) * area_m
                inside = torch.ones(cand.shape[:2], dtype=torch.bool)
            else:  # uniform over the disc: radius r sqrt(u), angle 2 pi v
                uv = torch.rand(pending.numel(), per_try, 2, generator=gen, dtype=dtype)
                radius = cell_radius_m * uv[..., 0].sqrt()
                angle = 2.0 * math.pi * uv[..., 1]
                offset = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)
                cand = prev_all[pending, center][:, None, :] + offset
                inside = ((cand >= 0) & (cand <= area_m)).all(dim=-1)
            if k == 0:
                ok = inside
            else:
                prev = prev_all[pending]  # (P, k, 2)
                dx = cand[:, :, None, 0] - prev[:, None, :, 0]  # (P, T, k)
                dy = cand[:, :, None, 1] - prev[:, None, :, 1]
                ok = inside & (dx * dx + dy * dy >= required_sq).all(dim=-1)  # (P, T)
            found = ok.any(dim=1)
            first = ok.to(torch.int8).argmax(dim=1)  # first fitting candidate
            chosen = cand[torch.arange(pending.numel()), first]
            point[pending[found]] = chosen[found]
            pending = pending[~found]
        keep = torch.ones(alive.numel(), dtype=torch.bool)
        keep[pending] = False
        positions[alive[keep], k] = point[keep]
        placed[alive[keep]] = k + 1
        alive = alive[keep]
    return positions, placed


def draw_path_loss(
    num_samples: int,
    num_bs: int,
    num_channels: int,
    *,
    area_m: float = AREA_M,
    min_bs_distance_m: float = MIN_BS_DISTANCE_M,
    min_bs_user_distance_m: float = MIN_BS_USER_DISTANCE_M,
    min_user_distance_m: float = MIN_USER_DISTANCE_M,
    shadowing_db: float = SHADOWING_DB,
    drop: str = "uniform",
    cell_radius_m: float = CELL_RADIUS_M,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> PathLossDraw:
    """Drop nodes, draw path loss, shadowing and fading, and associate users.

    Args:
        num_samples: ``N``; num_bs: ``B``; num_channels: ``Q`` (``U = B * Q`` users).
        area_m, min_*_m: geometry [m] (see :func:`drop_nodes`).
        shadowing_db: standard deviation of the log-normal shadowing [dB] (0 disables it).
        drop, cell_radius_m: where users are dropped (:data:`DROPS`, see :func:`drop_nodes`).
        generator, seed: source of randomness.
        dtype: float dtype of every returned float tensor.

    Returns:
        The channels ``(N, B, Q, B)`` with assignment and geometry (:class:`PathLossDraw`).
    """
    _check_sizes(num_samples, num_bs, num_channels)
    if shadowing_db < 0:
        raise ValueError(f"shadowing_db: expected >= 0, got {shadowing_db}")
    gen = resolve_generator(generator, seed)
    num_users = num_bs * num_channels
    bs_pos, user_pos = drop_nodes(
        num_samples,
        num_bs,
        num_users,
        area_m=area_m,
        min_bs_distance_m=min_bs_distance_m,
        min_bs_user_distance_m=min_bs_user_distance_m,
        min_user_distance_m=min_user_distance_m,
        drop=drop,
        cell_radius_m=cell_radius_m,
        generator=gen,
        dtype=dtype,
    )
    distance = torch.linalg.vector_norm(
        user_pos[:, :, None, :] - bs_pos[:, None, :, :], dim=-1
    )  # (N, U, B) [m]
    shadowing = shadowing_db * torch.randn(distance.shape, generator=gen, dtype=dtype)
    large_scale = torch.pow(10.0, (shadowing - path_loss_db(distance)) / 10.0)  # (N, U, B)
    fading = rayleigh_power((num_samples, num_users, num_bs, num_channels), gen, dtype)
    user_gain = large_scale[..., None] * fading  # (N, U, B, Q)
    assoc = associate_users(user_gain, large_scale, num_channels)
    return PathLossDraw(
        gain=assoc.gain,
        users=assoc.users,
        bs_positions=bs_pos,
        user_positions=user_pos,
        large_scale_gain=large_scale,
    )


def path_loss_gains(
    num_samples: int,
    num_bs: int,
    num_channels: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    **geometry: Any,
) -> Tensor:
    """Only the channel tensor of :func:`draw_path_loss`: ``(N, B, Q, B)`` linear power gain.

    ``geometry`` takes the keyword arguments of :func:`draw_path_loss` (``area_m``, ...).
    """
    return draw_path_loss(
        num_samples, num_bs, num_channels, generator=generator, seed=seed, **geometry
    ).gain


def path_loss_instances(
    num_samples: int,
    num_bs: int,
    num_channels: int,
    min_rate: Any,
    *,
    pmax: Any = PMAX_W,
    bandwidth: float = BANDWIDTH_HZ,
    noise_density_dbm_hz: float = NOISE_DENSITY_DBM_HZ,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    **geometry: Any,
) -> PowerControlInstances:
    """Path-loss-dataset instances (not filtered for feasibility), float64.

    Args:
        min_rate: minimum rate of every user [bit/s]: scalar, ``(N,)`` or ``(N, B, Q)``.
        pmax: power budget [W], scalar or ``(N,)``.
        bandwidth: channel bandwidth [Hz]; noise_density_dbm_hz: noise density [dBm/Hz]
            (noise power = density x bandwidth).
        geometry: keyword arguments of :func:`draw_path_loss`.
    """
    if not math.isfinite(bandwidth) or bandwidth <= 0:
        raise ValueError(f"bandwidth: expected > 0 Hz, got {bandwidth}")
    gain = path_loss_gains(
        num_samples, num_bs, num_channels, generator=generator, seed=seed, **geometry
    )
    return PowerControlInstances.from_arrays(
        gain, pmax, noise_power(noise_density_dbm_hz, bandwidth), bandwidth, min_rate
    )
