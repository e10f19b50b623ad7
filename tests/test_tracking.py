"""Box tracking, point tracking and depth: heads, tasks, and short runs on synthetic scenes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stillmotion.config import TaskConfig, load_config
from stillmotion.data.annotations import save_annotations
from stillmotion.data.manifest import Sample, read_manifest, write_manifest
from stillmotion.data.scenes import SceneConfig, generate_scenes
from stillmotion.heads.tracking import BoxHead, PointHead, sample
from stillmotion.model.video import VideoModel
from stillmotion.tasks import TASKS, Clip, Video
from stillmotion.train.trainer import Trainer, train

REPO = Path(__file__).resolve().parents[1]


def test_box_head_feeds_each_prediction_back_as_the_next_query():
    torch.manual_seed(0)
    head = BoxHead(16, (4, 4))
    for p in head.parameters():  # away from the zero init, so the boxes change from frame to frame
        torch.nn.init.normal_(p, std=0.3)
    y, first = torch.randn(2, 5, 16, 16), torch.tensor([[0.2, 0.2, 0.5, 0.6], [0.4, 0.1, 0.9, 0.5]])
    boxes = head.track(y, first)
    look = head.look(y[:, 0], first)
    query = first
    for t in range(5):
        query = head(y[:, t], query, look)
        assert torch.allclose(boxes[:, t], query, atol=1e-6)
    assert not torch.allclose(boxes[:, 1], boxes[:, 0])


def test_point_head_outputs_positions_and_visibility_per_frame():
    head = PointHead(16, (4, 4))
    out = head.track(torch.randn(2, 3, 16, 16), torch.rand(2, 5, 2))
    assert out.shape == (2, 3, 5, 3)
    assert (out[..., 2] > 0).all()  # starts by calling every point visible
    # sampling the token grid at a token's centre gives that token
    tokens = torch.randn(1, 16, 8)
    assert torch.allclose(sample(tokens, (4, 4), torch.tensor([[[0.625, 0.375]]]))[0, 0], tokens[0, 6], atol=1e-6)


@pytest.mark.parametrize("core", ["gru", "rvm"])
@pytest.mark.parametrize("kind, shape", [("boxes", (2, 3, 4)), ("points", (2, 3, 5, 3)), ("depth", (2, 3, 16, 16))])
def test_geometric_readouts_stream_frame_by_frame_as_they_run_on_clips(kind, shape, core):
    torch.manual_seed(0)
    model = VideoModel(8, kind, 0, core=core, size="tiny", grid=(4, 4), resolution=16).eval()
    for p in model.head.parameters():  # away from the zero init
        torch.nn.init.normal_(p, std=0.2)
    query = {"boxes": torch.tensor([[0.1, 0.1, 0.4, 0.4]] * 2), "points": torch.rand(2, 5, 2)}.get(kind)
    x = torch.randn(2, 3, 16, 8)
    clip = model(x, torch.ones(2, 3, dtype=torch.bool), query=query)
    assert clip.shape == shape
    assert torch.allclose(model.stream(x, query), clip, atol=1e-4)


@pytest.fixture
def annotated(tmp_path):
    """One 6-frame video annotated at frames 0-4: object 0 present throughout, object 1 only
    from frame 2; 2 points; depth 2 m on the left half, unmeasured on the right."""
    boxes = np.full((5, 2, 4), np.nan, dtype=np.float32)
    boxes[:, 0] = [[0.1 + 0.05 * t, 0.2, 0.3 + 0.05 * t, 0.4] for t in range(5)]
    boxes[2:, 1] = [0.5, 0.5, 0.7, 0.7]
    points = np.stack([[[0.25 + 0.1 * t, 0.5], [0.75, 0.5]] for t in range(5)]).astype(np.float32)
    visible = np.array([[True, False]] + [[True, True]] * 4)
    depth = np.zeros((5, 8, 8), dtype=np.float32)
    depth[:, :, :4] = 2.0
    path = save_annotations(tmp_path / "v.npz", boxes=boxes, points=points, visible=visible, depth=depth,
                            size=np.array([100, 100]))
    return [Sample("v", str(tmp_path / "v.mp4"), annotations=str(path))], Video("v", 6, None, tuple(range(6)))


def test_box_clips_start_where_the_object_is_and_targets_follow_the_view(annotated):
    samples, video = annotated
    task = TASKS["box_tracking"](TaskConfig(eval_clips=2, whole_videos=False), 3, samples=samples)
    assert task.usable(video)
    # starts 0..3 fit 3 frames; object 1 appears at frame 2; frame 5 is not annotated
    assert task.starts(video) == [(0, 0), (1, 0), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert task.eval_clips(video) == [Clip("v", (0, 1, 2), 0), Clip("v", (3, 4, 5), 0), Clip("v", (3, 4, 5), 1)]
    boxes = task.frame_targets(Clip("v", (3, 4, 5), 0), 64, None)["boxes"]
    assert boxes[0].tolist() == pytest.approx([0.25, 0.2, 0.45, 0.4]) and boxes[2].isnan().all()
    batch = {"boxes": boxes[None]}
    [(iou, held)] = task.score(boxes.nan_to_num()[None], batch)
    # 0.05 shift of a 0.2-wide box
    assert iou.tolist() == pytest.approx([1.0]) and held.item() == pytest.approx(0.15 / 0.25)
    m = task.metrics([(iou, held)], [Clip("v", (3, 4, 5), 0)])
    assert m["mean_iou"] == pytest.approx(1.0) and m["static_iou"] == pytest.approx(0.6) and m["frames"] == 1


def test_trackers_evaluate_each_video_whole_from_where_the_target_is_to_where_it_was_last_seen(annotated):
    samples, video = annotated
    boxes = TASKS["box_tracking"](TaskConfig(), 3, samples=samples)
    assert boxes.usable(video)
    # frame 5 is not annotated, so both objects' streams end at frame 4; object 1 starts at frame 2
    assert boxes.eval_clips(video) == [Clip("v", (0, 1, 2, 3, 4), 0), Clip("v", (2, 3, 4), 1)]
    points = TASKS["point_tracking"](TaskConfig(), 3, samples=samples)
    assert points.usable(video) and points.eval_clips(video) == [Clip("v", (0, 1, 2, 3, 4), None)]
    clipped = TASKS["box_tracking"](TaskConfig(eval_clips=2, whole_videos=False), 3, samples=samples)
    assert clipped.usable(video) and len(clipped.eval_clips(video)[0].rows) == 3


def test_point_and_depth_targets_and_perfect_scores(annotated):
    samples, video = annotated
    points = TASKS["point_tracking"](TaskConfig(), 3, samples=samples)
    assert points.usable(video)
    t = points.frame_targets(Clip("v", (0, 1, 2), None), 64, None)
    assert t["visible"].tolist() == [[True, False], [True, True], [True, True]]
    batch = {k: v[None] for k, v in t.items()}
    perfect = torch.cat([t["points"], torch.where(t["visible"], 5.0, -5.0)[..., None]], -1)[None]
    m = points.metrics(points.score(perfect, batch), [None])
    assert m["average_jaccard"] == 1.0 and m["occlusion_accuracy"] == 1.0 and m["points"] == 2  # point 1 not queried
    assert m["static_average_jaccard"] < 1.0
    assert points.loss(perfect, batch).item() == pytest.approx(0.0, abs=0.01)

    depth = TASKS["depth"](TaskConfig(resolution=4), 3, samples=samples)
    assert depth.usable(video)
    true = depth.frame_targets(Clip("v", (0, 1, 2), None), 64, None)["depth"]
    assert true.shape == (3, 4, 4) and true[:, :, :2].eq(2).all() and true[:, :, 2:].eq(0).all()
    m = depth.metrics(depth.score(true[None] + (true[None] == 0), {"depth": true[None]}), [None])
    assert m == {"abs_rel": 0.0, "delta1": 1.0, "constant_abs_rel": 0.0, "frames": 3, "clips": 1}


def test_depth_errors_are_averaged_per_frame_and_jaccard_per_video(annotated):
    samples, _ = annotated
    depth = TASKS["depth"](TaskConfig(resolution=4), 3, samples=samples)
    true = torch.zeros(1, 2, 4, 4)
    true[0, 0] = 2.0  # 16 measured pixels, predicted exactly
    true[0, 1, 0, 0] = 1.0  # 1 measured pixel, predicted at 1.5: AbsRel 0.5
    m = depth.metrics(depth.score(torch.full_like(true, 2.0) - 0.5 * (true == 1), {"depth": true}), [None])
    assert m["abs_rel"] == pytest.approx((0 + 0.5) / 2) and m["delta1"] == pytest.approx(0.5)  # pooled: 0.5 / 17
    assert m["frames"] == 2 and m["constant_abs_rel"] == 0.0

    points = TASKS["point_tracking"](TaskConfig(), 3, samples=samples)
    def score(hits: int, misses: int):  # one frame of `hits` points found and `misses` points lost
        n = hits + misses
        pred = torch.cat([torch.zeros(hits, 2), torch.full((misses, 2), 100.0)])
        return (pred, torch.ones(n, dtype=torch.bool), torch.zeros(n, 2), torch.ones(n, dtype=torch.bool),
                torch.zeros(n, 2))
    clips = [Clip("a", (0, 1), None), Clip("b", (0, 1), None), Clip("b", (2, 3), None)]
    m = points.metrics([score(1, 0), score(0, 5), score(0, 4)], clips)
    # video a: every point found (Jaccard 1); video b: 9 points, all lost (0); pooled it would be 1/10
    assert m["average_jaccard"] == pytest.approx(0.5) and m["position_accuracy"] == pytest.approx(0.5)
    assert m["videos"] == 2 and m["points"] == 10 and m["clips"] == 3


def test_a_video_without_its_annotation_file_is_reported(annotated):
    samples, video = annotated
    Path(samples[0].annotations).unlink()
    task = TASKS["depth"](TaskConfig(), 3, samples=samples)
    assert not task.usable(video) and "annotation file not found" in task.problems["v"]


# ---- short runs on synthetic scenes --------------------------------------------------------------

QUICK = ["data.frames=8", "train.steps=80", "train.eval_every=1000", "train.checkpoint_every=1000"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    manifest = generate_scenes(root / "data", SceneConfig(train=24, val=6, frames=12), progress=False)
    return manifest, root / "cache"


def _cfg(task, scenes, *overrides):
    manifest, cache = scenes
    return load_config(REPO / f"configs/cpu/{task}.yaml", [f"data.train={manifest}", f"data.cache={cache}", *QUICK,
                                                            *overrides])


def test_box_tracking_learns_to_follow_objects(scenes, tmp_path):
    manifest, _ = scenes
    broken = read_manifest(manifest) + [Sample("lost", read_manifest(manifest)[0].path, split="train",
                                               annotations=str(tmp_path / "missing.npz"))]
    write_manifest(manifest.parent / "with_lost.jsonl", broken)
    result = train(_cfg("box_tracking", scenes, f"data.train={manifest.parent / 'with_lost.jsonl'}"), tmp_path / "run",
                   progress=False)
    val = result["val"]
    assert val["mean_iou"] > val["static_iou"] + 0.25 and val["mean_iou"] > 0.75
    assert [f["reason"] for f in result["failed"]] == [f"{tmp_path / 'missing.npz'}: annotation file not found"]
    assert json.loads((tmp_path / "run/metrics.json").read_text())["val"] == val


def test_point_tracking_beats_holding_the_points_still(scenes, tmp_path):
    val = train(_cfg("point_tracking", scenes), tmp_path / "run", progress=False)["val"]
    assert val["average_jaccard"] > val["static_average_jaccard"] + 0.03
    assert val["occlusion_accuracy"] > 0.8


def test_depth_beats_each_frames_mean_depth(scenes, tmp_path):
    val = train(_cfg("depth", scenes), tmp_path / "run", progress=False)["val"]
    assert val["abs_rel"] < 0.5 * val["constant_abs_rel"] and val["delta1"] > 0.8


def test_whole_video_tracking_evaluation_equals_stepping_the_stream_frame_by_frame(scenes, tmp_path):
    from stillmotion.tasks.metrics import box_iou

    trainer = Trainer(_cfg("box_tracking", scenes, "train.steps=20"), tmp_path / "run", progress=False)
    trainer.fit()
    assert all(len(c.rows) > 8 for c in trainer.val_clips)  # whole scenes, longer than a training clip
    ious, held = [], []
    for clip in trainer.val_clips:
        item = trainer.dataset([clip], "eval", train=False)[0]
        true = item["boxes"]
        stream = trainer.model.stream(item["tokens"][None], true[None, 0])[0]
        ok = true.isfinite().all(-1)
        ok[0] = False
        ious.append(box_iou(stream[ok], true[ok]))
        held.append(box_iou(true[0].expand(int(ok.sum()), 4), true[ok]))
    metrics = trainer.evaluate()
    assert metrics["frames"] == sum(len(i) for i in ious)
    assert metrics["mean_iou"] == pytest.approx(torch.cat(ious).mean().item(), abs=1e-5)
    assert metrics["static_iou"] == pytest.approx(torch.cat(held).mean().item(), abs=1e-6)


def test_online_targets_match_cached_ones(scenes, tmp_path):
    """The same clip's boxes come out the same whether tokens are read or computed."""
    cached = Trainer(_cfg("box_tracking", scenes), tmp_path / "a", progress=False)
    online = Trainer(_cfg("box_tracking", scenes, "data.online=true"), tmp_path / "b", progress=False)
    clip = cached.val_clips[0]
    a = cached.dataset([clip], "k", train=False)[0]
    b = online.dataset([clip], "k", train=False)[0]
    assert torch.equal(a["boxes"].nan_to_num(-1), b["boxes"].nan_to_num(-1)) and len(a["tokens"]) == len(b["pixels"])
