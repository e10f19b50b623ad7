"""MMix and GMMix: per layer, a spatial block inside each frame, then Mamba over time per token.

- MMix: z = Spatial(z); z = MambaBlock(z) per token.
- GMMix: z = Spatial(z); h = MambaBlock(z) per token; u = sigmoid(W [z ; h]);
  z = (1 - u) * z + u * h: a learned per-channel gate between the frame and its history.
Both end with a LayerNorm. (B, T, N, D) -> (B, T, N, D).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stillmotion.temporal.base import TemporalCore
from stillmotion.temporal.layers import SpatialBlock
from stillmotion.temporal.mamba import MambaBlock


class MambaMix(TemporalCore):
    """MMix (`gated=False`) or GMMix (`gated=True`)."""

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, d_state: int = 16, expand: int = 2,
                 dropout: float = 0.1, drop_path: float = 0.1, mlp_ratio: float = 4.0, gated: bool = False):
        super().__init__()
        self.out_dim = dim
        self.spatial = nn.ModuleList(SpatialBlock(dim, heads, mlp_ratio, drop_path) for _ in range(layers))
        self.temporal = nn.ModuleList(MambaBlock(dim, d_state, expand, dropout) for _ in range(layers))
        self.gates = nn.ModuleList(nn.Linear(2 * dim, dim) for _ in range(layers)) if gated else None
        self.norm = nn.LayerNorm(dim)

    def _mix(self, i, z, h):
        if self.gates is None:
            return h
        gate = self.gates[i]  # W [z ; h] + b, as W_z z + W_h h + b without building [z ; h]
        w_z, w_h = gate.weight.split(z.shape[-1], dim=1)
        u = torch.sigmoid(torch.addmm(gate.bias, h.flatten(0, -2), w_h.T).view_as(z) + z @ w_z.T)
        # (1 - u) * z + u * h; lerp takes one dtype, and under bf16 autocast the gate comes out in
        # bf16 beside the blocks' float32 outputs
        return torch.lerp(z, h.to(z.dtype), u.to(z.dtype))

    def forward(self, x, mask=None):
        b, t, n, _ = x.shape
        z = x
        for i, (spatial, temporal) in enumerate(zip(self.spatial, self.temporal)):
            z = rearrange(spatial(rearrange(z, "b t n d -> (b t) n d")), "(b t) n d -> b t n d", b=b)
            h = rearrange(temporal(rearrange(z, "b t n d -> (b n) t d")), "(b n) t d -> b t n d", b=b)
            z = self._mix(i, z, h)
        return self.norm(z)

    def init_state(self, batch, tokens, device="cpu"):
        return [block.init_state(batch * tokens, device) for block in self.temporal]

    def step(self, x_t, state):
        b = x_t.shape[0]
        z, new = x_t, []
        for i, (spatial, temporal, s) in enumerate(zip(self.spatial, self.temporal, state)):
            z = spatial(z)
            h, s = temporal.step(rearrange(z, "b n d -> (b n) d"), s)
            z = self._mix(i, z, rearrange(h, "(b n) d -> b n d", b=b))
            new.append(s)
        return self.norm(z), new


def GatedMambaMix(dim: int, **kw) -> MambaMix:  # named like a class: a registry constructor
    return MambaMix(dim, gated=True, **kw)
