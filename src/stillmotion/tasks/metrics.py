"""Metrics, as plain functions of predictions and targets (tested against hand-computed values)."""

from __future__ import annotations

import torch


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of rows whose label is among the k highest scores. scores (M, C), labels (M,)."""
    k = min(k, scores.shape[1])
    return (scores.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean().item()


def average_by_group(scores: torch.Tensor, groups: list) -> tuple[torch.Tensor, list]:
    """Mean of the rows sharing a group key (multi-view averaging): -> (G, C), the keys in order."""
    keys = list(dict.fromkeys(groups))
    index = {g: i for i, g in enumerate(keys)}
    idx = torch.tensor([index[g] for g in groups])
    sums = torch.zeros(len(keys), scores.shape[1], dtype=scores.dtype).index_add_(0, idx, scores)
    counts = torch.bincount(idx, minlength=len(keys)).to(scores.dtype)
    return sums / counts[:, None], keys


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching boxes (..., 4) as (x0, y0, x1, y1) -> (...)."""
    lo, hi = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area = lambda x: (x[..., 2:] - x[..., :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-12)


def mean_iou(pred: torch.Tensor, true: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Mean IoU over the objects and frames where `valid` (box tracking, as on Waymo)."""
    iou = box_iou(pred, true)
    return (iou[valid] if valid is not None else iou).mean().item()


TAPVID_THRESHOLDS = (1, 2, 4, 8, 16)


def point_tracking(pred: torch.Tensor, pred_visible: torch.Tensor, true: torch.Tensor, true_visible: torch.Tensor,
                   thresholds=TAPVID_THRESHOLDS) -> dict:
    """TAP-Vid metrics over points (P, T, 2) in pixels and visibility (P, T) bool.

    For each threshold d: a true positive is a point visible in truth, predicted visible and
    within d pixels; a false positive is predicted visible where truth is occluded or the point
    is farther than d; a false negative is visible in truth but predicted occluded or farther
    than d. Jaccard_d = TP / (TP + FP + FN); average Jaccard is their mean over d. Position
    accuracy is the share of truly visible points within d, averaged over d; occlusion
    accuracy the share of (point, frame) whose visibility is predicted right."""
    near_by = [(pred - true).norm(dim=-1) < d for d in thresholds]
    jaccards, within = [], []
    for near in near_by:
        tp = (true_visible & pred_visible & near).sum()
        fp = (pred_visible & (~true_visible | ~near)).sum()
        fn = (true_visible & (~pred_visible | ~near)).sum()
        jaccards.append((tp / (tp + fp + fn).clamp(min=1)).item())
        within.append(((near & true_visible).sum() / true_visible.sum().clamp(min=1)).item())
    return {"average_jaccard": sum(jaccards) / len(jaccards),
            "position_accuracy": sum(within) / len(within),
            "occlusion_accuracy": (pred_visible == true_visible).float().mean().item()}


def depth_errors(pred: torch.Tensor, true: torch.Tensor, valid: torch.Tensor | None = None) -> dict:
    """AbsRel = mean |pred - true| / true and delta1 = share with max(pred/true, true/pred) < 1.25,
    over pixels where `valid` (default: true depth > 0)."""
    valid = (true > 0) if valid is None else valid & (true > 0)
    p, t = pred[valid].clamp(min=1e-6), true[valid]
    return {"abs_rel": ((p - t).abs() / t).mean().item(),
            "delta1": (torch.maximum(p / t, t / p) < 1.25).float().mean().item()}


# ---- camera pose -----------------------------------------------------------------------------------
# A relative pose is 9 numbers: the translation (dx, dy, dz) in metres, then the rotation's 6-D
# form, its first two columns R[:, 0] and R[:, 1] (Zhou et al. 2019).

#: the 6-D form of the identity rotation
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def rotation_from_6d(r: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> rotation matrices (..., 3, 3) by Gram-Schmidt: a = r[:3] normalized, b = r[3:]
    less its part along a, normalized, c = a x b; the columns are a, b, c."""
    a = torch.nn.functional.normalize(r[..., :3], dim=-1)
    b = r[..., 3:] - (a * r[..., 3:]).sum(-1, keepdim=True) * a
    b = torch.nn.functional.normalize(b, dim=-1)
    return torch.stack([a, b, torch.linalg.cross(a, b, dim=-1)], -1)


def rigid_inverse(poses: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms (..., 4, 4): [R t; 0 1] -> [R^T -R^T t; 0 1]."""
    out = poses.clone()
    rt = poses[..., :3, :3].transpose(-1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -(rt @ poses[..., :3, 3:])[..., 0]
    return out


def relative_poses(poses: torch.Tensor) -> torch.Tensor:
    """Camera-to-world poses (T, 4, 4) -> each frame's motion since the one before (T - 1, 4, 4):
    inv(P_{t-1}) @ P_t, frame t's camera in frame t-1's camera coordinates."""
    return rigid_inverse(poses[:-1]) @ poses[1:]


def pose_targets(poses: torch.Tensor) -> torch.Tensor:
    """Camera-to-world poses (T, 4, 4) -> per-frame targets (T, 9): row 0 NaN (no frame before it),
    row t the relative pose from frame t-1: its translation, then R[:, 0], R[:, 1]. A NaN pose
    gives NaN rows for its frame and the next."""
    rel = relative_poses(poses)
    rows = torch.cat([rel[:, :3, 3], rel[:, :3, 0], rel[:, :3, 1]], -1)
    return torch.cat([rows.new_full((1, 9), float("nan")), rows])[:len(poses)]


def pose_errors(pred: torch.Tensor, true: torch.Tensor) -> dict:
    """Relative pose error of matching rows (M, 9) -> {"translation_mm": (M,), "rotation_deg": (M,)}:
    the Euclidean distance of the translations in millimetres (given in metres), and the geodesic
    angle between the rotations (of their 6-D forms) in degrees. Computed in float64."""
    pred, true = pred.double(), true.double()
    translation = (pred[..., :3] - true[..., :3]).norm(dim=-1) * 1000
    diff = rotation_from_6d(pred[..., 3:]).transpose(-1, -2) @ rotation_from_6d(true[..., 3:])
    cos = ((diff.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return {"translation_mm": translation, "rotation_deg": torch.rad2deg(torch.acos(cos))}
