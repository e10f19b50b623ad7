"""Tracking readouts: a box or a set of points carried from frame to frame.

Both read one frame's core tokens (B, N, D) at a time, as in the streaming protocol of paper
000: the box (points) predicted at frame t is the query at frame t + 1, so a run over a clip is
autoregressive and a stream needs nothing but the last prediction. Queries are embedded with
Fourier features of their coordinates and cross-attend to the frame's tokens, to which a learned
position embedding of the token grid is added. Coordinates are normalized to [0, 1] of the view.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def fourier(x: torch.Tensor, bands: int = 8) -> torch.Tensor:
    """Coordinates (..., C) -> (..., C * 2 * bands): sin and cos of 2^k * pi * x, k < bands."""
    freqs = (2.0 ** torch.arange(bands, device=x.device, dtype=x.dtype)) * math.pi
    angles = (x[..., None] * freqs).flatten(-2)
    return torch.cat([angles.sin(), angles.cos()], -1)


class FrameReader(nn.Module):
    """Queries (B, Q, D) cross-attend to one frame's tokens (B, N, D) -> (B, Q, D)."""

    def __init__(self, dim: int, tokens: int, heads: int = 4, mlp_ratio: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"tracking head: width {dim} is not divisible by {heads} heads")
        self.position = nn.Parameter(torch.randn(tokens, dim) * 0.02)
        self.norm_tokens, self.norm_query = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attend = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mlp_ratio), nn.GELU(),
                                 nn.Linear(dim * mlp_ratio, dim))

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] != self.position.shape[0]:
            raise ValueError(f"tracking head: built for {self.position.shape[0]} tokens per frame, got {tokens.shape[1]}")
        kv = self.norm_tokens(tokens) + self.position
        q = query + self.attend(self.norm_query(query), kv, kv, need_weights=False)[0]
        return q + self.mlp(q)


def to_cxcywh(box: torch.Tensor) -> torch.Tensor:
    return torch.cat([(box[..., :2] + box[..., 2:]) / 2, box[..., 2:] - box[..., :2]], -1)


def to_xyxy(box: torch.Tensor) -> torch.Tensor:
    return torch.cat([box[..., :2] - box[..., 2:] / 2, box[..., :2] + box[..., 2:] / 2], -1)


class BoxHead(nn.Module):
    """One frame's tokens (B, N, D) and the query box (B, 4) -> the box in this frame (B, 4).

    Boxes are (x0, y0, x1, y1). The head predicts a change of the query: a shift of its centre in
    units of its size, and a log-scale of its width and height."""

    def __init__(self, dim: int, tokens: int, heads: int = 4, bands: int = 8):
        super().__init__()
        self.bands = bands
        self.embed = nn.Linear(4 * 2 * bands, dim)
        self.reader = FrameReader(dim, tokens, heads)
        self.out = nn.Linear(dim, 4)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # starts by holding the box still

    def forward(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        q = to_cxcywh(query)
        change = self.out(self.reader(self.embed(fourier(q, self.bands))[:, None], tokens)[:, 0])
        size = q[:, 2:].clamp(min=1e-3)
        return to_xyxy(torch.cat([q[:, :2] + change[:, :2] * size, size * change[:, 2:].clamp(-3, 3).exp()], -1))

    def track(self, y: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """y (B, T, N, D), first (B, 4): the box given at frame 0 -> (B, T, 4), each frame's box
        predicted from the previous frame's prediction (not back-propagated through)."""
        boxes, query = [], first
        for t in range(y.shape[1]):
            query = self(y[:, t], query.detach())
            boxes.append(query)
        return torch.stack(boxes, 1)


class PointHead(nn.Module):
    """One frame's tokens (B, N, D), the points' last positions (B, P, 2) and their appearance
    (B, P, D) -> (B, P, 3): the new (x, y) and a visibility logit.

    A point's appearance is the frame-0 token features sampled (bilinearly) where it was queried."""

    def __init__(self, dim: int, grid: tuple[int, int], heads: int = 4, bands: int = 8):
        super().__init__()
        self.grid, self.bands = tuple(grid), bands
        self.embed = nn.Linear(2 * 2 * bands, dim)
        self.look = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.reader = FrameReader(dim, grid[0] * grid[1], heads)
        self.out = nn.Linear(dim, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def appearance(self, tokens: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """Token features (B, N, D) sampled at points (B, P, 2) -> (B, P, D)."""
        fmap = rearrange(tokens, "b (h w) d -> b d h w", h=self.grid[0], w=self.grid[1])
        sampled = F.grid_sample(fmap, (2 * xy - 1)[:, :, None], mode="bilinear", align_corners=False)
        return self.look(rearrange(sampled[..., 0], "b d p -> b p d"))

    def forward(self, tokens: torch.Tensor, xy: torch.Tensor, look: torch.Tensor) -> torch.Tensor:
        out = self.out(self.reader(self.embed(fourier(xy, self.bands)) + look, tokens))
        return torch.cat([xy + 0.1 * out[..., :2], out[..., 2:]], -1)

    def track(self, y: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """y (B, T, N, D), first (B, P, 2): the points' positions at frame 0 -> (B, T, P, 3)."""
        look = self.appearance(y[:, 0], first)
        out, xy = [], first
        for t in range(y.shape[1]):
            step = self(y[:, t], xy.detach(), look)
            out.append(step)
            xy = step[..., :2]
        return torch.stack(out, 1)
