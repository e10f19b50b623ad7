"""The dense depth readout: every frame's core tokens -> a depth map of that frame."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class DepthHead(nn.Module):
    """Tokens (B, N, D) on an (h, w) grid -> depth (B, R, R) in metres, R = `resolution`.

    A 3 x 3 convolution over the token grid mixes neighbours; each token then predicts a p x p
    patch of log-depth (p = ceil(R / grid side)), and the patches are resized to R x R."""

    def __init__(self, dim: int, grid: tuple[int, int], resolution: int = 32, start_depth: float = 3.0):
        super().__init__()
        self.grid, self.resolution = tuple(grid), resolution
        self.patch = math.ceil(resolution / min(grid))
        self.norm = nn.LayerNorm(dim)
        self.mix = nn.Conv2d(dim, dim, 3, padding=1)
        self.out = nn.Linear(dim, self.patch**2)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, math.log(start_depth))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        x = rearrange(self.norm(tokens), "b (h w) d -> b d h w", h=h, w=w)
        x = rearrange(x + F.gelu(self.mix(x)), "b d h w -> b h w d")
        log_depth = rearrange(self.out(x), "b h w (p q) -> b 1 (h p) (w q)", p=self.patch)
        if log_depth.shape[-2:] != (self.resolution, self.resolution):
            log_depth = F.interpolate(log_depth, size=(self.resolution, self.resolution), mode="bilinear",
                                      align_corners=False)
        return log_depth[:, 0].exp()
