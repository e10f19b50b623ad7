"""Encode every sampled frame of every video once into a TokenStore.

The pipeline: decode worker processes read each video and turn every frame, as it decodes,
into the encoder's input crops (view 0 plus any augmented views, uint8 S x S); the main process
batches the crops of several videos together, normalizes and encodes them, pools and converts
the tokens and writes one file per video. Decoding runs up to `prefetch` videos ahead of
encoding, so the two overlap.

Videos already in the store are skipped (a killed run resumes); videos that cannot be read are
recorded in the store's failures and the run goes on. Under torchrun, rank r of w takes every
w-th video of the list, so no video is done twice.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from stillmotion.cache.pool import pool_tokens, pooled_shape
from stillmotion.cache.store import DTYPES, TokenStore
from stillmotion.cache.views import ViewMaker
from stillmotion.data.manifest import Sample
from stillmotion.encoders.base import FrozenEncoder
from stillmotion.runtime import cores, keep_freed_memory
from stillmotion.video.decode import probe, read_frames
from stillmotion.video.errors import VideoDecodeError
from stillmotion.video.index import frame_index
from stillmotion.video.sampling import resample


@dataclass(frozen=True)
class ExtractConfig:
    fps: float | None = None  # resample every video to this rate; None keeps every frame
    views: int = 0  # augmented views per video besides the plain view 0
    pool_space: int | None = None  # average-pool the token grid to s x s
    pool_channels: int | None = None  # average-pool the token width to c
    dtype: str = "float16"  # "float16", "float32" or "int8" (a scale per token)
    seed: int = 0  # draws the augmented views
    batch_frames: int = 16  # encoder batch, filled with frames of several videos (see default_batch)
    workers: int = 1  # decode processes; 0 decodes in a thread of this process
    prefetch: int | None = None  # videos decoded ahead of encoding (default 2 per worker, at least 2)
    compile: bool = False  # torch.compile the encoder (worth it on CUDA for long jobs)

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        for name in ("views", "workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {self.batch_frames}")


@dataclass
class ExtractReport:
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    frames: int = 0  # images encoded: frames x views
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def cache_meta(encoder: FrozenEncoder, cfg: ExtractConfig = ExtractConfig()) -> dict:
    """Everything a cache's tokens depend on: checked whenever the cache is opened for writing."""
    grid, dim = pooled_shape(encoder.grid, encoder.dim, cfg.pool_space, cfg.pool_channels)
    meta = {
        "fingerprint": encoder.fingerprint, **encoder.settings(), "dtype": cfg.dtype, "fps": cfg.fps,
        "views": 1 + cfg.views, "pool_space": cfg.pool_space, "pool_channels": cfg.pool_channels,
        "token_grid": list(grid), "token_dim": dim,
    }
    if cfg.views:
        meta["view_seed"] = cfg.seed
    return meta


def frame_positions(sample: Sample, fps: float | None) -> np.ndarray | None:
    """Source frame positions to encode: those shown between the sample's start and end (seconds,
    when given), resampled to `fps` when given; None means every frame."""
    if fps is None and sample.start is None and sample.end is None:
        return None
    times = frame_index(sample.path).times(probe(sample.path).fps)
    start = -np.inf if sample.start is None else sample.start
    end = np.inf if sample.end is None else sample.end
    positions = np.flatnonzero((times >= start - 1e-9) & (times < end - 1e-9))
    if len(positions) == 0:
        raise VideoDecodeError(sample.path, f"no frame lies between start={sample.start} and end={sample.end} s "
                               f"(the video lasts {times[-1]:.2f} s)", "fix the start/end of this sample in the manifest")
    return positions if fps is None else positions[resample(times[positions], fps)]


@dataclass
class _Decoded:
    sample: Sample
    crops: np.ndarray | None = None  # (U, V, S, S, 3) uint8: the U distinct frames, V views each
    positions: np.ndarray | None = None  # (T,) source frame of each stored row
    rows: np.ndarray | None = None  # (T,) which of the U crops each row is
    error: str | None = None


def _decode(sample: Sample, size: int, cfg: ExtractConfig) -> _Decoded:
    """Runs in a worker: decode a video's frames straight into its views' crops."""
    try:
        positions = frame_positions(sample, cfg.fps)
        maker = ViewMaker(size, cfg.views, cfg.seed, sample.id)
        if positions is None:
            crops = read_frames(sample.path, transform=maker)
            positions = rows = np.arange(len(crops))
        else:
            unique, rows = np.unique(positions, return_inverse=True)
            crops = read_frames(sample.path, unique, transform=maker)
        return _Decoded(sample, crops, positions, rows)
    except VideoDecodeError as exc:
        return _Decoded(sample, error=exc.problem)
    except Exception as exc:  # a batch job must go on: report anything a file makes go wrong
        return _Decoded(sample, error=f"{type(exc).__name__}: {exc}")


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


