"""Held-out videos: split one source into training and validation by video, and find videos
that two lists share.

A "video" is a file: samples cut from the same file (a manifest's `start` / `end`) always land
on the same side. The split depends only on the seed and the files' names (not on their folder or
the order they were listed in), so it is the same on every machine and every rank.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from stillmotion.data.manifest import Sample
from stillmotion.errors import UsageError


def _key(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}\x00{name}".encode()).hexdigest()


def split_by_video(samples: list[Sample], fraction: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """(train, val): round(fraction * videos) videos (at least one, and at least one left to
    train on) go to validation, chosen by a hash of (seed, file name); the samples keep their
    order within each side."""
    if not 0 < fraction < 1:
        raise UsageError(f"data.val_fraction: must be between 0 and 1 (exclusive), got {fraction}")
    videos = sorted({Path(s.path).name for s in samples}, key=lambda name: _key(seed, name))
    if len(videos) < 2:
        raise UsageError(f"data.val_fraction: {len(videos)} video(s) cannot be split into training and validation; "
                         "give data.val=... or more videos")
    count = min(max(1, round(fraction * len(videos))), len(videos) - 1)
    held = set(videos[:count])
    return [s for s in samples if Path(s.path).name not in held], [s for s in samples if Path(s.path).name in held]


def shared_videos(train: list[Sample], val: list[Sample]) -> list[str]:
    """The validation videos (files, resolved) that are also training videos, sorted."""
    seen = {Path(s.path).resolve() for s in train}
    return sorted({str(Path(s.path).resolve()) for s in val} & {str(p) for p in seen})
