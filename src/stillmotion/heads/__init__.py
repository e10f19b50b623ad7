"""Readouts from temporal-core tokens to outputs."""

from stillmotion.heads.attentive import AttentiveProbe

__all__ = ["AttentiveProbe"]
