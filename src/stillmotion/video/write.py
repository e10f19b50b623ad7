"""Writing frames as an H.264 .mp4 with PyAV."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np


def write_video(path: str | Path, frames: np.ndarray, fps: int, crf: int = 18) -> Path:
    """Write uint8 RGB frames (T, H, W, 3) to an H.264 .mp4 (yuv420p, even sizes).

    The file appears atomically: it is written under a temporary name, then renamed.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 with yuv420p needs even sizes; got {w}x{h}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path
