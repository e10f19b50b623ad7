"""A temporal core and a readout over frozen-encoder tokens: the model every task trains.

- "classes" tasks: in `stream` mode the readout sees one frame's N output tokens at a time and
  the clip's answer is its last real frame's (the streaming protocol); in `clip` mode it sees
  all T x N tokens at once.
- "tokens" tasks (masked-token prediction): frames marked `hide` are replaced by a learned mask
  token before the core, and a per-token Linear maps the core's output back to token width.
- "boxes" and "points" tasks: a tracking readout reads each frame's tokens in turn, the
  previous frame's prediction as its query, starting from `query` (the box or points given at
  frame 0); "depth": a depth map per frame. These heads are fixed by the task (`head` is unused).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stillmotion.heads.attentive import AttentiveProbe
from stillmotion.heads.depth import DepthHead
from stillmotion.heads.linear import LinearProbe
from stillmotion.heads.mlp import MLPProbe
from stillmotion.heads.tracking import BoxHead, PointHead
from stillmotion.temporal import build


def last_real(per_frame: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, ...) per-frame values -> (B, ...) at each clip's last real frame."""
    if mask is None:
        return per_frame[:, -1]
    idx = mask.long().sum(1).clamp(min=1) - 1
    return per_frame[torch.arange(len(per_frame)), idx]


class VideoModel(nn.Module):
    def __init__(self, dim: int, kind: str, num_outputs: int, core: str = "gru", size: str = "small",
                 core_kw: dict | None = None, head: str = "attentive", mode: str = "stream",
                 heads: int = 4, queries: int = 1, max_frames: int = 16, grid: tuple[int, int] = (1, 1),
                 resolution: int = 32, inputs: str = "tokens", norm: bool = False, hidden: int = 1024):
        super().__init__()
        self.kind, self.mode = kind, mode
        self.core = build(core, dim, size=size, input=inputs, norm=norm, **(core_kw or {}))
        width = self.core.out_dim
        if kind == "tokens":
            self.mask_token = nn.Parameter(torch.zeros(dim))
            self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))
        elif kind == "boxes":
            self.head = BoxHead(width, grid)
        elif kind == "points":
            self.head = PointHead(width, grid)
        elif kind == "depth":
            self.head = DepthHead(width, grid, resolution)
        elif head == "attentive":
            self.head = AttentiveProbe(width, num_outputs, num_queries=queries, num_heads=heads, max_frames=max_frames)
        elif head == "linear":
            self.head = LinearProbe(width, num_outputs)
        elif head == "mlp":
            self.head = MLPProbe(width, num_outputs, hidden)
        else:
            raise ValueError(f"unknown head {head!r}; choose attentive, linear or mlp")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, hide: torch.Tensor | None = None,
                query: torch.Tensor | None = None):
        """x (B, T, N, D), mask (B, T) real frames -> (B, C) for "classes"; (B, T, N, D) for
        "tokens" (with `hide` (B, T): the frames to replace by the mask token); (B, T, 4) for
        "boxes" from `query` (B, 4); (B, T, P, 3) for "points" from `query` (B, P, 2): x, y and a
        visibility logit; (B, T, R, R) for "depth"."""
        if self.kind == "tokens":
            if hide is not None:
                x = torch.where(hide[:, :, None, None], self.mask_token.to(x.dtype), x)
            return self.head(self.core(x, mask))
        y = self.core(x, mask)
        if self.kind in ("boxes", "points"):
            return self.head.track(y, query.to(y.dtype))
        if self.kind == "depth":
            return rearrange(self.head(rearrange(y, "b t n d -> (b t) n d")), "(b t) r s -> b t r s", b=y.shape[0])
        if self.mode == "clip":
            return self.head(y, mask)
        # Only the last real frame's answer counts, so only its tokens go through the readout
        # (per_frame on all T frames gives the same answer T times the work).
        return self.head(last_real(y, mask))

    def per_frame(self, y: torch.Tensor) -> torch.Tensor:
        """The readout on each frame's core tokens alone: (B, T, N, D') -> (B, T, C)."""
        b = y.shape[0]
        return rearrange(self.head(rearrange(y, "b t n d -> (b t) n d")), "(b t) c -> b t c", b=b)

    @torch.no_grad()
    def stream(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """One frame at a time through the core's `step`: x (B, T, N, D) -> the prediction after
        each frame: (B, T, C) for "classes" (stream mode), (B, T, 4) boxes or (B, T, P, 3) points
        from `query`, (B, T, R, R) depth. Only the core's state, the last prediction and the
        target's look are carried from frame to frame."""
        b, t, n, _ = x.shape
        state = self.core.init_state(b, n, x.device)
        out, look = [], None
        for i in range(t):
            y, state = self.core.step(x[:, i], state)
            if self.kind in ("boxes", "points"):
                look = self.head.look(y, query) if look is None else look
                out.append(self.head(y, query, look))
                query = self.head.next_query(out[-1])
            else:
                out.append(self.head(y))
        return torch.stack(out, 1)
