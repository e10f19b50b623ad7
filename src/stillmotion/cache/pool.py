"""AdViSe's spatial feature utilization: average-pool each frame's token grid to s x s and/or
its channels to c, before the tokens are stored (the paper pools a 14 x 14 grid to 9, 5, 3 or 1
and finds fine grids matter for temporal datasets, fewer channels always cost accuracy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from stillmotion.errors import UsageError


def pooled_shape(grid: tuple[int, int], dim: int, space: int | None,
                 channels: int | None) -> tuple[tuple[int, int], int]:
    """The grid and width after pooling; errors say what is allowed."""
    if space is not None and not 1 <= space <= min(grid):
        raise UsageError(f"--pool-space must be between 1 and {min(grid)} "
                         f"(the token grid is {grid[0]} x {grid[1]}), got {space}")
    if channels is not None and not 1 <= channels <= dim:
        raise UsageError(f"--pool-channels must be between 1 and the token width {dim}, got {channels}")
    return ((space, space) if space else tuple(grid)), (channels or dim)


def pool_tokens(tokens: torch.Tensor, grid: tuple[int, int], space: int | None = None,
                channels: int | None = None) -> torch.Tensor:
    """tokens (..., N, D) with N = h * w -> (..., s * s, c), adaptive average pooling (equal
    bins when s divides h and w, and c divides D)."""
    pooled_shape(grid, tokens.shape[-1], space, channels)
    lead = tokens.shape[:-2]
    x = tokens.reshape(-1, *tokens.shape[-2:])
    if space is not None:
        x = rearrange(x, "b (h w) d -> b d h w", h=grid[0], w=grid[1])
        x = rearrange(F.adaptive_avg_pool2d(x, space), "b d h w -> b (h w) d")
    if channels is not None:
        x = F.adaptive_avg_pool1d(x, channels)
    return x.reshape(*lead, *x.shape[-2:])
