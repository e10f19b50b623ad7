import json

import numpy as np
import pytest

from stillmotion.data import read_manifest
from stillmotion.data.annotations import load_annotations
from stillmotion.data.scenes import FOCAL, Z0, SceneConfig, generate_scenes, render_scene
from stillmotion.data.synthetic import CLASSES, MotionTaskConfig, generate_motion_task, render_clip
from stillmotion.video import read_frames

TINY = MotionTaskConfig(size=64, frames=6, train_per_class=2, val_per_class=1, test_per_class=1, seed=3)


def test_same_seed_same_clips_other_seed_other_clips():
    a, b = render_clip(TINY, "train", 5), render_clip(TINY, "train", 5)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.centers, b.centers)
    other = render_clip(MotionTaskConfig(**{**TINY.__dict__, "seed": 4}), "train", 5)
    assert not np.array_equal(a.frames, other.frames)


def test_generated_files_are_deterministic(tmp_path):
    m1 = generate_motion_task(tmp_path / "a", TINY, progress=False)
    m2 = generate_motion_task(tmp_path / "b", TINY, progress=False)
    s1, s2 = read_manifest(m1), read_manifest(m2)
    assert [(s.id, s.label, s.split) for s in s1] == [(s.id, s.label, s.split) for s in s2]
    assert len(s1) == (2 + 1 + 1) * 4
    for x, y in zip(s1, s2):
        # The rendered frames are bit-exact (above); the H.264 encodes agree to within x264's
        # rare rate-control variation.
        assert np.abs(read_frames(x.path).astype(int) - read_frames(y.path).astype(int)).mean() < 1.0


def test_classes_are_balanced_per_split(tmp_path):
    samples = read_manifest(generate_motion_task(tmp_path, TINY, progress=False))
    for split, per_class in [("train", 2), ("val", 1), ("test", 1)]:
        labels = [s.label for s in samples if s.split == split]
        assert sorted(labels) == sorted(list(CLASSES) * per_class)


