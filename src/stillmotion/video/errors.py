"""Errors raised for video files that cannot be read."""

from __future__ import annotations

from pathlib import Path


class VideoDecodeError(RuntimeError):
    """A video file could not be read. The message names the file, the problem and what to do."""

    def __init__(self, path: str | Path, problem: str,
                 hint: str = "check that it is a whole video FFmpeg can play; batch jobs skip it and list it"):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem} ({hint})")
