"""Greedy user association: compared with a plain-Python reference and a hand-made example."""

from __future__ import annotations

import pytest
import torch

from feasnet.channels.association import associate_users


def reference_association(score: torch.Tensor, num_channels: int) -> list[list[list[int]]]:
    """Per instance, per BS, the users on channels 0..Q-1, computed one step at a time."""
    n, num_users, num_bs = score.shape
    out = []
    for i in range(n):
        free = set(range(num_users))
        per_bs = []
        for b in range(num_bs):
            ranked = sorted(free, key=lambda u, b=b, i=i: float(score[i, u, b]), reverse=True)
            mine = ranked[:num_channels]
            free -= set(mine)
            per_bs.append(mine)  # already in decreasing order of score toward BS b
        out.append(per_bs)
    return out


def test_hand_made_example() -> None:
    # 4 users, 2 BSs, 2 channels. Scores toward BS 0 / BS 1.
    score = torch.tensor(
        [[[5.0, 9.0], [1.0, 2.0], [7.0, 1.0], [3.0, 8.0]]], dtype=torch.float64
    )  # (1, U=4, B=2)
    user_gain = torch.rand(1, 4, 2, 2, dtype=torch.float64) + 0.1
    assoc = associate_users(user_gain, score, num_channels=2)
    # BS 0 takes users 2 (7) and 0 (5), strongest first; BS 1 gets 3 (8) then 1 (2).
    assert assoc.users.tolist() == [[[2, 0], [3, 1]]]


@pytest.mark.parametrize(("num_bs", "num_channels"), [(1, 3), (2, 2), (3, 2), (4, 1), (3, 3)])
def test_matches_reference(num_bs: int, num_channels: int) -> None:
    g = torch.Generator().manual_seed(num_bs * 10 + num_channels)
    n, u = 25, num_bs * num_channels
    user_gain = torch.rand(n, u, num_bs, num_channels, generator=g, dtype=torch.float64)
    score = user_gain.mean(dim=3)
    assoc = associate_users(user_gain, score, num_channels)
    assert assoc.users.tolist() == reference_association(score, num_channels)
    assert assoc.gain.shape == (n, num_bs, num_channels, num_bs)
    # Every user is served exactly once.
    assert (assoc.users.reshape(n, -1).sort(dim=1).values == torch.arange(u)).all()
    # H[n, b, q, c] is the gain from BS c to the user on (b, q), on channel q.
    for i in range(n):
        for b in range(num_bs):
            for q in range(num_channels):
                user = int(assoc.users[i, b, q])
                assert torch.equal(assoc.gain[i, b, q], user_gain[i, user, :, q])


def test_greedy_and_strongest_on_channel_zero() -> None:
    g = torch.Generator().manual_seed(7)
    n, num_bs, q = 200, 4, 3
    user_gain = torch.rand(n, num_bs * q, num_bs, q, generator=g, dtype=torch.float64)
    score = user_gain.mean(dim=3)
    users = associate_users(user_gain, score, q).users
    own = torch.gather(score.permute(0, 2, 1), 2, users)  # (N, B, Q): score toward own BS
    assert (own[:, :, :-1] >= own[:, :, 1:]).all()  # channel 0 carries the strongest
    for b in range(num_bs - 1):
        later = users[:, b + 1 :].reshape(n, -1)  # users still free when BS b chose
        later_scores = torch.gather(score[:, :, b], 1, later)
        assert (own[:, b, -1:] >= later_scores).all()  # BS b took the best of what was left


def test_shape_errors() -> None:
    gain = torch.rand(2, 4, 2, 2)
    with pytest.raises(ValueError, match="user_gain"):
        associate_users(gain, gain.mean(3), num_channels=3)
    with pytest.raises(ValueError, match="score"):
        associate_users(gain, gain.mean(3)[:, :3], num_channels=2)
