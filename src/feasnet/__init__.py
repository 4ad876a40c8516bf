"""feasnet: feasibility-guaranteed learning-to-optimize for wireless resource allocation."""

from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances

__version__ = "0.1.0"
__all__ = ["InvalidInstanceError", "PowerControlInstances", "__version__"]
