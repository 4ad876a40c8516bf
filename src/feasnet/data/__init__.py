"""Instance sets: scenarios and presets, feasible-instance generation, HDF5 storage, ``.npz``.

Typical use::

    from feasnet.data import generate, get_preset, read_dataset, write_dataset

    scenario = get_preset("small")
    instances, stats = generate(scenario, seed=0)
    write_dataset("small.h5", instances, scenario, seed=0, stats=stats)
    test, info = read_dataset("small.h5", split="test")

MISO beamforming data sets work the same way with a ``miso-*`` preset
(:class:`MisoScenario`): ``generate`` returns :class:`~feasnet.problems.miso.MisoInstances`,
files are marked ``feasnet_format = "miso-dataset"`` and split 7:3 (no validation) by default,
and ``info.family`` says which family a file holds. See docs/miso-datasets.md.
"""

from feasnet.data.exchange import (
    MISO_REQUIRED_KEYS,
    REQUIRED_KEYS,
    InstanceFileError,
    detect_family,
    load_npz,
    save_npz,
)
from feasnet.data.generate import (
    GenerationError,
    GenerationStats,
    draw_instances,
    feasible_mask,
    generate,
)
from feasnet.data.miso_presets import MisoScenario, draw_miso_instances, imported_miso_scenario
from feasnet.data.presets import (
    PRESETS,
    AnyScenario,
    Scenario,
    ScenarioFamily,
    UnknownPresetError,
    get_preset,
    preset_names,
    scenario_family,
    scenario_from_json,
)
from feasnet.data.storage import (
    DEFAULT_MISO_SPLITS,
    DEFAULT_SPLITS,
    DatasetFileError,
    DatasetInfo,
    EmptySplitError,
    default_splits,
    read_dataset,
    read_info,
    write_dataset,
)

__all__ = [
    "DEFAULT_MISO_SPLITS",
    "DEFAULT_SPLITS",
    "MISO_REQUIRED_KEYS",
    "PRESETS",
    "REQUIRED_KEYS",
    "AnyScenario",
    "DatasetFileError",
    "DatasetInfo",
    "EmptySplitError",
    "GenerationError",
    "GenerationStats",
    "InstanceFileError",
    "MisoScenario",
    "Scenario",
    "ScenarioFamily",
    "UnknownPresetError",
    "default_splits",
    "detect_family",
    "draw_instances",
    "draw_miso_instances",
    "feasible_mask",
    "generate",
    "get_preset",
    "imported_miso_scenario",
    "load_npz",
    "preset_names",
    "read_dataset",
    "read_info",
    "save_npz",
    "scenario_family",
    "scenario_from_json",
    "write_dataset",
]
