"""Camera pose readout (paper 000, NuScenes): a frame's tokens averaged, then LayerNorm ->
Linear -> GELU -> Linear to 9 numbers, the camera's motion since the last frame: a translation
(dx, dy, dz) and a rotation as its 6-D form (two columns of the rotation matrix)."""

from __future__ import annotations

import torch
from torch import nn


class PoseHead(nn.Module):
    """x (B, N, D), one frame's tokens -> (B, 9)."""

    def __init__(self, dim: int, hidden: int = 512):
        super().__init__()
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.mean(1))
