"""Temporal cores behind one streaming interface: `build(name, dim, **kw) -> TemporalCore`."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from stillmotion.errors import UsageError
from stillmotion.temporal.attention import CausalAttention
from stillmotion.temporal.base import TemporalCore
from stillmotion.temporal.baselines import Identity, MeanOverTime
from stillmotion.temporal.gru import TokenGRU
from stillmotion.temporal.inputs import INPUTS, TokenInputs, width
from stillmotion.temporal.mamba import TokenMamba
from stillmotion.temporal.mix import GatedMambaMix, MambaMix
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

#: the controls that must stay blind to frame order: fed the tokens whatever `input` says
ORDER_BLIND = ("identity", "mean")


def build(name: str, dim: int, size: str = "small", input: str = "tokens", norm: bool = False, **kw) -> TemporalCore:
    """Build a temporal core by name for tokens of width `dim`, at a named size (see
    `temporal.sizes`); keywords override the size's settings. `input` ("tokens", "diff" or
    "both") and `norm` choose what the core is fed (see `temporal.inputs`)."""
    if name not in REGISTRY:
        raise UsageError(f"unknown temporal core {name!r}; known cores: {', '.join(sorted(REGISTRY))}")
    if input not in INPUTS:
        raise UsageError(f"temporal input {input!r}: choose one of {', '.join(INPUTS)}")
    takes = [p for p in inspect.signature(REGISTRY[name]).parameters if p != "dim"]
    unknown = sorted(set(kw) - set(takes))
    if unknown and "kw" not in takes:
        raise UsageError(f"temporal core {name!r} has no setting {', '.join(unknown)}; "
                         f"it takes: {', '.join(takes) or 'none'}")
    if name in ORDER_BLIND:
        input = "tokens"  # a frame difference would give the order-blind controls the order they exist to lack
    core = REGISTRY[name](width(dim, input), **{**size_kwargs(name, size), **kw})
    return core if input == "tokens" and not norm else TokenInputs(core, dim, input, norm)


__all__ = ["INPUTS", "REGISTRY", "SIZES", "TemporalCore", "build"]
