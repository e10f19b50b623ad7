"""Encode every frame of every video once into a TokenStore.

Decoding runs in a background thread, overlapped with encoding; frames of several videos are
batched together. Videos already in the store are skipped (a killed run resumes), unreadable
ones are recorded in the store's failures.jsonl and the run goes on.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from stillmotion.cache.store import TokenStore
from stillmotion.data.manifest import Sample
from stillmotion.encoders.base import FrozenEncoder
from stillmotion.video.decode import read_frames
from stillmotion.video.errors import VideoDecodeError


@dataclass
class ExtractReport:
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0


def cache_meta(encoder: FrozenEncoder, dtype: str = "float16") -> dict:
    """Everything a cache's tokens depend on: checked whenever the cache is opened for writing."""
    return {"fingerprint": encoder.fingerprint, "dtype": dtype, "frames": "all", **encoder.settings()}


def _decode(sample: Sample):
    try:
        return sample, read_frames(sample.path), None
    except VideoDecodeError as exc:
        return sample, None, exc.problem


def _prefetched(pool: ThreadPoolExecutor, samples: list[Sample], ahead: int) -> Iterator[tuple]:
    """Decode results in order, with at most `ahead` videos decoded before they are used."""
    queue: deque[Future] = deque()
    for sample in samples:
        queue.append(pool.submit(_decode, sample))
        if len(queue) > ahead:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def extract(samples: list[Sample], encoder: FrozenEncoder, store: TokenStore, batch_frames: int = 64,
            prefetch: int = 4, progress: bool = True) -> ExtractReport:
    """Tokens for every frame of every sample not yet in `store`; decoding runs up to
    `prefetch` videos ahead of encoding."""
    report = ExtractReport(skipped=sum(1 for s in samples if s.id in store))
    todo = [s for s in samples if s.id not in store]
    start = time.perf_counter()
    pending: list[tuple[Sample, np.ndarray]] = []

    def flush():
        if not pending:
            return
        pixels = torch.cat([encoder.preprocess(frames) for _, frames in pending])
        tokens = encoder.encode(pixels, batch_size=batch_frames).numpy()
        offset = 0
        for sample, frames in pending:
            store.write(sample.id, tokens[offset : offset + len(frames)], range(len(frames)))
            offset += len(frames)
            report.written += 1
        report.frames += offset
        pending.clear()

    bar = tqdm(total=len(todo), desc="extract tokens", unit="video", disable=not progress)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for sample, frames, error in _prefetched(pool, todo, ahead=prefetch):
            if error is not None:
                store.record_failure(sample.path, error)
                report.failed.append((sample.path, error))
            else:
                pending.append((sample, frames))
                if sum(len(f) for _, f in pending) >= batch_frames:
                    flush()
            bar.update(1)
            bar.set_postfix(frames_per_s=f"{report.frames / max(time.perf_counter() - start, 1e-9):.0f}")
        flush()
    bar.close()
    report.seconds = time.perf_counter() - start
    return report
