"""Optional decoding backends besides PyAV.

`torchcodec` (pip install torchcodec; it needs FFmpeg's shared libraries on the system) reads
the same frames by index. `read_frames(path, indices, backend="auto")` uses it when it imports
and works, else PyAV; PyAV stays the reference every backend is checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from stillmotion.video.errors import VideoDecodeError

BACKENDS = ("auto", "pyav", "torchcodec")


@lru_cache(maxsize=1)
def torchcodec_available() -> bool:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except (ImportError, RuntimeError, OSError):  # not installed, or FFmpeg's libraries missing
        return False
    return True


def read_frames_torchcodec(path: str | Path, indices: Sequence[int] | None) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 at positions `indices` with torchcodec's exact seek mode."""
    from torchcodec.decoders import VideoDecoder

    try:
        decoder = VideoDecoder(str(path), seek_mode="exact", dimension_order="NHWC")
        count = len(decoder)
        positions = list(range(count)) if indices is None else [int(i) for i in indices]
        if positions and max(positions) >= count:
            raise VideoDecodeError(path, f"frame {max(positions)} was requested but the video holds only "
                                   f"{count} frames", "request indices below the frame count")
        return decoder.get_frames_at(positions).data.numpy()
    except VideoDecodeError:
        raise
    except Exception as exc:  # torchcodec raises RuntimeError / ValueError on unreadable input
        raise VideoDecodeError(path, f"torchcodec could not decode it: {exc}") from exc
