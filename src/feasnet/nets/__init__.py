"""Backbones: networks mapping instances to raw normalized powers ``(N, B, Q)``."""

from feasnet.nets.features import ChannelFeatures, log_gain_features
from feasnet.nets.mlp import ACTIVATIONS, FinalActivation, PowerControlMLP

__all__ = [
    "ACTIVATIONS",
    "ChannelFeatures",
    "FinalActivation",
    "PowerControlMLP",
    "log_gain_features",
]
