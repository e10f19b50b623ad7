"""Streaming from pixels: a loaded model answering frame by frame (`Streamer`), the sources frames
come from, the pictures drawn over them, and per-stage latency."""

from stillmotion.stream.streamer import Prediction, Streamer

__all__ = ["Prediction", "Streamer"]
