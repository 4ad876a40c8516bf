"""Draw a scenario's channels and keep only feasible instances.

:func:`generate` draws batches of ``batch_size`` instances from one seeded
``torch.Generator``, applies the exact feasibility test of the scenario's family
(:func:`feasnet.problems.power_control.minimum_power` for a
:class:`~feasnet.data.presets.Scenario`, :func:`feasnet.problems.miso.minimum_power` for a
:class:`~feasnet.data.miso_presets.MisoScenario`) and keeps the feasible ones, in the order
drawn, until ``num_samples`` are collected. The result is a deterministic function of
``(scenario, seed, batch_size)``: with those fixed, a run for ``n`` samples returns the first
``n`` instances of a run for more samples.

When the targets are rarely attainable (low acceptance rate), generation stops with a
:class:`GenerationError` instead of running for hours: after drawing ``max_draw_factor``
(default :data:`MAX_DRAW_FACTOR`) times the target, or earlier, once at least
:data:`EARLY_CHECK_DRAWS` draws make it clear that the acceptance rate is too low to finish
within that limit (a generous upper bound on the rate, ``(k + 3 sqrt(k) + 3) / drawn`` for
``k`` accepted, is below ``target / limit``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from feasnet.channels.gaussian import gaussian_gains
from feasnet.channels.path_loss import path_loss_gains
from feasnet.data.miso_presets import MisoScenario, draw_miso_instances
from feasnet.data.presets import Scenario
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances
from feasnet.problems.registry import problem_of
from feasnet.progress import progress_bar

DEFAULT_BATCH_SIZE = 2048
"""Instances drawn and tested per batch."""
MAX_DRAW_FACTOR = 2000
"""Give up after drawing this many times the number of requested instances."""
EARLY_CHECK_DRAWS = 10_000
"""Draws after which a hopeless acceptance rate stops generation early."""


class GenerationError(RuntimeError):
    """Too few drawn instances are feasible to finish in reasonable time."""


@dataclass(frozen=True)
class GenerationStats:
    """Bookkeeping of one :func:`generate` run.

    Attributes:
        num_samples: feasible instances kept.
        drawn: instances drawn up to the last one kept (``num_samples + rejected``).
        rejected: infeasible instances among them.
        seconds: wall time of the run [s].
    """

    num_samples: int
    drawn: int
    rejected: int
    seconds: float

    @property
    def acceptance_rate(self) -> float:
        """Fraction of drawn instances that were feasible."""
        return self.num_samples / self.drawn if self.drawn else math.nan


def feasible_mask(instances: PowerControlInstances | MisoInstances) -> torch.Tensor:
    """``(N,)`` bool, the feasibility verdict of the instances' problem (exact for both
    families and every constraint set; see :meth:`feasnet.problems.base.Problem.feasibility`)."""
    return problem_of(instances).feasibility(instances).feasible


def draw_instances(
    scenario: Scenario | MisoScenario, num_samples: int, generator: torch.Generator
) -> PowerControlInstances | MisoInstances:
    """Draw ``num_samples`` instances of ``scenario`` without a feasibility filter.

    Returns:
        Power control (float64): ``gain (N, B, Q, B)`` linear power gains,
        ``pmax``/``noise``/``bandwidth`` ``(N,)`` [W, W, Hz] and ``min_rate (N, B, Q)``
        [bit/s], all from the scenario; with ``scenario.csi_error`` the gains are estimates
        carrying ``csi_error`` (:func:`feasnet.problems.csi.estimate`). MISO (complex128): see
        :func:`feasnet.data.miso_presets.draw_miso_instances`.
    """
    if isinstance(scenario, MisoScenario):
        return draw_miso_instances(scenario, num_samples, generator)
    b, q = scenario.num_bs, scenario.num_channels
    if scenario.kind == "imported":
        raise ValueError(f"scenario {scenario.name!r}: imported channels cannot be drawn")
    if scenario.kind == "gaussian":
        gain = gaussian_gains(num_samples, b, q, generator=generator)
    else:
        gain = path_loss_gains(
            num_samples,
            b,
            q,
            generator=generator,
            area_m=scenario.area_m,
            min_bs_distance_m=scenario.min_bs_distance_m,
            min_bs_user_distance_m=scenario.min_bs_user_distance_m,
            min_user_distance_m=scenario.min_user_distance_m,
            shadowing_db=scenario.shadowing_db,
            drop=scenario.drop,
            cell_radius_m=scenario.cell_radius_m,
        )
    drawn = PowerControlInstances.from_arrays(
        gain,
        scenario.pmax,
        scenario.noise_power,
        scenario.bandwidth,
        scenario.min_rate,
        min_energy_efficiency=scenario.min_energy_efficiency,
    )
    if scenario.csi_error is None:
        return drawn
    from feasnet.problems.csi import estimate  # the data holds estimates (robust-exact filter)

    return estimate(drawn, scenario.csi_error, generator)


def generate(
    scenario: Scenario | MisoScenario,
    num_samples: int | None = None,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_draw_factor: float = MAX_DRAW_FACTOR,
) -> tuple[PowerControlInstances | MisoInstances, GenerationStats]:
    """Draw feasible instances of ``scenario``.

    Args:
        scenario: what to draw.
        num_samples: feasible instances wanted (default ``scenario.num_samples``).
        seed: seed of the ``torch.Generator`` all randomness comes from.
        batch_size: instances drawn and tested at a time (part of what the output depends on).
        max_draw_factor: give up after drawing this many times ``num_samples``.

    Returns:
        ``(instances, stats)``: ``num_samples`` feasible instances and the counts. For a
        :class:`Scenario`, float64 :class:`PowerControlInstances` (``gain (N, B, Q, B)``); for
        a :class:`MisoScenario`, complex128 :class:`MisoInstances` (``channel (N, K, Nt)``).

    Raises:
        GenerationError: when the acceptance rate is too low to finish within
            ``max_draw_factor * num_samples`` draws.
    """
    target = scenario.num_samples if num_samples is None else int(num_samples)
    if target <= 0:
        raise ValueError(f"num_samples: expected > 0, got {num_samples}")
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected > 0, got {batch_size}")
    if max_draw_factor < 1:
        raise ValueError(f"max_draw_factor: expected >= 1, got {max_draw_factor}")
    generator = torch.Generator().manual_seed(int(seed))
    max_draws = math.ceil(max_draw_factor * target)
    kept: list = []
    accepted = drawn = rejected = 0
    start = time.perf_counter()
    with progress_bar(f"generating {scenario.name}", total=target) as advance:
        while accepted < target:
            batch = draw_instances(scenario, batch_size, generator)
            feasible = feasible_mask(batch)
            index = torch.nonzero(feasible).squeeze(1)
            need = target - accepted
            if index.numel() >= need:
                # Count draws only up to the last instance kept.
                used = int(index[need - 1]) + 1
                index = index[:need]
            else:
                used = batch_size
            if index.numel():
                kept.append(batch[index])
            accepted += index.numel()
            drawn += used
            rejected += used - index.numel()
            advance(index.numel())
            if accepted < target:
                _check_progress(scenario, target, accepted, drawn, max_draws, max_draw_factor)
    stats = GenerationStats(
        num_samples=accepted,
        drawn=drawn,
        rejected=rejected,
        seconds=time.perf_counter() - start,
    )
    return type(kept[0]).concatenate(kept), stats


def _check_progress(
    scenario: Scenario | MisoScenario,
    target: int,
    accepted: int,
    drawn: int,
    max_draws: int,
    max_draw_factor: float,
) -> None:
    """Raise :class:`GenerationError` when finishing within ``max_draws`` looks hopeless."""
    rate = accepted / drawn
    needed_rate = target / max_draws
    # Poisson-style upper bound on the true rate (about three standard deviations above).
    rate_upper = (accepted + 3.0 * math.sqrt(accepted) + 3.0) / drawn
    hopeless = drawn >= max_draws or (drawn >= EARLY_CHECK_DRAWS and rate_upper < needed_rate)
    if not hopeless:
        return
    estimate = (
        f"at that rate {target:,} samples need about {math.ceil(target / rate):,} draws, more than"
        if rate > 0
        else f"{target:,} samples cannot be expected within"
    )
    if isinstance(scenario, MisoScenario):
        advice = (
            f"Lower sinr_min_db (now {scenario.sinr_min_db} dB), raise snr_db (now "
            f"{scenario.snr_db:g} dB) or num_antennas (now {scenario.num_antennas}), lower "
            f"num_users (now {scenario.num_users}) or"
        )
    else:
        advice = (
            f"Lower min_rate (now {scenario.min_rate / 1e6:g} Mbit/s), raise pmax (now "
            f"{scenario.pmax:g} W)"
            + (
                ", drop users around their BS (drop 'cell', `--drop cell`)"
                if scenario.kind == "path-loss" and scenario.drop == "uniform"
                else ""
            )
            + " or"
        )
    raise GenerationError(
        f"scenario {scenario.name!r}: only {accepted:,} of {drawn:,} drawn instances are "
        f"feasible (acceptance rate {rate:.3%}); {estimate} the limit of "
        f"{max_draw_factor:g} x {target:,} = {max_draws:,} draws. {advice} "
        "allow more draws (max_draw_factor)."
    )