def _centroid(diff: np.ndarray, box: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = np.clip(np.round(box).astype(int), 0, diff.shape[0] - 1)
    ys, xs = np.nonzero(diff[y0 : y1 + 1, x0 : x1 + 1])
    return np.array([xs.mean() + x0, ys.mean() + y0])


@pytest.mark.parametrize("index", range(8))
def test_labels_match_the_motion_seen_in_the_decoded_video(tmp_path, index):
    """Find each object in the decoded .mp4 (pixels that differ from the background) and check it
    moves the way the label says: the horizontal mover along x with the label's sign, the vertical
    mover along y with the label's sign, and both where the generator says they are."""
    cfg = MotionTaskConfig(size=96, frames=8, seed=11)
    clip = render_clip(cfg, "test", index)
    from stillmotion.video import write_video

    frames = read_frames(write_video(tmp_path / "c.mp4", clip.frames, fps=8)).astype(int)
    diff = np.abs(frames - clip.background.astype(int)).sum(-1) > 60  # (T, H, W)
    dx, dy = CLASSES[clip.label]
    for obj, (axis, sign) in enumerate([(0, dx), (1, dy)]):
        box = np.concatenate([clip.centers[obj].min(0) - clip.radii[obj] - 2,
                              clip.centers[obj].max(0) + clip.radii[obj] + 2])
        seen = np.stack([_centroid(d, box) for d in diff])  # (T, 2) measured centres
        assert np.abs(seen - clip.centers[obj]).max() < 2.5
        steps = np.diff(seen[:, axis])
        assert np.all(np.sign(steps) == sign), (clip.label, seen[:, axis])
        assert np.ptp(seen[:, 1 - axis]) < 1.5  # no motion across the axis


def test_generation_resumes_and_refuses_other_settings(tmp_path):
    generate_motion_task(tmp_path, TINY, progress=False)
    victim, kept = tmp_path / "train" / "train-00003.mp4", tmp_path / "train" / "train-00004.mp4"
    before, kept_bytes, kept_mtime = read_frames(victim).astype(int), kept.read_bytes(), kept.stat().st_mtime_ns
    victim.unlink()
    generate_motion_task(tmp_path, TINY, progress=False)
    assert np.abs(read_frames(victim).astype(int) - before).mean() < 1.0  # made again
    assert kept.read_bytes() == kept_bytes and kept.stat().st_mtime_ns == kept_mtime  # left alone
    assert json.loads((tmp_path / "task.json").read_text())["seed"] == 3
    with pytest.raises(ValueError, match="other settings"):
        generate_motion_task(tmp_path, MotionTaskConfig(**{**TINY.__dict__, "frames": 7}), progress=False)


# ---- tracking scenes: the camera's poses ---------------------------------------------------------

def _camera_rays(pose: np.ndarray, xy: np.ndarray, focal: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    """A pinhole camera's centre (3,) and the world directions (N, 3) through pixels xy (N, 2)."""
    d = np.concatenate([(xy - half) / focal, np.ones((len(xy), 1))], 1)
    return pose[:3, 3], d @ pose[:3, :3].T


def _on_plane(pose, xy, focal, half) -> np.ndarray:
    """Where the rays through pixels xy meet the texture plane Z = Z0 (N, 3), world metres."""
    centre, d = _camera_rays(pose, xy, focal, half)
    return centre + d * ((Z0 - centre[2]) / d[:, 2])[:, None]


def _project(pose, world, focal, half) -> np.ndarray:
    """World points (N, 3) -> pixels (N, 2) of the camera at `pose` (camera-to-world)."""
    cam = (world - pose[:3, 3]) @ pose[:3, :3]
    return focal * cam[:, :2] / cam[:, 2:] + half


SCENE = SceneConfig(size=96, frames=8, roll=20, zoom=0.2, pan=0.3)


def test_scene_poses_carry_the_background_points_from_frame_to_frame():
    scene = render_scene(SCENE, "train", 2)
    focal, half, ground = FOCAL * SCENE.size, SCENE.size / 2, slice(2 * SCENE.points_per_object, None)
    start = _on_plane(scene.poses[0], scene.points[0, ground] * SCENE.size, focal, half)
    for t in range(SCENE.frames):
        seen = _project(scene.poses[t], start, focal, half) / SCENE.size
        assert np.abs(seen - scene.points[t, ground]).max() < 1e-5
    # the camera rolls about its optical axis and moves along it, within the configured bounds
    rel = np.linalg.inv(scene.poses[0]) @ scene.poses[-1]
    roll = np.degrees(np.arctan2(rel[1, 0], rel[0, 0]))
    assert 0.5 < abs(roll) <= SCENE.roll and np.allclose(rel[2, :3], [0, 0, 1])
    distance = Z0 - scene.poses[:, 2, 3]  # to the texture plane; the texture shows at scale Z0 / distance
    assert ((Z0 / distance > 1 - SCENE.zoom - 1e-9) & (Z0 / distance < 1 + SCENE.zoom + 1e-9)).all()


def test_scene_frames_are_the_texture_seen_through_the_poses():
    """Each frame's background pixels show what the first frame shows where the poses say they
    map to (through the texture plane); ignoring the motion does much worse."""
    scene = render_scene(SCENE, "val", 0)
    s, focal, half = SCENE.size, FOCAL * SCENE.size, SCENE.size / 2
    pixels = np.stack(np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5, indexing="xy"), -1).reshape(-1, 2)
    first, t = scene.frames[0].astype(float), SCENE.frames - 1
    back = _project(scene.poses[0], _on_plane(scene.poses[t], pixels, focal, half), focal, half)
    ix, still = np.floor(back).astype(int), np.floor(pixels).astype(int)
    inside = ((ix >= 1) & (ix < s - 1)).all(-1)
    open_ground = inside & (scene.depth[t].reshape(-1) >= 4)  # neither object covers it now...
    open_ground[inside] &= scene.depth[0][ix[inside, 1], ix[inside, 0]] >= 4  # ...nor in the first frame
    here = scene.frames[t].reshape(-1, 3)[open_ground].astype(float)
    moved = np.abs(here - first[ix[open_ground, 1], ix[open_ground, 0]]).mean()
    unmoved = np.abs(here - first[still[open_ground, 1], still[open_ground, 0]]).mean()
    assert open_ground.sum() > s * s / 4 and moved < 6 and unmoved > 3 * moved


def test_scenes_without_roll_or_zoom_only_pan_and_settings_are_checked():
    scene = render_scene(SceneConfig(frames=6, roll=0, zoom=0), "train", 0)
    assert np.allclose(scene.poses[:, :3, :3], np.eye(3)) and np.allclose(scene.poses[:, 2, 3], 0)
    steps = np.diff(scene.poses[:, :2, 3], axis=0)
    assert np.allclose(steps, steps[0]) and np.abs(steps[0]).max() > 0  # constant velocity
    again = render_scene(SceneConfig(frames=6, roll=0, zoom=0), "train", 0)
    assert np.array_equal(scene.frames, again.frames) and np.array_equal(scene.poses, again.poses)
    with pytest.raises(ValueError, match="zoom < 1"):
        render_scene(SceneConfig(zoom=1.0), "train", 0)


def test_scene_files_hold_poses_the_loader_accepts(tmp_path):
    cfg = SceneConfig(size=64, frames=4, train=1, val=1)
    sample = read_manifest(generate_scenes(tmp_path, cfg, progress=False))[0]
    notes = load_annotations(sample.annotations, need=("poses", "boxes", "depth"))
    assert notes.poses.shape == (4, 4, 4) and np.allclose(notes.poses, render_scene(cfg, "train", 0).poses)
