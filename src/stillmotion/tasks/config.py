"""A task's settings (`task:` in a run config). They live beside the tasks, which read them, so the
tasks need nothing from the run configuration around them (`stillmotion.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class TaskConfig:
    # classification | prp | arrow_of_time | masked_tokens | box_tracking | point_tracking | depth | camera_pose |
    # video_text
    name: str = "classification"
    rates: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # PRP: frame strides to tell apart
    jitter: float = 0.2  # PRP: the clip's stride is rate * (1 + u), one u per clip, |u| <= jitter
    label_smoothing: float = 0.0
    mask_ratio: float = 0.5  # masked_tokens: share of frames whose tokens are hidden
    eval_clips: int = 2  # clips per video at evaluation (temporal crops; their scores are averaged)
    whole_videos: bool = True  # box / point tracking: evaluate each video whole, as one stream, not eval_clips clips
    resolution: int = 32  # depth: side of the predicted and compared depth maps
    # classification: the class names in the model's output order (an imported model's); None: the
    # training labels, sorted. Videos whose label is not among them are left out.
    classes: Optional[list[str]] = None
    text: str = "minilm"  # video_text: the frozen text encoder (see `stillmotion.text.load`)
    mask_text: float = 0.0  # video_text: share of caption tokens hidden for masked-text prediction (0: off)
    text_weight: float = 1.0  # video_text: weight of the masked-text loss beside the contrastive one
    # video_text: frozen (cached tokens -> core -> attentive pooling) | harvest (the image-text model's
    # vision tower trained over the frames, pixels online: data.online=true)
    tower: str = "frozen"
    keep: float = 1.0  # video_text: share of each frame's patches kept in training (harvest: 0.1)
