"""Box tracking (as on Waymo in paper 000): given an object's box in a clip's first frame,
follow it through the clip, the box predicted at frame t being the query at frame t + 1.

Training clips start at an annotated frame where the object is present; boxes are compared in
the encoder's view (normalized). Loss: L1 plus generalized-IoU loss over the frames where the
object is annotated. Validation streams each video whole (`task.whole_videos`): from the first
annotated frame where the object is there to the last, every box predicted from the previous
prediction. Metric: `mean_iou` over objects and annotated frames after the first (the given
one), with `static_iou`, the score of holding the first box still over the same frames."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stillmotion.tasks.annotated import AnnotatedTask
from stillmotion.tasks.metrics import box_iou

HOLD = torch.tensor([0.25, 0.25, 0.75, 0.75])  # the query of a clip whose first box left the view


def giou_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """1 - generalized IoU of matching boxes (M, 4) as (x0, y0, x1, y1), averaged."""
    area = lambda x: (x[..., 2:] - x[..., :2]).clamp(min=0).prod(-1)  # noqa: E731
    lo, hi = torch.maximum(pred[..., :2], true[..., :2]), torch.minimum(pred[..., 2:], true[..., 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    union = area(pred) + area(true) - inter
    hull = area(torch.cat([torch.minimum(pred[..., :2], true[..., :2]),
                           torch.maximum(pred[..., 2:], true[..., 2:])], -1))
    return (1 - inter / union.clamp(min=1e-9) + (hull - union) / hull.clamp(min=1e-9)).mean()


class BoxTracking(AnnotatedTask):
    name = "box_tracking"
    kind = "boxes"
    main_metric = "mean_iou"
    needs = ("boxes",)
    whole = True

    def first_ok(self, notes, i):
        return [k for k in range(notes.boxes.shape[1]) if np.isfinite(notes.boxes[i, k]).all()]

    def frame_targets(self, clip, size, view):
        boxes = torch.from_numpy(self.notes(clip.video).take("boxes", self.clip_sources(clip), np.nan)[:, clip.target])
        boxes = self.window(clip, size, view).boxes(boxes).clamp(0, 1)
        empty = (boxes[:, 2:] <= boxes[:, :2]).any(-1)  # wholly outside the view
        return {"boxes": torch.where(empty[:, None], torch.nan, boxes)}

    def inputs(self, batch):
        first = batch["boxes"][:, 0]
        return {"query": torch.where(first.isfinite(), first, HOLD.to(first))}

    def loss(self, outputs, batch):
        true = batch["boxes"]
        ok = true.isfinite().all(-1) & true[:, :1].isfinite().all(-1)
        pred, true = outputs[ok], true[ok]
        if not len(true):
            return outputs.sum() * 0
        return F.l1_loss(pred, true) + giou_loss(pred, true)

    def score(self, outputs, batch):
        """Per clip: the IoUs of the tracked and of the held box at its annotated frames after the first."""
        true, query = batch["boxes"].cpu(), self.inputs(batch)["query"].cpu()
        pred = outputs.float().cpu()
        results = []
        for b in range(len(true)):
            ok = true[b].isfinite().all(-1)
            ok[0] = False
            if not true[b, 0].isfinite().all():
                ok[:] = False
            results.append((box_iou(pred[b][ok], true[b][ok]), box_iou(query[b].expand(int(ok.sum()), 4), true[b][ok])))
        return results

    def metrics(self, scores, clips):
        tracked = torch.cat([s[0] for s in scores]) if scores else torch.zeros(0)
        held = torch.cat([s[1] for s in scores]) if scores else torch.zeros(0)
        return {"mean_iou": tracked.mean().item() if len(tracked) else 0.0,
                "static_iou": held.mean().item() if len(held) else 0.0,
                "frames": len(tracked), "clips": len(clips)}
