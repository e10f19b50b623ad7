"""AdViSe's temporal modelling module (TMM): ResNet3D bottleneck blocks on the (T, h', w') token
grid, with no down-sampling in time or space.

A 1x1x1 projection takes the width D to `width`; each block is conv 1x1x1 (width -> width / 4),
conv 3x3x3 (time causal: padded with two past frames, none ahead), conv 1x1x1 (back to width),
each followed by BatchNorm (the last before the residual sum) and ReLU. Causal in time, it
streams: every block keeps a rolling buffer of the last two frames entering its 3x3x3 conv.
(B, T, N, D) -> (B, T, N, width), N = h' * w'.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stillmotion.temporal.base import TemporalCore

KT = 3  # temporal kernel


class Bottleneck3D(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        mid = max(width // 4, 1)
        self.reduce = nn.Sequential(nn.Conv3d(width, mid, 1, bias=False), nn.BatchNorm3d(mid), nn.ReLU())
        self.conv = nn.Conv3d(mid, mid, (KT, 3, 3), padding=(0, 1, 1), bias=False)
        self.after = nn.Sequential(nn.BatchNorm3d(mid), nn.ReLU(), nn.Conv3d(mid, width, 1, bias=False),
                                   nn.BatchNorm3d(width))

    def forward(self, x):
        """x (B, C, T, h, w)."""
        r = self.reduce(x)
        r = self.conv(F.pad(r, (0, 0, 0, 0, KT - 1, 0)))  # pad the past only
        return F.relu(x + self.after(r))

    def step(self, x_t, buffer):
        """x_t (B, C, 1, h, w); buffer (B, mid, KT - 1, h, w): the last frames after `reduce`."""
        r = torch.cat([buffer, self.reduce(x_t)], dim=2)
        return F.relu(x_t + self.after(self.conv(r))), r[:, :, 1:]


class TMM(TemporalCore):
    def __init__(self, dim: int, width: int = 256, depth: int = 1, grid: tuple[int, int] | None = None):
        super().__init__()
        self.out_dim, self.grid = width, grid
        self.proj = nn.Sequential(nn.Conv3d(dim, width, 1, bias=False), nn.BatchNorm3d(width), nn.ReLU())
        self.blocks = nn.ModuleList(Bottleneck3D(width) for _ in range(depth))

    def _grid(self, n: int) -> tuple[int, int]:
        if self.grid is not None:
            if self.grid[0] * self.grid[1] != n:
                raise ValueError(f"tmm: grid {self.grid} does not hold {n} tokens")
            return self.grid
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"tmm: {n} tokens are not a square grid; pass grid=(h, w)")
        return side, side

    def forward(self, x, mask=None):
        h, w = self._grid(x.shape[2])
        y = self.proj(rearrange(x, "b t (h w) d -> b d t h w", h=h, w=w))
        for block in self.blocks:
            y = block(y)
        return rearrange(y, "b d t h w -> b t (h w) d")

    def init_state(self, batch, tokens, device="cpu"):
        h, w = self._grid(tokens)
        mid = self.blocks[0].conv.in_channels if self.blocks else 0
        return [torch.zeros(batch, mid, KT - 1, h, w, device=device) for _ in self.blocks]

    def step(self, x_t, state):
        h, w = self._grid(x_t.shape[1])
        y = self.proj(rearrange(x_t, "b (h w) d -> b d 1 h w", h=h, w=w))
        new = []
        for block, buffer in zip(self.blocks, state):
            y, buffer = block.step(y, buffer)
            new.append(buffer)
        return rearrange(y, "b d 1 h w -> b (h w) d"), new
