"""Encode every sampled frame of every video once into a TokenStore.

The pipeline: decode worker processes (`decoding.py`) read each video and turn every frame, as
it decodes, into the encoder's input crops (view 0 plus any augmented views, uint8 S x S); the main process
normalizes and encodes each video's crops in batches of its own (see `_Encoder`: a video's tokens
never depend on the videos beside it), pools and converts the tokens and writes one file per
video. Decoding runs up to `prefetch` videos ahead of encoding, so the two overlap.

Videos already in the store are skipped (a killed run resumes); videos that cannot be read are
recorded in the store's failures and the run goes on. Under torchrun, rank r of w takes every
w-th video of the list, so no video is done twice.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from stillmotion.cache.decoding import Decoded, DecodeSpec, decode_pool, decoded
from stillmotion.cache.pool import pool_tokens, pooled_shape
from stillmotion.cache.store import DTYPES, TokenStore
from stillmotion.data.manifest import Sample
from stillmotion.encoders.base import FrozenEncoder
from stillmotion.errors import UsageError
from stillmotion.runtime import cores, keep_freed_memory
from stillmotion.video.sampling import RESAMPLE_RULES


@dataclass(frozen=True)
class ExtractConfig:
    fps: float | None = None  # resample every video to this rate; None keeps every frame
    rule: str = "time"  # how: by timestamp or paper 000's frame stride (video.sampling.RESAMPLE_RULES)
    views: int = 0  # augmented views per video besides the plain view 0
    pool_space: int | None = None  # average-pool the token grid to s x s
    pool_channels: int | None = None  # average-pool the token width to c
    dtype: str = "float16"  # "float16", "float32" or "int8" (a scale per token)
    seed: int = 0  # draws the augmented views
    batch_frames: int = 16  # encoder batch, from one video at a time (see default_batch)
    workers: int = 1  # decode processes; 0 decodes in a thread of this process
    prefetch: int | None = None  # videos decoded ahead of encoding (default 2 per worker, at least 2)
    compile: bool = False  # torch.compile the encoder (worth it on CUDA for long jobs)

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise UsageError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.fps is not None and self.fps <= 0:
            raise UsageError(f"fps must be > 0, got {self.fps}")
        if self.rule not in RESAMPLE_RULES:
            raise UsageError(f"the resample rule must be one of {RESAMPLE_RULES}, got {self.rule!r}")
        for name in ("views", "workers"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_frames < 1:
            raise UsageError(f"batch_frames must be >= 1, got {self.batch_frames}")


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
    if (cfg.pool_space or cfg.pool_channels) and (encoder.extra or encoder.num_layers > 1):
        raise UsageError(f"{encoder.name}: pooling works on one layer of patch tokens; leave --pool-space and "
                         "--pool-channels unset with all tokens or several layers")
    grid, dim = pooled_shape(encoder.grid, encoder.dim, cfg.pool_space, cfg.pool_channels)
    meta = {
        "fingerprint": encoder.fingerprint, **encoder.settings(), "compute": compute_precision(encoder),
        "dtype": cfg.dtype, "fps": cfg.fps,
        "views": 1 + cfg.views, "pool_space": cfg.pool_space, "pool_channels": cfg.pool_channels,
        "token_grid": list(grid), "token_dim": dim,
    }
    if cfg.views:
        meta["view_seed"] = cfg.seed
    if cfg.fps is not None and cfg.rule != "time":  # caches made by timestamp keep their meta
        meta["resample"] = cfg.rule
    return meta


def compute_precision(encoder: FrozenEncoder) -> str:
    """The precision the encoder computes in: bf16 autocast on CUDA (`FrozenEncoder.encode`),
    float32 elsewhere. Tokens of the two differ by rounding, so a cache records which it holds."""
    return "bfloat16" if encoder.device.type == "cuda" else "float32"


def default_workers(device: torch.device) -> int:
    """Decode processes: on CUDA most cores feed the GPU; on CPU one per 8 cores, the rest encode."""
    return max(1, min(8, cores() - 1)) if device.type == "cuda" else max(1, cores() // 8)


def default_batch(device: torch.device) -> int:
    """Frames per encoder batch: large on CUDA; on CPU small batches stay in cache and ran faster."""
    return 128 if device.type == "cuda" else 16


class _Encoder:
    """Encodes each video's images in batches of its own: `batch_frames` at a time from its first
    image, the last batch shorter. Kernels are chosen by batch shape and, on the CPU, even the
    other images in a batch can change a token's last bits, so batches shared between videos
    would make a video's tokens depend on which videos were encoded beside it: on what a resumed
    job skipped, on the list, on the number of ranks. Batched alone, a video's tokens depend on
    the video and the settings only."""

    def __init__(self, encoder: FrozenEncoder, store: TokenStore, cfg: ExtractConfig):
        self.encoder, self.store, self.cfg = encoder, store, cfg

    def add(self, item: Decoded) -> int:
        """Encode a decoded video and write its tokens; returns the images encoded."""
        size, batch = self.encoder.image_size, self.cfg.batch_frames
        images = item.crops.reshape(-1, size, size, 3)  # (U * V, S, S, 3): frame by frame, its views together
        tokens = torch.cat([self._encode(images[i : i + batch]) for i in range(0, len(images), batch)])
        u, v = item.crops.shape[:2]
        video = tokens.reshape(u, v, *tokens.shape[1:]).transpose(0, 1)[:, item.rows]  # (V, T, N, D)
        video = pool_tokens(video, self.encoder.grid, self.cfg.pool_space, self.cfg.pool_channels)
        self.store.write(item.sample.id, video.numpy(), item.positions)
        return len(images)

    def _encode(self, images: np.ndarray) -> torch.Tensor:
        count, batch = len(images), self.cfg.batch_frames
        pixels = self.encoder.normalize_crops(images)
        if self.cfg.compile and count < batch:  # one shape, one compiled graph
            pixels = torch.cat([pixels, pixels.new_zeros(batch - count, *pixels.shape[1:])])
        return self.encoder.encode(pixels, batch_size=batch)[:count]


def extract(samples: list[Sample], encoder: FrozenEncoder, store: TokenStore, cfg: ExtractConfig = ExtractConfig(),
            progress: bool = True, rank: int = 0, world: int = 1, pool: Executor | None = None) -> ExtractReport:
    """Tokens for the sampled frames of every sample of this rank's share (every `world`-th from
    `rank`) not yet in `store`. Decodes in `pool` when given (see `decode_pool`), else in a
    pool of `cfg.workers` started here. With worker processes, call this under
    `if __name__ == "__main__":` in a script."""
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise UsageError(f"sample ids must be unique, these appear more than once: {twice[:10]}; give each an id")
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
    pool = decode_pool(cfg.workers if todo else 0) if own_pool else pool
    try:
        spec = DecodeSpec(encoder.image_size, cfg.fps, cfg.rule, cfg.views, cfg.seed, encoder.resize)
        for item in decoded(pool, todo, spec, ahead):
            if item.error is not None:
                store.record_failure(item.sample.id, item.sample.path, item.error)
                report.failed.append((item.sample.path, item.error))
            else:
                report.frames += writer.add(item)
                report.written += 1
            bar.update(1)
            bar.set_postfix(frames_per_s=f"{report.frames / max(time.perf_counter() - start, 1e-9):.0f}")
    finally:
        if own_pool:
            pool.shutdown(cancel_futures=True)
    bar.close()
    report.seconds = time.perf_counter() - start
    return report
