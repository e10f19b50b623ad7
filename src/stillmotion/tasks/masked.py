"""Masked-token prediction on cached tokens (a pretext in the spirit of RVM's masked frames).

A share `mask_ratio` of a clip's frames (never the first) has its tokens replaced by a learned
mask token before the temporal core; a per-token linear readout predicts the hidden frames'
tokens (each token normalized over its width, as the target). With a causal core that is
predicting a frame from the frames before it. Loss: mean squared error over hidden frames.
Metrics: that error, the cosine similarity, and the error of copying the last visible frame."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stillmotion.errors import UsageError
from stillmotion.seeding import seeded
from stillmotion.tasks.base import Clip, Task, Video
from stillmotion.tasks.config import TaskConfig
from stillmotion.video.sampling import consecutive, spaced_starts


def hidden_frames(length: int, ratio: float, rng: np.random.Generator) -> tuple[int, ...]:
    """Which of a clip's frames to hide: round(ratio * (length - 1)) of frames 1..length-1."""
    count = min(max(1, round(ratio * (length - 1))), length - 1)
    return tuple(sorted(int(i) for i in 1 + rng.choice(length - 1, size=count, replace=False)))


class MaskedTokens(Task):
    name = "masked_tokens"
    kind = "tokens"
    main_metric = "mse"
    higher_is_better = False

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str] | None = None, samples: list | None = None):
        super().__init__(cfg, frames)
        if not 0 < cfg.mask_ratio < 1:
            raise UsageError(f"task.mask_ratio must lie between 0 and 1, got {cfg.mask_ratio}")

    @property
    def num_outputs(self) -> int:
        return 0

    def usable(self, video: Video) -> bool:
        return video.num_frames >= 2

    def train_clips(self, video, count, rng):
        room = max(video.num_frames - self.frames, 0)
        clips = []
        for _ in range(count):
            rows = consecutive(int(rng.integers(room + 1)), self.frames, video.num_frames)
            clips.append(Clip(video.id, rows, hidden_frames(len(rows), self.cfg.mask_ratio, rng)))
        return clips

    def eval_clips(self, video):
        rng = seeded(video.id)
        return [Clip(video.id, rows, hidden_frames(len(rows), self.cfg.mask_ratio, rng))
                for rows in (consecutive(s, self.frames, video.num_frames)
                             for s in spaced_starts(video.num_frames, self.frames, self.cfg.eval_clips))]

    @staticmethod
    def target(tokens: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(tokens.float(), tokens.shape[-1:])

    def inputs(self, batch):
        return {"hide": batch["hide"]}

    def loss(self, outputs, batch):
        hide = batch["hide"]  # (B, T) bool
        return F.mse_loss(outputs[hide].float(), self.target(batch["tokens"])[hide])

    def score(self, outputs, batch):
        """Per clip: [squared error, cosine, copy-last squared error, token count], summed over
        its hidden tokens."""
        hide = batch["hide"]
        target = self.target(batch["tokens"])
        last_seen = _last_visible(target, hide)
        w = hide[:, :, None].float()  # (B, T, 1): sums over hidden frames' tokens only
        cos = F.cosine_similarity(outputs.float(), target, dim=-1)
        sums = torch.stack([((outputs.float() - target).pow(2).mean(-1) * w).sum((1, 2)), (cos * w).sum((1, 2)),
                            ((last_seen - target).pow(2).mean(-1) * w).sum((1, 2)),
                            w.sum((1, 2)) * target.shape[2]], 1)
        return [row.tolist() for row in sums.cpu()]

    def metrics(self, scores, clips):
        se, cos, copy_se, count = (sum(col) for col in zip(*scores)) if scores else (0.0,) * 4
        count = max(count, 1.0)
        return {"mse": se / count, "cosine": cos / count, "copy_last_mse": copy_se / count}


def _last_visible(target: torch.Tensor, hide: torch.Tensor) -> torch.Tensor:
    """For every frame, the tokens of the latest frame at or before it that is not hidden."""
    out = target.clone()
    for t in range(1, target.shape[1]):
        out[:, t] = torch.where(hide[:, t, None, None], out[:, t - 1], target[:, t])
    return out
