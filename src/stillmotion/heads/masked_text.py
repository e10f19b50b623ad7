"""Masked-text prediction from video (Harvest's cross-modal objective): the caption's hidden
words are predicted by its frozen token states attending to the video's tokens."""

from __future__ import annotations

import torch
from torch import nn


class CrossBlock(nn.Module):
    """Text tokens attend to video tokens, then an MLP; pre-norm, residual."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attend = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, text: torch.Tensor, video: torch.Tensor, ignore: torch.Tensor | None) -> torch.Tensor:
        kv = self.norm_kv(video)
        text = text + self.attend(self.norm_q(text), kv, kv, key_padding_mask=ignore, need_weights=False)[0]
        return text + self.mlp(text)


class MaskedTextDecoder(nn.Module):
    """text (B, L, H): the frozen encoder's states of the masked caption; video (B, M, D'): what
    the video tower gives (the core's tokens, M = T x N, for the frozen tower; one embedding per
    frame, M = T, for `HarvestTower`), `video_mask` (B, M) the real ones; `at` (B, L) the hidden
    positions -> logits over the vocabulary (K, V) for the K hidden positions, in row order."""

    def __init__(self, text_hidden: int, video_width: int, vocab: int, width: int = 256, heads: int = 4,
                 layers: int = 1):
        super().__init__()
        self.text_in, self.video_in = nn.Linear(text_hidden, width), nn.Linear(video_width, width)
        self.blocks = nn.ModuleList(CrossBlock(width, heads) for _ in range(layers))
        self.norm, self.out = nn.LayerNorm(width), nn.Linear(width, vocab)

    def forward(self, text: torch.Tensor, video: torch.Tensor, at: torch.Tensor,
                video_mask: torch.Tensor | None = None) -> torch.Tensor:
        ignore = None if video_mask is None else ~video_mask
        x, v = self.text_in(text), self.video_in(video)
        for block in self.blocks:
            x = block(x, v, ignore)
        return self.out(self.norm(x[at]))  # only the hidden positions reach the (large) vocabulary layer
