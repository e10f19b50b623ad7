"""int8 tokens with one scale per token: x ~ q * scale, q in [-127, 127], scale = max |x| / 127
over the token's D values. Each value is off by at most scale / 2, half a step of its own token."""

from __future__ import annotations

import numpy as np


def quantize_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (..., D) float -> q (..., D) int8, scale (..., 1) float32."""
    x = np.asarray(x, dtype=np.float32)
    scale = np.abs(x).max(axis=-1, keepdims=True) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(x / scale), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """q (..., D) int8, scale (..., 1) -> float32 (..., D)."""
    return q.astype(np.float32) * scale
