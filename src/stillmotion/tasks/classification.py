"""Supervised classification: a clip's label is its video's. Metrics: top-1 and top-5 after
averaging the softmax scores of a video's evaluation clips (multi-view averaging), and top-1
per clip. `ClassTask` holds what the pretexts share with it (cross-entropy, per-clip accuracy). In
the streaming protocol (`head.mode: stream`) a clip's scores are its last frame's."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stillmotion.tasks.base import Clip, Task, Video
from stillmotion.tasks.config import TaskConfig
from stillmotion.tasks.metrics import average_by_group, topk_accuracy
from stillmotion.video.sampling import consecutive, spaced_starts


class ClassTask(Task):
    """Shared by the tasks whose target is one class per clip: cross-entropy and accuracies."""

    kind = "classes"

    def loss(self, outputs, batch):
        return F.cross_entropy(outputs.float(), batch["target"], label_smoothing=self.cfg.label_smoothing)

    def metrics(self, scores, clips):
        """Per clip: top-1 (the pretexts' accuracy), top-5, and chance."""
        scores = torch.stack(scores)
        labels = torch.tensor([c.target for c in clips])
        return {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, 5),
                "chance": 1 / len(self.classes), "clips": len(clips)}


class Classification(ClassTask):
    name = "classification"

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str], samples: list | None = None):
        super().__init__(cfg, frames)
        self.classes = list(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}

    def usable(self, video: Video) -> bool:
        return video.num_frames >= 1 and video.label in self.index

    def train_clips(self, video, count, rng):
        room = max(video.num_frames - self.frames, 0)
        return [Clip(video.id, consecutive(int(rng.integers(room + 1)), self.frames, video.num_frames),
                     self.index[video.label]) for _ in range(count)]

    def eval_clips(self, video):
        return [Clip(video.id, consecutive(s, self.frames, video.num_frames), self.index[video.label])
                for s in spaced_starts(video.num_frames, self.frames, self.cfg.eval_clips)]

    def metrics(self, scores, clips):
        """top-1 / top-5 per video after averaging the softmax of its clips (multi-view
        averaging); `clip_top1` without the averaging."""
        video_scores, videos = average_by_group(torch.stack(scores).softmax(-1), [c.video for c in clips])
        label = {c.video: c.target for c in clips}
        video_labels = torch.tensor([label[v] for v in videos])
        return {"top1": topk_accuracy(video_scores, video_labels, 1),
                "top5": topk_accuracy(video_scores, video_labels, 5),
                "clip_top1": super().metrics(scores, clips)["top1"],
                "chance": 1 / len(self.classes), "clips": len(clips), "videos": len(videos)}
