"""Readouts by config (ours and paper 000's), the encoder mix in front of the core, and a run on
all tokens of K layers of a ViT: every readout streams as its clip forward does."""

import json

import pytest
import torch
import transformers as T

from stillmotion.config import ConfigError, load_config
from stillmotion.data.scenes import SceneConfig, generate_scenes
from stillmotion.heads.readouts import READOUTS, readout_for
from stillmotion.heads.tracking import to_cxcywh, to_xyxy
from stillmotion.model.video import VideoModel
from stillmotion.train.data import collate
from stillmotion.train.trainer import Trainer

DIM, GRID, EXTRA, LAYERS = 16, (2, 2), 1, 2
OUTPUTS = {"classes": 3, "boxes": 0, "points": 0, "depth": 0, "pose": 0, "embedding": 8}


def _model(kind, name, core="gru"):
    torch.manual_seed(0)
    return VideoModel(DIM, kind, OUTPUTS[kind], core=core, size="tiny", head=name, heads=2, grid=GRID,
                      resolution=16, hidden=16, layers=LAYERS, extra=EXTRA, max_frames=8).eval()


def _query(kind, b=2):
    if kind == "boxes":
        return torch.tensor([[0.2, 0.3, 0.6, 0.7]]).repeat(b, 1)
    if kind == "points":
        return torch.rand(b, 3, 2)
    return None


@pytest.mark.parametrize("kind,name", [k for k in READOUTS if k[0] != "tokens"])
@pytest.mark.parametrize("frames", [1, 3, 6])
def test_every_readout_streams_as_its_clip_forward_over_mixed_layers(kind, name, frames):
    # paper 000's box loop multiplies a difference by 1e3..1e4 per frame (its Fourier query goes
    # up to 2^15 pi), so float32 rounding alone parts stream and clip after two frames: float64
    # (through the identity core: every core's stream is checked against its clip in test_temporal)
    free_running = (kind, name) == ("boxes", "reference")
    dtype = torch.float64 if free_running else torch.float32
    model = _model(kind, name, core="identity" if free_running else "gru").to(dtype)
    torch.manual_seed(frames)
    x = torch.randn(2, frames, LAYERS * (EXTRA + GRID[0] * GRID[1]), DIM, dtype=dtype)
    query = _query(kind)
    query = query if query is None else query.to(dtype)
    with torch.no_grad():
        clip = model(x, query=query)
    streamed = model.stream(x, query=query)
    if kind in ("classes", "embedding"):  # the clip's answer is its last frame's
        clip = clip[:, None]
        streamed = streamed[:, -1:]
    assert streamed.shape == clip.shape
    assert torch.allclose(streamed, clip, atol=1e-5), (streamed - clip).abs().max()


@pytest.mark.parametrize("kind,name", sorted(READOUTS))
def test_every_readout_trains_under_bf16_autocast(kind, name):
    """The trainer's CUDA setting, on the CPU: forward under bf16 autocast, loss in float32."""
    if kind == "tokens":
        model = VideoModel(DIM, "tokens", 0, core="gru", size="tiny", head=name, grid=GRID)
        x = torch.randn(2, 3, 4, DIM)
    else:
        model = _model(kind, name).train()
        x = torch.randn(2, 3, LAYERS * (EXTRA + GRID[0] * GRID[1]), DIM)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, query=_query(kind))
    out.float().square().mean().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_the_mix_is_trained_in_front_of_the_core_and_grid_readouts_read_patches_only():
    model = _model("boxes", "ours")
    assert "mix.interm_mlps.1.bn.weight" in model.state_dict() and model.patches_only
    assert not _model("boxes", "reference").patches_only
    model.train()
    x = torch.randn(2, 3, LAYERS * (EXTRA + 4), DIM, requires_grad=True)
    model(x, query=_query("boxes")).sum().backward()
    assert model.mix.interm_mlps[0].mlp[0].weight.grad.abs().sum() > 0
    # the leading token reaches the box readout only through the core (it is dropped after it)
    one = VideoModel(DIM, "boxes", 0, core="identity", grid=GRID, layers=1, extra=EXTRA).eval()
    y = torch.randn(2, 3, EXTRA + 4, DIM)
    z = y.clone()
    z[:, :, 0] += 5
    assert torch.equal(one(y, query=_query("boxes")), one(z, query=_query("boxes")))


