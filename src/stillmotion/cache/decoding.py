"""The decode stage of extraction: worker processes that read a video and turn each frame, as
it decodes, into the encoder's input crops for every view.

`decode_pool(workers)` starts the workers; `decoded(pool, samples, spec, ahead)` yields the
videos in order with at most `ahead` in flight. A video that cannot be read comes back with
its `error` set instead of raising, so a batch job goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from stillmotion.cache.views import ViewMaker
from stillmotion.data.manifest import Sample
from stillmotion.video.decode import probe, read_frames
from stillmotion.video.errors import VideoDecodeError
from stillmotion.video.index import frame_index
from stillmotion.video.sampling import resample_positions


@dataclass(frozen=True)
class DecodeSpec:
    size: int  # the encoder's input size S
    fps: float | None = None  # resample to this rate; None keeps every frame
    rule: str = "time"  # how (video.sampling.RESAMPLE_RULES)
    views: int = 0  # augmented views besides view 0
    seed: int = 0  # draws the augmented views
    resize: str = "antialias"  # how view 0 is made (video.transforms.RESIZES)


def frame_positions(sample: Sample, fps: float | None, rule: str = "time") -> np.ndarray | None:
    """Source frame positions to encode: those shown between the sample's start and end (seconds,
    when given), brought to `fps` when given by `rule` (video.sampling.RESAMPLE_RULES: "stride"
    steps from the first frame of that span); None means every frame."""
    if fps is None and sample.start is None and sample.end is None:
        return None
    info = probe(sample.path)
    times = frame_index(sample.path).times(info.fps)
    start = -np.inf if sample.start is None else sample.start
    end = np.inf if sample.end is None else sample.end
    positions = np.flatnonzero((times >= start - 1e-9) & (times < end - 1e-9))
    if len(positions) == 0:
        raise VideoDecodeError(sample.path, f"no frame lies between start={sample.start} and end={sample.end} s "
                               f"(the video lasts {times[-1]:.2f} s)",
                               "fix the start/end of this sample in the manifest")
    return positions if fps is None else positions[resample_positions(times[positions], fps, rule, info.fps)]


@dataclass
class Decoded:
    sample: Sample
    crops: np.ndarray | None = None  # (U, V, S, S, 3) uint8 (float32: resize=reference): U frames, V views each
    positions: np.ndarray | None = None  # (T,) source frame of each stored row
    rows: np.ndarray | None = None  # (T,) which of the U crops each row is
    error: str | None = None


def decode_video(sample: Sample, spec: DecodeSpec) -> Decoded:
    """Runs in a worker: decode a video's frames straight into its views' crops."""
    try:
        positions = frame_positions(sample, spec.fps, spec.rule)
        maker = ViewMaker(spec.size, spec.views, spec.seed, sample.id, spec.resize)
        if positions is None:
            crops = read_frames(sample.path, transform=maker)
            positions = rows = np.arange(len(crops))
        else:
            unique, rows = np.unique(positions, return_inverse=True)
            crops = read_frames(sample.path, unique, transform=maker)
        return Decoded(sample, crops, positions, rows)
    except VideoDecodeError as exc:
        return Decoded(sample, error=exc.problem)
    except Exception as exc:  # noqa: BLE001 - a batch job must go on: report anything a file makes go wrong
        return Decoded(sample, error=f"{type(exc).__name__}: {exc}")


def _worker_start(parent: int | None = None) -> None:
    torch.set_num_threads(1)  # each worker resizes one frame at a time; parallelism is across workers
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """A worker whose job was killed (SIGKILL leaves no time to stop it) would wait forever
    for work, holding the job's output pipes: it exits within a second of its parent."""
    while _alive(parent):
        time.sleep(1.0)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has died
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def decode_pool(workers: int) -> Executor:
    """The pool that decodes videos: `workers` processes (a forkserver, so they
    start clean of this process's threads), or one thread of this process for 0. The processes
    start at once, so creating the pool before loading a large encoder hides their start-up."""
    if workers == 0:
        return ThreadPoolExecutor(max_workers=1)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["stillmotion.cache.decoding"])
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_start,
                               initargs=(os.getpid(),))
    for _ in range(workers):
        pool.submit(int)  # start the processes now
    return pool


def decoded(pool: Executor, samples: list[Sample], spec: DecodeSpec, ahead: int) -> Iterator[Decoded]:
    """Decoded videos in order, with at most `ahead` submitted before they are used."""
    queue: deque[Future] = deque()
    for sample in samples:
        queue.append(pool.submit(decode_video, sample, spec))
        if len(queue) > ahead:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()
