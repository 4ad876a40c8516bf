"""Instance sets: scenarios and presets, feasible-instance generation, HDF5 storage, ``.npz``.

Typical use::

    from feasnet.data import generate, get_preset, read_dataset, write_dataset

    scenario = get_preset("small")
    instances, stats = generate(scenario, seed=0)
    write_dataset("small.h5", instances, scenario, seed=0, stats=stats)
    test, info = read_dataset("small.h5", split="test")
"""

from feasnet.data.exchange import REQUIRED_KEYS, InstanceFileError, load_npz, save_npz
from feasnet.data.generate import GenerationError, GenerationStats, draw_instances, generate
from feasnet.data.presets import (
    PRESETS,
    Scenario,
    UnknownPresetError,
    get_preset,
    preset_names,
)
from feasnet.data.storage import (
    DEFAULT_SPLITS,
    DatasetFileError,
    DatasetInfo,
    read_dataset,
    read_info,
    write_dataset,
)

__all__ = [
    "DEFAULT_SPLITS",
    "PRESETS",
    "REQUIRED_KEYS",
    "DatasetFileError",
    "DatasetInfo",
    "GenerationError",
    "GenerationStats",
    "InstanceFileError",
    "Scenario",
    "UnknownPresetError",
    "draw_instances",
    "generate",
    "get_preset",
    "load_npz",
    "preset_names",
    "read_dataset",
    "read_info",
    "save_npz",
    "write_dataset",
]