def test_reference_boxes_read_centre_boxes_unless_told_corners():
    torch.manual_seed(0)
    centre = VideoModel(DIM, "boxes", 0, core="identity", head="reference", heads=2, hidden=16).eval()
    corners = VideoModel(DIM, "boxes", 0, core="identity", head="reference", heads=2, hidden=16,
                         box_format="xyxy").eval()
    corners.load_state_dict(centre.state_dict())
    y, box = torch.randn(2, 1, 5, DIM), _query("boxes")
    with torch.no_grad():
        raw = centre.head(y[:, 0], to_cxcywh(box))  # the readout in its own (cx, cy, w, h)
        assert torch.allclose(centre(y, query=box)[:, 0], to_xyxy(raw), atol=1e-6)
        assert torch.allclose(corners(y, query=box)[:, 0], centre.head(y[:, 0], box), atol=1e-6)


def test_reference_points_return_the_query_at_frame_zero_and_uncertainty():
    model = _model("points", "reference")
    q = _query("points")
    out = model.stream(torch.randn(2, 4, LAYERS * (EXTRA + 4), DIM), query=q)
    assert out.shape == (2, 4, 3, 4)
    assert torch.equal(out[:, 0, :, :2], q) and (out[:, 0, :, 2] == 10).all() and (out[:, 0, :, 3] == -10).all()
    assert not torch.allclose(out[:, 1, :, :2], q)


def test_unknown_readouts_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="no readout 'attentive-2' for classes outputs; choose one of attentive"):
        readout_for("classes", "attentive-2")
    assert readout_for("depth", "linear") is READOUTS[("depth", "ours")]
    with pytest.raises(ConfigError, match="head.name: 'nope' is not one of attentive, linear, mlp, reference"):
        load_config(None, ["data.train=x", "head.name=nope"])
    with pytest.raises(ConfigError, match="pooling works on one layer"):
        load_config(None, ["data.train=x", "data.layers=4", "data.pool_space=2"])
    with pytest.raises(ConfigError, match="masked_tokens rebuilds one layer"):
        load_config(None, ["data.train=x", "data.layers=4", "task.name=masked_tokens"])


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A tiny DINOv3 ViT saved as a model folder (random weights, no download)."""
    folder = tmp_path_factory.mktemp("vit") / "dinov3-tiny"
    torch.manual_seed(0)
    config = T.DINOv3ViTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                               patch_size=16, image_size=64, num_register_tokens=4)
    T.DINOv3ViTModel(config).save_pretrained(folder)
    return folder


def test_a_run_on_all_tokens_of_four_layers_with_reference_readouts(tiny_vit, tmp_path):
    """Cache of (1 + 4 + 16) tokens x 4 layers per frame, the mix, a core and paper 000's box
    readout trained, then streamed as the evaluation runs it."""
    manifest = generate_scenes(tmp_path / "scenes", SceneConfig(size=64, train=4, val=2, frames=6), progress=False)
    cfg = load_config(None, [f"data.train={manifest}", f"data.encoder={tiny_vit}", "data.tokens=all", "data.layers=4",
                             "data.frames=4", "data.clips_per_video=2", "task.name=box_tracking",
                             "head.name=reference", "head.hidden=32", "head.heads=2", "temporal.name=gmmix",
                             "temporal.size=tiny", "train.steps=2", "train.batch_size=4", "train.eval_every=10",
                             "train.checkpoint_every=10"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    meta = json.loads((tmp_path / "run" / "cache" / "meta.json").read_text())
    assert meta["layers"] == [0, 1, 2, 3] and meta["extra_tokens"] == 5
    assert trainer.store.read(trainer.store.videos()[0]).shape[1:] == (4 * 21, 32)
    result = trainer.fit()
    assert 0 <= result["val"]["mean_iou"] <= 1
    # evaluation of a whole video and the stream agree: on frame 0, and on every frame when the
    # clip's readout is given the stream's previous box as its query (free-running, float32
    # rounding is amplified by the box loop, see the float64 test above)
    loader = torch.utils.data.DataLoader(trainer.dataset(trainer.val_clips[:1], "eval", train=False), batch_size=1,
                                         collate_fn=collate)
    batch = trainer._on_device(next(iter(loader)))
    model, query = trainer.model.eval(), trainer.task.inputs(batch)["query"]
    with torch.no_grad():
        clip_boxes = model(batch["tokens"], batch["mask"], query=query)
        streamed = model.stream(batch["tokens"], query)
        y = model.readable(model.core(model.mixed(batch["tokens"]), batch["mask"]))
        teacher = torch.cat([query[:, None], streamed[:, :-1]], 1)
        forced = model.head.track(y, query, teacher=teacher)
    assert clip_boxes.shape == streamed.shape == (1, 6, 4)
    assert torch.allclose(clip_boxes[:, 0], streamed[:, 0], atol=1e-5)
    assert torch.allclose(forced, streamed, atol=1e-4), (forced - streamed).abs().max()
