"""Temporal cores behind one streaming interface: `build(name, dim, **kw) -> TemporalCore`."""

from __future__ import annotations

import inspect
from typing import Callable

from stillmotion.temporal.base import TemporalCore
from stillmotion.temporal.baselines import Identity, MeanOverTime
from stillmotion.temporal.gru import TokenGRU
from stillmotion.temporal.mamba import TokenMamba
from stillmotion.temporal.mix import GatedMambaMix, MambaMix
from stillmotion.temporal.attention import CausalAttention
from stillmotion.temporal.rvm import RVMCore
from stillmotion.temporal.sizes import SIZES, size_kwargs
from stillmotion.temporal.tmm import TMM

#: name -> class(dim, **kw). A new core is one module plus one line here.
REGISTRY: dict[str, Callable[..., TemporalCore]] = {
    "identity": Identity,
    "mean": MeanOverTime,
    "gru": TokenGRU,
    "mamba": TokenMamba,
    "mmix": MambaMix,
    "gmmix": GatedMambaMix,
    "rvm": RVMCore,
    "tmm": TMM,
    "causal-attention": CausalAttention,
}


def build(name: str, dim: int, size: str = "small", **kw) -> TemporalCore:
    """Build a temporal core by name for tokens of width `dim`, at a named size (see
    `temporal.sizes`); keywords override the size's settings."""
    if name not in REGISTRY:
        raise ValueError(f"unknown temporal core {name!r}; known cores: {', '.join(sorted(REGISTRY))}")
    takes = [p for p in inspect.signature(REGISTRY[name]).parameters if p != "dim"]
    unknown = sorted(set(kw) - set(takes))
    if unknown and "kw" not in takes:
        raise ValueError(f"temporal core {name!r} has no setting {', '.join(unknown)}; it takes: {', '.join(takes) or 'none'}")
    return REGISTRY[name](dim, **{**size_kwargs(name, size), **kw})


__all__ = ["REGISTRY", "SIZES", "TemporalCore", "build"]
