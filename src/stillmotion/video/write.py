"""Writing frames as an H.264 .mp4 with PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np


def write_video(path: str | Path, frames: np.ndarray, fps: int, crf: int = 18, gop: int | None = None,
                times: Sequence[float] | None = None, rotation: int = 0) -> Path:
    """Write uint8 frames (T, H, W, 3) RGB, or (T, H, W) grey, to an H.264 .mp4 (yuv420p).

    gop: keyframe interval (encoder default when None). times: each frame's time in seconds,
    for a variable frame rate (strictly increasing). rotation: display rotation in degrees
    counter-clockwise, stored as metadata (the pixels are stored unrotated).
    The file appears atomically: it is written under a temporary name, then renamed.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) or (T, H, W); got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 with yuv420p needs even sizes; got {w}x{h}")
    if times is not None and (len(times) != t or np.any(np.diff(times) <= 0)):
        raise ValueError(f"times must give one strictly increasing time per frame ({t} frames)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # Deterministic output needs one encoder thread and fully initialised frames (_yuv420p):
        # the same frames then always give the same bytes.
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        if gop is not None:
            stream.codec_context.gop_size = gop
            stream.options = {**stream.options, "keyint_min": str(gop), "sc_threshold": "0"}
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = _yuv420p(image)
            if times is not None:
                frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def _yuv420p(image: np.ndarray) -> av.VideoFrame:
    """An RGB image (H, W, 3) as a yuv420p frame in which every byte is set, row padding
    included. Frames from `reformat` or `from_ndarray` leave the padding uninitialised and x264
    reads it, so the same pixels would not always encode to the same bytes."""
    h, w, _ = image.shape
    planes = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p").to_ndarray()
    sizes = [(h, w), (h // 2, w // 2), (h // 2, w // 2)]
    offsets = [0, h, h + h // 4]  # to_ndarray stacks Y (h rows), U, V (h / 4 rows of width w each)
    flat = planes.reshape(-1)
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, (rows, cols), offset in zip(frame.planes, sizes, offsets):
        data = flat[offset * w : offset * w + rows * cols].reshape(rows, cols)
        padded = np.zeros(plane.buffer_size, np.uint8)
        padded[: rows * plane.line_size].reshape(rows, plane.line_size)[:, :cols] = data
        plane.update(padded)
    return frame
