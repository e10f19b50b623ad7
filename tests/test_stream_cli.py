"""`stillmotion stream`: every source kind, one answer and one annotated frame per frame, the same
answers as the `Streamer` on the same frames, queries in source pixels, clear errors, and
--realtime dropping what the model cannot keep up with."""

import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_streaming import make_run

from stillmotion.cli import main
from stillmotion.data.annotations import save_annotations
from stillmotion.errors import UsageError
from stillmotion.model import load_model
from stillmotion.stream import Streamer
from stillmotion.stream.run import first_query, run_stream
from stillmotion.stream.sources import Frame, open_source
from stillmotion.video.decode import probe, read_frames
from stillmotion.video.write import write_video

FRAMES = 9


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs of the shipped CPU configs (random weights) for each kind the command draws."""
    root = tmp_path_factory.mktemp("runs")
    return {name: make_run(root, name) for name in ("classes", "boxes", "points", "depth", "pose")}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 9-frame 10 fps video, wider than tall (so the view is a centre crop), with an
    annotation file beside it: one box and three points (two visible) at frame 0."""
    folder = tmp_path_factory.mktemp("video")
    frames = np.random.default_rng(1).integers(0, 256, (FRAMES, 60, 80, 3), dtype=np.uint8)
    write_video(folder / "clip.mp4", frames, fps=10)
    boxes = np.full((FRAMES, 1, 4), np.nan)
    boxes[0, 0] = [0.25, 0.2, 0.6, 0.7]
    points = np.tile(np.array([[0.3, 0.4], [0.5, 0.5], [0.7, 0.2]]), (FRAMES, 1, 1))
    visible = np.ones((FRAMES, 3), bool)
    visible[0, 1] = False
    save_annotations(folder / "clip.npz", boxes=boxes, points=points, visible=visible)
    return folder / "clip.mp4"


def _stream(capsys, *args) -> tuple[int, str, str]:
    code = main(["stream", *map(str, args), "--quiet"])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", ["classes", "boxes", "points", "depth", "pose"])
def test_one_answer_and_one_annotated_frame_per_frame_as_the_streamer_answers(runs, video, tmp_path, capsys, name):
    code, out, _ = _stream(capsys, video, "--model", runs[name], "--out", tmp_path / "a.mp4", "--jsonl",
                           tmp_path / "a.jsonl")
    assert code == 0, out
    info = probe(tmp_path / "a.mp4")
    # 60 px frames are drawn 4 times larger (draw.MIN_HEIGHT 240), so the text stays legible
    assert info.num_frames == FRAMES and info.height == 240
    assert info.width == (320 + 240 if name == "depth" else 320)  # the depth map beside the frame
    rows = _rows(tmp_path / "a.jsonl")
    assert [r["frame"] for r in rows] == list(range(FRAMES))
    for stage in ("decode", "preprocess", "encoder", "core", "readout", "output", "total"):
        assert f"\n{stage} " in out
    assert f"{FRAMES} frames of" in out and "0 dropped" in out

    # the same answers as the Streamer over the decoded frames, mapped to source pixels
    loaded = load_model(runs[name], device="cpu")
    frames = read_frames(video)
    streamer = Streamer(loaded)
    first = Frame(0, 0.0, frames[0])
    streamer.reset(first_query(loaded.kind, video, None, first))
    for row, image in zip(rows, frames):
        p = streamer.step(image)
        if name == "classes":
            assert [n for n, _ in row["top"]] == [n for n, _ in p.top(5)]
            assert [q for _, q in row["top"]] == pytest.approx([q for _, q in p.top(5)], abs=1e-4)
        elif name == "boxes":
            assert row["box"] == pytest.approx(p.in_source(80, 60).tolist(), abs=0.02)
        elif name == "points":
            assert np.allclose([pt[:2] for pt in row["points"]], p.in_source(80, 60).numpy(), atol=0.02)
            assert [pt[2] for pt in row["points"]] == (p.value[:, 2] > 0).tolist()
        elif name == "depth":
            assert np.allclose(row["depth"], p.value.numpy(), atol=2e-3)
        else:
            assert row["pose"] == pytest.approx(p.value.tolist(), abs=1e-5)


def test_queries_are_read_in_source_pixels_from_json_or_annotations(video, tmp_path):
    frame = Frame(0, 0.0, np.zeros((60, 80, 3), np.uint8))
    # the view is the centre 60 x 60 square: x from 10 to 70
    beside = first_query("boxes", video, None, frame)
    assert beside.tolist() == pytest.approx([(20 - 10) / 60, 12 / 60, (48 - 10) / 60, 42 / 60])
    (tmp_path / "q.json").write_text(json.dumps({"box": [20, 12, 48, 42]}))
    assert torch.allclose(first_query("boxes", video, tmp_path / "q.json", frame), beside)
    points = first_query("points", video, None, frame)  # the visible ones
    assert np.allclose(points.numpy(), [[(24 - 10) / 60, 24 / 60], [(56 - 10) / 60, 12 / 60]])
    (tmp_path / "p.json").write_text(json.dumps({"points": [[24, 24], [56, 12]]}))
    assert torch.allclose(first_query("points", video, tmp_path / "p.json", frame), points)
    assert first_query("classes", video, None, frame) is None
    (tmp_path / "bad.json").write_text(json.dumps({"box": [1, 2, 3]}))
    with pytest.raises(ValueError, match=r"bad.json: needs \"box\""):
        first_query("boxes", video, tmp_path / "bad.json", frame)
    alone = tmp_path / "alone.mp4"
    alone.write_bytes(video.read_bytes())
    with pytest.raises(ValueError, match="give --queries"):
        first_query("points", alone, None, frame)


