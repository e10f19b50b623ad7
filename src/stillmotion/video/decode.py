"""Probing and frame-exact reading with PyAV (threaded decoding).

`read_frames(path, indices)` returns exactly the frames a full sequential decode yields at those
positions. It never holds more than the requested frames: it decodes forward from the start and
stops after the last requested frame, and in containers with real timestamps (MP4/MOV,
Matroska/WebM) it seeks to the keyframe before a far-away frame instead of decoding the gap. A
decoded frame whose timestamp does not match the index sends the read back to counting from the
start, so a seek can never return the wrong frame. Rotation metadata is applied.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from stillmotion.errors import UsageError
from stillmotion.video.backends import BACKENDS, read_frames_torchcodec, torchcodec_available
from stillmotion.video.container import check_path, open_video, reason
from stillmotion.video.errors import VideoDecodeError
from stillmotion.video.index import FrameIndex, frame_index

#: seek only when the target's keyframe lies at least this many frames past the decoder
SEEK_MIN_GAP = 16

#: applied to each kept frame (H, W, 3) uint8 as it is decoded
FrameTransform = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int  # frames a full sequential decode yields (counted from packets)
    fps: float  # average frame rate
    duration: float  # seconds
    width: int  # as displayed, after rotation
    height: int
    rotation: int  # degrees counter-clockwise applied to the stored frames (0, 90, 180, 270)
    codec: str


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as uint8 RGB (H, W, 3), turned upright when it carries a rotation."""
    image = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that display the frame upright (its display matrix)."""
    return round((frame.rotation or 0) / 90) % 4


def probe(path: str | Path) -> VideoInfo:
    """Frame count, fps, duration, display size, rotation and codec of a video.

    Reads the header, demuxes the packets (no decoding) to count frames, and decodes the first
    frame to check that the stream decodes and to read its rotation.
    """
    index = frame_index(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError) as exc:
            raise VideoDecodeError(path, f"the first frame does not decode ({reason(exc)})") from exc
        if first is None or index.num_frames == 0:
            raise VideoDecodeError(path, "the video stream holds no frames")
        turns = _quarter_turns(first)
        width, height = (first.width, first.height) if turns % 2 == 0 else (first.height, first.width)
        if index.seekable and index.num_frames > 1:
            times = index.times(fps)
            duration = float(times[-1] * index.num_frames / (index.num_frames - 1))
        else:
            duration = index.num_frames / fps if fps else 0.0
        return VideoInfo(str(path), index.num_frames, fps, duration, width, height, turns * 90,
                         stream.codec_context.name)


def _keep(frame: np.ndarray) -> np.ndarray:
    return frame


class _Unreliable(Exception):
    """A decoded frame did not match the timestamp index: fall back to counting."""


def _decode_counting(path, wanted: set[int] | None, last: int | None,
                     transform: FrameTransform) -> dict[int, np.ndarray]:
    """Frames at positions `wanted` (all when None), counting from the start up to `last`."""
    kept, decoded = {}, 0
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for i, frame in enumerate(container.decode(stream)):
                decoded = i + 1
                if wanted is None or i in wanted:
                    kept[i] = transform(_rgb(frame))
                if last is not None and i >= last:
                    break
        except (av.FFmpegError, ValueError) as exc:
            raise VideoDecodeError(path, f"decoding failed after {decoded} frames ({reason(exc)})") from exc
    if decoded == 0:
        raise VideoDecodeError(path, "the video stream decodes to no frames")
    if last is not None and last >= decoded:
        raise VideoDecodeError(path, f"frame {last} was requested but the video decodes to only {decoded} frames",
                               "request indices below the frame count")
    return kept


def _decode_seeking(container, stream, index: FrameIndex, wanted: set[int], path,
                    transform: FrameTransform) -> dict[int, np.ndarray]:
    """Frames at positions `wanted`, seeking to the keyframe before each far-away one."""
    position = {int(p): i for i, p in enumerate(index.pts)}
    keyframe_pos = sorted(position[int(k)] for k in index.keyframes)
    kept: dict[int, np.ndarray] = {}
    frames: Iterator[av.VideoFrame] | None = None
    current = -1  # position of the last frame decoded
    for target in sorted(wanted):
        key = keyframe_pos[max(bisect.bisect_right(keyframe_pos, target) - 1, 0)]
        if frames is None or key - current > SEEK_MIN_GAP:
            container.seek(int(index.pts[key]), stream=stream, backward=True, any_frame=False)
            stream.codec_context.flush_buffers()
            frames, current = container.decode(stream), key - 1
        while current < target:
            try:
                frame = next(frames, None)
            except (av.FFmpegError, ValueError) as exc:
                raise VideoDecodeError(path, f"decoding failed near frame {current + 1} ({reason(exc)})") from exc
            pos = None if frame is None else position.get(frame.pts)
            if pos is None:
                raise _Unreliable
            if pos <= current:  # before the seek target (an earlier keyframe, or open-GOP leading frames)
                continue
            if pos != current + 1:
                raise _Unreliable
            current = pos
            if pos in wanted:
                kept[pos] = transform(_rgb(frame))
    return kept


def read_frames(path: str | Path, indices: Sequence[int] | None = None, seek: bool = True,
                backend: str = "pyav", transform: FrameTransform | None = None) -> np.ndarray:
    """Decode the frames at positions `indices` (every frame when None), as a full sequential
    decode numbers them.

    Returns uint8 RGB frames (T, H, W, 3) in the order of `indices` (repeats allowed), rotated
    upright. `seek=False` forces counting from the start. `backend`: "pyav" (default),
    "torchcodec", or "auto" (torchcodec when installed and working, else PyAV). `transform`
    maps each decoded frame (H, W, 3) to what is kept (e.g. a resized crop), as it is decoded, so
    a long high-resolution video never sits in memory whole; the result stacks its outputs. Raises
    VideoDecodeError naming the file when it cannot be decoded or an index lies past its last
    frame.
    """
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {BACKENDS}, got {backend!r}")
    transform = transform or _keep
    if backend == "torchcodec" or (backend == "auto" and torchcodec_available()):
        if not torchcodec_available():
            raise UsageError("backend 'torchcodec' is not usable here: pip install torchcodec (it needs FFmpeg's "
                             "shared libraries), or use backend='pyav'")
        check_path(path)
        frames = read_frames_torchcodec(path, indices)
        return frames if transform is _keep else np.stack([transform(f) for f in frames])
    if indices is None:
        kept = _decode_counting(path, None, None, transform)
        return np.stack([kept[i] for i in range(len(kept))])
    wanted = {int(i) for i in indices}
    if not wanted:
        raise UsageError(f"{path}: no frame indices requested")
    if min(wanted) < 0:
        raise UsageError(f"{path}: frame indices must be >= 0, got {min(wanted)}")
    last = max(wanted)
    index = frame_index(path) if seek else None
    kept = None
    if index is not None and index.seekable:
        if last >= index.num_frames:
            raise VideoDecodeError(path, f"frame {last} was requested but the video holds only "
                                   f"{index.num_frames} frames", "request indices below the frame count")
        with open_video(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                kept = _decode_seeking(container, stream, index, wanted, path, transform)
            except _Unreliable:
                kept = None
    if kept is None:
        kept = _decode_counting(path, wanted, last, transform)
    return np.stack([kept[int(i)] for i in indices])

