"""Camera pose (as on NuScenes in paper 000): the camera's motion since the last frame, per frame.

Targets come from the annotation's camera-to-world `poses` (data/annotations.py): frame t's
target is the relative pose inv(P_{t-1}) @ P_t (frame t's camera in frame t-1's camera
coordinates, x right, y down, z forward) as 9 numbers: the translation (dx, dy, dz) in metres,
then the rotation's 6-D form R[:, 0], R[:, 1] (`tasks.metrics.pose_targets`). A clip's first
frame has no frame before it, and a frame whose own or previous row is not annotated has no
pose: their targets are NaN, out of the loss and the metrics.

The view: zooming and cropping move the image, not the camera, so they leave the motion alone;
a horizontal flip shows a mirrored world, whose motion is the true one conjugated by
M = diag(-1, 1, 1): the x translation negated, R -> M R M (`mirror_poses`).

Loss (the paper does not state one; ours): smooth-L1 with beta 0.01 (1 cm) on the translation
in metres, averaged over its three components, plus the Frobenius distance
||rotation_from_6d(pred) - rotation_from_6d(true)|| (about sqrt(2) x the angle in radians when
small), both averaged over frames with a target. Metrics: the relative pose error,
`rpe_translation_mm` (Euclidean, millimetres) and `rpe_rotation_deg` (geodesic angle, degrees),
averaged over frames, beside the same errors of the static camera (no translation, identity
rotation), `static_rpe_translation_mm` and `static_rpe_rotation_deg`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stillmotion.tasks.annotated import AnnotatedTask
from stillmotion.tasks.metrics import IDENTITY_6D, pose_errors, pose_targets, rotation_from_6d

#: smooth-L1's switch from quadratic to linear, in metres
BETA = 0.01
#: the prediction of a camera that does not move: no translation, the identity rotation
STATIC = torch.tensor((0.0, 0.0, 0.0, *IDENTITY_6D))
#: (M P M)[i, j] = m_i m_j P[i, j] with M = diag(-1, 1, 1, 1)
_MIRROR = torch.tensor([[1.0, -1, -1, -1], [-1, 1, 1, 1], [-1, 1, 1, 1], [-1, 1, 1, 1]])


def mirror_poses(poses: torch.Tensor) -> torch.Tensor:
    """Poses (..., 4, 4) of the world mirrored left-right: M P M with M = diag(-1, 1, 1, 1). The
    relative poses of the mirrored poses are the mirrored relative poses (M M = I)."""
    return poses * _MIRROR.to(poses)


def clip_pose_targets(poses: torch.Tensor, flip: bool) -> torch.Tensor:
    """A clip's camera-to-world poses (T, 4, 4), NaN where unknown -> targets (T, 9) as seen in a
    view that is mirrored when `flip`."""
    return pose_targets(mirror_poses(poses) if flip else poses)


def valid_rows(true: torch.Tensor) -> torch.Tensor:
    """Targets (..., 9) -> (...) bool: those with a pose (not NaN: not a first frame nor padding)."""
    return true.isfinite().all(-1)


class CameraPose(AnnotatedTask):
    name = "camera_pose"
    kind = "pose"
    main_metric = "rpe_translation_mm"
    higher_is_better = False
    needs = ("poses",)

    def frame_targets(self, clip, size, view):
        poses = self.notes(clip.video).take("poses", self.clip_sources(clip), np.nan)
        flip = bool(view is not None and view.flip)
        return {"pose": clip_pose_targets(torch.from_numpy(poses), flip).float()}

    def loss(self, outputs, batch):
        """outputs (B, T, 9), batch["pose"] (B, T, 9) -> smooth-L1 on translation + Frobenius on rotation."""
        true = batch["pose"]
        ok = valid_rows(true)
        if not ok.any():
            return outputs.sum() * 0
        pred, true = outputs[ok].float(), true[ok].float()
        translation = F.smooth_l1_loss(pred[:, :3], true[:, :3], beta=BETA)
        rotation = (rotation_from_6d(pred[:, 3:]) - rotation_from_6d(true[:, 3:])).flatten(1).norm(dim=-1).mean()
        return translation + rotation

    def score(self, outputs, batch):
        """Per clip: the translation (mm) and rotation (deg) errors of its frames with a pose, (n,)
        each, then those of the static camera: a tuple of 4 tensors."""
        true, pred = batch["pose"].cpu(), outputs.float().cpu()
        results = []
        for b in range(len(true)):
            ok = valid_rows(true[b])
            model = pose_errors(pred[b][ok], true[b][ok])
            static = pose_errors(STATIC.expand(int(ok.sum()), 9), true[b][ok])
            results.append((model["translation_mm"], model["rotation_deg"],
                            static["translation_mm"], static["rotation_deg"]))
        return results

    def metrics(self, scores, clips):
        columns = [torch.cat(col) for col in zip(*scores)] if scores else [torch.zeros(0)] * 4
        mean = lambda x: x.mean().item() if len(x) else 0.0  # noqa: E731
        return {"rpe_translation_mm": mean(columns[0]), "rpe_rotation_deg": mean(columns[1]),
                "static_rpe_translation_mm": mean(columns[2]), "static_rpe_rotation_deg": mean(columns[3]),
                "frames": len(columns[0]), "clips": len(clips)}
