"""From videos to batches of clips: one data path, two token sources.

`cached` (the default) reads a clip's rows from the token cache (memory-mapped, only those
rows), a random cached view per read when the cache holds augmented views. `online` decodes the
same rows from the video, applies a random augmentation (zoom, crop, flip, colour) and returns
uint8 crops that the trainer sends through the frozen encoder. The rows are the same in both: the
frames at the run's fps (every frame when none), so the two differ only in where tokens come from.

Batches are dicts: `tokens` (B, T, N, D) or `pixels` (B, T, S, S, 3) uint8, `mask` (B, T) real
frames, `target` (B,) for class tasks, `hide` (B, T) for masked-token prediction, `index` (B,).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from stillmotion.cache.decoding import frame_positions
from stillmotion.cache.store import TokenStore
from stillmotion.cache.views import augment, view_params
from stillmotion.data.manifest import Sample
from stillmotion.seeding import seeded
from stillmotion.tasks.base import Clip
from stillmotion.video.decode import probe, read_frames
from stillmotion.video.transforms import resize_center_crop, to_tensor


class TokenClips(Dataset):
    """Clips read from a TokenStore -> {"tokens": (T, N, D) float32, ...}."""

    def __init__(self, store: TokenStore, clips: list[Clip], key: str = "", augment: bool = False):
        self.store, self.clips, self.key, self.augment = store, clips, key, augment

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        view = int(seeded(self.key, i).integers(self.store.num_views)) if self.augment else 0
        tokens = self.store.read(clip.video, frames=list(clip.rows), view=view)
        return {"tokens": torch.from_numpy(tokens.astype(np.float32)), "clip": clip, "index": i}


class PixelClips(Dataset):
    """Clips decoded from their videos -> {"pixels": (T, S, S, 3) uint8, ...}, augmented with
    parameters drawn from (key, clip index) when `augment`."""

    def __init__(self, samples: dict[str, Sample], positions: dict[str, np.ndarray], clips: list[Clip], size: int,
                 key: str = "", augment: bool = True):
        self.samples, self.positions, self.clips = samples, positions, clips
        self.size, self.key, self.augment = size, key, augment

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        rows = np.asarray(clip.rows)
        wanted = self.positions[clip.video][rows]
        unique, inverse = np.unique(wanted, return_inverse=True)
        frames = to_tensor(read_frames(self.samples[clip.video].path, unique), torch.uint8)[inverse]
        if self.augment:  # the key holds the run's seed and the epoch
            crops = augment(frames, self.size, view_params(0, f"{self.key}/{i}", 1))
        else:
            crops = resize_center_crop(frames, self.size)
        return {"pixels": crops.permute(0, 2, 3, 1).contiguous(), "clip": clip, "index": i}


def video_rows(sample: Sample, fps: float | None) -> np.ndarray:
    """The source frame of each row of a video at `fps` (every frame when None): the rows the
    cache stores, so online clips match cached ones."""
    positions = frame_positions(sample, fps)
    return np.arange(probe(sample.path).num_frames) if positions is None else positions


def collate(items: list[dict]) -> dict:
    """Pad clips at the end to the longest -> the batch dict described in the module docstring."""
    key = "tokens" if "tokens" in items[0] else "pixels"
    t_max = max(len(it[key]) for it in items)
    first = items[0][key]
    x = torch.zeros(len(items), t_max, *first.shape[1:], dtype=first.dtype)
    mask = torch.zeros(len(items), t_max, dtype=torch.bool)
    for b, it in enumerate(items):
        x[b, : len(it[key])] = it[key]
        mask[b, : len(it[key])] = True
    batch = {key: x, "mask": mask, "index": torch.tensor([it["index"] for it in items])}
    targets = [it["clip"].target for it in items]
    if all(isinstance(t, int) for t in targets):
        batch["target"] = torch.tensor(targets)
    elif all(isinstance(t, tuple) for t in targets):  # frames to hide
        hide = torch.zeros(len(items), t_max, dtype=torch.bool)
        for b, t in enumerate(targets):
            hide[b, list(t)] = True
        batch["hide"] = hide
    return batch
