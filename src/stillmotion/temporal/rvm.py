"""The RVM core: a GRU whose candidate state comes from a cross-attention transformer.

State s (B, N, D), zeros at the start. Per frame x_t (B, N, D):
    u = sigmoid(Wu x + Vu s),  r = sigmoid(Wr x + Vr s)            (no biases)
    h = Transformer(queries = x, keys/values = r * LN(s))
    s = (1 - u) * s + u * h,   output LN(s)
The transformer has L pre-norm blocks (eps 1e-6): cross-attention to the keys/values, an MLP,
then self-attention among the queries; a LayerNorm at the end. Recurrent by nature, so the
clip forward runs the step frame by frame.
"""

from __future__ import annotations

import torch
from torch import nn

from stillmotion.temporal.base import TemporalCore
from stillmotion.temporal.layers import MLP

EPS = 1e-6


class CrossBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_mlp, self.norm_self = (nn.LayerNorm(dim, eps=EPS) for _ in range(4))
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = MLP(dim, mlp_ratio)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, q, kv):
        kv = self.norm_kv(kv)
        q = q + self.cross(self.norm_q(q), kv, kv, need_weights=False)[0]
        q = q + self.mlp(self.norm_mlp(q))
        h = self.norm_self(q)
        return q + self.self_attn(h, h, h, need_weights=False)[0]


class RVMCore(TemporalCore):
    """(B, T, N, D) -> (B, T, N, D)."""

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.out_dim = dim
        self.wu, self.vu, self.wr, self.vr = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.state_norm = nn.LayerNorm(dim, eps=EPS)
        self.blocks = nn.ModuleList(CrossBlock(dim, heads, mlp_ratio) for _ in range(layers))
        self.final_block_norm = nn.LayerNorm(dim, eps=EPS)
        self.out_norm = nn.LayerNorm(dim, eps=EPS)

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
        u = torch.sigmoid(self.wu(x_t) + self.vu(s))
        r = torch.sigmoid(self.wr(x_t) + self.vr(s))
        kv, h = r * self.state_norm(s), x_t
        for block in self.blocks:
            h = block(h, kv)
        s = (1 - u) * s + u * self.final_block_norm(h)
        return self.out_norm(s), s
