"""Paper 000's box and point readouts (heads/query_decoder.py) behind the tracking interface the
tasks and the streaming loop use (`start`, `step`, `track`), in the tasks' conventions.

- Boxes: the tasks use (x0, y0, x1, y1); the readout reads and writes (cx, cy, w, h), as the
  reference's modules say and its Waymo inference script converts them (`corners=True` feeds it
  corners instead, for weights trained that way). The box predicted at frame t (detached) is
  the query at frame t + 1, as in the reference.
- Points: the query is the points' first-frame position on every frame (the reference does not
  feed predictions back); outputs (B, T, P, 4) are x, y, a visibility logit and the reference's
  uncertainty logit, frame 0 returning the query itself, visible and certain. The tasks read the
  first three; no loss trains the uncertainty (the paper's loss for it is not stated).

Parameter names are the released checkpoints', so their weights load with a `head.` prefix.
"""

from __future__ import annotations

import torch

from stillmotion.heads.query_decoder import BoxDecoderReadout, PointDecoderReadout
from stillmotion.heads.tracking import to_cxcywh, to_xyxy


class ReferenceBoxes(BoxDecoderReadout):
    """`track(y (B, T, N, D), first (B, 4)) -> (B, T, 4)`, boxes (x0, y0, x1, y1) in [0, 1]."""

    def __init__(self, dim: int, heads: int = 4, layers: int = 1, hidden: int = 512, corners: bool = False):
        super().__init__(dim, heads, layers, hidden)
        self.corners = corners

    def _read(self, tokens: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """One frame in the tasks' corners, through the readout's own box format."""
        if self.corners:
            return self(tokens, box)
        return to_xyxy(self(tokens, to_cxcywh(box)))

    def start(self, tokens: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """The state before frame 0: the given box (B, 4)."""
        return box

    def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame's tokens (B, N, D), the last box -> (this frame's box (B, 4), the next state)."""
        box = self._read(tokens, state.detach())
        return box, box

    def track(self, y: torch.Tensor, first: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        state, out = self.start(y[:, 0], first), []
        for t in range(y.shape[1]):
            box, state = self.step(y[:, t], state if teacher is None else teacher[:, t])
            out.append(box)
        return torch.stack(out, 1)


class ReferencePoints(PointDecoderReadout):
    """`track(y (B, T, N, D), first (B, P, 2)) -> (B, T, P, 4)`: x, y in [0, 1], visibility and
    uncertainty logits."""

    def start(self, tokens: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The state before frame 0: the query points (B, P, 2) and the frame count."""
        return points, 0

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, int]):
        points, t = state
        frame = torch.full(points.shape[:2], -1 if t else 0, dtype=torch.long, device=points.device)
        xy, visible, uncertain = PointDecoderReadout.track(self, tokens[:, None], points, frame)
        return torch.cat([xy, visible[..., None], uncertain[..., None]], -1)[:, :, 0], (points, t + 1)

    def track(self, y: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros(first.shape[:2], dtype=torch.long, device=first.device)
        xy, visible, uncertain = PointDecoderReadout.track(self, y, first, zero)  # (B, P, T, ...)
        return torch.cat([xy, visible[..., None], uncertain[..., None]], -1).transpose(1, 2)
