"""Building blocks shared by the cores: stochastic depth, the MLP, the per-frame spatial
transformer block (attention among a frame's N tokens), and the per-token stack of sequence
blocks that `mamba` and `causal-attention` are made of."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stillmotion.temporal.base import TemporalCore


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


class TokenStack(TemporalCore):
    """Every token position its own sequence over time (weights shared by the B*N sequences),
    through `blocks`, then a LayerNorm: (B, T, N, D) -> (B, T, N, D). Each block maps
    (B', L, D) -> (B', L, D) and streams with `init_state(sequences, device)` and
    `step(y_t (B', D), state) -> (y_t, state)`."""

    def __init__(self, dim: int, blocks: list[nn.Module]):
        super().__init__()
        self.out_dim = dim
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, mask=None):
        b = x.shape[0]
        y = rearrange(x, "b t n d -> (b n) t d")
        for block in self.blocks:
            y = block(y)
        return rearrange(self.norm(y), "(b n) t d -> b t n d", b=b)

    def init_state(self, batch, tokens, device="cpu"):
        return [block.init_state(batch * tokens, device) for block in self.blocks]

    def step(self, x_t, state):
        b = x_t.shape[0]
        y, new = rearrange(x_t, "b n d -> (b n) d"), []
        for block, s in zip(self.blocks, state):
            y, s = block.step(y, s)
            new.append(s)
        return rearrange(self.norm(y), "(b n) d -> b n d", b=b), new
