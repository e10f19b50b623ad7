"""Opening a file as a video: the checks every reader (index, decoder, stream source) shares,
each failure a VideoDecodeError naming the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import av

from stillmotion.video.errors import VideoDecodeError


def reason(exc: Exception) -> str:
    """What FFmpeg or the OS said, without "[Errno 1094995529]" and the path: "invalid data found
    when processing input", "connection refused"."""
    why = getattr(exc, "strerror", None) or str(exc)
    return why[:1].lower() + why[1:]


def check_path(path: str | Path) -> Path:
    """A path that names a non-empty regular file, else a VideoDecodeError saying what it is."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise VideoDecodeError(p, f"dangling symbolic link (to {p.readlink()})")
    if not p.exists():
        raise VideoDecodeError(p, "no such file")
    if not p.is_file():
        raise VideoDecodeError(p, "not a regular file (a directory?)")
    if p.stat().st_size == 0:
        raise VideoDecodeError(p, "the file is empty (0 bytes)")
    return p


def open_video(path: str | Path) -> av.container.InputContainer:
    """Open a file that must hold a video stream; every failure is a VideoDecodeError."""
    p = check_path(path)
    try:
        container = av.open(str(p))
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoDecodeError(p, f"not a readable video container (FFmpeg: {reason(exc)})") from exc
    fmt = container.format.name
    if fmt.endswith("_pipe") or fmt.startswith("image2"):
        container.close()
        raise VideoDecodeError(p, f"a still image ({fmt.removesuffix('_pipe')}), not a video")
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        container.close()
        raise VideoDecodeError(p, f"the file has no video stream (streams: {kinds})")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise VideoDecodeError(p, "the video stream has no decoder available")
    return container
