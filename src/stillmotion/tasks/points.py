"""Point tracking (TAP-Vid's "query first" protocol, as on the Perception Test in paper 000):
given points in a clip's first frame, say where each is and whether it is visible in every
later frame; the positions predicted at frame t are the queries at frame t + 1.

Validation streams each video whole (`task.whole_videos`), from the first annotated frame where
a point is visible to the last. Only points visible in the first frame are queried; a point
leaving the view counts as not visible. Loss: Huber on the positions of visible points plus
binary cross-entropy on visibility. Metrics (tasks.metrics.point_tracking, in pixels of a
256 x 256 view as TAP-Vid): average Jaccard, position accuracy and occlusion accuracy over the
frames after the first, computed per video and averaged over videos (as TAP-Vid does, so a
video with many points does not outweigh the others), with `static_average_jaccard`, the score
of points held still and always visible, beside them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stillmotion.tasks.annotated import AnnotatedTask
from stillmotion.tasks.metrics import point_tracking

SCALE = 256  # TAP-Vid's thresholds are pixels of a 256 x 256 frame


class PointTracking(AnnotatedTask):
    name = "point_tracking"
    kind = "points"
    main_metric = "average_jaccard"
    needs = ("points", "visible")
    whole = True

    def first_ok(self, notes, i):
        return [None] if notes.visible[i].any() else []

    def frame_targets(self, clip, size, view):
        notes, sources = self.notes(clip.video), self.clip_sources(clip)
        xy = self.window(clip, size, view).points(torch.from_numpy(notes.take("points", sources, np.nan)))
        seen = torch.from_numpy(notes.take("visible", sources, False)) & ((xy >= 0) & (xy <= 1)).all(-1)
        return {"points": xy, "visible": seen}

    @staticmethod
    def queried(batch) -> torch.Tensor:
        """(B, P): the points visible in the first frame, the ones the clip asks about."""
        return batch["visible"][:, 0]

    def inputs(self, batch):
        first = batch["points"][:, 0]
        return {"query": torch.where(self.queried(batch)[..., None], first, 0.5)}

    def loss(self, outputs, batch):
        true, seen = batch["points"], batch["visible"]
        labelled = true.isfinite().all(-1) & self.queried(batch)[:, None]  # (B, T, P)
        if not labelled.any():
            return outputs.sum() * 0
        position = F.huber_loss(outputs[..., :2][labelled & seen], true[labelled & seen], delta=0.02)
        visibility = F.binary_cross_entropy_with_logits(outputs[..., 2][labelled], seen[labelled].float())
        return position / 0.02 + visibility

    def score(self, outputs, batch):
        """Per clip, over queried points at labelled frames after the first: predicted and true
        positions (pixels of 256 x 256) and visibility, and the held points' positions."""
        true, seen, query = batch["points"].cpu(), batch["visible"].cpu(), self.inputs(batch)["query"].cpu()
        pred = outputs.float().cpu()
        labelled = true.isfinite().all(-1) & self.queried(batch).cpu()[:, None]
        labelled[:, 0] = False
        results = []
        for b in range(len(true)):
            m = labelled[b]
            held = query[b].expand_as(true[b])[m]
            results.append((pred[b, ..., :2][m] * SCALE, pred[b, ..., 2][m] > 0, true[b][m] * SCALE, seen[b][m],
                            held * SCALE))
        return results

    def metrics(self, scores, clips):
        videos: dict = {}
        for i, (score, clip) in enumerate(zip(scores, clips)):
            if len(score[0]):
                videos.setdefault(i if clip is None else clip.video, []).append(score)
        if not videos:
            return {"average_jaccard": 0.0, "position_accuracy": 0.0, "occlusion_accuracy": 0.0,
                    "static_average_jaccard": 0.0, "points": 0, "clips": len(clips), "videos": 0}
        per_video, points = [], 0
        for parts in videos.values():
            pred, vis, true, seen, held = (torch.cat(part) for part in zip(*parts))
            result = point_tracking(pred, vis, true, seen)
            result["static_average_jaccard"] = point_tracking(held, torch.ones_like(vis), true, seen)["average_jaccard"]
            per_video.append(result)
            points += len(true)
        mean = {key: float(np.mean([r[key] for r in per_video])) for key in per_video[0]}
        return {**mean, "points": points, "clips": len(clips), "videos": len(videos)}
