"""MISO beamforming scenarios (the survey's case study) and their presets.

A :class:`MisoScenario` fixes the array size (``Nt`` antennas, ``K`` users), the fading
(Nakagami ``m``), the cell geometry, the power model (``Pmax``, ``Pc``, ``eta``), the QoS
target and the receive SNR, from which the noise power follows (:attr:`MisoScenario.noise_power`):

    SNR = eta (Pmax - Pc) g(R) / sigma^2

with ``g(R)`` the path gain at the cell edge (:func:`feasnet.channels.nakagami.path_gain`):
the receive SNR a cell-edge user would have if the whole transmit budget reached it through
one antenna (no fading, no array gain). The presets (registered in
:data:`feasnet.data.presets.PRESETS`) sweep the SNR and ``m`` around the defaults
``Nt = 20``, ``K = 3``, ``SNR = 10 dB``, ``m = 1``.

``kind = "miso-imported"`` marks channels brought by the user (``.npz``); they are never drawn,
and their per-instance values live in the data (see :func:`imported_miso_scenario`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from feasnet.channels import nakagami as _nakagami
from feasnet.problems.miso import MisoInstances

MisoKind = Literal["miso", "miso-imported"]
"""``miso``: drawn by feasnet; ``miso-imported``: channels brought by the user, never drawn."""

RANDOM_WEIGHT_RANGE = (0.5, 1.5)
"""Interval of the i.i.d. uniform rate weights of ``weights="random"``."""


class MisoScenario(BaseModel):
    """A MISO downlink data-set configuration (one cell, one BS, ``K`` single-antenna users).

    Physical units: powers in W, distances in m, SNR and SINR target in dB.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: MisoKind = "miso"
    num_antennas: int = Field(default=20, gt=0, description="Nt, BS antennas")
    num_users: int = Field(default=3, gt=0, description="K, single-antenna users")
    snr_db: float = Field(
        default=10.0, allow_inf_nan=False, description="cell-edge SNR of the whole budget [dB]"
    )
    nakagami_m: float = Field(
        default=1.0, ge=_nakagami.MIN_NAKAGAMI_M, allow_inf_nan=False, description="fading m"
    )
    pmax: float = Field(default=1.0, gt=0, allow_inf_nan=False, description="power budget [W]")
    circuit_power: float = Field(
        default=0.1, ge=0, allow_inf_nan=False, description="circuit power Pc [W]"
    )
    efficiency: float = Field(
        default=0.5, gt=0, le=1, allow_inf_nan=False, description="amplifier efficiency eta"
    )
    sinr_min_db: float | None = Field(
        default=0.0,
        allow_inf_nan=False,
        description="SINR target of every user [dB]; None: no QoS constraint",
    )
    weights: Literal["random", "equal"] = Field(
        default="random", description="rate weights: i.i.d. U[0.5, 1.5] per user, or all 1"
    )
    cell_radius_m: float = Field(default=_nakagami.CELL_RADIUS_M, gt=0, allow_inf_nan=False)
    inner_radius_fraction: float = Field(
        default=_nakagami.INNER_RADIUS_FRACTION, gt=0, le=1, allow_inf_nan=False
    )
    num_samples: int = Field(default=1000, gt=0, description="feasible instances to keep")
    description: str = ""

    @model_validator(mode="after")
    def _positive_budget(self) -> MisoScenario:
        if self.circuit_power >= self.pmax:
            raise ValueError(
                f"circuit_power ({self.circuit_power:g} W) must be below pmax ({self.pmax:g} W): "
                "otherwise no power is left to transmit"
            )
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def transmit_budget(self) -> float:
        """``eta (Pmax - Pc)`` [W], the most ``sum_k ||v_k||^2`` may be."""
        return self.efficiency * (self.pmax - self.circuit_power)

    @property
    def edge_gain(self) -> float:
        """Linear path gain ``g(R)`` at the cell edge."""
        return float(_nakagami.path_gain(self.cell_radius_m))

    @property
    def noise_power(self) -> float:
        """Receiver noise power [W]: ``transmit_budget * g(R) / 10^(snr_db / 10)``."""
        return self.transmit_budget * self.edge_gain / 10.0 ** (self.snr_db / 10.0)

    @property
    def sinr_min(self) -> float:
        """SINR target of every user, linear (0 when ``sinr_min_db`` is ``None``)."""
        return 0.0 if self.sinr_min_db is None else 10.0 ** (self.sinr_min_db / 10.0)

    @property
    def family(self) -> str:
        """The problem family (registry name)."""
        return "miso"

    def check_sizes(self, instances: Any) -> tuple[str, str]:
        """``(got, expected)`` sizes in words (``"K=3, Nt=5"``); equal when they match."""
        return (
            f"K={instances.num_users}, Nt={instances.num_antennas}",
            f"K={self.num_users}, Nt={self.num_antennas}",
        )

    def with_overrides(self, **changes: Any) -> MisoScenario:
        """A validated copy with some fields changed."""
        return MisoScenario.model_validate(self.model_dump() | changes)

    def table_row(self) -> dict[str, str]:
        """Column -> text for ``feasnet data presets``."""
        return {
            "name": self.name,
            "Nt": str(self.num_antennas),
            "K": str(self.num_users),
            "SNR": f"{self.snr_db:g} dB",
            "Nakagami m": f"{self.nakagami_m:g}",
            "SINR min": "-" if self.sinr_min_db is None else f"{self.sinr_min_db:g} dB",
            "pmax": f"{self.pmax:g} W",
            "pc": f"{self.circuit_power:g} W",
            "eta": f"{self.efficiency:g}",
            "noise": f"{self.noise_power:.3g} W",
            "samples": str(self.num_samples),
        }

    def summary(self) -> str:
        """One line: sizes, SNR, fading, QoS target, power model."""
        target = "none" if self.sinr_min_db is None else f"{self.sinr_min_db:g} dB"
        return (
            f"{self.name}: {self.kind}, Nt={self.num_antennas}, K={self.num_users}, "
            f"SNR {self.snr_db:g} dB, Nakagami m={self.nakagami_m:g}, "
            f"SINR target {target}, Pmax {self.pmax:g} W, Pc "
            f"{self.circuit_power:g} W, eta {self.efficiency:g}, {self.weights} weights, "
            f"noise {self.noise_power:.3g} W"
        )


