"""Where streamed frames come from: `open_source(spec)` -> an iterator of `Frame`s.

SPEC may be
- a video file (anything PyAV's FFmpeg decodes);
- a folder of images (.png, .jpg, .jpeg, .bmp, .webp, .tif), in name order (numbers in names
  compared as numbers), at `fps` (default 30) frames per second;
- a camera: `/dev/videoN`, read through FFmpeg's v4l2 input;
- a URL FFmpeg reads: `rtsp://`, `http(s)://`, `file:`, ...

`fps` resamples a video, camera or URL to that many frames per second, by `rule`: "time" keeps a
frame when its time reaches the next 1/fps slot; "stride" keeps every round(native/fps)-th decoded
frame from the first, as paper 000's inference scripts (video.sampling.stride; the source's `fps`
is then native/step). For an image folder `fps` sets the frames' times.
Frames are uint8 RGB (H, W, 3), turned upright when the video carries a rotation. A source
that cannot be opened raises `VideoDecodeError` naming it; an image that cannot be read is
skipped and counted in `unreadable`.

`Realtime(source)` decodes in its own thread, delivering frames at their timestamps as a live
source would, and keeps only the newest frame not yet taken: when the consumer is slower, the
older frames are dropped (counted in `dropped`), so the answer is always about the latest frame.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from stillmotion.errors import UsageError
from stillmotion.video.container import open_video, reason
from stillmotion.video.decode import _rgb
from stillmotion.video.errors import VideoDecodeError
from stillmotion.video.sampling import RESAMPLE_RULES, stride

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: frame rate given to an image folder when none is asked for
FOLDER_FPS = 30.0


@dataclass
class Frame:
    index: int  # position among the frames the source delivered
    time: float  # seconds from the source's first frame
    image: np.ndarray  # uint8 (H, W, 3) RGB


class FrameSource:
    """Frames of one source; `fps` is its (resampled) frame rate, `name` what the user gave."""

    def __init__(self, name: str, fps: float):
        self.name, self.fps = name, fps
        self.unreadable: list[tuple[str, str]] = []  # (item, why) skipped

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ImageFolder(FrameSource):
    def __init__(self, folder: Path, fps: float | None):
        super().__init__(str(folder), fps or FOLDER_FPS)
        self.files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                            key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
        if not self.files:
            raise VideoDecodeError(folder, f"a folder with no images ({', '.join(IMAGE_SUFFIXES)})",
                                   "give a video file, a folder of images, /dev/videoN or a URL")

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.files:
            try:
                with Image.open(path) as image:
                    rgb = np.array(image.convert("RGB"))
            except (OSError, UnidentifiedImageError) as exc:
                self.unreadable.append((str(path), f"{type(exc).__name__}: {exc}"))
                continue
            yield Frame(index, index / self.fps, rgb)
            index += 1


class Decoded(FrameSource):
    """A video file, camera or URL through PyAV."""

    def __init__(self, spec: str, fps: float | None, rule: str = "time"):
        self.container = _open(spec, fps)
        stream = self.container.streams.video[0]
        native = float(stream.average_rate or stream.guessed_rate or 0.0) or 30.0
        stepping = bool(fps) and rule == "stride"
        self.step = stride(native, fps) if stepping else 1  # keep every step-th decoded frame
        super().__init__(spec, native / self.step if stepping else fps or native)
        self.resample = None if stepping else fps  # or one per 1/fps slot
        # one decoder thread: frame threading adds frames of delay and fights the model for the cores
        stream.codec_context.thread_count = 1

    def __iter__(self) -> Iterator[Frame]:
        stream = self.container.streams.video[0]
        decoded = self.container.decode(stream)
        first, index, slot, position = None, 0, 0.0, 0
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except (av.FFmpegError, ValueError) as exc:
                raise VideoDecodeError(self.name, f"decoding stopped at frame {position} ({reason(exc)})",
                                       "the frames before it were streamed") from exc
            seconds = frame.time if frame.time is not None else position / self.fps
            first = seconds if first is None else first
            seconds -= first
            position += 1
            if (position - 1) % self.step or (self.resample and seconds + 1e-6 < slot):
                continue
            slot = (np.floor(seconds * self.resample + 1e-6) + 1) / self.resample if self.resample else 0.0
            image = _rgb(frame)
            yield Frame(index, seconds, image)
            index += 1

    def close(self) -> None:
        self.container.close()


def _open(spec: str, fps: float | None) -> av.container.InputContainer:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", spec) and not Path(spec).exists():  # a URL
        options = {"rtsp_transport": "tcp"} if spec.startswith("rtsp") else {}
        return _av_open(spec, None, options, "check the address and that the server is up")
    if spec.startswith("/dev/video"):
        options = {"framerate": f"{fps:g}"} if fps else {}
        return _av_open(spec, "v4l2", options, "check that the camera is connected and not in use")
    return open_video(spec)


def _av_open(spec: str, fmt: str | None, options: dict, hint: str) -> av.container.InputContainer:
    try:
        container = av.open(spec, format=fmt, options=options, timeout=10.0)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoDecodeError(spec, f"cannot open the stream ({reason(exc)})", hint) from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(spec, "the stream has no video", hint)
    return container


def open_source(spec: str | Path, fps: float | None = None, rule: str = "time") -> FrameSource:
    """The frames of a video file, image folder, camera (/dev/videoN) or URL (see the module)."""
    if fps is not None and fps <= 0:
        raise UsageError(f"--fps must be positive, got {fps}")
    if rule not in RESAMPLE_RULES:
        raise UsageError(f"--resample must be one of {RESAMPLE_RULES}, got {rule!r}")
    path = Path(spec)
    if path.is_dir():
        return ImageFolder(path, fps)
    return Decoded(str(spec), fps, rule)


class Realtime:
    """A source decoded in a thread, frames delivered at their timestamps; the consumer gets the
    newest frame each time it asks, and frames it never took are counted in `dropped`."""

    def __init__(self, source: FrameSource):
        self.source = source
        self.dropped = 0
        self._latest: Frame | None = None
        self._done = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stillmotion-decode", daemon=True)

    def _run(self) -> None:
        try:
            start = time.perf_counter()
            for frame in self.source:
                wait = frame.time - (time.perf_counter() - start)
                if wait > 0 and self._stop.wait(wait):
                    break
                with self._ready:
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = frame
                    self._ready.notify()
                if self._stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
            self._error = exc
        finally:
            with self._ready:
                self._done = True
                self._ready.notify()

    def __iter__(self) -> Iterator[Frame]:
        self._thread.start()
        try:
            while True:
                with self._ready:
                    self._ready.wait_for(lambda: self._latest is not None or self._done)
                    frame, self._latest = self._latest, None
                if frame is None:
                    break
                yield frame
            if self._error is not None:
                raise self._error
        finally:
            self._stop.set()
            self._thread.join()


class Prefetch:
    """A source read ahead in a thread, up to `depth` frames, so that decoding overlaps the
    model's work; every frame is delivered, in order (the thread waits when the queue is full)."""

    def __init__(self, source: FrameSource, depth: int = 4):
        self.source = source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stillmotion-prefetch", daemon=True)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for frame in self.source:
                if not self._put(frame):
                    return
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
            self._put(exc)

    def __iter__(self) -> Iterator[Frame]:
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            self._thread.join()
