"""Camera pose: the pose metrics, the task's targets (and their flip), a readout that streams, and
a short run on synthetic scenes."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stillmotion.cache.views import ViewParams
from stillmotion.config import TaskConfig, load_config
from stillmotion.data.annotations import save_annotations
from stillmotion.data.manifest import Sample
from stillmotion.data.scenes import FOCAL, Z0, SceneConfig, generate_scenes, render_scene
from stillmotion.model.video import VideoModel
from stillmotion.tasks import TASKS, Clip, Video
from stillmotion.tasks.metrics import pose_errors, pose_targets, relative_poses, rotation_from_6d
from stillmotion.tasks.pose import mirror_poses
from stillmotion.train.data import collate
from stillmotion.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
IDENTITY = torch.tensor([1.0, 0, 0, 0, 1, 0])
RZ90 = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # 90 degrees about z: x -> y


def pose(rotation=None, translation=(0.0, 0.0, 0.0)) -> torch.Tensor:
    out = torch.eye(4, dtype=torch.float64)
    if rotation is not None:
        out[:3, :3] = rotation
    out[:3, 3] = torch.tensor(translation, dtype=torch.float64)
    return out


def rz(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]],
                        dtype=torch.float64)


# ---- metrics -----------------------------------------------------------------------------------

def test_rotation_from_6d_orthonormalizes_by_gram_schmidt():
    assert torch.equal(rotation_from_6d(IDENTITY), torch.eye(3))
    # scaled, and the second column leaning towards the first: still the identity
    assert torch.allclose(rotation_from_6d(torch.tensor([2.0, 0, 0, 1, 3, 0])), torch.eye(3))
    assert torch.allclose(rotation_from_6d(torch.tensor([0.0, 1, 0, -1, 0, 0])), RZ90)  # R[:, 0], R[:, 1]
    r = rotation_from_6d(torch.randn(5, 6, dtype=torch.float64))
    assert torch.allclose(r.transpose(-1, -2) @ r, torch.eye(3, dtype=torch.float64).expand(5, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(5, dtype=torch.float64))


def test_pose_errors_by_hand():
    turned = torch.cat([torch.zeros(3), RZ90[:, 0], RZ90[:, 1]])
    pred = torch.stack([torch.cat([torch.zeros(3), IDENTITY])] * 4)
    true = torch.stack([torch.cat([torch.zeros(3), IDENTITY]),  # identical: 0, 0
                        torch.cat([torch.tensor([1.0, 0, 0]), IDENTITY]),  # 1 m off: 1000 mm
                        torch.cat([torch.tensor([0.3, 0.4, 0]), IDENTITY]),  # 0.5 m off
                        turned])  # a quarter turn about z
    err = pose_errors(pred, true)
    assert err["translation_mm"].tolist() == pytest.approx([0, 1000, 500, 0])
    assert err["rotation_deg"].tolist() == pytest.approx([0, 0, 0, 90])
    half_turn = torch.tensor([[0.0, 0, 0, 1, 0, 0, 0, -1, 0]])  # diag(1, -1, -1): acos(-1), clamped
    assert pose_errors(torch.cat([torch.zeros(3), IDENTITY])[None], half_turn)["rotation_deg"].item() == \
        pytest.approx(180, abs=1e-4)


def test_relative_poses_are_in_the_previous_cameras_frame():
    # camera 0 turned a quarter about z; camera 1 one metre further along world y, which is
    # camera 0's x (its x axis points along world y)
    poses = torch.stack([pose(RZ90), pose(RZ90, (0, 1, 0)), pose(RZ90 @ RZ90, (0, 1, 2))])
    rel = relative_poses(poses)
    assert torch.allclose(rel[0], pose(None, (1, 0, 0)))
    assert torch.allclose(rel[1], pose(RZ90, (0, 0, 2)))
    targets = pose_targets(poses)
    assert targets.shape == (3, 9) and targets[0].isnan().all()
    assert targets[1].tolist() == pytest.approx([1, 0, 0, 1, 0, 0, 0, 1, 0])
    assert targets[2].tolist() == pytest.approx([0, 0, 2, 0, 1, 0, -1, 0, 0])
    assert torch.allclose(rotation_from_6d(targets[2, 3:]), RZ90.double())


# ---- the task ------------------------------------------------------------------------------------

@pytest.fixture
def posed(tmp_path):
    """A 6-frame video with poses at frames 0, 1, 2, 4, 5: 0.1 m along world x and a quarter
    turn about z per frame."""
    frames = [0, 1, 2, 4, 5]
    poses = np.stack([pose(rz(90 * f), (0.1 * f, 0, 0)).numpy() for f in frames])
    path = save_annotations(tmp_path / "v.npz", frames=np.array(frames), poses=poses, size=np.array([64, 64]))
    task = TASKS["camera_pose"](TaskConfig(eval_clips=2), 3, samples=[Sample("v", str(tmp_path / "v.mp4"),
                                                                              annotations=str(path))])
    video = Video("v", 6, None, tuple(range(6)))
    assert task.usable(video)
    return task, video


def test_targets_follow_the_known_poses_and_skip_unannotated_frames(posed):
    task, video = posed
    assert task.eval_clips(video) == [Clip("v", (0, 1, 2), None), Clip("v", (2, 3, 4), None)]
    true = task.frame_targets(Clip("v", (0, 1, 2, 3, 4, 5), None), 64, None)["pose"]
    assert true.dtype == torch.float32 and true.shape == (6, 9)
    # frame 0 has no frame before it; frame 3 no pose; frame 4 no pose before it
    assert [bool(row.isnan().all()) for row in true] == [True, False, False, True, True, False]
    # frame 1: 0.1 m along camera 0's x (= world x); frame 2: along camera 1's -y (it is turned a quarter)
    quarter = [0, 1, 0, -1, 0, 0]
    assert true[1].tolist() == pytest.approx([0.1, 0, 0, *quarter], abs=1e-6)
    assert true[2].tolist() == pytest.approx([0, -0.1, 0, *quarter], abs=1e-6)
    assert true[5].tolist() == pytest.approx([0.1, 0, 0, *quarter], abs=1e-6)  # camera 4 has turned full circle


def test_a_flipped_view_mirrors_the_motion(posed):
    task, _ = posed
    clip = Clip("v", (0, 1, 2), None)
    view = ViewParams(zoom=1.2, top=0.3, left=0.7, flip=False, brightness=1.0, contrast=1.0, saturation=1.0)
    plain = task.frame_targets(clip, 64, None)["pose"]
    assert torch.equal(task.frame_targets(clip, 64, view)["pose"].nan_to_num(), plain.nan_to_num())  # crop, zoom
    flipped = task.frame_targets(clip, 64, ViewParams(**{**view.__dict__, "flip": True}))["pose"]
    # x translation negated; a quarter turn about z becomes a quarter turn the other way
    assert flipped[1].tolist() == pytest.approx([-0.1, 0, 0, 0, -1, 0, 1, 0, 0], abs=1e-6)
    assert flipped[2].tolist() == pytest.approx([0, -0.1, 0, 0, -1, 0, 1, 0, 0], abs=1e-6)
    # in general: the mirrored poses' relative motion is M rel M, M = diag(-1, 1, 1, 1)
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(4, 3, 3, dtype=torch.float64))
    poses = torch.stack([pose(r * torch.linalg.det(r), torch.randn(3).tolist()) for r in q])
    m = torch.diag(torch.tensor([-1.0, 1, 1, 1], dtype=torch.float64))
    assert torch.allclose(relative_poses(mirror_poses(poses)), m @ relative_poses(poses) @ m)


def test_mirrored_poses_explain_a_mirrored_scene():
    """Flip a synthetic scene's frames left-right: its background points (x -> 1 - x) move as the
    mirrored poses say they should, through the texture plane Z0 in front of the first camera."""
    cfg = SceneConfig(size=96, frames=6, roll=20, zoom=0.2)
    scene = render_scene(cfg, "train", 4)
    poses = mirror_poses(torch.from_numpy(scene.poses)).numpy()
    points = scene.points[:, 2 * cfg.points_per_object:].astype(np.float64)
    points[..., 0] = 1 - points[..., 0]
    focal = FOCAL * cfg.size
    rays = np.concatenate([(points[0] - 0.5) * cfg.size / focal, np.ones((len(points[0]), 1))], 1)
    rays = rays @ poses[0, :3, :3].T
    world = poses[0, :3, 3] + rays * ((Z0 - poses[0, 2, 3]) / rays[:, 2])[:, None]
    for t in range(cfg.frames):
        cam = (world - poses[t, :3, 3]) @ poses[t, :3, :3]
        assert np.abs(focal * cam[:, :2] / cam[:, 2:] / cfg.size + 0.5 - points[t]).max() < 1e-5


def test_loss_and_scores_of_perfect_and_static_predictions(posed):
    task, _ = posed
    true = task.frame_targets(Clip("v", (0, 1, 2), None), 64, None)["pose"][None]
    batch = {"pose": true}
    perfect = true.nan_to_num(7.0)  # the rows without a target are ignored, whatever they hold
    assert task.loss(perfect, batch).item() == pytest.approx(0.0, abs=1e-6)
    static = torch.tensor([0.0, 0, 0, 1, 0, 0, 0, 1, 0]).expand(1, 3, 9)
    # 0.1 m in one component: smooth-L1 0.1 - 0.005 over 3 components; a quarter turn: ||I - Rz90|| = 2
    assert task.loss(static, batch).item() == pytest.approx(0.095 / 3 + 2.0, abs=1e-5)
    nothing = {"pose": torch.full((1, 3, 9), float("nan"))}
    out = torch.randn(1, 3, 9, requires_grad=True)
    empty = task.loss(out, nothing)
    assert empty.item() == 0.0 and empty.requires_grad
    m = task.metrics(task.score(perfect, batch) + task.score(static, batch), [None, None])
    assert m["frames"] == 4 and m["clips"] == 2
    assert m["rpe_translation_mm"] == pytest.approx(50.0, abs=1e-3)  # perfect on 2 frames, 100 mm off on 2
    assert m["rpe_rotation_deg"] == pytest.approx(45.0, abs=1e-3)
    assert m["static_rpe_translation_mm"] == pytest.approx(100.0, abs=1e-3)
    assert m["static_rpe_rotation_deg"] == pytest.approx(90.0, abs=1e-3)
    assert task.metrics([], [])["frames"] == 0


@pytest.mark.parametrize("core", ["gru", "gmmix"])
def test_pose_readout_streams_frame_by_frame_as_it_runs_on_clips(core):
    torch.manual_seed(0)
    model = VideoModel(8, "pose", 0, core=core, size="tiny", hidden=32).eval()
    x = torch.randn(2, 5, 16, 8)
    clip = model(x, torch.ones(2, 5, dtype=torch.bool))
    assert clip.shape == (2, 5, 9)
    assert torch.allclose(model.stream(x), clip, atol=1e-5)


# ---- a short run on synthetic scenes -------------------------------------------------------------

TINY = SceneConfig(size=64, frames=6, train=3, val=1)
QUICK = ["data.size=64", "data.frames=4", "data.clips_per_video=2", "temporal.kw.hidden=32", "head.hidden=64",
         "train.batch_size=4", "train.steps=4", "train.eval_every=1000", "train.checkpoint_every=1000",
         "task.eval_clips=2", "optim.warmup_steps=1"]


def test_a_short_run_on_scenes_gives_finite_metrics_and_overfits_one_batch(tmp_path):
    manifest = generate_scenes(tmp_path / "scenes", TINY, progress=False)
    cfg = load_config(REPO / "configs/cpu/camera_pose.yaml",
                      [f"data.train={manifest}", f"data.cache={tmp_path / 'cache'}", *QUICK])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    val = trainer.fit()["val"]
    assert set(val) >= {"rpe_translation_mm", "rpe_rotation_deg", "static_rpe_translation_mm",
                        "static_rpe_rotation_deg", "frames", "clips"}
    assert val["frames"] == 2 * 3 and all(math.isfinite(v) for v in val.values())  # 2 clips, 3 frames after the first
    assert val["static_rpe_translation_mm"] > 0 and val["static_rpe_rotation_deg"] > 0  # the camera moves

    clips = trainer.epoch_clips(0)[0][:4]
    batch = trainer._on_device(collate([trainer.dataset(clips, "fixed", train=False)[i] for i in range(4)]))
    assert batch["pose"].shape == (4, 4, 9) and batch["pose"][:, 1:].isfinite().all()
    optimizer = torch.optim.Adam(trainer.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = trainer.task.loss(trainer.model(batch["tokens"], batch["mask"]), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_scene_command_sets_the_cameras_motion(tmp_path):
    import json

    from stillmotion.cli import main
    from stillmotion.data.annotations import load_annotations

    args = ["data", "scenes", str(tmp_path / "s"), "--train", "1", "--val", "1", "--frames", "4", "--size", "64",
            "--quiet"]
    assert main([*args, "--pan", "0.5", "--roll", "20", "--zoom", "0.3"]) == 0
    settings = json.loads((tmp_path / "s" / "task.json").read_text())
    assert (settings["pan"], settings["roll"], settings["zoom"]) == (0.5, 20.0, 0.3)
    poses = load_annotations(tmp_path / "s" / "train" / "train-00000.npz", ("poses",)).poses
    assert poses.shape == (4, 4, 4) and not np.allclose(poses[0], poses[-1])
    assert main([*args, "--roll", "5"]) == 2  # another camera in the same folder is refused
