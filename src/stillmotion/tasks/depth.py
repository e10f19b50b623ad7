"""Monocular depth on every frame (as on ScanNet in paper 000): a depth map per frame.

Targets are the annotation's depth maps sampled (nearest) over the encoder's view at
`task.resolution` x `task.resolution`; 0 marks pixels without a measurement. Loss: L1 on log
depth over measured pixels. Metrics (tasks.metrics.depth_errors): `abs_rel` and `delta1` of
each frame over its measured pixels, averaged over frames (per image, as depth benchmarks
report them, so a frame with few measurements counts as much as a dense one), with
`constant_abs_rel`, the AbsRel of predicting each frame's own mean depth everywhere, beside them."""

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
        """Per clip: one (AbsRel, delta1, constant-prediction AbsRel) per frame with measured pixels."""
        true, pred = batch["depth"].cpu(), outputs.float().cpu()
        results = []
        for b in range(len(true)):
            frames = []
            for t in range(true.shape[1]):
                here, valid = true[b, t], true[b, t] > 0
                if not valid.any():
                    continue
                err = depth_errors(pred[b, t], here)
                constant = depth_errors(here[valid].mean().expand_as(here), here)
                frames.append((err["abs_rel"], err["delta1"], constant["abs_rel"]))
            results.append(frames)
        return results

    def metrics(self, scores, clips):
        frames = [frame for clip in scores for frame in clip]
        rel, delta, constant = (sum(col) / len(frames) for col in zip(*frames)) if frames else (0.0, 0.0, 0.0)
        return {"abs_rel": rel, "delta1": delta, "constant_abs_rel": constant, "frames": len(frames),
                "clips": len(clips)}
