"""stillmotion: video models from frozen image foundation models.

One data path: video file -> frames (T, H, W, 3) -> frozen encoder tokens (T, N, D), kept in a
token cache -> temporal core (the only part that learns time) -> readout.
"""

__version__ = "0.1.0"
