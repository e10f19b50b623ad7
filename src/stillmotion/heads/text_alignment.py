"""The video side of a video-text model: core tokens -> a point in the text encoder's space."""

from __future__ import annotations

import math

import torch
from torch import nn

from stillmotion.heads.attentive import AttentiveProbe

#: CLIP's starting temperature (logits = cosine / 0.07) and its cap (a scale of at most 100)
INITIAL_TEMPERATURE, MAX_SCALE = 0.07, 100.0


class TextAlignment(nn.Module):
    """Attentive pooling of the core's tokens, projected to the text embedding width `outputs`,
    made unit length and multiplied by a learned scale (1 / temperature, at most 100).

    x (B, N, D') (one frame, the streaming protocol) or (B, T, N, D') (clip mode) -> (B, E).
    Cosine similarities with unit text embeddings come out already divided by the temperature,
    so a contrastive loss reads them as logits and rankings are unchanged."""

    def __init__(self, width: int, outputs: int, heads: int = 4, queries: int = 1, max_frames: int = 16,
                 probe_width: int | None = None, temperature: float = INITIAL_TEMPERATURE):
        super().__init__()
        self.pool = AttentiveProbe(width, outputs, num_queries=queries, num_heads=heads, max_frames=max_frames,
                                   width=probe_width)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scale = self.log_scale.exp().clamp(max=MAX_SCALE)
        return torch.nn.functional.normalize(self.pool(x, mask), dim=-1) * scale
