"""Tasks by name: each gives clips, targets, a loss and metrics (see `tasks.base.Task`)."""

from __future__ import annotations

from stillmotion.tasks.arrow import ArrowOfTime
from stillmotion.tasks.base import Clip, Task, Video
from stillmotion.tasks.boxes import BoxTracking
from stillmotion.tasks.classification import Classification
from stillmotion.tasks.depth import Depth
from stillmotion.tasks.masked import MaskedTokens
from stillmotion.tasks.points import PointTracking
from stillmotion.tasks.pose import CameraPose
from stillmotion.tasks.prp import PlaybackRate
from stillmotion.tasks.video_text import VideoText

TASKS = {
    "classification": Classification,
    "prp": PlaybackRate,
    "arrow_of_time": ArrowOfTime,
    "masked_tokens": MaskedTokens,
    "box_tracking": BoxTracking,
    "point_tracking": PointTracking,
    "depth": Depth,
    "camera_pose": CameraPose,
    "video_text": VideoText,
}

#: tasks that need no labels: any folder of videos will do
SELF_SUPERVISED = ("prp", "arrow_of_time", "masked_tokens")

__all__ = ["Clip", "SELF_SUPERVISED", "TASKS", "Task", "Video"]
