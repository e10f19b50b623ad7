"""A temporal core with a streaming readout: per-frame class scores from (B, T, N, D) tokens."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stillmotion.heads.attentive import AttentiveProbe
from stillmotion.temporal import build


class StreamingClassifier(nn.Module):
    """Core + attentive probe on each frame's N output tokens (the streaming protocol).

    forward: x (B, T, N, D), mask (B, T) -> logits (B, T, C), one prediction per frame; the
    clip's answer is the prediction at its last real frame (`last`).
    """

    def __init__(self, dim: int, num_classes: int, core: str = "gru", core_kw: dict | None = None, num_heads: int = 4):
        super().__init__()
        self.core = build(core, dim, **(core_kw or {}))
        self.head = AttentiveProbe(self.core.out_dim, num_classes, num_heads=num_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.core(x, mask)
        b = y.shape[0]
        return rearrange(self.head(rearrange(y, "b t n d -> (b t) n d")), "(b t) c -> b t c", b=b)

    @staticmethod
    def last(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C) per-frame logits -> (B, C) at each clip's last real frame."""
        if mask is None:
            return logits[:, -1]
        idx = mask.long().sum(1).clamp(min=1) - 1
        return logits[torch.arange(len(logits)), idx]

    def stream(self, frames_tokens: torch.Tensor) -> torch.Tensor:
        """Frame by frame through `step`: x (B, T, N, D) -> logits (B, T, C)."""
        b, t, n, _ = frames_tokens.shape
        state = self.core.init_state(b, n, frames_tokens.device)
        out = []
        for i in range(t):
            y, state = self.core.step(frames_tokens[:, i], state)
            out.append(self.head(y))
        return torch.stack(out, 1)
