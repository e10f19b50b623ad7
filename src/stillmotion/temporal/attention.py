"""Causal attention over time, per token: each token position attends to its own last `window`
frames (itself included), with a learned bias per head and frame offset. A familiar baseline;
streaming keeps a rolling cache of each layer's last window - 1 keys and values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stillmotion.temporal.layers import MLP, TokenStack


class WindowAttention(nn.Module):
    """Pre-norm residual attention over the last `window` steps, then an MLP. x: (B', L, D)."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.offset_bias = nn.Parameter(torch.zeros(heads, window))
        self.mlp = MLP(dim)

    def _split(self, x):
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        return (rearrange(a, "b l (h e) -> b h l e", h=self.heads) for a in (q, k, v))

    def _attend(self, q, k, v, offsets):
        """offsets (Lq, Lk): how many steps key j lies before query i; allowed in 0..window-1."""
        allowed = (offsets >= 0) & (offsets < self.window)
        bias = self.offset_bias[:, offsets.clamp(0, self.window - 1)]  # (H, Lq, Lk)
        bias = bias.masked_fill(~allowed, float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])
        return self.proj(rearrange(out, "b h l e -> b l (h e)"))

    def forward(self, x):
        q, k, v = self._split(x)
        pos = torch.arange(x.shape[1], device=x.device)
        x = x + self._attend(q, k, v, pos[:, None] - pos[None, :])
        return x + self.mlp(self.norm2(x))

    def init_state(self, sequences, device="cpu"):
        """An empty cache of keys and values, each (B', H, 0, E)."""
        empty = torch.zeros(sequences, self.heads, 0, self.proj.in_features // self.heads, device=device)
        return empty, empty

    def step(self, x_t, cache):
        """x_t (B', D); cache (k, v) each (B', H, <= window - 1, E)."""
        q, k, v = self._split(x_t[:, None])
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        offsets = torch.arange(k.shape[2] - 1, -1, -1, device=x_t.device)[None]
        y = x_t + self._attend(q, k, v, offsets)[:, 0]
        first = max(k.shape[2] - (self.window - 1), 0)  # keep the last window - 1 (all, while fewer)
        return y + self.mlp(self.norm2(y)), (k[:, :, first:], v[:, :, first:])


class CausalAttention(TokenStack):
    """(B, T, N, D) -> (B, T, N, D): `layers` windowed causal attention blocks per token, then LN."""

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, window: int = 16):
        super().__init__(dim, [WindowAttention(dim, heads, window) for _ in range(layers)])
