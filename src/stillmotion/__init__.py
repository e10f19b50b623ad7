"""stillmotion: video models from frozen image foundation models.

One data path: video file -> frames (T, H, W, 3) -> frozen encoder tokens (T, N, D), kept in a
token cache -> temporal core (the only part that learns time) -> readout.

    import stillmotion
    model = stillmotion.load_model("runs/classify")     # a trained or imported run
    streamer = stillmotion.Streamer(model)              # frame by frame: streamer.step(frame)
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # imported on first use, so `import stillmotion` (and the command line) stays quick
    if name == "load_model":
        from stillmotion.model import load_model

        return load_model
    if name == "Streamer":
        from stillmotion.stream import Streamer

        return Streamer
    raise AttributeError(f"module 'stillmotion' has no attribute {name!r}")
