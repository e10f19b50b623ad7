"""Captioned datasets in their official layouts: WebVid CSV, MSR-VTT (annotations + the 1k-A test
list), MSVD caption file; one sample per video with all its captions."""

import csv
import json

import pytest

from stillmotion.data.manifest import read_manifest, write_manifest
from stillmotion.data.sources import ManifestError, detect_format, load_samples


def test_webvid_rows_are_videos_with_their_caption(tmp_path):
    (tmp_path / "videos" / "000001_000050").mkdir(parents=True)
    (tmp_path / "videos" / "000001_000050" / "1053841541.mp4").write_bytes(b"x")
    path = tmp_path / "results_2M_val.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
        w.writerow(["1053841541", "https://example/a.mp4", "PT00H00M11S", "000001_000050",
                    "Travel blogger shoot a story "])
        w.writerow(["8258839", "https://example/b.mp4", "PT00H00M29S", "000001_000050", "Horse grazing in a field"])
    assert detect_format(path) == "webvid"
    samples = load_samples(path, root=tmp_path / "videos")
    assert [(s.id, s.split, s.caption) for s in samples] == [("1053841541", "val", "Travel blogger shoot a story"),
                                                             ("8258839", "val", "Horse grazing in a field")]
    assert samples[0].path == str(tmp_path / "videos" / "000001_000050" / "1053841541.mp4")
    bad = tmp_path / "results_10M_train.csv"
    bad.write_text("videoid,name,page_dir\n42,,p\n")
    with pytest.raises(ManifestError, match=r"results_10M_train.csv:2: each row needs 'videoid' and 'name'"):
        load_samples(bad)


@pytest.fixture
def msrvtt(tmp_path):
    data = {"info": {}, "videos": [{"video_id": f"video{i}", "id": i, "split": split}
                                   for i, split in enumerate(["train", "train", "validate", "test", "test"])],
            "sentences": [{"video_id": f"video{i}", "caption": f"caption {k} of video {i}", "sen_id": 2 * i + k}
                          for i in range(5) for k in range(2)]}
    path = tmp_path / "train_val_videodatainfo.json"
    path.write_text(json.dumps(data))
    return path


def test_msrvtt_keeps_every_caption_and_its_own_splits(msrvtt, tmp_path):
    assert detect_format(msrvtt) == "msrvtt"
    samples = load_samples(msrvtt, root=tmp_path / "TrainValVideo")
    assert [s.split for s in samples] == ["train", "train", "val", "test", "test"]
    assert samples[2].caption == ["caption 0 of video 2", "caption 1 of video 2"]
    assert samples[0].path == str(tmp_path / "TrainValVideo" / "video0.mp4")


def test_msrvtt_1k_a_test_list_takes_its_videos_and_captions(msrvtt, tmp_path):
    jsfusion = tmp_path / "MSRVTT_JSFUSION_test.csv"
    jsfusion.write_text("key,vid_key,video_id,sentence\nret0,msr7,video4,a man sings\nret1,msr9,video1,a dog barks\n")
    samples = {s.id: s for s in load_samples(msrvtt, splits=jsfusion)}
    assert {i for i, s in samples.items() if s.split == "test"} == {"video1", "video4"}
    assert samples["video4"].caption == ["a man sings"] and samples["video3"].split == "train"
    assert len(samples["video3"].caption) == 2  # training videos keep all their captions
    ids = tmp_path / "test_list.txt"
    ids.write_text("video0\nvideo2\n")
    plain = {s.id: s for s in load_samples(msrvtt, splits=ids)}
    assert plain["video0"].split == "test" and len(plain["video0"].caption) == 2
    ids.write_text("video99\n")
    with pytest.raises(ManifestError, match="1 videos not in"):
        load_samples(msrvtt, splits=ids)


def test_msvd_groups_captions_by_video_and_reads_the_split_lists(tmp_path):
    path = tmp_path / "AllVideoDescriptions.txt"
    path.write_text("# MSVD descriptions\n# one per line\n-4wsuPCjDBc_5_15 a squirrel is eating a peanut\n"
                    "-4wsuPCjDBc_5_15 a chipmunk eats\n-7KMZQEsJW4_205_208 a woman is slicing an onion\n")
    assert detect_format(path) == "msvd"
    samples = load_samples(path, root=tmp_path / "YouTubeClips")
    assert [(s.id, s.caption) for s in samples] == [
        ("-4wsuPCjDBc_5_15", ["a squirrel is eating a peanut", "a chipmunk eats"]),
        ("-7KMZQEsJW4_205_208", ["a woman is slicing an onion"])]
    assert samples[1].path == str(tmp_path / "YouTubeClips" / "-7KMZQEsJW4_205_208.avi")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train_list.txt").write_text("-4wsuPCjDBc_5_15\n")
    (tmp_path / "splits" / "test_list.txt").write_text("-7KMZQEsJW4_205_208\n")
    assert [s.split for s in load_samples(path, splits=tmp_path / "splits")] == ["train", "test"]
    path.write_text("lonely_video_name\n")
    with pytest.raises(ManifestError, match="no caption"):
        load_samples(path)


def test_several_captions_survive_a_manifest_round_trip(msrvtt, tmp_path):
    samples = load_samples(msrvtt)
    again = read_manifest(write_manifest(tmp_path / "m.jsonl", samples))
    assert [s.caption for s in again] == [s.caption for s in samples]
