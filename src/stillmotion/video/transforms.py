"""Pixel transforms on tensors (no torchvision). Frames come as uint8 (T, H, W, 3) and become
(T, 3, H, W) tensors on the 0..255 scale, float or uint8; every transform keeps that layout and
applies the same change to all T frames of a clip.

Resize uint8 frames as uint8 where you can: torch's antialiased bilinear has a fast path for
uint8 in this layout (about 13x faster than float on a 1080p frame, on one thread) and its
result is already rounded; float input gives float output that differs from it by at most 1."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stillmotion.errors import UsageError


def to_tensor(frames: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (T, H, W, 3) RGB or (T, H, W) grey -> (T, 3, H, W) in [0, 255], float32 by
    default; `dtype=torch.uint8` keeps the bytes (a channels-last view, no copy)."""
    x = torch.as_tensor(np.asarray(frames))
    if x.ndim == 3:
        x = x[..., None].expand(*x.shape, 3).contiguous()
    if x.ndim != 4 or x.shape[-1] != 3:
        raise UsageError(f"frames must be (T, H, W, 3) or (T, H, W); got {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).to(dtype)


def resize_short_side(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the shorter side is `size`, keeping the aspect ratio (antialiased bilinear;
    uint8 in, uint8 out)."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) == (h, w):
        return x
    return F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)


def crop_at(x: torch.Tensor, size: int, position: int = 1, positions: int = 3) -> torch.Tensor:
    """A size x size crop at `position` of `positions` evenly spaced along the longer side
    (with 3: start, centre, end), centred along the shorter side."""
    h, w = x.shape[-2:]
    if min(h, w) < size:
        raise UsageError(f"cannot crop {size}x{size} from {w}x{h}; resize first")
    frac = 0.5 if positions == 1 else position / (positions - 1)
    top, left = ((h - size) // 2, round(frac * (w - size))) if w >= h else (round(frac * (h - size)), (w - size) // 2)
    return x[..., top : top + size, left : left + size]


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    return crop_at(x, size, 0, 1)


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A size x size crop at a uniformly drawn position, the same for every frame."""
    h, w = x.shape[-2:]
    if min(h, w) < size:
        raise UsageError(f"cannot crop {size}x{size} from {w}x{h}; resize first")
    top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    return x[..., top : top + size, left : left + size]


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Shorter side to `size`, then the centre size x size crop."""
    return center_crop(resize_short_side(x, size), size)


#: how frames become the encoder's square input: `antialias` (ours: uint8, antialiased) or
#: `reference` (paper 000's inference scripts: float, plain bilinear)
RESIZES = ("antialias", "reference")


def reference_resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Paper 000's inference preprocessing (`scripts_inference/utils.py::load_video_frames`):
    frames as float, shorter side to `size` by bilinear interpolation without antialiasing
    (align_corners=False) to round(H * s) x round(W * s), then the crop at ((h - S) // 2,
    (w - S) // 2). (T, 3, H, W) uint8 or float on 0..255 -> float32 (T, 3, S, S) on 0..255, not
    rounded (the reference divides by 255 first; bilinear weights sum to 1, so only the last bit
    can differ)."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = round(h * scale), round(w * scale)
    x = F.interpolate(x.float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top : top + size, left : left + size]


def square_input(x: torch.Tensor, size: int, resize: str = "antialias") -> torch.Tensor:
    """The encoder's size x size input from (T, 3, H, W) frames, by `resize` (see RESIZES):
    uint8 for `antialias`, float32 for `reference`."""
    if resize not in RESIZES:
        raise UsageError(f"resize must be one of {', '.join(RESIZES)}, got {resize!r}")
    return resize_center_crop(x, size) if resize == "antialias" else reference_resize_center_crop(x, size)


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def color_jitter(x: torch.Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale brightness, contrast and saturation by factors drawn from [1 - a, 1 + a] (one draw
    per clip), then clamp to [0, 255]."""
    b, c, s = (1 + a * (2 * torch.rand(1, generator=generator).item() - 1) for a in (brightness, contrast, saturation))
    return adjust_color(x, b, c, s)


def adjust_color(x: torch.Tensor, brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    """Multiply brightness, then contrast (around each frame's mean grey), then saturation
    (around each pixel's grey) by the given factors; clamp to [0, 255]. x: (T, 3, H, W)."""
    x = x * brightness
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    x = (x - grey.mean(dim=(1, 2, 3), keepdim=True)) * contrast + grey.mean(dim=(1, 2, 3), keepdim=True)
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    x = (x - grey) * saturation + grey
    return x.clamp(0, 255)


def as_uint8_values(x: torch.Tensor) -> torch.Tensor:
    """Round and clamp to the values a uint8 image can hold (still float): what a resized frame
    is before it is stored or sent as uint8."""
    return x.round().clamp(0, 255)


def normalize(x: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]) -> torch.Tensor:
    """(x - mean) / std per channel, with mean and std on the 0..255 scale. x: (T, 3, H, W)."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
