"""Read a torch checkpoint's tensors without running code from it, whatever else it holds.

A Lightning `.ckpt` keeps, beside its `state_dict`, `hyper_parameters` that may hold any Python
object (an `argparse.Namespace`, a `Path`, a callback). `torch.load(weights_only=True)` refuses
the whole file for one such object. `load_plain` first asks torch which classes and functions
the file names beyond plain data (`get_unsafe_globals_in_checkpoint`), then loads it with
`weights_only=True` and each of those names standing for a `Pickled` stand-in: an inert object
that keeps the arguments it was pickled with. No code of the named classes runs (not even a
`__reduce__` that names `os.system`: the stand-in is called instead); the tensors load as usual.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


class Pickled:
    """An object of class `pickled_as` as the file held it, never built: its pickled arguments
    (`args`, `kw`) and state (`state`) are kept as data."""

    pickled_as = "?"

    def __init__(self, *args, **kw):
        self.args, self.kw, self.state = args, kw, None

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.pickled_as} (not unpickled)>"


def stand_ins(path: str | Path) -> list[tuple[type, str]]:
    """(a `Pickled` subclass, the dotted name it stands for) for each name the file needs beyond
    plain data; [] if torch cannot list them (an older torch, or not a zip checkpoint)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (AttributeError, RuntimeError, ValueError, OSError):
        return []
    return [(type(name.rsplit(".", 1)[-1], (Pickled,), {"pickled_as": name}), name) for name in names]


class Unreadable(ValueError):
    """A file whose objects cannot even stand in (e.g. a call on the result of another call)."""


def load_plain(path: str | Path):
    """`torch.load(path, weights_only=True)` with every object it would refuse as a `Pickled`."""
    extra = stand_ins(path)
    if not extra:
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        with torch.serialization.safe_globals(extra):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise Unreadable(f"it needs {', '.join(name for _, name in extra)}, which are never run here") from None


def find_pickled(value, where: str = "") -> tuple[str, str] | None:
    """(where, class name) of the first `Pickled` inside nested dicts / lists of `value`, or None."""
    if isinstance(value, Pickled):
        return where or "the file", value.pickled_as
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = find_pickled(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None
