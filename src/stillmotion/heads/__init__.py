"""Readouts from temporal-core tokens to outputs, and the model that joins core and readout."""

from stillmotion.heads.attentive import AttentiveProbe
from stillmotion.heads.linear import LinearProbe
from stillmotion.heads.mlp import MLPProbe
from stillmotion.heads.model import VideoModel, last_real

__all__ = ["AttentiveProbe", "LinearProbe", "MLPProbe", "VideoModel", "last_real"]
