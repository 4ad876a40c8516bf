"""Channel generators for the power-control problem: Gaussian (i.i.d. Rayleigh) and path loss.

Both produce ``H: (N, B, Q, B)`` float, linear power gain, with ``H[n, b, q, c]`` the gain from
BS ``c`` to the user on channel ``q`` of BS ``b``, after the greedy user association of
:mod:`feasnet.channels.association`. All randomness comes from a ``torch.Generator`` (pass
``generator=`` or ``seed=``), so draws are reproducible.
"""

from feasnet.channels.association import Association, associate_users
from feasnet.channels.gaussian import (
    gaussian_gains,
    gaussian_instances,
    rayleigh_power,
    resolve_generator,
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
    "gaussian_gains",
    "gaussian_instances",
    "noise_power",
    "path_loss_db",
    "path_loss_gains",
    "path_loss_instances",
    "rayleigh_power",
    "resolve_generator",
]
