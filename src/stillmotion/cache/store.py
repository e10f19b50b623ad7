"""`TokenStore`: one safetensors file per video under `videos/`, plus `meta.json`.

- A video's file appears only once complete (written under a temporary name, then renamed), so
  a killed writer leaves nothing half-written that a reader could see; finished videos stay.
- `meta.json` records the encoder fingerprint and every setting the tokens depend on; opening
  the store with different settings is refused with the keys that differ.
- Reads are memory-mapped by safetensors: `read(vid, frames=[...])` touches only those frames.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable
from urllib.parse import quote, unquote

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

_DTYPES = {"float16": np.float16, "float32": np.float32}


class CacheMismatchError(ValueError):
    """The cache on disk was made with other settings than the ones asked for."""


class TokenStore:
    """Tokens (T, N, D) per video id, in a folder.

    `TokenStore(path, meta)` creates the store or checks that an existing one matches `meta`
    (keys `fingerprint`, `dtype`, ... as given); `TokenStore(path)` opens an existing store.
    """

    def __init__(self, path: str | Path, meta: dict | None = None):
        self.path = Path(path)
        self.meta_path = self.path / "meta.json"
        self.videos_dir = self.path / "videos"
        if self.meta_path.exists():
            self.meta = json.loads(self.meta_path.read_text())
            if meta is not None:
                self._check(meta)
        elif meta is None:
            raise FileNotFoundError(f"{self.path}: no token cache here (no meta.json); run extraction first")
        else:
            self.meta = {"dtype": "float16", **meta}
            if self.meta["dtype"] not in _DTYPES:
                raise ValueError(f"{self.path}: dtype must be one of {sorted(_DTYPES)}, got {self.meta['dtype']!r}")
            self.videos_dir.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(self.meta_path, self.meta)
        self.videos_dir.mkdir(parents=True, exist_ok=True)
        self.dtype = _DTYPES[self.meta["dtype"]]

    def _check(self, meta: dict) -> None:
        wanted = {"dtype": "float16", **meta}
        diff = [
            f"{k}: cache has {self.meta.get(k)!r}, asked for {v!r}"
            for k, v in sorted(wanted.items())
            if _jsonable(self.meta.get(k)) != _jsonable(v)
        ]
        if diff:
            raise CacheMismatchError(
                f"{self.path}: this token cache was made with other settings:\n  "
                + "\n  ".join(diff)
                + "\nUse another --out folder, or delete this one to rebuild it."
            )

    def _file(self, video_id: str) -> Path:
        return self.videos_dir / f"{quote(video_id, safe='')}.safetensors"

    def videos(self) -> list[str]:
        """Ids of the complete videos, sorted."""
        return sorted(unquote(p.name[: -len(".safetensors")]) for p in self.videos_dir.glob("*.safetensors"))

    def __contains__(self, video_id: str) -> bool:
        return self._file(video_id).exists()

    def __len__(self) -> int:
        return len(self.videos())

    def write(self, video_id: str, tokens: np.ndarray, frame_indices: Iterable[int] | None = None) -> None:
        """Store tokens (T, N, D) for a video (cast to the store's dtype) and the source frame
        index of each of the T rows."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 3:
            raise ValueError(f"{video_id}: tokens must be (T, N, D), got shape {tokens.shape}")
        idx = np.arange(len(tokens)) if frame_indices is None else np.asarray(list(frame_indices))
        if len(idx) != len(tokens):
            raise ValueError(f"{video_id}: {len(idx)} frame indices for {len(tokens)} frames of tokens")
        target = self._file(video_id)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        save_file(
            {"tokens": np.ascontiguousarray(tokens.astype(self.dtype)), "frames": idx.astype(np.int64)},
            str(tmp),
        )
        os.replace(tmp, target)

    def read(self, video_id: str, frames: Iterable[int] | slice | None = None) -> np.ndarray:
        """Tokens (T, N, D) of a video in the store's dtype; `frames` picks rows (positions in
        the stored sequence), by list or slice."""
        path = self._file(video_id)
        if not path.exists():
            raise KeyError(f"{self.path}: video {video_id!r} is not in the cache")
        with safe_open(str(path), framework="numpy") as f:
            if frames is None:
                return f.get_tensor("tokens")
            if isinstance(frames, slice):
                return f.get_slice("tokens")[frames]
            rows = list(frames)
            return np.stack([f.get_slice("tokens")[i : i + 1][0] for i in rows]) if rows else np.zeros(
                (0, *f.get_slice("tokens").get_shape()[1:]), self.dtype
            )

    def frame_indices(self, video_id: str) -> np.ndarray:
        """Source frame index of each stored row of a video."""
        with safe_open(str(self._file(video_id)), framework="numpy") as f:
            return f.get_tensor("frames")

    def record_failure(self, path: str, reason: str) -> None:
        """Record (path, reason) in failures.jsonl for a video that could not be read; a path
        already listed keeps one line, with the latest reason."""
        rows = {row["path"]: row for row in self.failures()}
        rows[path] = {"path": path, "reason": reason}
        tmp = self.path / f".failures.jsonl.{os.getpid()}.part"
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows.values()))
        os.replace(tmp, self.path / "failures.jsonl")

    def failures(self) -> list[dict]:
        f = self.path / "failures.jsonl"
        return [json.loads(line) for line in f.read_text().splitlines() if line] if f.exists() else []


def _jsonable(value):
    return json.loads(json.dumps(value))


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
