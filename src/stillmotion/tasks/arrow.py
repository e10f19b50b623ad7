"""Arrow of time: is the clip played forwards or backwards? No labels needed.

A clip takes `frames` frames at a stride drawn from `task.rates` (those the video is long
enough for), then is reversed half the time. Evaluation: `eval_clips` placements per stride,
each both ways, so chance is exactly 0.5. A core blind to order (`mean`) cannot beat it."""

from __future__ import annotations

from stillmotion.tasks.base import Clip, Video
from stillmotion.tasks.classification import ClassTask
from stillmotion.tasks.config import TaskConfig
from stillmotion.video.sampling import arrow_of_time, spaced_starts


class ArrowOfTime(ClassTask):
    name = "arrow_of_time"

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str] | None = None, samples: list | None = None):
        super().__init__(cfg, frames)
        self.rates = sorted(cfg.rates)
        self.classes = ["forward", "backward"]

    def _strides(self, video: Video) -> list[int]:
        return [r for r in self.rates if r * (self.frames - 1) + 1 <= video.num_frames]

    def usable(self, video: Video) -> bool:
        return bool(self._strides(video))

    def train_clips(self, video, count, rng):
        strides, clips = self._strides(video), []
        for _ in range(count):
            stride = strides[int(rng.integers(len(strides)))]
            rows, backward = arrow_of_time(video.num_frames, self.frames, stride, rng, policy="reject")
            clips.append(Clip(video.id, tuple(int(r) for r in rows), backward))
        return clips

    def eval_clips(self, video):
        clips = []
        for stride in self._strides(video):
            span = stride * (self.frames - 1) + 1
            for s in spaced_starts(video.num_frames, span, self.cfg.eval_clips):
                rows = tuple(range(s, s + span, stride))
                clips += [Clip(video.id, rows, 0), Clip(video.id, rows[::-1], 1)]
        return clips
