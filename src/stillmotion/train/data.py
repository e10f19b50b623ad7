"""From videos to batches of clips: one data path, two token sources.

`cached` (the default) reads a clip's rows from the token cache (memory-mapped, only those
rows), a random cached view per read when the cache holds augmented views. `online` decodes the
same rows from the video, applies a random augmentation (zoom, crop, flip, colour) and returns
uint8 crops (float32 with `data.resize=reference`) that the trainer sends through the frozen
encoder. The rows are the same in both: the frames at the run's fps (every frame when none), and
the plain crops are made the same way, so the two differ only in where tokens come from.

Batches are dicts: `tokens` (B, T, N, D) or `pixels` (B, T, S, S, 3) uint8, `mask` (B, T) real
frames, `target` (B,) for class tasks, `hide` (B, T) for masked-token prediction, `index` (B,),
and the task's per-frame targets (`boxes` (B, T, 4), `points` (B, T, P, 2), `visible`
(B, T, P), `depth` (B, T, R, R)), mapped into the view the encoder saw and padded with NaN
(False for booleans) past a clip's end.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from stillmotion.cache.decoding import frame_positions
from stillmotion.cache.store import TokenStore
from stillmotion.cache.views import crop_view, view_params
from stillmotion.data.manifest import Sample
from stillmotion.seeding import seeded
from stillmotion.tasks.base import Clip, Task
from stillmotion.video.decode import probe, read_frames
from stillmotion.video.transforms import to_tensor


class TokenClips(Dataset):
    """Clips read from a TokenStore -> {"tokens": (T, N, D) float32, ...}; `size` is the
    encoder's input size, for mapping the task's per-frame targets into the cached view."""

    def __init__(self, store: TokenStore, clips: list[Clip], key: str = "", augment: bool = False,
                 task: Task | None = None, size: int = 0):
        self.store, self.clips, self.key, self.augment = store, clips, key, augment
        self.task, self.size = task, size

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        view = int(seeded(self.key, i).integers(self.store.num_views)) if self.augment else 0
        tokens = self.store.read(clip.video, frames=list(clip.rows), view=view)
        params = view_params(self.store.meta["view_seed"], clip.video, view) if view else None
        # torch widens float16 several times faster than numpy's astype
        return {"tokens": torch.from_numpy(tokens).float(), "clip": clip, "index": i,
                **(self.task.frame_targets(clip, self.size, params) if self.task else {})}


class PixelClips(Dataset):
    """Clips decoded from their videos -> {"pixels": (T, S, S, 3) uint8, ...}, augmented with
    parameters drawn from (key, clip index) when `augment`. The plain crops are made by `resize`
    as a cache's view 0 is (float32 for "reference", paper 000's float resize; every crop is
    float32 then, the augmented ones holding whole values), so online clips equal cached ones."""

    def __init__(self, samples: dict[str, Sample], positions: dict[str, np.ndarray], clips: list[Clip], size: int,
                 key: str = "", augment: bool = True, task: Task | None = None, resize: str = "antialias"):
        self.samples, self.positions, self.clips = samples, positions, clips
        self.size, self.key, self.augment, self.task, self.resize = size, key, augment, task, resize

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        rows = np.asarray(clip.rows)
        wanted = self.positions[clip.video][rows]
        unique, inverse = np.unique(wanted, return_inverse=True)
        frames = to_tensor(read_frames(self.samples[clip.video].path, unique), torch.uint8)[inverse]
        params = view_params(0, f"{self.key}/{i}", 1) if self.augment else None  # the key holds seed and epoch
        crops = crop_view(frames, self.size, params, self.resize)
        return {"pixels": crops.permute(0, 2, 3, 1).contiguous(), "clip": clip, "index": i,
                **(self.task.frame_targets(clip, self.size, params) if self.task else {})}


def video_rows(sample: Sample, fps: float | None, rule: str = "time") -> np.ndarray:
    """The source frame of each row of a video at `fps` (every frame when None) reached by `rule`:
    the rows the cache stores, so online clips match cached ones."""
    positions = frame_positions(sample, fps, rule)
    return np.arange(probe(sample.path).num_frames) if positions is None else positions


def pad_stack(tensors: list[torch.Tensor], fill) -> torch.Tensor:
    """Stack tensors that differ in size along any dim, padding at the end with `fill`."""
    shape = [max(sizes) for sizes in zip(*(t.shape for t in tensors))]
    out = torch.full((len(tensors), *shape), fill, dtype=tensors[0].dtype)
    for b, t in enumerate(tensors):
        out[(b, *(slice(0, n) for n in t.shape))] = t
    return out


def collate(items: list[dict]) -> dict:
    """Pad clips at the end to the longest -> the batch dict described in the module docstring."""
    key = "tokens" if "tokens" in items[0] else "pixels"
    x = pad_stack([it[key] for it in items], 0)
    mask = pad_stack([torch.ones(len(it[key]), dtype=torch.bool) for it in items], False)
    batch = {key: x, "mask": mask, "index": torch.tensor([it["index"] for it in items])}
    for name in items[0].keys() - {key, "clip", "index"}:  # per-frame targets
        values = [it[name] for it in items]
        batch[name] = pad_stack(values, False if values[0].dtype == torch.bool else float("nan"))
    targets = [it["clip"].target for it in items]
    if all(isinstance(t, int) for t in targets):
        batch["target"] = torch.tensor(targets)
    elif all(isinstance(t, tuple) for t in targets):  # frames to hide
        hide = torch.zeros(len(items), x.shape[1], dtype=torch.bool)
        for b, t in enumerate(targets):
            hide[b, list(t)] = True
        batch["hide"] = hide
    return batch
