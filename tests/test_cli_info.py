"""The commands that tell a user what is there: shipped configs by name, the resolved config,
the encoders, a cache's contents; one meaning of --split; bad input exits 2, bugs keep their
traceback."""

import json
from pathlib import Path

import numpy as np
import pytest

from stillmotion import configs
from stillmotion.cache import TokenStore
from stillmotion.cli import main
from stillmotion.config import ConfigError, load_config

REPO = Path(__file__).parents[1]


def test_every_shipped_config_is_listed_loads_by_name_and_equals_its_file(capsys):
    files = sorted(p for p in (REPO / "src" / "stillmotion" / "configs").glob("*/*.yaml"))
    assert configs.names() == [f"{p.parent.name}/{p.stem}" for p in files] and len(files) >= 13
    assert main(["configs", "list"]) == 0
    listed = capsys.readouterr().out
    for path in files:
        name = f"{path.parent.name}/{path.stem}"
        assert name in listed
        by_name, by_file = load_config(path.stem, ["data.train=v/"]), load_config(path, ["data.train=v/"])
        assert by_name == by_file == load_config(name + ".yaml", ["data.train=v/"])
    assert main(["configs", "show", "prp"]) == 0
    assert capsys.readouterr().out == (REPO / "src/stillmotion/configs/cpu/prp.yaml").read_text()
    assert main(["configs", "show", "nope"]) == 2
    assert "no shipped config 'nope'" in capsys.readouterr().err


def test_a_name_that_is_neither_a_file_nor_shipped_is_an_error_listing_the_shipped_ones(tmp_path):
    with pytest.raises(ConfigError, match="no such config file.*cpu/prp"):
        load_config("prq")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_print_config_prints_the_resolved_config_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "prp", "data.train=videos/", "temporal.name=gmmix", "train.steps=7", "--print-config"]) == 0
    out = capsys.readouterr().out
    from stillmotion.config import from_yaml

    cfg = from_yaml(out)
    assert cfg == load_config("prp", ["data.train=videos/", "temporal.name=gmmix", "train.steps=7"])
    assert (cfg.task.name, cfg.temporal.name, cfg.train.steps) == ("prp", "gmmix", 7)
    assert not (tmp_path / "runs").exists()


def test_encoders_list_names_every_encoder_with_its_width_and_grid(capsys):
    from stillmotion.encoders import known_names

    assert main(["encoders", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:] if line and line[0] != "-"}
    for name in known_names():
        assert name in rows
    assert rows["efficientnet-lite0"].split()[3:5] == ["112", "8x8"] and "pip package" in rows["efficientnet-lite0"]
    assert ("768" in rows["dinov3-b"].split() and "14x14" in rows["dinov3-b"]
            and "facebook/dinov3-vitb16" in rows["dinov3-b"])


def test_cache_info_counts_videos_frames_bytes_and_failures(tmp_path, capsys):
    store = TokenStore(tmp_path / "c", {"fingerprint": "enc:1", "encoder": "enc", "grid": [2, 2], "dim": 3,
                                        "image_size": 32})
    store.write("a", np.zeros((1, 5, 4, 3), np.float32))
    store.write("b", np.zeros((1, 7, 4, 3), np.float32))
    store.record_failure("c", "/videos/c.mp4", "moov atom not found")
    assert main(["cache", "info", str(tmp_path / "c"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["videos"], info["frames"]) == (2, 12)
    assert info["bytes"] == sum(p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert [f["path"] for f in info["failures"]] == ["/videos/c.mp4"]
    assert info["settings"]["fingerprint"] == "enc:1"
    assert main(["cache", "info", str(tmp_path / "c")]) == 0
    text = capsys.readouterr().out
    assert "2 (12 frames" in text and "/videos/c.mp4: moov atom not found" in text
    assert main(["cache", "info", str(tmp_path / "none")]) == 2
    assert "no token cache here" in capsys.readouterr().err


def _manifest(tmp_path, real_clips) -> Path:
    clips = sorted(real_clips.glob("*.mp4"))[:3]
    rows = [{"id": c.stem, "path": str(c), "split": s} for c, s in zip(clips, ("train", "val", "test"))]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_split_means_one_split_of_the_manifest_in_every_command(tmp_path, real_clips, capsys):
    from stillmotion.data.sources import ManifestError, load_samples

    manifest = _manifest(tmp_path, real_clips)
    assert [s.split for s in load_samples(manifest, split="val")] == ["val"]
    with pytest.raises(ManifestError, match="no videos in split 'holdout'; its splits: test, train, val"):
        load_samples(manifest, split="holdout")
    assert main(["data", "check", str(manifest), "--split", "test", "--quiet", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["total"] == 1
    assert main(["data", "check", str(manifest), "--split", "holdout", "--quiet"]) == 2
    assert "no videos in split 'holdout'" in capsys.readouterr().err


def test_fold_picks_the_official_split(tmp_path):
    from stillmotion.data.sources import load_samples

    (tmp_path / "videos" / "run").mkdir(parents=True)
    for name in ("a.avi", "b.avi"):
        (tmp_path / "videos" / "run" / name).write_bytes(b"")
    (tmp_path / "run_test_split1.txt").write_text("a.avi 1\nb.avi 2\n")
    (tmp_path / "run_test_split2.txt").write_text("a.avi 2\nb.avi 1\n")
    for fold, want in ((1, ["train", "test"]), (2, ["test", "train"])):
        samples = load_samples(tmp_path / "videos", "hmdb51", splits=tmp_path, fold=fold)
        assert [s.split for s in sorted(samples, key=lambda s: s.id)] == want


def test_bad_input_exits_2_and_a_bug_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "no such config file" in capsys.readouterr().err

    def broken(*args, **kwargs):
        raise ValueError("an internal shape mismatch")  # a plain ValueError: a bug, not bad input

    monkeypatch.setattr("stillmotion.encoders.catalog.entries", broken)
    with pytest.raises(ValueError, match="internal shape mismatch"):
        main(["encoders", "list"])
