"""What the tasks with per-frame annotations share (boxes, points, depth): reading each video's
annotation file, matching clip rows to annotated frames through their source frame index, and
the view window that maps the annotations into the crop the encoder saw."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from stillmotion.cache.views import Window, view_window
from stillmotion.data.annotations import AnnotationError, Annotations, load_annotations
from stillmotion.tasks.base import Clip, Task, Video
from stillmotion.tasks.config import TaskConfig
from stillmotion.video.decode import probe
from stillmotion.video.errors import VideoDecodeError

#: annotation files kept in memory at once (depth maps are large)
KEEP = 64


class AnnotatedTask(Task):
    """Subclasses set `needs` (the annotation arrays they read) and `first_ok(notes, i)`: the
    targets a clip may have when it starts at annotated frame i."""

    needs: tuple[str, ...] = ()
    whole = False  # trackers: evaluate each video whole, as one stream (`whole_clips`)

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str] | None = None, samples: list | None = None):
        super().__init__(cfg, frames)
        self.samples = {s.id: s for s in samples or []}
        self.sizes: dict[str, tuple[int, int]] = {}
        self.sources: dict[str, np.ndarray] = {}  # video id -> source frame of each row
        self._kept: OrderedDict[str, Annotations] = OrderedDict()

    def notes(self, video_id: str) -> Annotations:
        """The video's annotations (read on first use, the last KEEP kept in memory)."""
        if video_id in self._kept:
            self._kept.move_to_end(video_id)
            return self._kept[video_id]
        sample = self.samples[video_id]
        if not sample.annotations:
            raise AnnotationError(f"{sample.path}: no annotation file; name one with \"annotations\" in the manifest")
        notes = load_annotations(sample.annotations, self.needs)
        self._kept[video_id] = notes
        if len(self._kept) > KEEP:
            self._kept.popitem(last=False)
        return notes

    def usable(self, video: Video) -> bool:
        """Whether the video has readable annotations and a clip can start somewhere in it; a
        reason is kept in `problems` for an unreadable file."""
        try:
            notes = self.notes(video.id)
            if notes.size:
                self.sizes[video.id] = notes.size
            elif video.id not in self.sizes:
                info = probe(self.samples[video.id].path)
                self.sizes[video.id] = (info.width, info.height)
        except (AnnotationError, VideoDecodeError, KeyError) as exc:
            self.problems[video.id] = str(exc)
            return False
        self.sources[video.id] = np.asarray(video.sources)
        return bool(self.starts(video))

    def _pairs(self, video: Video, rows: np.ndarray) -> list[tuple[int, int | None]]:
        """(row, target) for each of `rows` that is annotated, with every target `first_ok` allows there."""
        notes = self.notes(video.id)
        found = notes.rows(self.sources[video.id][rows])
        return [(int(r), t) for r, i in zip(rows, found) if i >= 0 for t in self.first_ok(notes, int(i))]

    def starts(self, video: Video) -> list[tuple[int, int | None]]:
        """(row, target) pairs a clip may start from: an annotated row where `first_ok` holds."""
        return self._pairs(video, np.arange(max(video.num_frames - self.frames, 0) + 1))

    def first_ok(self, notes: Annotations, i: int) -> list[int | None]:
        """The targets (an object, or None) a clip starting at annotated frame i may have."""
        return [None]

    def train_clips(self, video, count, rng):
        starts = self.starts(video)
        picks = rng.integers(len(starts), size=count)
        return [Clip(video.id, tuple(range(starts[p][0], min(starts[p][0] + self.frames, video.num_frames))),
                     starts[p][1]) for p in picks]

    def eval_clips(self, video):
        """`eval_clips` starts spread over those available, each with every target it allows;
        for tasks that set `whole` (with `task.whole_videos`), `whole_clips` instead."""
        if self.whole and self.cfg.whole_videos:
            return self.whole_clips(video)
        starts = self.starts(video)
        rows = sorted({r for r, _ in starts})
        chosen = {rows[i] for i in {round(k * (len(rows) - 1) / max(self.cfg.eval_clips - 1, 1))
                                    for k in range(min(self.cfg.eval_clips, len(rows)))}}
        return [Clip(video.id, tuple(range(r, min(r + self.frames, video.num_frames))), t)
                for r, t in starts if r in chosen]

    def whole_clips(self, video: Video) -> list[Clip]:
        """One clip per target, from the first annotated row where it may start to the last
        annotated row where it is still there: the whole video as one stream."""
        first, last = {}, {}
        for row, target in self._pairs(video, np.arange(video.num_frames)):
            first.setdefault(target, row)
            last[target] = row
        return [Clip(video.id, tuple(range(first[t], last[t] + 1)), t) for t in first]

    def window(self, clip: Clip, size: int, view) -> Window:
        width, height = self.sizes[clip.video]
        return view_window(width, height, size, view)

    def clip_sources(self, clip: Clip) -> np.ndarray:
        return self.sources[clip.video][list(clip.rows)]
