"""Probing and frame-exact reading with PyAV.

`read_frames` decodes sequentially from the start and keeps only the requested positions, so
the frames it returns are exactly those a full sequential decode yields at those indices; it
stops as soon as the last requested frame is reached and never holds the whole video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import av
import numpy as np

from stillmotion.video.errors import VideoDecodeError


@dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(p, "no such file")
    if not p.is_file():
        raise VideoDecodeError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(p, "the file is empty (0 bytes)")
    try:
        container = av.open(str(p))
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoDecodeError(p, f"not a readable video container: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(p, "the file has no video stream")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Read a video's header: frame count, fps, duration, size and codec.

    The frame count comes from the container when it records one, else from duration x fps.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        if not duration and container.duration:
            duration = container.duration / av.time_base
        num_frames = stream.frames or int(round(duration * fps))
        return VideoInfo(
            path=str(path),
            num_frames=int(num_frames),
            fps=fps,
            duration=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            codec=stream.codec_context.name,
        )


def read_frames(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Decode the frames at `indices` (every frame when None).

    Returns uint8 RGB frames (T, H, W, 3) in the order of `indices` (repeats allowed).
    Raises VideoDecodeError naming the file when it cannot be decoded or an index lies past
    its last frame.
    """
    wanted = None if indices is None else {int(i) for i in indices}
    if wanted is not None and not wanted:
        raise ValueError(f"{path}: no frame indices requested")
    if wanted is not None and min(wanted) < 0:
        raise ValueError(f"{path}: frame indices must be >= 0, got {min(wanted)}")
    last = max(wanted) if wanted is not None else None
    kept: dict[int, np.ndarray] = {}
    decoded = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for i, frame in enumerate(container.decode(stream)):
                decoded = i + 1
                if wanted is None or i in wanted:
                    kept[i] = frame.to_ndarray(format="rgb24")
                if last is not None and i >= last:
                    break
        except (av.FFmpegError, ValueError) as exc:
            raise VideoDecodeError(path, f"decoding failed after {decoded} frames: {exc}") from exc
    if decoded == 0:
        raise VideoDecodeError(path, "the video stream decodes to no frames")
    if wanted is None:
        return np.stack([kept[i] for i in range(decoded)])
    if last >= decoded:
        raise VideoDecodeError(
            path,
            f"frame {last} was requested but the video decodes to only {decoded} frames",
            "request indices below the frame count",
        )
    return np.stack([kept[int(i)] for i in indices])
