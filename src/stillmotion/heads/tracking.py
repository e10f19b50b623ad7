"""Tracking readouts: a box or a set of points carried from frame to frame.

Both read one frame's core tokens (B, N, D) at a time, as in the streaming protocol of paper
000: the box (points) predicted at frame t is the query at frame t + 1, so a run over a clip is
autoregressive and a stream needs nothing but the last prediction and what the target looked
like when it was given. Finding the target again is a soft-argmax: the target's look at frame 0
is compared with every token of the frame, the scores are weighted towards the last position,
and their softmax averages the token positions. An MLP then refines the estimate from what the
attention read and the query's Fourier features. Coordinates are normalized to [0, 1] of the view.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from stillmotion.errors import UsageError


def fourier(x: torch.Tensor, bands: int = 8) -> torch.Tensor:
    """Coordinates (..., C) -> (..., C * 2 * bands): sin and cos of 2^k * pi * x, k < bands."""
    freqs = (2.0 ** torch.arange(bands, device=x.device, dtype=x.dtype)) * math.pi
    angles = (x[..., None] * freqs).flatten(-2)
    return torch.cat([angles.sin(), angles.cos()], -1)


def token_centres(grid: tuple[int, int]) -> torch.Tensor:
    """(h * w, 2): each token's centre (x, y), normalized, in the tokens' row-major order."""
    h, w = grid
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], -1)


def sample(tokens: torch.Tensor, grid: tuple[int, int], xy: torch.Tensor) -> torch.Tensor:
    """Token features (B, N, D) bilinearly sampled at points (B, Q, 2) -> (B, Q, D)."""
    fmap = rearrange(tokens, "b (h w) d -> b d h w", h=grid[0], w=grid[1])
    out = F.grid_sample(fmap, (2 * xy - 1)[:, :, None].to(fmap.dtype), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return rearrange(out[..., 0], "b d q -> b q d")


class Locator(nn.Module):
    """Where is each target now? looks (B, Q, D), last positions (B, Q, 2), one frame's tokens
    (B, N, D) -> (positions (B, Q, 2), read features (B, Q, D)).

    Attention logits are a scaled cosine between the look and each token (learned projections
    that start as the identity, a learned sharpness) minus |token - last|^2 / (2 s^2), with a
    learned width s. The position is the last one moved by the attention-weighted mean of the
    token centres minus the same mean under the distance term alone: where the look tells
    nothing, the target stays where it was (a plain soft-argmax would pull it towards the middle
    of the frame, frame after frame, near the borders)."""

    def __init__(self, dim: int, grid: tuple[int, int]):
        super().__init__()
        self.grid = tuple(grid)
        self.norm = nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        for proj in (self.q, self.k):  # start as plain matching of the look against each token
            nn.init.eye_(proj.weight)
            nn.init.zeros_(proj.bias)
        self.log_width = nn.Parameter(torch.tensor(math.log(0.15)))
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(10.0)))
        self.register_buffer("centres", token_centres(grid), persistent=False)

    def forward(self, look: torch.Tensor, last: torch.Tensor, tokens: torch.Tensor):
        if tokens.shape[1] != len(self.centres):
            raise UsageError(f"tracking head: built for a {self.grid[0]}x{self.grid[1]} token grid, got "
                             f"{tokens.shape[1]} tokens")
        x = self.norm(tokens)
        q, k = F.normalize(self.q(self.norm(look)), dim=-1), F.normalize(self.k(x), dim=-1)
        sim = self.log_sharpness.exp() * torch.einsum("bqd,bnd->bqn", q, k)  # a scaled cosine
        centres = self.centres.to(last)
        near = -(centres - last[:, :, None]).pow(2).sum(-1) / (2 * self.log_width.exp() ** 2)  # (B, Q, N)
        attn = (sim + near).softmax(-1)
        return (last + (attn - near.softmax(-1)) @ centres).clamp(0, 1), attn @ self.v(x)


def to_cxcywh(box: torch.Tensor) -> torch.Tensor:
    return torch.cat([(box[..., :2] + box[..., 2:]) / 2, box[..., 2:] - box[..., :2]], -1)


def to_xyxy(box: torch.Tensor) -> torch.Tensor:
    return torch.cat([box[..., :2] - box[..., 2:] / 2, box[..., :2] + box[..., 2:] / 2], -1)


def refiner(dim: int, outputs: int) -> nn.Sequential:
    """The MLP that refines a tracker's estimate, its last layer zeroed so it starts by
    changing nothing."""
    mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, outputs))
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


class Tracker(nn.Module):
    """What the box and point heads share: `look(tokens, query)` takes the target's look from
    frame 0, `forward(tokens, query, look)` predicts one frame, and `next_query(output)` is the
    part of the prediction queried at the next frame. Each reads the tokens with a `Locator`,
    embeds its query's `coords` numbers in Fourier features and refines with an MLP to `outputs`.

    As a stream: `state = start(frame 0's tokens, query)`, then `output, state = step(tokens,
    state)` per frame (the interface every tracking readout has, see `heads.reference_tracking`)."""

    def __init__(self, dim: int, grid: tuple[int, int], bands: int, coords: int, outputs: int):
        super().__init__()
        self.grid, self.bands = tuple(grid), bands
        self.locate = Locator(dim, grid)
        self.embed = nn.Linear(coords * 2 * bands, dim)
        self.mlp = refiner(dim, outputs)

    def look(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def next_query(self, output: torch.Tensor) -> torch.Tensor:
        return output

    def start(self, tokens: torch.Tensor, query: torch.Tensor) -> tuple:
        """The state before frame 0: the target's look and the query."""
        return self.look(tokens, query), query

    def step(self, tokens: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """One frame's tokens (B, N, D) -> (this frame's prediction, the next state)."""
        look, query = state
        out = self(tokens, query.detach(), look)
        return out, (look, self.next_query(out))

    def track(self, y: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """y (B, T, N, D), first: the query at frame 0 -> every frame's prediction stacked on
        dim 1, each predicted from the previous one (not back-propagated through)."""
        state, out = self.start(y[:, 0], first), []
        for t in range(y.shape[1]):
            prediction, state = self.step(y[:, t], state)
            out.append(prediction)
        return torch.stack(out, 1)


class BoxHead(Tracker):
    """One frame's tokens (B, N, D), the query box (B, 4) and the object's look -> the box in
    this frame (B, 4). Boxes are (x0, y0, x1, y1); the look is the mean of frame 0's features at
    3 x 3 points inside the given box, with that box's size. The size is predicted as a factor
    of the first box's (within e^-2..e^2), never of the last frame's, so a small bias in it
    cannot compound over a long stream. `track` gives (B, T, 4)."""

    def __init__(self, dim: int, grid: tuple[int, int], bands: int = 8):
        super().__init__(dim, grid, bands, coords=4, outputs=4)

    def look(self, tokens: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (features (B, 1, D), the box's width and height (B, 2))."""
        u = torch.tensor([1 / 6, 1 / 2, 5 / 6], device=box.device, dtype=box.dtype)
        fx = box[:, None, 0] + (box[:, None, 2] - box[:, None, 0]) * u  # (B, 3)
        fy = box[:, None, 1] + (box[:, None, 3] - box[:, None, 1]) * u
        xy = torch.stack(torch.broadcast_tensors(fx[:, :, None], fy[:, None, :]), -1).flatten(1, 2)  # (B, 9, 2)
        return sample(tokens, self.grid, xy).mean(1, keepdim=True), (box[:, 2:] - box[:, :2]).clamp(min=1e-3)

    def forward(self, tokens: torch.Tensor, query: torch.Tensor,
                look: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        features, first_size = look
        q = to_cxcywh(query)
        centre, read = self.locate(features, q[:, None, :2], tokens)
        change = self.mlp(read[:, 0] + features[:, 0] + self.embed(fourier(q, self.bands)))
        size = first_size * change[:, 2:].clamp(-2, 2).exp()
        box = to_xyxy(torch.cat([centre[:, 0] + 0.25 * change[:, :2].tanh() * q[:, 2:].clamp(min=1e-3), size], -1))
        return box.clamp(0, 1)  # the view's part of it: targets are clipped to the view the same way


class PointHead(Tracker):
    """One frame's tokens (B, N, D), the points' last positions (B, P, 2) and their looks
    (B, P, D) -> (B, P, 3): the new (x, y) and a visibility logit. A point's look is frame 0's
    features sampled (bilinearly) where it was queried. `track` gives (B, T, P, 3)."""

    def __init__(self, dim: int, grid: tuple[int, int], bands: int = 8):
        super().__init__(dim, grid, bands, coords=2, outputs=3)

    def look(self, tokens: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        return sample(tokens, self.grid, xy)

    def forward(self, tokens: torch.Tensor, xy: torch.Tensor, look: torch.Tensor) -> torch.Tensor:
        centre, read = self.locate(look, xy, tokens)
        out = self.mlp(read + look + self.embed(fourier(xy, self.bands)))
        return torch.cat([centre + 0.1 * out[..., :2].tanh(), out[..., 2:] + 2.0], -1)  # + 2: visible at first

    def next_query(self, output: torch.Tensor) -> torch.Tensor:
        return output[..., :2]
