"""Paper 000's depth readout: learned queries, one per patch of the depth map, read one frame's
tokens through the attentive probe (with one learned vector added to every token); each
query's outputs are the depths of its patch, row-major, and the patches tile the map row-major."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stillmotion.errors import UsageError
from stillmotion.heads.attentive import AttentiveProbe


class PatchDepthReadout(nn.Module):
    """x (B, N, D), one frame's tokens -> (B, size, size) depth values (no activation)."""

    def __init__(self, dim: int, size: int, patch: int = 8, heads: int = 16, width: int | None = None):
        super().__init__()
        if size % patch:
            raise UsageError(f"depth map size {size} is not a multiple of the patch {patch}")
        self.size, self.patch = size, patch
        self.probe = AttentiveProbe(dim, patch * patch, num_queries=(size // patch) ** 2, num_heads=heads,
                                    max_frames=1, width=width, per_query=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.probe(x[:, None])  # as a one-frame clip: the learned vector is added to every token
        cells = self.size // self.patch
        return rearrange(patches, "b (i j y x) -> b (i y) (j x)", i=cells, j=cells, y=self.patch, x=self.patch)
