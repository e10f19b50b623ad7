"""Frozen image encoders behind one interface: `load(name, **kw) -> FrozenEncoder`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from stillmotion.encoders.base import FrozenEncoder
from stillmotion.encoders.efficientnet_lite import EfficientNetLite0
from stillmotion.errors import UsageError

#: name -> builder(**kw). A new encoder is one module plus one line here.
REGISTRY: dict[str, Callable[..., FrozenEncoder]] = {
    "efficientnet-lite0": EfficientNetLite0,
    **{f"efficientnet-lite0/{layer}": partial(EfficientNetLite0, layer=layer)
       for layer in ("stride8", "stride32", "head")},
}

DEFAULT_ENCODER = "efficientnet-lite0"


def load(name: str = DEFAULT_ENCODER, device: str | None = None, resize: str = "antialias", **kw) -> FrozenEncoder:
    """A frozen encoder (eval mode, no gradients) on `device` if given.

    `name` is a built-in (`efficientnet-lite0`), a short name (`dinov2-b`, `dinov3-s`,
    `siglip2-b`, `clip-b16`, ... see `SHORT_NAMES`), any Hugging Face hub id, a local model
    folder, or `rvm-b` / `rvm-l` once converted (`encoders.rvm`). `size` sets the input size
    (position embeddings interpolate). Transformers models also take `tokens="all"` (class token
    and registers kept) and `layers=K` (K blocks' outputs; see `encoders.hf`). `resize`: how
    frames become its input, `antialias` or `reference` (`video.transforms.RESIZES`).
    """
    from stillmotion.video.transforms import RESIZES

    if resize not in RESIZES:
        raise UsageError(f"resize must be one of {', '.join(RESIZES)}, got {resize!r}")
    from stillmotion.encoders import rvm
    from stillmotion.encoders.hf import SHORT_NAMES, HFEncoder

    if name in rvm.NAMES:
        encoder = HFEncoder.from_pretrained(str(rvm.folder(name)), name=name, **kw)
    elif name in REGISTRY:
        asked = [k for k in ("tokens", "layers") if kw.get(k) not in (None, "patches")]
        if asked:
            raise UsageError(f"encoder {name!r} gives one layer of patch tokens; {', '.join(asked)} need a "
                             "transformers ViT (dinov2-*, dinov3-*, clip-*, siglip*, a hub id or a model folder)")
        kw = {k: v for k, v in kw.items() if k not in ("tokens", "layers")}
        encoder = REGISTRY[name](**kw)
    elif name in SHORT_NAMES or "/" in name or Path(name).is_dir():
        encoder = HFEncoder.from_pretrained(name, **kw)
    else:
        raise UsageError(f"unknown encoder {name!r}; known names: {', '.join(known_names())}; or give a Hugging Face "
                         "hub id (org/name) or a local model folder")
    encoder.resize = resize
    if device is not None:
        encoder = encoder.to(device)
    return encoder


def encoder_options(size: int | None, tokens: str = "patches", layers: int | None = None,
                    resize: str = "antialias") -> dict:
    """`load` keywords for an input size, a token choice, K layers (1: the last only) and a
    resize, leaving out what is the default, so the default encoders take them all."""
    return {**({"size": size} if size else {}), **({"tokens": tokens} if tokens != "patches" else {}),
            **({"layers": layers} if layers and layers > 1 else {}),
            **({"resize": resize} if resize != "antialias" else {})}


def known_names() -> list[str]:
    """Built-in and short encoder names."""
    from stillmotion.encoders.hf import SHORT_NAMES
    from stillmotion.encoders.rvm import NAMES

    return sorted(REGISTRY) + sorted(SHORT_NAMES) + sorted(NAMES)


__all__ = ["DEFAULT_ENCODER", "FrozenEncoder", "REGISTRY", "encoder_options", "known_names", "load"]
