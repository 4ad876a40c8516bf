"""Channel generators: Gaussian (i.i.d. Rayleigh) and path loss for power control, and
single-cell Nakagami-m channels for MISO beamforming (:mod:`feasnet.channels.nakagami`).

The power-control generators produce ``H: (N, B, Q, B)`` float, linear power gain, with
``H[n, b, q, c]`` the gain from BS ``c`` to the user on channel ``q`` of BS ``b``, after the
greedy user association of :mod:`feasnet.channels.association`. The MISO generator produces
``(N, K, Nt)`` complex amplitude gains. All randomness comes from a ``torch.Generator`` (pass
``generator=`` or ``seed=``), so draws are reproducible.
"""

from feasnet.channels.association import Association, associate_users
from feasnet.channels.gaussian import (
    gaussian_gains,
    gaussian_instances,
    rayleigh_power,
    resolve_generator,
)
from feasnet.channels.nakagami import (
    drop_users_in_annulus,
    miso_channels,
    nakagami_fading,
    path_gain,
    standard_gamma,
)
from feasnet.channels.path_loss import (
    PathLossDraw,
    PlacementError,
    draw_path_loss,
    drop_nodes,
    noise_power,
    path_loss_db,
    path_loss_gains,
    path_loss_instances,
)

__all__ = [
    "Association",
    "PathLossDraw",
    "PlacementError",
    "associate_users",
    "draw_path_loss",
    "drop_nodes",
    "drop_users_in_annulus",
    "gaussian_gains",
    "gaussian_instances",
    "miso_channels",
    "nakagami_fading",
    "noise_power",
    "path_gain",
    "path_loss_db",
    "path_loss_gains",
    "path_loss_instances",
    "rayleigh_power",
    "resolve_generator",
    "standard_gamma",
]
