"""The attentive probe (4DS / V-JEPA readout): learned queries cross-attend to the tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stillmotion.errors import UsageError


class AttentiveProbe(nn.Module):
    """Tokens -> outputs through learned queries and one cross-attention.

    Streaming mode: x (B, N, D), one frame's tokens. Clip mode: x (B, T, N, D), all frames, with
    a learned temporal position embedding added along time (interpolated when T differs from
    `max_frames`). Returns (B, num_outputs).

    The queries, keys and values are `width` wide (default: the token width D), as paper 000's
    readout (`num_params`: 768 on its 1024-wide tokens); with `per_query` one Linear maps each
    query to `num_outputs` and the result is (B, num_queries * num_outputs), query-major (its
    depth readout), else the queries are concatenated into one Linear.
    """

    def __init__(self, dim: int, num_outputs: int, num_queries: int = 1, num_heads: int = 4,
                 mlp_ratio: int = 4, max_frames: int = 16, width: int | None = None, per_query: bool = False):
        super().__init__()
        width = width or dim
        if width % num_heads:
            raise UsageError(f"AttentiveProbe: width {width} is not divisible by num_heads {num_heads}")
        self.num_heads, self.per_query = num_heads, per_query
        self.norm = nn.LayerNorm(dim)
        self.time_embed = nn.Parameter(torch.zeros(1, max_frames, 1, dim))
        self.queries = nn.Parameter(torch.randn(num_queries, width) * 0.02)
        self.k = nn.Linear(dim, width)
        self.v = nn.Linear(dim, width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width * mlp_ratio), nn.GELU(),
                                 nn.Linear(width * mlp_ratio, width))
        self.out = nn.Linear(width if per_query else num_queries * width, num_outputs)

    def _time_embed(self, t: int) -> torch.Tensor:
        emb = self.time_embed
        if t != emb.shape[1]:
            emb = F.interpolate(rearrange(emb, "1 t 1 d -> 1 d t"), size=t, mode="linear", align_corners=False)
            emb = rearrange(emb, "1 d t -> 1 t 1 d")
        return emb

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D) or (B, T, N, D); in clip mode `mask` (B, T) marks real frames (padding
        is not attended to)."""
        keep = None
        if x.ndim == 4:
            n = x.shape[2]
            if mask is not None:
                keep = mask.repeat_interleave(n, dim=1)[:, None, None, :]  # (B, 1, 1, T * N)
            x = rearrange(self.norm(x) + self._time_embed(x.shape[1]), "b t n d -> b (t n) d")
        else:
            x = self.norm(x)
        b = x.shape[0]
        heads = self.num_heads
        q = rearrange(self.queries, "q (h e) -> 1 h q e", h=heads).expand(b, -1, -1, -1)
        k = rearrange(self.k(x), "b n (h e) -> b h n e", h=heads)
        v = rearrange(self.v(x), "b n (h e) -> b h n e", h=heads)
        attn = rearrange(F.scaled_dot_product_attention(q, k, v, attn_mask=keep), "b h q e -> b q (h e)")
        token = self.queries + self.proj(attn)
        token = token + self.mlp(token)
        return self.out(token).flatten(1) if self.per_query else self.out(token.flatten(1))