def _images(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir()
    for i, image in enumerate(frames):
        Image.fromarray(image).save(folder / f"frame_{i + 1}.png")  # 1..n: name order must be numeric
    return folder


def test_a_folder_of_images_streams_in_numeric_order(runs, tmp_path, capsys):
    frames = np.random.default_rng(2).integers(0, 256, (12, 40, 40, 3), dtype=np.uint8)
    folder = _images(tmp_path / "images", frames)
    (folder / "notes.txt").write_text("not an image")
    code, out, _ = _stream(capsys, folder, "--model", runs["classes"], "--jsonl", tmp_path / "f.jsonl")
    assert code == 0 and "12 frames of" in out
    streamer = Streamer(load_model(runs["classes"], device="cpu"))
    want = [streamer.step(image).top(1)[0] for image in frames]
    got = [tuple(r["top"][0]) for r in _rows(tmp_path / "f.jsonl")]
    assert [n for n, _ in got] == [n for n, _ in want]
    assert [p for _, p in got] == pytest.approx([p for _, p in want], abs=1e-4)
    assert [r["time"] for r in _rows(tmp_path / "f.jsonl")][:3] == pytest.approx([0, 1 / 30, 2 / 30], abs=1e-4)


def test_a_broken_image_is_skipped_and_reported(runs, tmp_path, capsys):
    folder = _images(tmp_path / "images", np.zeros((3, 32, 32, 3), np.uint8))
    (folder / "frame_2.png").write_bytes(b"broken")
    code, out, err = _stream(capsys, folder, "--model", runs["classes"])
    assert code == 3 and "2 frames of" in out and "1 unreadable" in out and "frame_2.png" in err


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_urls_stream_like_the_file(runs, video, tmp_path, capsys):
    assert _stream(capsys, video, "--model", runs["boxes"], "--jsonl", tmp_path / "path.jsonl")[0] == 0
    query = tmp_path / "q.json"
    query.write_text(json.dumps({"box": [20, 12, 48, 42]}))
    code, _, err = _stream(capsys, f"file:{video}", "--model", runs["boxes"], "--queries", query, "--jsonl",
                           tmp_path / "url.jsonl")
    assert code == 0, err
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(video.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
        code, _, err = _stream(capsys, url, "--model", runs["boxes"], "--queries", query, "--jsonl",
                               tmp_path / "http.jsonl")
    finally:
        server.shutdown()
    assert code == 0, err
    strip = lambda rows: [{k: v for k, v in r.items() if k != "latency_ms"} for r in rows]  # noqa: E731
    assert strip(_rows(tmp_path / "url.jsonl")) == strip(_rows(tmp_path / "http.jsonl")) == strip(
        _rows(tmp_path / "path.jsonl"))


def test_unreadable_sources_are_clear_errors_naming_them(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.mp4").write_text("not a video")
    for source, problem in ((tmp_path / "missing.mp4", "no such file"), (tmp_path / "empty", "no images"),
                            (tmp_path / "text.mp4", "not a readable video"),
                            ("http://127.0.0.1:9/none.mp4", "cannot open the stream")):
        code, _, err = _stream(capsys, source, "--model", runs["classes"], "--out", tmp_path / "o.mp4")
        assert code == 2 and str(source) in err and problem in err, err
        assert len(err.strip().splitlines()) == 1 and "[Errno" not in err and "manifest" not in err, err
        assert not (tmp_path / "o.mp4").exists()
    _, _, err = _stream(capsys, tmp_path / "text.mp4", "--model", runs["classes"])
    assert "(FFmpeg: invalid data found when processing input)" in err


def test_a_damaged_checkpoint_is_one_line_naming_the_file(runs, tmp_path, capsys, real_clips):
    import shutil

    from stillmotion.model import checkpoint

    run = tmp_path / "run"
    shutil.copytree(runs["classes"], run)
    folder = checkpoint.resolve(run)
    (folder / "model.safetensors").write_bytes(b"not weights at all")
    clip = real_clips / "clip_h264_340x256_30fps.mp4"
    code, _, err = _stream(capsys, clip, "--model", run)
    assert code == 2 and f"{folder / 'model.safetensors'}: damaged weights" in err and len(err.splitlines()) == 1
    (folder / "config.yaml").write_text("data: [1\n")
    code, _, err = _stream(capsys, clip, "--model", run)
    assert code == 2 and f"{folder / 'config.yaml'}: not valid YAML at line 2" in err, err
    (folder / "config.yaml").unlink()
    code, _, err = _stream(capsys, clip, "--model", run)
    assert code == 2 and "a checkpoint without its config.yaml" in err, err


def test_fps_resamples_a_video_by_its_timestamps(video):
    frames = list(open_source(video, fps=5))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4] and [f.time for f in frames] == pytest.approx(
        [0, 0.2, 0.4, 0.6, 0.8])
    assert np.array_equal(frames[1].image, read_frames(video, [2])[0])


def test_stride_keeps_every_round_native_over_fps_th_frame_as_paper_000(real_clips):
    clip = real_clips / "clip_h264_340x256_30fps.mp4"
    every = read_frames(clip)
    source = open_source(clip, fps=12, rule="stride")  # round(30 / 12) = 2: 15 frames a second
    frames = list(source)
    assert source.fps == 15.0 and len(frames) == (len(every) + 1) // 2
    assert [f.time for f in frames[:3]] == pytest.approx([0, 2 / 30, 4 / 30], abs=1e-3)
    assert all(np.array_equal(f.image, every[2 * i]) for i, f in enumerate(frames))
    by_time = list(open_source(clip, fps=12))  # the other rule: 12 a second, the frame on screen at each tick
    assert open_source(clip, fps=12).fps == 12 and len(by_time) < len(frames)
    with pytest.raises(UsageError, match="--resample must be one of"):
        open_source(clip, fps=12, rule="nearest")


def test_realtime_drops_what_the_model_cannot_keep_up_with(runs, tmp_path, capsys):
    frames = np.random.default_rng(3).integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    folder = _images(tmp_path / "images", frames)
    loaded = load_model(runs["points"], device="cpu")
    query = tmp_path / "q.json"
    query.write_text(json.dumps({"points": [[8, 8], [20, 24]]}))
    # 2000 frames a second: far faster than the model answers
    report = run_stream(loaded, folder, out=tmp_path / "r.mp4", fps=2000, realtime=True, queries=query,
                        progress=False)
    assert report.dropped > 0 and report.frames + report.dropped == 60
    assert probe(tmp_path / "r.mp4").num_frames == report.frames
    assert f"{report.dropped} dropped" in report.format()
    # without --realtime every frame is answered
    assert run_stream(loaded, folder, fps=2000, queries=query, progress=False).frames == 60


def test_a_run_streams_at_its_own_rate_unless_told(video, tmp_path, capsys):
    """A run records the rate it reads video at (data.fps; an imported release, its task's):
    `stream` resamples any source to it by default; `--fps source` keeps the source's."""
    from stillmotion.model import checkpoint

    run = make_run(tmp_path, "classes")
    folder = checkpoint.resolve(run)
    config = (folder / "config.yaml").read_text()
    assert "fps: null" in config
    (folder / "config.yaml").write_text(config.replace("fps: null", "fps: 5.0"))
    assert _stream(capsys, video, "--model", run, "--jsonl", tmp_path / "a.jsonl")[0] == 0
    assert [r["frame"] for r in _rows(tmp_path / "a.jsonl")] == [0, 1, 2, 3, 4]  # 10 fps -> 5: every other frame
    assert _stream(capsys, video, "--model", run, "--jsonl", tmp_path / "b.jsonl", "--fps", "source")[0] == 0
    assert len(_rows(tmp_path / "b.jsonl")) == FRAMES
    with pytest.raises(SystemExit) as stop:
        main(["stream", str(video), "--model", str(run), "--fps", "fast"])
    assert stop.value.code == 2 and "give frames per second (a number) or `source`" in capsys.readouterr().err


def test_small_frames_are_enlarged_so_the_overlay_stays_legible():
    from stillmotion.stream.draw import MIN_HEIGHT, Painter
    from stillmotion.stream.streamer import Prediction

    names = ["up-left", "up-right", "down-left", "down-right"]
    prediction = Prediction("classes", torch.tensor([0.7, 0.2, 0.06, 0.04]), names)
    small = Painter("classes").draw(np.zeros((128, 128, 3), np.uint8), prediction)
    assert small.shape == (256, 256, 3) and MIN_HEIGHT == 240  # 128 px: twice
    covered = np.flatnonzero(small.any(axis=(1, 2)))
    assert covered.min() < 10 and covered.max() < 0.25 * 256  # three rows of text in the top quarter
    big = Painter("classes").draw(np.zeros((256, 340, 3), np.uint8), prediction, latency_ms=12.5)
    assert big.shape == (256, 340, 3)  # the test clips' size: drawn as they are
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = Painter("boxes").draw(frame, Prediction("boxes", torch.tensor([0.25, 0.25, 0.75, 0.75]), []))
    assert boxes.shape == (240, 320, 3)
    # the image itself is the frame enlarged (away from what is drawn)
    assert np.abs(boxes[120:140, 10:30].astype(int) - np.asarray(
        Image.fromarray(frame).resize((320, 240), Image.Resampling.BILINEAR))[120:140, 10:30]).max() == 0
