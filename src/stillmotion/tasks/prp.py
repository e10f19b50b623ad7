"""Playback-rate perception (AdViSe): which frame stride r in `task.rates` made the clip?

A clip takes `frames` frames at stride r * (1 + u), one u per clip, uniform in [-jitter,
jitter], the positions rounded (`video.sampling.playback_rate`, AdViSe's definition), so a rate
cannot be read off an exact spacing. No labels needed. Videos too
short for the largest stride are left out. Evaluation: for every rate, `eval_clips` evenly
placed clips at the exact stride; accuracy against chance 1 / len(rates)."""

from __future__ import annotations

from stillmotion.errors import UsageError
from stillmotion.tasks.base import Clip, Video
from stillmotion.tasks.classification import ClassTask
from stillmotion.tasks.config import TaskConfig
from stillmotion.video.sampling import playback_rate, spaced_starts


class PlaybackRate(ClassTask):
    name = "prp"

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str] | None = None, samples: list | None = None):
        super().__init__(cfg, frames)
        if not cfg.rates or min(cfg.rates) < 1:
            raise UsageError(f"task.rates must be positive strides, got {cfg.rates}")
        self.rates = list(cfg.rates)
        self.classes = [f"x{r}" for r in self.rates]

    def span(self, rate: float) -> int:
        return round(rate * (1 + self.cfg.jitter) * (self.frames - 1)) + 1

    def usable(self, video: Video) -> bool:
        return video.num_frames >= self.span(max(self.rates))

    def train_clips(self, video, count, rng):
        clips = []
        for _ in range(count):  # a usable video fits every rate, so every rate is drawn
            rows, k = playback_rate(video.num_frames, self.frames, rng, self.rates, self.cfg.jitter, policy="reject")
            clips.append(Clip(video.id, tuple(int(r) for r in rows), k))
        return clips

    def eval_clips(self, video):
        clips = []
        for k, rate in enumerate(self.rates):
            span = rate * (self.frames - 1) + 1
            clips += [Clip(video.id, tuple(range(s, s + span, rate)), k)
                      for s in spaced_starts(video.num_frames, span, self.cfg.eval_clips)]
        return clips
