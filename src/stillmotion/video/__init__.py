"""Video input: probing, frame-exact reading, writing and pixel transforms (PyAV backend)."""

from stillmotion.video.decode import VideoInfo, probe, read_frames
from stillmotion.video.errors import VideoDecodeError
from stillmotion.video.write import write_video

__all__ = ["VideoDecodeError", "VideoInfo", "probe", "read_frames", "write_video"]
