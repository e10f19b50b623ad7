"""Random generators named by what they are for, not by a shared stream: the same on every
rank, every run and after every resume."""

from __future__ import annotations

import hashlib

import numpy as np


def seeded(*parts) -> np.random.Generator:
    """A generator that depends only on `parts` (joined as text with NUL separators)."""
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def torch_seed(*parts) -> int:
    """A seed for torch's generators that depends only on `parts`."""
    return int(seeded(*parts).integers(2**63 - 1))
