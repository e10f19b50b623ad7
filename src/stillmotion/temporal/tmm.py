"""AdViSe's temporal modelling module (TMM): one stage of ResNet3D bottleneck blocks on the
(T, h', w') token grid, with no down-sampling in time or space.

Each block maps width C_in to `width`: conv (k_t, 1, 1) C_in -> `inner` (the block's only
temporal kernel, `kernel` frames), conv (1, 3, 3) `inner` -> `inner`, conv 1x1x1 `inner` ->
`width`, each followed by BatchNorm (ReLU after the first two); the input is added back
(through a 1x1x1 conv + BatchNorm where C_in != `width`, i.e. in the first block) and a ReLU
follows. This is the layout of AdViSe's released code (a PySlowFast ResStage: inner 256, output
512 on CLIP ViT-B/16's 768-wide tokens).

Where we differ on purpose: the temporal kernel is causal by default (padded with `kernel - 1`
past frames, none ahead), so the module streams with a buffer of the last `kernel - 1` inputs
per block; `causal=False` centres it as AdViSe does (a clip model: it cannot stream). AdViSe's
paper describes 3-D kernels (k_t = 3, our default); its released config uses k_t = 1 in every
block (`kernel=1`, which also streams with no buffer at all) and 4 blocks.

(B, T, N, D) -> (B, T, N, width), N = h' * w'.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stillmotion.errors import UsageError
from stillmotion.temporal.base import TemporalCore


def _conv_bn(c_in: int, c_out: int, kernel: tuple[int, int, int], relu: bool) -> nn.Sequential:
    pad = (0, kernel[1] // 2, kernel[2] // 2)
    layers = [nn.Conv3d(c_in, c_out, kernel, padding=pad, bias=False), nn.BatchNorm3d(c_out)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class Bottleneck3D(nn.Module):
    """One block on x (B, C_in, T, h, w) -> (B, width, T, h, w)."""

    def __init__(self, c_in: int, inner: int, width: int, kernel: int = 3, causal: bool = True):
        super().__init__()
        self.kernel, self.causal = kernel, causal
        self.temporal = _conv_bn(c_in, inner, (kernel, 1, 1), relu=True)
        self.spatial = _conv_bn(inner, inner, (1, 3, 3), relu=True)
        self.expand = _conv_bn(inner, width, (1, 1, 1), relu=False)
        self.shortcut = _conv_bn(c_in, width, (1, 1, 1), relu=False) if c_in != width else nn.Identity()

    def _pad(self) -> tuple[int, int]:
        """(past, future) frames padded in front of and after the clip."""
        k = self.kernel - 1
        return (k, 0) if self.causal else (k // 2, k - k // 2)

    def _residual(self, x: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
        """x: the frames to output; padded: the same frames with the temporal kernel's context."""
        return F.relu(self.shortcut(x) + self.expand(self.spatial(self.temporal(padded))))

    def forward(self, x):
        past, future = self._pad()
        return self._residual(x, F.pad(x, (0, 0, 0, 0, past, future)))

    def step(self, x_t, buffer):
        """x_t (B, C_in, 1, h, w); buffer (B, C_in, kernel - 1, h, w): the last inputs (zeros
        before the first frame, as the causal padding)."""
        window = torch.cat([buffer, x_t], dim=2)
        return self._residual(x_t, window), window[:, :, 1:]


class TMM(TemporalCore):
    def __init__(self, dim: int, width: int = 128, inner: int = 64, depth: int = 1, kernel: int = 3,
                 causal: bool = True, grid: tuple[int, int] | None = None):
        super().__init__()
        if kernel < 1:
            raise UsageError(f"tmm: temporal kernel must be >= 1, got {kernel}")
        self.out_dim, self.grid, self.causal = width, grid, causal
        self.blocks = nn.ModuleList(Bottleneck3D(dim if i == 0 else width, inner, width, kernel, causal)
                                    for i in range(depth))

    def _grid(self, n: int) -> tuple[int, int]:
        if self.grid is not None:
            if self.grid[0] * self.grid[1] != n:
                raise UsageError(f"tmm: grid {self.grid} does not hold {n} tokens")
            return self.grid
        side = math.isqrt(n)
        if side * side != n:
            raise UsageError(f"tmm: {n} tokens are not a square grid; pass grid=(h, w)")
        return side, side

    def forward(self, x, mask=None):
        h, w = self._grid(x.shape[2])
        y = rearrange(x, "b t (h w) d -> b d t h w", h=h, w=w)
        for block in self.blocks:
            y = block(y)
        return rearrange(y, "b d t h w -> b t (h w) d")

    def _check_streams(self) -> None:
        if not self.causal and self.blocks and self.blocks[0].kernel > 1:
            raise UsageError("tmm with causal=False looks ahead in time, so it cannot stream frame by frame; "
                             "build it with causal=True (or kernel=1) to stream")

    def init_state(self, batch, tokens, device="cpu"):
        self._check_streams()
        h, w = self._grid(tokens)
        return [torch.zeros(batch, block.temporal[0].in_channels, block.kernel - 1, h, w, device=device)
                for block in self.blocks]

    def step(self, x_t, state):
        self._check_streams()
        h, w = self._grid(x_t.shape[1])
        y = rearrange(x_t, "b (h w) d -> b d 1 h w", h=h, w=w)
        new = []
        for block, buffer in zip(self.blocks, state):
            y, buffer = block.step(y, buffer)
            new.append(buffer)
        return rearrange(y, "b d 1 h w -> b (h w) d"), new