def default_workers(device: torch.device) -> int:
    """Decode processes: on CUDA most cores feed the GPU; on CPU one per 8 cores, the rest encode."""
    return max(1, min(8, cores() - 1)) if device.type == "cuda" else max(1, cores() // 8)


def default_batch(device: torch.device) -> int:
    """Frames per encoder batch: large on CUDA; on CPU small batches stay in cache and ran faster."""
    return 128 if device.type == "cuda" else 16


def decode_pool(workers: int) -> Executor:
    """The pool that decodes videos for `extract`: `workers` processes (a forkserver, so they
    start clean of this process's threads), or one thread of this process for 0. The processes
    start at once, so creating the pool before loading a large encoder hides their start-up."""
    if workers == 0:
        return ThreadPoolExecutor(max_workers=1)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["stillmotion.cache.extract"])
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_start,
                               initargs=(os.getpid(),))
    for _ in range(workers):
        pool.submit(int)  # start the processes now
    return pool


def _prefetched(pool: Executor, samples: list[Sample], size: int, cfg: ExtractConfig, ahead: int) -> Iterator[_Decoded]:
    """Decoded videos in order, with at most `ahead` submitted before they are used."""
    queue: deque[Future] = deque()
    for sample in samples:
        queue.append(pool.submit(_decode, sample, size, cfg))
        if len(queue) > ahead:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


class _Encoder:
    """Encodes batches of crops from several videos and writes each video's tokens."""

    def __init__(self, encoder: FrozenEncoder, store: TokenStore, cfg: ExtractConfig):
        self.encoder, self.store, self.cfg = encoder, store, cfg
        self.pending: list[_Decoded] = []

    @property
    def pending_images(self) -> int:
        return sum(d.crops.shape[0] * d.crops.shape[1] for d in self.pending)

    def add(self, item: _Decoded) -> int:
        self.pending.append(item)
        return self.flush() if self.pending_images >= self.cfg.batch_frames else 0

    def flush(self) -> int:
        """Encode and write every pending video; returns the images encoded."""
        if not self.pending:
            return 0
        size = self.encoder.image_size
        crops = np.concatenate([d.crops.reshape(-1, size, size, 3) for d in self.pending])
        pixels = self.encoder.normalize_crops(crops)
        if self.cfg.compile:  # keep every batch the same shape: one compiled graph
            pad = -len(pixels) % self.cfg.batch_frames
            pixels = torch.cat([pixels, pixels.new_zeros(pad, *pixels.shape[1:])])
        tokens = self.encoder.encode(pixels, batch_size=self.cfg.batch_frames)[: len(crops)]
        offset = 0
        for d in self.pending:
            u, v = d.crops.shape[:2]
            video = tokens[offset : offset + u * v].reshape(u, v, *tokens.shape[1:]).transpose(0, 1)[:, d.rows]
            video = pool_tokens(video, self.encoder.grid, self.cfg.pool_space, self.cfg.pool_channels)
            self.store.write(d.sample.id, video.numpy(), d.positions)  # (V, T, N, D)
            offset += u * v
        self.pending.clear()
        return offset


def extract(samples: list[Sample], encoder: FrozenEncoder, store: TokenStore, cfg: ExtractConfig = ExtractConfig(),
            progress: bool = True, rank: int = 0, world: int = 1, pool: Executor | None = None) -> ExtractReport:
    """Tokens for the sampled frames of every sample of this rank's share (every `world`-th from
    `rank`) not yet in `store`. Decodes in `pool` when given (see `decode_pool`), else in a
    pool of `cfg.workers` started here. With worker processes, call this under
    `if __name__ == "__main__":` in a script."""
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"sample ids must be unique, these appear more than once: {twice[:10]}; give each an id")
    mine = samples[rank::world]
    todo = [s for s in mine if s.id not in store]
    report = ExtractReport(skipped=len(mine) - len(todo))
    if encoder.device.type == "cpu":
        keep_freed_memory()
    if cfg.compile:
        encoder.compile(dynamic=False)
    writer = _Encoder(encoder, store, cfg)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"extract tokens{f' (rank {rank})' if world > 1 else ''}", unit="video",
               disable=not progress)
    ahead = cfg.prefetch or max(2, 2 * cfg.workers)
    own_pool = pool is None
    pool = decode_pool(cfg.workers) if own_pool else pool
    try:
        for item in _prefetched(pool, todo, encoder.image_size, cfg, ahead):
            if item.error is not None:
                store.record_failure(item.sample.id, item.sample.path, item.error)
                report.failed.append((item.sample.path, item.error))
            else:
                report.frames += writer.add(item)
                report.written += 1
            bar.update(1)
            bar.set_postfix(frames_per_s=f"{report.frames / max(time.perf_counter() - start, 1e-9):.0f}")
        report.frames += writer.flush()
    finally:
        if own_pool:
            pool.shutdown(cancel_futures=True)
    bar.close()
    report.seconds = time.perf_counter() - start
    return report