def draw_miso_instances(
    scenario: MisoScenario, num_samples: int, generator: torch.Generator
) -> MisoInstances:
    """Draw ``num_samples`` instances of ``scenario`` without a feasibility filter (complex128).

    The generator is used in this order: user distances, fading (:func:`miso_channels`), then
    the rate weights (``weights="random"`` only).
    """
    if scenario.kind != "miso":
        raise ValueError(f"scenario {scenario.name!r}: imported channels cannot be drawn")
    channel, _ = _nakagami.miso_channels(
        num_samples,
        scenario.num_users,
        scenario.num_antennas,
        scenario.nakagami_m,
        generator,
        cell_radius_m=scenario.cell_radius_m,
        inner_radius_fraction=scenario.inner_radius_fraction,
    )
    if scenario.weights == "random":
        low, high = RANDOM_WEIGHT_RANGE
        u = torch.rand(num_samples, scenario.num_users, generator=generator, dtype=torch.float64)
        weights: Any = low + (high - low) * u
    else:
        weights = 1.0
    return MisoInstances.from_arrays(
        channel,
        scenario.pmax,
        scenario.circuit_power,
        scenario.efficiency,
        scenario.noise_power,
        scenario.sinr_min,
        weights,
    )


def imported_miso_scenario(
    instances: MisoInstances, name: str, description: str = ""
) -> MisoScenario:
    """A ``miso-imported`` scenario that records ``instances``' sizes and first values.

    ``pmax``, ``circuit_power``, ``efficiency`` come from instance 0, ``sinr_min_db`` from the
    largest target (``None`` when no user has one) and ``snr_db`` is chosen so that
    :attr:`MisoScenario.noise_power` equals instance 0's noise (at the default cell radius).
    ``weights`` is ``"equal"`` when every weight is 1. The data files keep every per-instance
    value; the scenario is a label.

    Raises:
        ValueError: when instance 0 has no transmit budget (``pc >= pmax``).
    """
    pmax = float(instances.pmax[0])
    pc = float(instances.circuit_power[0])
    eta = float(instances.efficiency[0])
    if pc >= pmax:
        raise ValueError(f"instance 0: pc ({pc:g} W) >= pmax ({pmax:g} W), no transmit budget")
    target = float(instances.sinr_min.max())
    edge = float(_nakagami.path_gain(_nakagami.CELL_RADIUS_M))
    snr = eta * (pmax - pc) * edge / float(instances.noise[0])
    return MisoScenario(
        name=name,
        kind="miso-imported",
        num_antennas=instances.num_antennas,
        num_users=instances.num_users,
        snr_db=10 * math.log10(snr),
        pmax=pmax,
        circuit_power=pc,
        efficiency=eta,
        sinr_min_db=10 * math.log10(target) if target > 0 else None,
        weights="equal" if bool((instances.weights == 1).all()) else "random",
        num_samples=len(instances),
        description=description or "imported; per-instance values are stored in the data",
    )


