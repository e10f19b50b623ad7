"""`TokenStore`: one safetensors file per video under `videos/`, plus `meta.json`.

- A video's file holds `tokens` (V, T, N, D) (V views: view 0 plain, then augmented ones),
  `frames` (T,) the source frame position of each row, and for int8 stores `scales`
  (V, T, N, 1), one per token.
- A video's file appears only once complete (written under a temporary name, then renamed), so
  a killed writer leaves nothing half-written that a reader could see; finished videos stay.
- `meta.json` records the encoder fingerprint and every setting the tokens depend on; opening
  the store with different settings is refused with the keys that differ.
- Reads are memory-mapped by safetensors: `read(vid, frames=[...])` copies out only those rows.
- Videos that could not be read are recorded one file each under `failures/`, so several
  writers (torchrun ranks) never race on one file; a later successful write clears the record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from stillmotion.cache.quantize import dequantize_int8, quantize_int8
from stillmotion.errors import UsageError

DTYPES = ("float16", "float32", "int8")
# what a meta without these keys means
_DEFAULTS = {"dtype": "float16", "views": 1, "compute": "float32", "resample": "time"}
_NUMPY = {"float16": np.float16, "float32": np.float32}


class CacheMismatchError(UsageError):
    """The cache on disk was made with other settings than the ones asked for."""


class TokenStore:
    """Tokens (V, T, N, D) per video id, in a folder.

    `TokenStore(path, meta)` creates the store or checks that an existing one matches `meta`
    (keys `fingerprint`, `dtype`, `views`, ... as given); `TokenStore(path)` opens an existing
    store. `dtype` is "float16" (default), "float32" or "int8" (with a scale per token).
    """

    def __init__(self, path: str | Path, meta: dict | None = None):
        self.path = Path(path)
        self.meta_path = self.path / "meta.json"
        self.videos_dir = self.path / "videos"
        self.failures_dir = self.path / "failures"
        if self.meta_path.exists():
            self.meta = json.loads(self.meta_path.read_text())
            if meta is not None:
                self._check(meta)
        elif meta is None:
            raise FileNotFoundError(f"{self.path}: no token cache here (no meta.json); run `stillmotion extract` first")
        else:
            self.meta = {**_DEFAULTS, **meta}
            if self.meta["dtype"] not in DTYPES:
                raise UsageError(f"{self.path}: dtype must be one of {DTYPES}, got {self.meta['dtype']!r}")
            self.videos_dir.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(self.meta_path, self.meta)
        self.videos_dir.mkdir(parents=True, exist_ok=True)
        self.dtype = self.meta["dtype"]
        self.num_views = int(self.meta.get("views", 1))

    def _check(self, meta: dict) -> None:
        wanted = {**_DEFAULTS, **meta}
        diff = [
            f"{k}: cache has {self.meta.get(k, _DEFAULTS.get(k))!r}, asked for {v!r}"
            for k, v in sorted(wanted.items())
            if _jsonable(self.meta.get(k, _DEFAULTS.get(k))) != _jsonable(v)
        ]
        if diff:
            raise CacheMismatchError(
                f"{self.path}: this token cache was made with other settings:\n  "
                + "\n  ".join(diff)
                + "\nUse another --out folder, or delete this one to rebuild it."
            )

    @property
    def grid(self) -> tuple[int, int] | None:
        """The stored token grid (h', w'), after any pooling, when the cache records it."""
        grid = self.meta.get("token_grid")
        return tuple(grid) if grid else None

    @property
    def dim(self) -> int | None:
        """The stored token width D, after any channel pooling, when the cache records it."""
        return self.meta.get("token_dim")

    @property
    def num_layers(self) -> int:
        """K: blocks whose outputs each frame's tokens hold, one after the other (see `encoders.hf`)."""
        return len(self.meta.get("layers") or ()) or 1

    @property
    def extra(self) -> int:
        """Leading tokens (class token, registers) before each layer's patches."""
        return int(self.meta.get("extra_tokens", 0))

    def remove_partial(self) -> int:
        """Delete files a killed writer left half-written; call only while nothing writes."""
        parts = list(self.videos_dir.glob(".*.part")) + list(self.failures_dir.glob(".*.part"))
        for part in parts:
            part.unlink(missing_ok=True)
        return len(parts)

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
        """Store float tokens (V, T, N, D), or (T, N, D) for one view, converted to the store's
        dtype, with the source frame position of each of the T rows."""
        tokens = np.asarray(tokens)
        if tokens.ndim == 3:
            tokens = tokens[None]
        if tokens.ndim != 4:
            raise UsageError(f"{video_id}: tokens must be (V, T, N, D) or (T, N, D), got shape {tokens.shape}")
        if len(tokens) != self.num_views:
            raise UsageError(f"{video_id}: {len(tokens)} views given, the cache holds {self.num_views} per video")
        idx = np.arange(tokens.shape[1]) if frame_indices is None else np.asarray(list(frame_indices))
        if len(idx) != tokens.shape[1]:
            raise UsageError(f"{video_id}: {len(idx)} frame indices for {tokens.shape[1]} frames of tokens")
        if self.dtype == "int8":
            q, scales = quantize_int8(tokens)
            arrays = {"tokens": q, "scales": scales}
        else:
            arrays = {"tokens": np.ascontiguousarray(tokens.astype(_NUMPY[self.dtype]))}
        arrays["frames"] = idx.astype(np.int64)
        target = self._file(video_id)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        save_file(arrays, str(tmp))
        os.replace(tmp, target)
        self._failure_file(video_id).unlink(missing_ok=True)

    def read(self, video_id: str, frames: Iterable[int] | slice | None = None, view: int = 0) -> np.ndarray:
        """Tokens (T, N, D) of one view of a video: float16 or float32 as stored, int8 stores
        dequantized to float32. `frames` picks rows (positions in the stored sequence) by list
        or slice; only those rows are copied out of the memory-mapped file."""
        path = self._file(video_id)
        if not path.exists():
            raise KeyError(f"{self.path}: video {video_id!r} is not in the cache")
        if not 0 <= view < self.num_views:
            raise IndexError(f"{self.path}: view {view} asked for, the cache holds views 0..{self.num_views - 1}")
        with safe_open(str(path), framework="numpy") as f:
            tokens = _rows(f.get_slice("tokens"), view, frames)
            if self.dtype == "int8":
                return dequantize_int8(tokens, _rows(f.get_slice("scales"), view, frames))
            return tokens

    def frame_indices(self, video_id: str) -> np.ndarray:
        """Source frame position of each stored row of a video."""
        with safe_open(str(self._file(video_id)), framework="numpy") as f:
            return f.get_tensor("frames")

    def num_frames(self, video_id: str) -> int:
        """Stored rows of a video, read from the file header only."""
        with safe_open(str(self._file(video_id)), framework="numpy") as f:
            return f.get_slice("frames").get_shape()[0]

    def _failure_file(self, video_id: str) -> Path:
        return self.failures_dir / f"{quote(video_id, safe='')}.json"

    def record_failure(self, video_id: str, path: str, reason: str) -> None:
        """Record that a video could not be read; the latest reason wins."""
        self.failures_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self._failure_file(video_id), {"id": video_id, "path": path, "reason": reason})

    def failures(self) -> list[dict]:
        """{"id", "path", "reason"} of each video that failed and has not been written since, by id."""
        if not self.failures_dir.is_dir():
            return []
        rows = [json.loads(p.read_text()) for p in self.failures_dir.glob("*.json")]
        return sorted(rows, key=lambda row: row["id"])


def _rows(tensor_slice, view: int, frames: Iterable[int] | slice | None) -> np.ndarray:
    """Rows of one view out of a (V, T, ...) safetensors slice."""
    total = tensor_slice.get_shape()[1]
    if frames is None:
        return tensor_slice[view, :]
    if isinstance(frames, slice):
        return tensor_slice[view, frames]
    rows = np.asarray(list(frames), dtype=np.int64)
    if len(rows) == 0:
        return tensor_slice[view, 0:0]
    if rows.min() < -total or rows.max() >= total:
        raise IndexError(f"frames {rows.tolist()} out of range for {total} stored frames")
    rows = rows % total
    lo, hi = int(rows.min()), int(rows.max()) + 1
    if hi - lo <= 4 * len(rows):  # one contiguous copy, then pick
        return tensor_slice[view, lo:hi][rows - lo]
    return np.stack([tensor_slice[view, r : r + 1][0] for r in rows])


def _jsonable(value):
    return json.loads(json.dumps(value))


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)
