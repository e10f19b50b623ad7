"""The RVM core: a GRU whose candidate state comes from a cross-attention transformer.

State s (B, N, D), zeros at the start. Per frame x_t (B, N, D):
    u = sigmoid(Wu x + Vu s),  r = sigmoid(Wr x + Vr s)            (no biases)
    h = Transformer(queries = x, keys/values = r * LN(s))
    s = (1 - u) * s + u * h,   output LN(s)
The transformer has L pre-norm blocks: cross-attention from the normalised queries to the
keys/values as they are, an MLP (GELU), then self-attention among the queries, each with a
residual; a LayerNorm at the end. LayerNorm eps is 1e-6 inside (state, blocks, the
transformer's end) and 1e-5 on the output. Recurrent by nature, so the clip forward runs the
step frame by frame.

Parameter names follow the released checkpoints of paper 000 (`input_update`, `state_reset`,
`transformer.layers.{i}.ca_attn`, ...), so their core's weights load as they are; the tests
check outputs against the reference code's on random weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stillmotion.temporal.base import TemporalCore

EPS = 1e-6


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class CrossBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.ca_norm, self.mlp_norm, self.sa_norm = (nn.LayerNorm(dim, eps=EPS) for _ in range(3))
        self.ca_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))
        self.sa_attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, q, kv):
        q = q + self.ca_attn(self.ca_norm(q), kv, kv, need_weights=False)[0]
        q = q + self.mlp(self.mlp_norm(q))
        h = self.sa_norm(q)
        return q + self.sa_attn(h, h, h, need_weights=False)[0]


class CrossTransformer(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.layers = nn.ModuleList(CrossBlock(dim, heads, mlp_ratio) for _ in range(layers))
        self.output_norm = nn.LayerNorm(dim, eps=EPS)

    def forward(self, q, kv):
        for layer in self.layers:
            q = layer(q, kv)
        return self.output_norm(q)


class RVMCore(TemporalCore):
    """(B, T, N, D) -> (B, T, N, D)."""

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.out_dim = dim
        self.input_update, self.state_update, self.input_reset, self.state_reset = (
            nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.state_layer_norm = nn.LayerNorm(dim, eps=EPS)
        self.transformer = CrossTransformer(dim, layers, heads, mlp_ratio)
        self.output_norm = nn.LayerNorm(dim)

    def forward(self, x, mask=None):
        state = self.init_state(x.shape[0], x.shape[2], x.device)
        ys = []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], state)
            ys.append(y)
        return torch.stack(ys, dim=1)

    def init_state(self, batch, tokens, device="cpu"):
        return torch.zeros(batch, tokens, self.out_dim, device=device)

    def step(self, x_t, s):
        u = torch.sigmoid(self.input_update(x_t) + self.state_update(s))
        r = torch.sigmoid(self.input_reset(x_t) + self.state_reset(s))
        h = self.transformer(x_t, r * self.state_layer_norm(s))
        s = (1 - u) * s + u * h
        return self.output_norm(s), s
