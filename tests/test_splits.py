"""Held-out videos: `data.val_fraction` splits by file and never lets validation share a video
with training; a shared video is reported."""

import json
from pathlib import Path

import pytest

from stillmotion.config import ConfigError, load_config
from stillmotion.data.manifest import Sample
from stillmotion.data.splits import shared_videos, split_by_video
from stillmotion.train.trainer import _split


def _samples(videos=10, segments=3, folder="/data"):
    """`segments` samples cut from each of `videos` files."""
    return [Sample(f"v{v}_{s}", f"{folder}/v{v}.mp4", start=float(s), end=s + 1.0)
            for v in range(videos) for s in range(segments)]


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_fraction_split_never_shares_a_video_with_training(fraction, seed):
    samples = _samples()
    train, val = split_by_video(samples, fraction, seed)
    assert {Path(s.path).name for s in train}.isdisjoint(Path(s.path).name for s in val)
    assert shared_videos(train, val) == []
    assert len(train) + len(val) == len(samples) and len({s.path for s in val}) == max(1, round(fraction * 10))
    assert all(sum(s.path == v.path for s in val) == 3 for v in val)  # a file's segments stay together


def test_the_split_depends_on_the_seed_and_names_not_on_order_or_folder():
    a = split_by_video(_samples(), 0.3, seed=0)[1]
    b = split_by_video(list(reversed(_samples(folder="/elsewhere"))), 0.3, seed=0)[1]
    assert sorted(s.id for s in a) == sorted(s.id for s in b)
    assert {s.id for s in split_by_video(_samples(), 0.3, seed=1)[1]} != {s.id for s in a}


def test_splits_that_cannot_be_made_are_refused():
    with pytest.raises(ValueError, match="1 video"):
        split_by_video(_samples(videos=1), 0.2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_video(_samples(), 1.0)
    assert len({s.path for s in split_by_video(_samples(videos=2), 0.9)[0]}) == 1  # one video always trains


def _folder(tmp_path, count=5):
    for i in range(count):
        (tmp_path / f"v{i}.mp4").write_bytes(b"")
    return tmp_path


def test_self_supervised_runs_hold_out_videos_unless_told_otherwise(tmp_path):
    folder = _folder(tmp_path)
    train, val, test = _split(load_config(None, [f"data.train={folder}", "task.name=prp"]), "prp")
    assert len(val) == 1 and len(train) == 4 and not shared_videos(train, val) and test == []
    train, val, _ = _split(load_config(None, [f"data.train={folder}", "task.name=prp", "data.val_fraction=0.4"]), "prp")
    assert len(val) == 2 and not shared_videos(train, val)
    train, val, _ = _split(load_config(None, [f"data.train={folder}", "task.name=prp", "data.val_fraction=0"]), "prp")
    assert shared_videos(train, val) == sorted(str(p.resolve()) for p in folder.iterdir())


def test_val_fraction_beside_other_validation_is_refused(tmp_path):
    (tmp_path / "videos").mkdir()
    folder = _folder(tmp_path / "videos")
    with pytest.raises(ConfigError, match="data.val already names"):
        _split(load_config(None, [f"data.train={folder}", f"data.val={folder}", "data.val_fraction=0.2"]), "prp")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"path": f"{s}.mp4", "split": s}) + "\n" for s in ("train", "val")))
    with pytest.raises(ConfigError, match="already has a 'val' split"):
        _split(load_config(None, [f"data.train={manifest}", "data.val_fraction=0.2"]), "prp")
    with pytest.raises(ConfigError, match="data.val_fraction=0.2"):  # labelled data without validation: say how
        _split(load_config(None, [f"data.train={folder}", "task.name=classification"]), "classification")