SNR_SWEEP_DB = (0, 5, 10, 15, 20)
"""SNRs [dB] of the ``miso-snr-*`` presets (Nakagami m = 1)."""
M_SWEEP = (0.5, 1, 2, 4, 8)
"""Nakagami shapes of the ``miso-m-*`` presets (SNR 10 dB)."""
SINR_SWEEP_DB = (0, 5, 10, 12.5, 15)
"""SINR targets [dB] of the ``miso-sinr-*`` presets (every user the same target)."""
SINR_SWEEP_SNR_DB = 0.0
"""Cell-edge SNR [dB] of the ``miso-sinr-*`` presets: the lowest SNR of Fig. 4, where the
targets above ~5 dB bind at the WMMSE point (at 10 dB SNR not even a 15 dB target binds)."""


def build_miso_presets() -> list[MisoScenario]:
    """The MISO presets, in listing order: the SNR sweep, the m sweep, the SINR-target sweep,
    ``miso-small``."""
    presets = [
        MisoScenario(
            name=f"miso-snr-{snr}",
            snr_db=float(snr),
            description=(
                f"survey MISO case study: Nt=20, K=3, cell-edge SNR {snr} dB, Rayleigh (m=1), "
                "SINR target 0 dB"
            ),
        )
        for snr in SNR_SWEEP_DB
    ]
    presets += [
        MisoScenario(
            name=f"miso-m-{m:g}",
            nakagami_m=float(m),
            description=(
                f"survey MISO case study: Nt=20, K=3, SNR 10 dB, Nakagami m={m:g}, SINR target 0 dB"
            ),
        )
        for m in M_SWEEP
    ]
    presets += [
        MisoScenario(
            name=f"miso-sinr-{target:g}",
            snr_db=SINR_SWEEP_SNR_DB,
            sinr_min_db=float(target),
            description=(
                f"survey MISO case study with a binding QoS: Nt=20, K=3, SNR "
                f"{SINR_SWEEP_SNR_DB:g} dB, Rayleigh (m=1), SINR target {target:g} dB"
            ),
        )
        for target in SINR_SWEEP_DB
    ]
    presets.append(
        MisoScenario(
            name="miso-small",
            num_antennas=4,
            num_users=2,
            num_samples=200,
            description="small MISO problem for quick runs: Nt=4, K=2, SNR 10 dB, m=1",
        )
    )
    return presets
