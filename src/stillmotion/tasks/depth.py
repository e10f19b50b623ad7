"""Monocular depth on every frame (as on ScanNet in paper 000): a depth map per frame.

Targets are the annotation's depth maps sampled (nearest) over the encoder's view at
`task.resolution` x `task.resolution`; 0 marks pixels without a measurement. Loss: L1 on log
depth over measured pixels. Metrics (tasks.metrics.depth_errors): `abs_rel` and `delta1` over
all measured pixels of the evaluation clips, with `constant_abs_rel`, the AbsRel of predicting
each frame's own mean depth everywhere, beside them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stillmotion.tasks.annotated import AnnotatedTask
from stillmotion.tasks.metrics import depth_errors


class Depth(AnnotatedTask):
    name = "depth"
    kind = "depth"
    main_metric = "abs_rel"
    higher_is_better = False
    needs = ("depth",)

    def frame_targets(self, clip, size, view):
        notes, sources = self.notes(clip.video), self.clip_sources(clip)
        maps = torch.from_numpy(notes.take("depth", sources, 0.0))
        return {"depth": self.window(clip, size, view).dense(maps, self.cfg.resolution)}

    def loss(self, outputs, batch):
        true = batch["depth"]
        valid = true > 0  # NaN padding compares False
        if not valid.any():
            return outputs.sum() * 0
        return F.l1_loss(outputs[valid].clamp(min=1e-6).log(), true[valid].log())

    def score(self, outputs, batch):
        """Per clip: [AbsRel sum, delta1 sum, constant-prediction AbsRel sum, measured pixels]."""
        true, pred = batch["depth"].cpu(), outputs.cpu()
        results = []
        for b in range(len(true)):
            valid = true[b] > 0
            count = int(valid.sum())
            if not count:
                results.append([0.0, 0.0, 0.0, 0])
                continue
            err = depth_errors(pred[b], true[b])
            frame_mean = torch.nan_to_num((true[b] * valid).sum((1, 2)) / valid.sum((1, 2)), 1.0)
            constant = depth_errors(frame_mean[:, None, None].expand_as(true[b]), true[b])
            results.append([err["abs_rel"] * count, err["delta1"] * count, constant["abs_rel"] * count, count])
        return results

    def metrics(self, scores, clips):
        rel, delta, constant, count = (sum(col) for col in zip(*scores)) if scores else (0.0, 0.0, 0.0, 0)
        count = max(count, 1)
        return {"abs_rel": rel / count, "delta1": delta / count, "constant_abs_rel": constant / count,
                "clips": len(clips)}
