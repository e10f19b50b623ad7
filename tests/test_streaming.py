"""`load_model` needs only a run's checkpoint; `Streamer` answers frame by frame exactly as the
model's clip forward answers on the same frames, for every task kind."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stillmotion.cache.pool import pooled_shape
from stillmotion.config import load_config
from stillmotion.encoders import load
from stillmotion.model import checkpoint, load_model, model_for
from stillmotion.stream import Streamer

REPO = Path(__file__).resolve().parents[1]
#: task config, overrides, output kind
RUNS = {
    "classes": ("classify", ["task.classes=[left,right,up,down]"], "classes"),
    "classes-pooled": ("classify", ["task.classes=[a,b]", "data.pool_space=2", "temporal.name=gmmix",
                                    "temporal.size=tiny"], "classes"),
    "boxes": ("box_tracking", [], "boxes"),
    "boxes-reference": ("box_tracking", ["head.name=reference", "head.hidden=32", "head.heads=2"], "boxes"),
    "points": ("point_tracking", [], "points"),
    "depth": ("depth", [], "depth"),
    "pose": ("camera_pose", [], "pose"),
}


def make_run(tmp_path, name: str) -> Path:
    """A run folder holding a randomly initialised model of this kind on the embedded encoder at 64 px."""
    config, overrides, kind = RUNS[name]
    cfg = load_config(REPO / f"configs/cpu/{config}.yaml", ["data.train=unused", "data.size=64", "data.frames=4",
                                                           "temporal.kw={}", *overrides])
    encoder = load("efficientnet-lite0", size=64)
    grid, dim = pooled_shape(encoder.grid, encoder.dim, cfg.data.pool_space, cfg.data.pool_channels)
    torch.manual_seed(0)
    model = model_for(cfg, kind, len(cfg.task.classes or []), dim, grid)
    checkpoint.save_weights(tmp_path / name, 0, model, cfg)
    return tmp_path / name


def query_for(kind: str):
    if kind == "boxes":
        return torch.tensor([0.3, 0.25, 0.7, 0.6])
    if kind == "points":
        return torch.tensor([[0.2, 0.3], [0.6, 0.5], [0.8, 0.8]])
    return None


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_streamer_answers_as_the_clip_forward(tmp_path, name):
    loaded = load_model(make_run(tmp_path, name), device="cpu")
    assert loaded.kind == RUNS[name][2] and not loaded.model.training
    frames = np.random.default_rng(0).integers(0, 256, (7, 50, 70, 3), dtype=np.uint8)
    query = query_for(loaded.kind)
    streamer = Streamer(loaded)
    streamer.reset(query=query)
    streamed = torch.stack([streamer.step(frame).value for frame in frames])
    tokens = loaded.tokens(frames)[None]
    with torch.no_grad():
        clip = loaded.model(tokens, query=None if query is None else query[None])
    if loaded.kind == "classes":  # the clip's answer is its last frame's
        assert torch.allclose(streamed[-1], clip[0].softmax(-1), atol=1e-5)
        assert torch.allclose(streamed.sum(-1), torch.ones(len(frames)), atol=1e-5)
    elif name == "boxes-reference":
        # paper 000's box loop amplifies float32 rounding 1e3-1e4 fold a frame (test_readouts):
        # frame 0 free, then each frame read from the clip's tokens with the stream's last box
        model = loaded.model
        with torch.no_grad():
            y = model.readable(model.core(model.mixed(tokens)))
            forced = model.head.track(y, query[None], teacher=torch.cat([query[None], streamed[:-1]])[None])
        assert torch.allclose(streamed[0], clip[0, 0], atol=1e-5)
        assert torch.allclose(streamed, forced[0], atol=1e-4), (streamed - forced[0]).abs().max()
    else:
        assert streamed.shape == clip[0].shape
        assert torch.allclose(streamed, clip[0], atol=1e-5), (streamed - clip[0]).abs().max()
    # a reset starts over: the first frame again gives the first answer
    streamer.reset(query=query)
    assert torch.allclose(streamer.step(frames[0]).value, streamed[0], atol=1e-6)


def test_predictions_name_classes_and_map_coordinates_to_the_source(tmp_path):
    loaded = load_model(make_run(tmp_path, "classes"), device="cpu")
    streamer = Streamer(loaded)
    streamer.reset()
    top = streamer.step(np.zeros((48, 64, 3), np.uint8)).top(2)
    assert len(top) == 2 and {c for c, _ in top} <= {"left", "right", "up", "down"} and top[0][1] >= top[1][1]
    boxes = Streamer(load_model(make_run(tmp_path, "boxes"), device="cpu"))
    boxes.reset(query=query_for("boxes"))
    prediction = boxes.step(np.zeros((48, 64, 3), np.uint8))
    x0, y0, x1, y1 = prediction.value.tolist()
    assert torch.allclose(prediction.in_source(64, 48), torch.tensor([8 + 48 * x0, 48 * y0, 8 + 48 * x1, 48 * y1]))
    with pytest.raises(ValueError, match="a boxes prediction has no classes"):
        prediction.top()


def test_tracking_streams_need_their_first_query_and_runs_need_their_classes(tmp_path):
    streamer = Streamer(load_model(make_run(tmp_path, "points"), device="cpu"))
    streamer.reset()
    with pytest.raises(ValueError, match="a points stream starts from a query"):
        streamer.step(np.zeros((32, 32, 3), np.uint8))
    run = make_run(tmp_path, "classes")
    config = checkpoint.resolve(run) / "config.yaml"
    config.write_text(config.read_text().replace("classes:\n  - left\n  - right\n  - up\n  - down\n",
                                                 "classes: null\n"))
    with pytest.raises(ValueError, match="names no classes"):
        load_model(run, device="cpu")
