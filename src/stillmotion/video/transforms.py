"""Pixel transforms on tensors (no torchvision): frames uint8 (T, H, W, 3) -> float (T, 3, S, S)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (T, 3, H, W) in [0, 255]."""
    x = torch.as_tensor(np.asarray(frames))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3); got {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).float()


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` (antialiased bilinear), then center-crop to size x size.

    x: (T, 3, H, W) float. Returns (T, 3, size, size).
    """
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top : top + size, left : left + size]
    return x


def normalize(x: torch.Tensor, mean: tuple[float, float, float], std: tuple[float, float, float]) -> torch.Tensor:
    """(x - mean) / std per channel, with mean and std on the 0..255 scale. x: (T, 3, H, W)."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
