"""Readouts from temporal-core tokens to outputs (the model that joins core and readout is
`stillmotion.model.VideoModel`)."""

from stillmotion.heads.attentive import AttentiveProbe
from stillmotion.heads.linear import LinearProbe
from stillmotion.heads.mlp import MLPProbe

__all__ = ["AttentiveProbe", "LinearProbe", "MLPProbe"]
