"""Paper 000's encoder output: K intermediate ViT layers mixed by a small trainable module.

The frozen ViT gives each frame's tokens at K layers (the released models: 4 layers, at depth/4,
depth/2, 3 depth/4 and depth, each after the ViT's final LayerNorm), every layer laid out as
`extra` leading tokens (CLS and the 4 registers: 5) then the patches. The mix keeps the extra
tokens of the last layer as they are and replaces the patches by

    mean over k of  P_k + MLP_k(BN_k(P_k))

with BN_k a BatchNorm over the channels of all patch tokens of the batch and MLP_k =
Linear(D, 2D) -> GELU -> Linear(2D, D). It is trained with the core, so it runs on the frozen
(cached) tokens in front of it. Parameter names follow the released checkpoints
(`interm_mlps.{k}.bn`, `interm_mlps.{k}.mlp.0`, `interm_mlps.{k}.mlp.2`).
"""

from __future__ import annotations

import torch
from torch import nn

from stillmotion.errors import UsageError


class LayerBranch(nn.Module):
    """P (..., D) -> P + MLP(BN(P)), the BatchNorm over every token in the batch."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        normed = self.bn(p.reshape(-1, p.shape[-1])).view_as(p)
        return p + self.mlp(normed)


class LayerMix(nn.Module):
    """x (B, T, K, N, D): each frame's tokens at K layers -> (B, T, N, D)."""

    def __init__(self, dim: int, layers: int = 4, extra: int = 5):
        super().__init__()
        self.layers, self.extra = layers, extra
        self.interm_mlps = nn.ModuleList(LayerBranch(dim) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != self.layers:
            raise UsageError(f"LayerMix expects (B, T, {self.layers}, N, D) tokens, got {tuple(x.shape)}")
        patches = x[:, :, :, self.extra:]
        mixed = torch.stack([branch(patches[:, :, k]) for k, branch in enumerate(self.interm_mlps)]).mean(0)
        return torch.cat([x[:, :, -1, :self.extra], mixed], dim=2)
