"""Datasets over cached tokens: (tokens (T, N, D), label) per sample, padded into batches."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from stillmotion.cache.store import TokenStore
from stillmotion.data.manifest import Sample


class CachedClips(Dataset):
    """Labelled samples read from a TokenStore. Samples missing from the store are left out
    (and listed in `missing`). With `augment=True` each read takes one of the cache's views at
    random (`stillmotion extract --views K`), drawn from torch's generator; otherwise view 0."""

    def __init__(self, store: TokenStore, samples: list[Sample], classes: list[str], augment: bool = False):
        self.store = store
        self.augment = augment
        self.classes = list(classes)
        self.samples = [s for s in samples if s.id in store]
        self.missing = [s.id for s in samples if s.id not in store]
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({s.label for s in self.samples} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the classes {self.classes}")
        self.labels = [index[s.label] for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        view = int(torch.randint(self.store.num_views, ())) if self.augment else 0
        tokens = self.store.read(self.samples[i].id, view=view).astype(np.float32)
        return torch.from_numpy(tokens), self.labels[i]


def pad_collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad clips at the end to the longest: -> tokens (B, T, N, D), mask (B, T), labels (B,)."""
    t_max = max(x.shape[0] for x, _ in batch)
    x = torch.zeros(len(batch), t_max, *batch[0][0].shape[1:])
    mask = torch.zeros(len(batch), t_max, dtype=torch.bool)
    for i, (tokens, _) in enumerate(batch):
        x[i, : len(tokens)] = tokens
        mask[i, : len(tokens)] = True
    return x, mask, torch.tensor([y for _, y in batch])
