"""Frozen image encoders behind one interface: `load(name, **kw) -> FrozenEncoder`."""

from __future__ import annotations

from typing import Callable

from stillmotion.encoders.base import FrozenEncoder
from stillmotion.encoders.efficientnet_lite import EfficientNetLite0

#: name -> builder(**kw). A new encoder is one module plus one line here.
REGISTRY: dict[str, Callable[..., FrozenEncoder]] = {
    "efficientnet-lite0": EfficientNetLite0,
}

DEFAULT_ENCODER = "efficientnet-lite0"


def load(name: str = DEFAULT_ENCODER, device: str | None = None, **kw) -> FrozenEncoder:
    """Build a frozen encoder by registry name (eval mode, no gradients), on `device` if given."""
    if name not in REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; known encoders: {', '.join(sorted(REGISTRY))}")
    encoder = REGISTRY[name](**kw)
    if device is not None:
        encoder = encoder.to(device)
    return encoder


__all__ = ["DEFAULT_ENCODER", "FrozenEncoder", "REGISTRY", "load"]
