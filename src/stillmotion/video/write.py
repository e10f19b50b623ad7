"""Writing frames as an H.264 .mp4 with PyAV."""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stillmotion.errors import UsageError


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
        raise UsageError(f"frames must be uint8 (T, H, W, 3) or (T, H, W); got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise UsageError(f"H.264 with yuv420p needs even sizes; got {w}x{h}")
    if times is not None and (len(times) != t or np.any(np.diff(times) <= 0)):
        raise UsageError(f"times must give one strictly increasing time per frame ({t} frames)")
    with VideoWriter(path, fps, crf=crf, gop=gop, timed=times is not None, rotation=rotation) as writer:
        for i, image in enumerate(frames):
            writer.write(image, None if times is None else times[i])
    return Path(path)


class VideoWriter:
    """Frames written one at a time to an H.264 .mp4 (yuv420p), for streams of unknown length:

        with VideoWriter("out.mp4", fps=30) as writer:
            writer.write(frame)              # uint8 (H, W, 3) RGB, every frame the same even size

    The file appears under its name when the writer closes (written as a hidden .part first);
    an exception inside the `with` leaves no file behind. `timed`: each `write` gives the
    frame's time in seconds (a variable frame rate)."""

    def __init__(self, path: str | Path, fps: float, crf: int = 18, gop: int | None = None, timed: bool = False,
                 rotation: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.part")
        self.fps, self.crf, self.gop, self.timed, self.rotation = fps, crf, gop, timed, rotation
        self.container = av.open(str(self.tmp), mode="w", format="mp4")
        self.stream = None
        self.frames = 0

    def _start(self, w: int, h: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001) if self.fps else 30
        stream = self.container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # One encoder thread and frames over zero-padded buffers (_yuv420p): in a fresh process the
        # same frames then give the same bytes run after run. After other native work in the same
        # process x264's rate control can still, rarely, choose differently (decoded frames then
        # differ by about 0.3 grey levels on average), so do not rely on byte equality.
        stream.options = {"crf": str(self.crf), "preset": "veryfast", "threads": "1"}
        if self.gop is not None:
            stream.codec_context.gop_size = self.gop
            stream.options = {**stream.options, "keyint_min": str(self.gop), "sc_threshold": "0"}
        if self.timed:
            stream.codec_context.time_base = Fraction(1, 1000)
        if self.rotation:
            stream.set_display_rotation(self.rotation)
        self.stream = stream

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """One uint8 RGB frame (H, W, 3); `time` in seconds when the writer is `timed`."""
        h, w = image.shape[:2]
        if h % 2 or w % 2:
            raise UsageError(f"H.264 with yuv420p needs even sizes; got {w}x{h}")
        if self.stream is None:
            self._start(w, h)
        elif (w, h) != (self.stream.width, self.stream.height):
            raise UsageError(f"every frame must be {self.stream.width}x{self.stream.height}; got {w}x{h}")
        frame = _yuv420p(image)
        if self.timed:
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.container.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _yuv420p(image: np.ndarray) -> av.VideoFrame:
    """An RGB image (H, W, 3) as a yuv420p frame over a buffer we own and zero past its end.

    Frames straight from `reformat` encoded to varying bytes in our runs; frames rebuilt over a
    zeroed buffer did not (likely x264 reading uninitialised bytes around libav's planes).
    """
    planes = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p").to_ndarray()
    buffer = np.zeros(planes.size + _SLACK, np.uint8)
    buffer[: planes.size] = planes.reshape(-1)
    return av.VideoFrame.from_numpy_buffer(buffer[: planes.size].reshape(planes.shape), format="yuv420p")


#: zeroed bytes after each frame's planes, more than any SIMD read past the end
_SLACK = 4096
