"""Paper 000's tracking readouts: a box or a point turned into a query, which reads one frame's
tokens through a transformer decoder, then an MLP says where the target is now.

- Fourier features of each coordinate c in [0, 1]: [sin(c f pi) for f in freqs, cos(c f pi) for
  f in freqs], f = 2^0 .. 2^(F-1) (F = 16), coordinates one after the other.
- The decoder: `layers` pre-norm `nn.TransformerDecoderLayer`s (self-attention among the
  queries, cross-attention to the frame's tokens, a ReLU MLP of width 4D), then a LayerNorm.
- Boxes [cx, cy, w, h] (B, 4) are followed autoregressively: the box predicted at frame t - 1 is
  the query at frame t (detached, as the reference trains it); outputs are raw (no clamp).
- Points [x, y] (B, Q, 2) keep their first-frame query on every frame (each point read alone);
  the head gives [x, y] through a sigmoid, a visibility logit and an uncertainty logit.

Parameter names follow the released checkpoints (`bbox_query_encoder.*`, `readout.layers.{i}`,
`bbox_head.*`; `fourier_enc.freqs`, `point_mlp.*`, `to_query.*`, `prediction_head.*`).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Fourier(nn.Module):
    """(..., C) coordinates -> (..., C * 2 * F) features."""

    def __init__(self, frequencies: int = 16):
        super().__init__()
        self.register_buffer("freqs", 2.0 ** torch.arange(frequencies, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angle = (x[..., None] * self.freqs) * math.pi  # x * f first, then * pi: the reference's rounding
        return torch.cat([angle.sin(), angle.cos()], -1).flatten(-2)


class Decoder(nn.Module):
    """queries (B', Q, D) read tokens (B', N, D) -> (B', Q, D)."""

    def __init__(self, dim: int, heads: int, layers: int = 1):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(layers))
        self.output_norm = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            queries = layer(queries, tokens)
        return self.output_norm(queries)


def _mlp(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, hidden), nn.GELU(), nn.Linear(hidden, c_out))


class BoxQuery(nn.Module):
    """A box (B, 4) -> a query (B, 1, D)."""

    def __init__(self, dim: int, hidden: int, frequencies: int = 16):
        super().__init__()
        self.fourier_enc = Fourier(frequencies)
        self.bbox_encoder = _mlp(4 * 2 * frequencies, hidden, hidden)
        self.to_query = nn.Linear(hidden, dim)

    def forward(self, box: torch.Tensor) -> torch.Tensor:
        return self.to_query(self.bbox_encoder(self.fourier_enc(box)))[:, None]


class BoxDecoderReadout(nn.Module):
    """Boxes [cx, cy, w, h] in [0, 1]: `track(y (B, T, N, D), first (B, 4)) -> (B, T, 4)`."""

    def __init__(self, dim: int, heads: int = 4, layers: int = 1, hidden: int = 512, frequencies: int = 16):
        super().__init__()
        self.bbox_query_encoder = BoxQuery(dim, hidden, frequencies)
        self.readout = Decoder(dim, heads, layers)
        self.bbox_head = _mlp(dim, dim, 4)

    def forward(self, tokens: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """One frame: tokens (B, N, D), the last box (B, 4) -> this frame's box (B, 4)."""
        return self.bbox_head(self.readout(self.bbox_query_encoder(box), tokens))[:, 0]

    def track(self, y: torch.Tensor, first: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Frame by frame from `first`; with `teacher` (B, T, 4), frame t's query is teacher[:, t]
        instead of the last prediction."""
        box, out = first, []
        for t in range(y.shape[1]):
            box = self(y[:, t], box if teacher is None else teacher[:, t])
            out.append(box)
            box = box.detach()
        return torch.stack(out, 1)


class PointDecoderReadout(nn.Module):
    """Points [x, y] in [0, 1]: `track(y (B, T, N, D), points (B, Q, 2), frame (B, Q))` ->
    positions (B, Q, T, 2), visibility and uncertainty logits (B, Q, T). At a point's query
    frame its own position is returned, visible (10) and certain (-10)."""

    def __init__(self, dim: int, heads: int = 8, layers: int = 1, hidden: int = 512, frequencies: int = 16):
        super().__init__()
        self.fourier_enc = Fourier(frequencies)
        self.point_mlp = _mlp(2 * 2 * frequencies, hidden, hidden)
        self.to_query = nn.Linear(hidden, dim)
        self.readout = Decoder(dim, heads, layers)
        self.prediction_head = _mlp(dim, dim // 2, 4)  # the reference's: D -> D/2 -> 4, whatever `hidden`

    def track(self, y: torch.Tensor, points: torch.Tensor, frame: torch.Tensor):
        b, q = points.shape[:2]
        query = self.to_query(self.point_mlp(self.fourier_enc(points))).reshape(b * q, 1, -1)
        outs = []
        for t in range(y.shape[1]):
            tokens = y[:, t].repeat_interleave(q, dim=0)  # each point reads the frame alone: (B * Q, N, D)
            outs.append(self.prediction_head(self.readout(query, tokens))[:, 0].view(b, q, 4))
        out = torch.stack(outs, 2)  # (B, Q, T, 4)
        xy, visible, uncertain = out[..., :2].sigmoid(), out[..., 2], out[..., 3]
        at_query = frame[..., None] == torch.arange(y.shape[1], device=y.device)  # (B, Q, T)
        xy = torch.where(at_query[..., None], points[:, :, None], xy)
        visible = torch.where(at_query, torch.full_like(visible, 10.0), visible)
        uncertain = torch.where(at_query, torch.full_like(uncertain, -10.0), uncertain)
        return xy, visible, uncertain
