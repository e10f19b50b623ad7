"""AdViSe's classification head: the mean of the tokens (one frame's, or a clip's real frames'),
then Linear -> ReLU -> Linear (its released configs: hidden width 1024, no normalisation)."""

from __future__ import annotations

import torch
from torch import nn

from stillmotion.heads.linear import pool_tokens


class MLPProbe(nn.Module):
    """x (B, N, D) -> (B, C); or x (B, T, N, D) with mask (B, T) -> (B, C) over real frames."""

    def __init__(self, dim: int, num_outputs: int, hidden: int = 1024):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_outputs))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(pool_tokens(x, mask))
