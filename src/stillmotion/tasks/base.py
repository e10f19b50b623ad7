"""What every task provides: the clips it trains and evaluates on, their targets, a loss and
metrics. A clip is a list of rows of one video's frames (as cached, or as decoded online), so
the same clips come out whether tokens are read from the cache or computed on the fly.

Evaluation goes batch by batch: `score` turns a batch's outputs into one small result per clip
(on the CPU), and `metrics` turns all clips' results, gathered from every rank, into numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stillmotion.tasks.config import TaskConfig


@dataclass(frozen=True)
class Video:
    id: str
    num_frames: int  # rows available (cached frames, or frames decoded at the run's fps)
    label: str | None = None
    sources: tuple[int, ...] = ()  # the source frame index of each row


@dataclass(frozen=True)
class Clip:
    video: str
    rows: tuple[int, ...]  # which of the video's frames, in the order the model sees them
    target: Any  # a class index, or None where the task makes its target from the tokens


class Task:
    """Subclasses set `name`, `kind` (what the model outputs, see `model.VideoModel`:
    "classes", "tokens", "boxes", "points" or "depth") and `classes` (names of the outputs for
    "classes")."""

    name: str = ""
    kind: str = "classes"
    classes: list[str] = []
    main_metric: str = "top1"  # the validation curve drawn in curves.png, and what picks checkpoints/best
    higher_is_better: bool = True  # of main_metric

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str] | None = None, samples: list | None = None):
        self.cfg = cfg
        self.frames = frames
        self.problems: dict[str, str] = {}  # video id -> why it cannot be used (an unreadable annotation file...)

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

    def frame_targets(self, clip: Clip, size: int, view) -> dict[str, torch.Tensor]:
        """Per-frame targets of a clip (T, ...) as seen in the encoder's `size` x `size` view
        (`view`: the `cache.views.ViewParams` of an augmented view, None for the plain one)."""
        return {}

    def inputs(self, batch: dict) -> dict:
        """Model inputs beyond the tokens and mask (the hidden frames, the query boxes...)."""
        return {}

    def train_inputs(self, batch: dict) -> dict:
        """Model inputs for a training step (default: `inputs`); a task may add what only its
        training loss reads."""
        return self.inputs(batch)

    def model_extras(self) -> dict:
        """Further `model.model_for` keywords the task's model needs (default: none)."""
        return {}

    def loss(self, outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def score(self, outputs: torch.Tensor, batch: dict) -> list:
        """One result per clip of the batch, small and on the CPU (default: its output row)."""
        return list(outputs.float().cpu())

    def metrics(self, scores: list, clips: list[Clip]) -> dict:
        """Numbers from every clip's `score`, in the order of `clips`."""
        raise NotImplementedError
