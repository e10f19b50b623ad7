"""The linear probe: the mean of the tokens (one frame's, or a clip's real frames'), then a Linear."""

from __future__ import annotations

import torch
from torch import nn


def pool_tokens(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, N, D) -> (B, D), the tokens' mean; x (B, T, N, D) with mask (B, T) -> (B, D), the
    mean over the tokens of the real frames."""
    if x.ndim == 3:
        return x.mean(1)
    per_frame = x.mean(2)  # (B, T, D)
    if mask is None:
        return per_frame.mean(1)
    weights = mask.to(per_frame.dtype)[..., None]
    return (per_frame * weights).sum(1) / weights.sum(1).clamp(min=1)


class LinearProbe(nn.Module):
    """x (B, N, D) -> (B, C); or x (B, T, N, D) with mask (B, T) -> (B, C) over real frames."""

    def __init__(self, dim: int, num_outputs: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, num_outputs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.norm(pool_tokens(x, mask)))
