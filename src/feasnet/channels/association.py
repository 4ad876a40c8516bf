"""Greedy user association and channel assignment (power-control paper, sec. VII-1).

Given ``U = B * Q`` users and a score of every user toward every BS (larger is better):

1. BS 0 takes the ``Q`` users with the largest score toward BS 0; they leave the pool.
2. BS 1 takes the ``Q`` best remaining users by their score toward BS 1, and so on, until the
   last BS receives the ``Q`` users that are left.
3. Each BS puts its users on its channels in decreasing order of score toward that BS, so
   channel 0 carries its strongest user.

The score is chosen by the caller: the Gaussian dataset uses a user's gain to the BS averaged
over the ``Q`` channels, the path-loss dataset the large-scale gain (path loss and shadowing,
without fast fading). The channel tensor is then read off the per-user gains:
``H[n, b, q, c] = G[n, users[n, b, q], c, q]``.

Everything is batched over the instance dimension ``N`` (``topk`` and gathers); only the
short loop over BSs is in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Association:
    """The result of :func:`associate_users`.

    Attributes:
        gain: ``(N, B, Q, B)`` float, linear power gain; ``gain[n, b, q, c]`` is the gain from
            BS ``c`` to the user on channel ``q`` of BS ``b``, on channel ``q``.
        users: ``(N, B, Q)`` int64; ``users[n, b, q]`` is the index (into the ``U`` users) of
            the user served on channel ``q`` of BS ``b``.
    """

    gain: Tensor
    users: Tensor


def associate_users(user_gain: Tensor, score: Tensor, num_channels: int) -> Association:
    """Associate users greedily, BS by BS, and assign channels by decreasing score.

    Args:
        user_gain: ``(N, U, B, Q)`` float, linear power gain; ``user_gain[n, u, c, q]`` is the
            gain from BS ``c`` to user ``u`` on channel ``q``. ``U`` must equal ``B * Q``.
        score: ``(N, U, B)`` float, how good user ``u`` is for BS ``b`` (larger is better;
            e.g. ``user_gain.mean(dim=3)`` or a large-scale gain).
        num_channels: ``Q``, users per BS.

    Returns:
        The channel tensor ``(N, B, Q, B)`` and the assignment ``(N, B, Q)``.

    Raises:
        ValueError: on inconsistent shapes.
    """
    if user_gain.ndim != 4:
        raise ValueError(f"user_gain: expected shape (N, U, B, Q), got {tuple(user_gain.shape)}")
    n, num_users, num_bs, q = user_gain.shape
    if q != num_channels or num_users != num_bs * num_channels:
        raise ValueError(
            f"user_gain: expected shape (N, B*Q, B, Q) with Q = {num_channels}, got "
            f"{tuple(user_gain.shape)}"
        )
    if tuple(score.shape) != (n, num_users, num_bs):
        raise ValueError(
            f"score: expected shape {(n, num_users, num_bs)}, got {tuple(score.shape)}"
        )
    device = user_gain.device
    taken = torch.zeros(n, num_users, dtype=torch.bool, device=device)
    rows = torch.arange(n, device=device)[:, None]
    users = torch.empty(n, num_bs, num_channels, dtype=torch.int64, device=device)
    for b in range(num_bs):
        candidates = score[:, :, b].masked_fill(taken, -torch.inf)
        # topk returns the values in descending order: channel 0 gets the strongest user.
        chosen = torch.topk(candidates, num_channels, dim=1, largest=True, sorted=True).indices
        users[:, b] = chosen
        taken[rows, chosen] = True
    channel = torch.arange(num_channels, device=device)
    # Advanced indices (N,1,1), (N,B,Q), (1,1,Q) around a slice: result (N, B, Q, B_c).
    gain = user_gain[rows[:, :, None], users, :, channel[None, None, :]]
    return Association(gain=gain, users=users)
