"""A video's frame index from demuxing alone (no decoding): how many frames, and for
containers that carry real presentation timestamps, each frame's timestamp and the keyframes.

Frame i of a video is the i-th frame of a full sequential decode. In MP4/MOV and Matroska/WebM
packets carry presentation timestamps, so the frame at position i has the i-th smallest packet
timestamp, even at a variable frame rate, and a decoder that starts at a keyframe can tell
which frame it is holding. Other containers (AVI above all, where B-frames get made-up
timestamps) are marked unseekable: their frames are found by counting from the start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from stillmotion.video.container import check_path, open_video, reason
from stillmotion.video.errors import VideoDecodeError

#: container format names (as FFmpeg spells them) whose packet timestamps are presentation times
_TIMESTAMPED_FORMATS = ("mov", "mp4", "matroska", "webm")


@dataclass(frozen=True)
class FrameIndex:
    num_frames: int  # video packets with data: one per frame
    pts: np.ndarray | None  # (num_frames,) sorted presentation timestamps; None if unseekable
    keyframes: np.ndarray | None  # sorted timestamps of keyframes; None if unseekable
    time_base: Fraction

    @property
    def seekable(self) -> bool:
        return self.pts is not None

    def times(self, fps: float) -> np.ndarray:
        """Each frame's time in seconds from the first frame: from timestamps where the
        container has them, else i / fps."""
        if self.pts is not None:
            return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)
        return np.arange(self.num_frames) / fps


def build_index(container: av.container.InputContainer, path: str | Path) -> FrameIndex:
    stream = container.streams.video[0]
    pts, keys, count = [], [], 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    except av.FFmpegError as exc:
        raise VideoDecodeError(path, f"demuxing failed after {count} packets ({reason(exc)})") from exc
    fmt = container.format.name.split(",")
    timestamped = any(name in _TIMESTAMPED_FORMATS for name in fmt)
    usable = timestamped and count > 0 and None not in pts and len(set(pts)) == count and None not in keys and keys
    sorted_pts = np.sort(np.asarray(pts, dtype=np.int64)) if usable else None
    return FrameIndex(
        num_frames=count,
        pts=sorted_pts,
        keyframes=np.sort(np.asarray(keys, dtype=np.int64)) if usable else None,
        time_base=stream.time_base or Fraction(1, 1),
    )


@lru_cache(maxsize=256)
def _cached(path: str, mtime_ns: int, size: int) -> FrameIndex:
    with open_video(path) as container:
        return build_index(container, path)


def frame_index(path: str | Path) -> FrameIndex:
    """The frame index of a file, cached while the file is unchanged."""
    st = os.stat(check_path(path))
    return _cached(str(path), st.st_mtime_ns, st.st_size)
