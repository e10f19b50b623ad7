"""RVM's frozen ViT by name: `rvm-b`, `rvm-l` (the backbone of paper 000's `--arch rvm` models).

DeepMind releases RVM as JAX checkpoints (`.npz`) that cannot be fetched by a hub id, so the
names point at a folder that `stillmotion convert-rvm NPZ --size base|large` writes (a
transformers ViT, see `stillmotion.reference.rvm`): $STILLMOTION_HOME/encoders/rvm-{b,l}, with
STILLMOTION_HOME defaulting to ~/.cache/stillmotion. Any converted folder also works as
`--encoder FOLDER`.
"""

from __future__ import annotations

import os
from pathlib import Path

from stillmotion.errors import UsageError

#: name -> the released size it holds
NAMES = {"rvm-b": "base", "rvm-l": "large"}
#: the file each size was released as
RELEASED = {"base": "pretrain_rvm_base16_256.npz", "large": "pretrain_rvm_large16_256.npz"}


def home() -> Path:
    """Where converted encoders live."""
    return Path(os.environ.get("STILLMOTION_HOME", "~/.cache/stillmotion")).expanduser() / "encoders"


def default_folder(size: str) -> Path:
    """The folder `convert-rvm --size SIZE` writes by default."""
    return home() / next(name for name, s in NAMES.items() if s == size)


def folder(name: str) -> Path:
    """The converted folder of `rvm-b` / `rvm-l`, or an error saying how to make it."""
    path = home() / name
    if not (path / "config.json").is_file():
        size = NAMES[name]
        raise UsageError(f"encoder {name!r} is not converted yet (looked in {path}): get DeepMind's RVM checkpoint "
                         f"{RELEASED[size]} and run `stillmotion convert-rvm {RELEASED[size]} --size {size}`")
    return path
