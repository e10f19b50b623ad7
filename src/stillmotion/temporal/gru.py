"""Token-wise GRU: every spatial token position is its own sequence over time, weights shared."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stillmotion.temporal.base import TemporalCore


class TokenGRU(TemporalCore):
    """LayerNorm, then a GRU over time per token: (B, T, N, D) -> (B, T, N, hidden)."""

    def __init__(self, dim: int, hidden: int = 128, layers: int = 1):
        super().__init__()
        self.out_dim = hidden
        self.norm = nn.LayerNorm(dim)
        self.gru = nn.GRU(dim, hidden, num_layers=layers, batch_first=True)

    def forward(self, x, mask=None):
        # Padding sits at the end of a clip, so a causal GRU's outputs on real frames ignore it.
        b, t, n, _ = x.shape
        y, _ = self.gru(rearrange(self.norm(x), "b t n d -> (b n) t d"))
        return rearrange(y, "(b n) t h -> b t n h", b=b, n=n)

    def init_state(self, batch, tokens, device="cpu"):
        return torch.zeros(self.gru.num_layers, batch * tokens, self.out_dim, device=device)

    def step(self, x_t, state):
        b, n, _ = x_t.shape
        y, state = self.gru(rearrange(self.norm(x_t), "b n d -> (b n) 1 d"), state)
        return rearrange(y, "(b n) 1 h -> b n h", b=b, n=n), state
