"""Playback-rate perception (AdViSe): which frame stride r in `task.rates` made the clip?

A clip takes `frames` frames with gaps of r * (1 + u) rows, u uniform in [-jitter, jitter]
(rounded, at least 1), so a rate cannot be read off exact spacing. No labels needed. Videos too
short for the largest stride are left out. Evaluation: for every rate, `eval_clips` evenly
placed clips at the exact stride; accuracy against chance 1 / len(rates)."""

from __future__ import annotations

from stillmotion.tasks.base import Clip, Video, spaced_starts
from stillmotion.tasks.classification import ClassTask
from stillmotion.train.config import TaskConfig


class PlaybackRate(ClassTask):
    name = "prp"

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str] | None = None, samples: list | None = None):
        super().__init__(cfg, frames)
        if not cfg.rates or min(cfg.rates) < 1:
            raise ValueError(f"task.rates must be positive strides, got {cfg.rates}")
        self.rates = list(cfg.rates)
        self.classes = [f"x{r}" for r in self.rates]

    def span(self, rate: float) -> int:
        return round(rate * (1 + self.cfg.jitter) * (self.frames - 1)) + 1

    def usable(self, video: Video) -> bool:
        return video.num_frames >= self.span(max(self.rates))

    def train_clips(self, video, count, rng):
        clips = []
        for _ in range(count):
            k = int(rng.integers(len(self.rates)))
            gaps = [max(1, round(self.rates[k] * (1 + rng.uniform(-self.cfg.jitter, self.cfg.jitter))))
                    for _ in range(self.frames - 1)]
            start = int(rng.integers(video.num_frames - sum(gaps)))
            rows = [start]
            for gap in gaps:
                rows.append(rows[-1] + gap)
            clips.append(Clip(video.id, tuple(rows), k))
        return clips

    def eval_clips(self, video):
        clips = []
        for k, rate in enumerate(self.rates):
            span = rate * (self.frames - 1) + 1
            clips += [Clip(video.id, tuple(range(s, s + span, rate)), k)
                      for s in spaced_starts(video.num_frames, span, self.cfg.eval_clips)]
        return clips
