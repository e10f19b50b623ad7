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

from stillmotion.seeding import seeded
from stillmotion.tasks.base import Clip, Task, Video, consecutive, spaced_starts
from stillmotion.train.config import TaskConfig


def hidden_frames(length: int, ratio: float, rng: np.random.Generator) -> tuple[int, ...]:
    """Which of a clip's frames to hide: round(ratio * (length - 1)) of frames 1..length-1."""
    count = min(max(1, round(ratio * (length - 1))), length - 1)
    return tuple(sorted(int(i) for i in 1 + rng.choice(length - 1, size=count, replace=False)))


class MaskedTokens(Task):
    name = "masked_tokens"
    kind = "tokens"
    main_metric = "mse"

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str] | None = None):
        super().__init__(cfg, frames)
        if not 0 < cfg.mask_ratio < 1:
            raise ValueError(f"task.mask_ratio must lie between 0 and 1, got {cfg.mask_ratio}")

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

    def loss(self, outputs, batch):
        hide = batch["hide"]  # (B, T) bool
        return F.mse_loss(outputs[hide].float(), self.target(batch["tokens"])[hide])

    def metrics(self, outputs, clips):
        raise TypeError("masked_tokens is scored from the tokens: use `token_sums` and `from_sums`")

    def token_sums(self, pred: torch.Tensor, tokens: torch.Tensor, hide: torch.Tensor) -> list[float]:
        """pred, tokens (B, T, N, D), hide (B, T) -> [squared error, cosine, copy-last squared
        error, token count] summed over hidden tokens (to be summed over batches and ranks)."""
        target = self.target(tokens)
        last_seen = _last_visible(target, hide)
        pred, target, last_seen = pred[hide].float(), target[hide], last_seen[hide]  # (M, N, D)
        return [(pred - target).pow(2).mean(-1).sum().item(),
                F.cosine_similarity(pred, target, dim=-1).sum().item(),
                (last_seen - target).pow(2).mean(-1).sum().item(), float(target.shape[0] * target.shape[1])]

    @staticmethod
    def from_sums(sums: list[float]) -> dict:
        se, cos, copy_se, count = sums
        count = max(count, 1.0)
        return {"mse": se / count, "cosine": cos / count, "copy_last_mse": copy_se / count}


def _last_visible(target: torch.Tensor, hide: torch.Tensor) -> torch.Tensor:
    """For every frame, the tokens of the latest frame at or before it that is not hidden."""
    out = target.clone()
    for t in range(1, target.shape[1]):
        out[:, t] = torch.where(hide[:, t, None, None], out[:, t - 1], target[:, t])
    return out
