"""Baselines that do not model order: per-frame identity and the mean over time."""

from __future__ import annotations

import torch

from stillmotion.temporal.base import TemporalCore


class Identity(TemporalCore):
    """Each frame's tokens alone: y_t = x_t."""

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, x, mask=None):
        return x

    def init_state(self, batch, tokens, device="cpu"):
        return None

    def step(self, x_t, state):
        return x_t, state


class MeanOverTime(TemporalCore):
    """Running mean over the frames seen so far: y_t = mean(x_1..x_t) per token.

    At the last frame this is the mean over the whole clip, which is blind to frame order.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, x, mask=None):
        # x: (B, T, N, D); mask: (B, T) with True on real frames.
        m = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if mask is None else mask.to(x.dtype)
        total = torch.cumsum(x * m[:, :, None, None], dim=1)
        count = torch.cumsum(m, dim=1).clamp(min=1)[:, :, None, None]
        return total / count

    def init_state(self, batch, tokens, device="cpu"):
        return (torch.zeros(batch, tokens, self.out_dim, device=device), 0)

    def step(self, x_t, state):
        total, count = state
        total, count = total + x_t, count + 1
        return total / count, (total, count)
