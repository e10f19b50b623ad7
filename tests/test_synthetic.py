import json

import numpy as np
import pytest

from stillmotion.data import read_manifest
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
        box = np.concatenate([clip.centers[obj].min(0) - clip.radii[obj] - 2, clip.centers[obj].max(0) + clip.radii[obj] + 2])
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
