"""The views cached per video, made frame by frame as the video decodes.

View 0 is the encoder's own input: shorter side to S, centre S x S crop. Views 1..K are
augmented copies so that training on cached tokens still sees augmentation: the shorter side
scaled to S times a zoom in [1, 1.3], a random S x S crop, a horizontal flip half the time, and
brightness / contrast / saturation factors in [1 - a, 1 + a]. A view's parameters are drawn
once per video, so all its frames get the same change, from (seed, video id, view number)
alone: every run, resumed or on any rank, draws the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stillmotion.errors import UsageError
from stillmotion.seeding import seeded
from stillmotion.video.transforms import (
    adjust_color,
    as_uint8_values,
    hflip,
    resize_short_side,
    square_input,
    to_tensor,
)

MAX_ZOOM = 1.3


@dataclass(frozen=True)
class ViewParams:
    zoom: float  # shorter side = round(S * zoom) before cropping
    top: float  # crop position as a fraction of the free room, 0..1
    left: float
    flip: bool
    brightness: float
    contrast: float
    saturation: float


def view_params(seed: int, video_id: str, view: int, jitter: float = 0.4) -> ViewParams:
    """The augmentation of one view of one video: a pure function of its arguments."""
    rng = seeded(seed, video_id, view)
    zoom, top, left, flip, b, c, s = rng.random(7)
    factor = lambda u: float(1 + jitter * (2 * u - 1))  # noqa: E731
    return ViewParams(float(1 + (MAX_ZOOM - 1) * zoom), float(top), float(left), bool(flip < 0.5),
                      factor(b), factor(c), factor(s))


def augment(x: torch.Tensor, size: int, p: ViewParams) -> torch.Tensor:
    """One augmented view of uint8 frames x (T, 3, H, W) -> uint8 (T, 3, size, size)."""
    x = resize_short_side(x, max(size, round(size * p.zoom)))
    h, w = x.shape[-2:]
    top, left = round(p.top * (h - size)), round(p.left * (w - size))
    x = x[..., top : top + size, left : left + size]
    if p.flip:
        x = hflip(x)
    return as_uint8_values(adjust_color(x.float(), p.brightness, p.contrast, p.saturation)).to(torch.uint8)


def crop_view(x: torch.Tensor, size: int, params: ViewParams | None = None, resize: str = "antialias") -> torch.Tensor:
    """One view of uint8 frames x (T, 3, H, W) -> (T, 3, size, size): plain by `resize` when
    `params` is None, else augmented (ours, whatever `resize`); float32 for every view when
    `resize` is "reference" (the augmented ones holding whole values), else uint8."""
    if params is None:
        return square_input(x, size, resize)
    return augment(x, size, params).to(torch.float32 if resize == "reference" else torch.uint8)


@dataclass(frozen=True)
class Window:
    """The part of a source frame a view shows, in source coordinates normalized to [0, 1]
    (x right, y down), and whether the view mirrors it. Maps annotations into the view."""

    left: float
    top: float
    width: float
    height: float
    flip: bool = False

    def points(self, xy: torch.Tensor) -> torch.Tensor:
        """Source (..., 2) -> view (..., 2), both normalized (the view spans [0, 1])."""
        u = (xy[..., 0] - self.left) / self.width
        v = (xy[..., 1] - self.top) / self.height
        return torch.stack([1 - u if self.flip else u, v], -1)

    def boxes(self, box: torch.Tensor) -> torch.Tensor:
        """Source boxes (..., 4) as (x0, y0, x1, y1) -> view boxes, corners re-ordered after a flip."""
        a, b = self.points(box[..., :2]), self.points(box[..., 2:])
        return torch.cat([torch.minimum(a, b), torch.maximum(a, b)], -1)

    def dense(self, maps: torch.Tensor, size: int) -> torch.Tensor:
        """Maps (F, H, W) over the whole source frame -> (F, size, size) over the view, by
        nearest sampling (so invalid zeros stay zeros, never blend into their neighbours)."""
        centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        u = 1 - centres if self.flip else centres
        x, y = self.left + self.width * u, self.top + self.height * centres
        grid = torch.stack(torch.meshgrid(2 * x - 1, 2 * y - 1, indexing="xy"), -1)  # (size, size, 2)
        out = F.grid_sample(maps[:, None].float(), grid.expand(len(maps), -1, -1, -1), mode="nearest",
                            padding_mode="zeros", align_corners=False)
        return out[:, 0]


def view_window(width: int, height: int, size: int, params: ViewParams | None = None) -> Window:
    """Where the view of a `width` x `height` frame lies: `resize_center_crop` when `params` is
    None (view 0), else `augment` with `params`, with the same rounding as they use."""
    short = size if params is None else max(size, round(size * params.zoom))
    scale = short / min(height, width)
    nh, nw = max(short, round(height * scale)), max(short, round(width * scale))
    if params is None:
        top, left = ((nh - size) // 2, round(0.5 * (nw - size))) if width >= height else \
            (round(0.5 * (nh - size)), (nw - size) // 2)
    else:
        top, left = round(params.top * (nh - size)), round(params.left * (nw - size))
    return Window(left / nw, top / nh, size / nw, size / nh, bool(params is not None and params.flip))


class ViewMaker:
    """A frame transform for `read_frames`: frame (H, W, 3) uint8 -> (V, S, S, 3) uint8 with
    V = 1 + views (view 0 plain, then the augmented ones); float32 when view 0 is made by
    `resize="reference"` (paper 000's float resize, see `video.transforms.square_input`)."""

    def __init__(self, size: int, views: int = 0, seed: int = 0, video_id: str = "", resize: str = "antialias"):
        if views < 0:
            raise UsageError(f"views must be >= 0, got {views}")
        self.size, self.resize = size, resize
        self.params = [view_params(seed, video_id, v) for v in range(1, views + 1)]

    @property
    def num_views(self) -> int:
        return 1 + len(self.params)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        x = to_tensor(frame[None], torch.uint8)
        out = [crop_view(x, self.size, p, self.resize) for p in [None, *self.params]]
        return torch.cat(out).permute(0, 2, 3, 1).contiguous().numpy()  # (V, S, S, 3)
