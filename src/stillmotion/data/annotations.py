"""Per-frame annotations of a video, for box tracking, point tracking, depth and camera pose.

A manifest line names them with `"annotations": "PATH.npz"` (relative to the manifest's
folder). The file is a NumPy `.npz` holding any of these arrays, F annotated frames each:

| array | shape | meaning |
| --- | --- | --- |
| `frames` | (F,) int | the source frame index of each annotated frame (default 0..F-1) |
| `boxes` | (F, K, 4) float | K objects' boxes (x0, y0, x1, y1), normalized to [0, 1] of the frame; NaN where absent |
| `points` | (F, P, 2) float | P points' (x, y), normalized to [0, 1] of the frame |
| `visible` | (F, P) bool | whether each point is visible (required with `points`) |
| `depth` | (F, H, W) float | depth in metres over the whole frame; 0 where not measured |
| `poses` | (F, 4, 4) float | the camera-to-world pose (rotation, translation in metres; last row 0 0 0 1) |
| `size` | (2,) int | the frame's width and height (default: read from the video) |

Coordinates are fractions of the full source frame, so annotations hold at any resolution; the
tasks map them into the encoder's view (crop, zoom, flip) with `cache.views.Window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stillmotion.errors import UsageError

ARRAYS = ("frames", "boxes", "points", "visible", "depth", "poses", "size")
#: arrays with one entry per annotated frame
PER_FRAME = ("boxes", "points", "visible", "depth", "poses")
#: how far a pose's rotation may be from orthonormal, and its last row from 0 0 0 1
POSE_TOLERANCE = 1e-3


class AnnotationError(UsageError):
    """An annotation file that cannot be used; the message names the file and the array."""


@dataclass
class Annotations:
    path: str
    frames: np.ndarray  # (F,) source frame indices, increasing
    boxes: np.ndarray | None = None  # (F, K, 4)
    points: np.ndarray | None = None  # (F, P, 2)
    visible: np.ndarray | None = None  # (F, P) bool
    depth: np.ndarray | None = None  # (F, H, W)
    poses: np.ndarray | None = None  # (F, 4, 4) camera-to-world, float64
    size: tuple[int, int] | None = None  # (width, height)

    def rows(self, source_frames) -> np.ndarray:
        """For each source frame, its row in the arrays, or -1 where it is not annotated."""
        source_frames = np.asarray(source_frames)
        at = np.searchsorted(self.frames, source_frames).clip(max=len(self.frames) - 1)
        return np.where(self.frames[at] == source_frames, at, -1)

    def take(self, name: str, source_frames, fill) -> np.ndarray:
        """Array `name` at each source frame, `fill` where the frame is not annotated."""
        array = getattr(self, name)
        rows = self.rows(source_frames)
        out = array[rows.clip(min=0)].copy()
        out[rows < 0] = fill
        return out


def load_annotations(path: str | Path, need: tuple[str, ...] = ()) -> Annotations:
    """Read and check an annotation file; `need` names arrays the caller cannot do without."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:  # any unreadable file gets the same clear message
        raise AnnotationError(f"{path}: not a readable .npz file ({exc})") from exc
    unknown = sorted(set(arrays) - set(ARRAYS))
    if unknown:
        raise AnnotationError(f"{path}: unknown arrays {unknown}; an annotation file holds {', '.join(ARRAYS)}")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise AnnotationError(f"{path}: no {', '.join(missing)} array; this task needs it (see data/annotations.py)")
    count = {k: len(arrays[k]) for k in PER_FRAME if k in arrays}
    if len(set(count.values())) > 1:
        raise AnnotationError(f"{path}: arrays disagree on the number of frames: {count}")
    n = next(iter(count.values()), 0)
    frames = arrays.get("frames", np.arange(n))
    if len(frames) != n or (n > 1 and not (np.diff(frames) > 0).all()):
        raise AnnotationError(f"{path}: `frames` must hold {n} increasing source frame indices")
    shapes = {"boxes": (3, 4), "points": (3, 2), "visible": (2, None), "depth": (3, None)}
    for name, (ndim, last) in shapes.items():
        if name in arrays and (arrays[name].ndim != ndim or (last and arrays[name].shape[-1] != last)):
            raise AnnotationError(f"{path}: `{name}` has shape {arrays[name].shape}; expected {ndim} dims"
                                  + (f" ending in {last}" if last else ""))
    if ("points" in arrays) != ("visible" in arrays) or (
            "points" in arrays and arrays["points"].shape[:2] != arrays["visible"].shape):
        raise AnnotationError(f"{path}: `points` (F, P, 2) needs `visible` (F, P) beside it")
    if "poses" in arrays:
        _check_poses(path, arrays["poses"])
    size = tuple(int(v) for v in arrays["size"]) if "size" in arrays else None
    return Annotations(str(path), frames.astype(np.int64),
                       boxes=arrays["boxes"].astype(np.float32) if "boxes" in arrays else None,
                       points=arrays["points"].astype(np.float32) if "points" in arrays else None,
                       visible=arrays["visible"].astype(bool) if "visible" in arrays else None,
                       depth=arrays["depth"].astype(np.float32) if "depth" in arrays else None,
                       poses=arrays["poses"].astype(np.float64) if "poses" in arrays else None, size=size)


def _check_poses(path: Path, poses: np.ndarray) -> None:
    """`poses` must be (F, 4, 4) finite rigid transforms: a rotation (orthonormal, determinant +1)
    and a translation, last row 0 0 0 1, all within POSE_TOLERANCE."""
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise AnnotationError(f"{path}: `poses` has shape {poses.shape}; expected (F, 4, 4)")
    if not np.issubdtype(poses.dtype, np.number) or not np.isfinite(poses).all():
        raise AnnotationError(f"{path}: `poses` must hold finite numbers (no NaN or infinity)")
    if len(poses) == 0:
        return
    rotation = poses[:, :3, :3].astype(np.float64)
    off = np.abs(rotation.transpose(0, 2, 1) @ rotation - np.eye(3)).max(axis=(1, 2))
    bottom = np.abs(poses[:, 3].astype(np.float64) - [0, 0, 0, 1]).max(axis=1)
    mirrored = np.linalg.det(rotation) < 0
    bad = np.flatnonzero((off > POSE_TOLERANCE) | (bottom > POSE_TOLERANCE) | mirrored)
    if len(bad):
        raise AnnotationError(f"{path}: `poses` row {int(bad[0])} is not a rigid transform (its rotation must be "
                              "orthonormal with determinant +1, its last row 0 0 0 1); each pose is a camera-to-world "
                              "4 x 4 matrix")


def save_annotations(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write an annotation file (the arrays in the table above)."""
    unknown = sorted(set(arrays) - set(ARRAYS))
    if unknown:
        raise AnnotationError(f"{path}: unknown arrays {unknown}; choose from {', '.join(ARRAYS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path
