import json
import subprocess
import sys

import numpy as np
import pytest

from stillmotion.data import sources as src
from stillmotion.video import write_video

TINY = np.zeros((3, 32, 32, 3), np.uint8)


def _video(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, TINY, fps=5)


def test_folder_per_class(tmp_path):
    _video(tmp_path / "walk" / "a.mp4")
    _video(tmp_path / "run" / "sub" / "b.mp4")
    (tmp_path / "run" / "notes.txt").write_text("not a video")
    samples = src.load_samples(tmp_path)
    assert [(s.id, s.label) for s in samples] == [("run/sub/b", "run"), ("walk/a", "walk")]
    assert [(s.id, s.label) for s in src.folder(tmp_path / "walk")] == [("a", None)]  # loose videos: unlabelled
    (tmp_path / "empty").mkdir()
    with pytest.raises(src.ManifestError, match="no videos"):
        src.folder(tmp_path / "empty")


def test_csv_manifest(tmp_path):
    (tmp_path / "m.csv").write_text("path,label,start,end,caption\nv/a.mp4,cat,1.5,3,a cat\nv/b.mp4,,,,\n")
    a, b = src.load_samples(tmp_path / "m.csv")
    assert (a.id, a.label, a.start, a.end, a.caption) == ("a", "cat", 1.5, 3.0, "a cat")
    assert a.path == str(tmp_path / "v" / "a.mp4") and b.label is None and b.start is None
    (tmp_path / "bad.csv").write_text("file,label\nx.mp4,a\n")
    with pytest.raises(src.ManifestError, match="bad.csv: the header row must name a 'path' column"):
        src.load_samples(tmp_path / "bad.csv")


def test_ucf101_official_split_files(tmp_path):
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (splits / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                            "Archery/v_Archery_g08_c01.avi 2\n")
    (splits / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    samples = src.load_samples(tmp_path / "UCF-101", "ucf101", splits=splits)
    assert [(s.label, s.split) for s in samples] == [("ApplyEyeMakeup", "train"), ("Archery", "train"),
                                                     ("Archery", "test")]
    assert samples[2].path == str(tmp_path / "UCF-101" / "Archery" / "v_Archery_g01_c01.avi")
    (splits / "trainlist01.txt").write_text("Archery/v_Archery_g08_c01.avi 1\n")
    with pytest.raises(src.ManifestError, match=r"trainlist01.txt:1: class number 1 is not 'Archery'"):
        src.ucf101(tmp_path, splits)


def test_hmdb51_split_codes(tmp_path):
    (tmp_path / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (tmp_path / "cartwheel_test_split1.txt").write_text("d e.avi 2\n")
    samples = src.hmdb51(tmp_path / "videos", tmp_path, fold=1)
    assert [(s.label, s.split, s.id) for s in samples] == [
        ("brush_hair", "train", "brush_hair/a"), ("brush_hair", "test", "brush_hair/b"),
        ("cartwheel", "test", "cartwheel/d e")]
    assert samples[2].path.endswith("videos/cartwheel/d e.avi")


def test_something_something_v2(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"Holding something": "0",
                                                      "Pushing something from left to right": "1"}))
    (tmp_path / "something-something-v2-train.json").write_text(json.dumps([
        {"id": "78687", "label": "holding potato", "template": "Holding [something]", "placeholders": ["potato"]},
        {"id": "42326", "label": "pushing a pen from left to right",
         "template": "Pushing [something] from left to right"},
    ]))
    samples = src.load_samples(tmp_path / "something-something-v2-train.json", labels=tmp_path / "labels.json")
    assert [(s.id, s.label, s.split, s.caption) for s in samples] == [
        ("78687", "Holding something", "train", "holding potato"),
        ("42326", "Pushing something from left to right", "train", "pushing a pen from left to right")]
    assert samples[0].path == str(tmp_path / "78687.webm")
    with pytest.raises(src.ManifestError, match="needs the labels JSON"):
        src.load_samples(tmp_path / "something-something-v2-train.json")


def test_kinetics_csv_finds_files_anywhere_under_root(tmp_path):
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                        "abseiling,--07WQ2iBlw,1,11,train\nair drumming,-eGnPDG5Pxs,30,40,train\n")
    found = _video(tmp_path / "videos" / "abseiling" / "--07WQ2iBlw_000001_000011.mp4")
    samples = src.load_samples(tmp_path / "train.csv", root=tmp_path / "videos")
    assert samples[0].path == str(found) and samples[0].label == "abseiling"
    assert samples[1].id == "-eGnPDG5Pxs_000030_000040"
    assert samples[1].path == str(tmp_path / "videos" / "air drumming" / "-eGnPDG5Pxs_000030_000040.mp4")


def test_diving48_json(tmp_path):
    (tmp_path / "Diving48_V2_train.json").write_text(json.dumps([
        {"vid_name": "-mmq0PT-u8k_00155", "label": 12, "start_frame": 0, "end_frame": 52}]))
    (s,) = src.load_samples(tmp_path / "Diving48_V2_train.json", root=tmp_path / "rgb")
    assert (s.id, s.label, s.split, s.extra) == ("-mmq0PT-u8k_00155", "12", "train",
                                                 {"start_frame": 0, "end_frame": 52})
    assert s.path == str(tmp_path / "rgb" / "-mmq0PT-u8k_00155.mp4")


def test_unknown_layout_asks_for_a_format(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(src.ManifestError, match="cannot tell its format; pass --format"):
        src.load_samples(tmp_path / "x.json")


def test_data_check_reports_counts_missing_undecodable_and_exits_3(tmp_path):
    _video(tmp_path / "d" / "a" / "one.mp4")
    _video(tmp_path / "d" / "a" / "two.mp4")
    _video(tmp_path / "d" / "b" / "three.mp4")
    (tmp_path / "d" / "b" / "broken.mp4").write_text("nope")
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"path": "d/a/one.mp4", "label": "a", "split": "train"},
        {"path": "d/b/three.mp4", "label": "b", "split": "train"},
        {"path": "d/b/broken.mp4", "label": "b", "split": "val"},
        {"path": "d/gone.mp4", "label": "a", "split": "val"}]) + "\n")
    failures, report = tmp_path / "fail.jsonl", tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "stillmotion.cli", "data", "check", str(tmp_path / "m.jsonl"),
                          "--quiet", "--failures", str(failures), "--json", str(report)],
                         capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    assert "4 samples: 2 readable, 1 missing, 1 undecodable" in run.stdout
    data = json.loads(report.read_text())
    assert data["per_class"] == {"train": {"a": 1, "b": 1}}
    assert data["duration_histogram"]["0-1 s"] == 2
    rows = [json.loads(line) for line in failures.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(tmp_path / "d" / "gone.mp4"), str(tmp_path / "d" / "b" / "broken.mp4")]
    assert rows[0]["reason"] == "missing: no such file"
    assert rows[1]["reason"].startswith("not a readable video container")

    clean = subprocess.run([sys.executable, "-m", "stillmotion.cli", "data", "check", str(tmp_path / "d" / "a"),
                            "--format", "folder", "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert clean.returncode == 0 and "2 samples: 2 readable" in clean.stdout  # loose videos, unlabelled
    ok = subprocess.run([sys.executable, "-m", "stillmotion.cli", "data", "check", str(tmp_path / "d"), "--quiet",
                         "--failures", str(tmp_path / "f2.jsonl")], capture_output=True, text=True)
    assert ok.returncode == 3 and "3 readable" in ok.stdout
