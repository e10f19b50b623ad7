"""Building blocks shared by the cores: stochastic depth, the MLP, and the per-frame spatial
transformer block (attention among a frame's N tokens)."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's whole residual branch with probability p
    (and scale the kept ones by 1 / (1 - p)); the identity in eval."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.ndim - 1)), device=x.device) >= self.p
        return x * keep / (1 - self.p)


class MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: float = 4.0, dropout: float = 0.0):
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))


class SpatialBlock(nn.Module):
    """Per frame, over its N tokens: x + DropPath(MHSA(LN(x))), then x + DropPath(MLP(LN(x))).
    x: (B', N, D) with B' frames."""

    def __init__(self, dim: int, heads: int = 4, mlp_ratio: float = 4.0, drop_path: float = 0.1):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = MLP(dim, mlp_ratio)
        self.drop = DropPath(drop_path)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop(self.mlp(self.norm2(x)))
