"""What every task provides: the clips it trains and evaluates on, their targets, a loss and
metrics. A clip is a list of rows of one video's frames (as cached, or as decoded online), so
the same clips come out whether tokens are read from the cache or computed on the fly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stillmotion.train.config import TaskConfig


@dataclass(frozen=True)
class Video:
    id: str
    num_frames: int  # rows available (cached frames, or frames decoded at the run's fps)
    label: str | None = None


@dataclass(frozen=True)
class Clip:
    video: str
    rows: tuple[int, ...]  # which of the video's frames, in the order the model sees them
    target: Any  # a class index, or None where the task makes its target from the tokens


class Task:
    """Subclasses set `name`, `kind` ("classes": one score vector per clip; "tokens": a
    prediction per token) and `classes` (names of the outputs for "classes")."""

    name: str = ""
    kind: str = "classes"
    classes: list[str] = []
    main_metric: str = "top1"  # the validation curve drawn in curves.png

    def __init__(self, cfg: TaskConfig, frames: int):
        self.cfg = cfg
        self.frames = frames

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def usable(self, video: Video) -> bool:
        """Whether the video is long enough for this task's clips."""
        return video.num_frames >= 1

    def train_clips(self, video: Video, count: int, rng: np.random.Generator) -> list[Clip]:
        raise NotImplementedError

    def eval_clips(self, video: Video) -> list[Clip]:
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, outputs: list[torch.Tensor], clips: list[Clip]) -> dict:
        raise NotImplementedError


def spaced_starts(num_frames: int, span: int, count: int) -> list[int]:
    """`count` start rows from the first to the last at which a clip of `span` rows fits,
    evenly spaced (one: the middle; repeats when the video allows fewer distinct starts)."""
    room = max(num_frames - span, 0)
    return [room * i // (count - 1) for i in range(count)] if count > 1 else [room // 2]


def consecutive(start: int, frames: int, num_frames: int) -> tuple[int, ...]:
    """`frames` rows from `start`, stopping at the video's end (a shorter clip is padded)."""
    return tuple(range(start, min(start + frames, num_frames)))
