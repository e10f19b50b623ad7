"""The `stillmotion extract` command as users run it: in a subprocess, killed and resumed, and
under torchrun with two CPU processes."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torchrun import torchrun

from stillmotion.cache import TokenStore
from stillmotion.cli import main

# small and quick: 64 px frames, 8 per second of video, float32 tokens compared bit for bit (one
# thread everywhere: how a convolution's sums are split over threads changes their last bits)
ARGS = ["--size", "64", "--fps", "8", "--dtype", "fp32", "--batch-frames", "8", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def manifest(real_clips, tmp_path_factory) -> Path:
    """The five real clips, each listed twice under two ids: ten videos."""
    path = tmp_path_factory.mktemp("extract") / "clips.jsonl"
    rows = [{"id": f"{p.stem}-{k}", "path": str(p)} for k in range(2) for p in sorted(real_clips.iterdir())
            if p.suffix in (".mp4", ".avi")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _command(manifest, out, *extra):
    return [sys.executable, "-m", "stillmotion.cli", "extract", str(manifest), "--out", str(out), *ARGS, *extra]


@pytest.fixture(scope="module")
def reference(manifest) -> Path:
    out = manifest.parent / "reference"
    done = subprocess.run(_command(manifest, out, "--workers", "1"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "extracted 10 videos" in done.stdout and "0 failed" in done.stdout
    return out


def _contents(path) -> dict:
    store = TokenStore(path)
    return {v: (store.frame_indices(v), store.read(v)) for v in store.videos()}


def _assert_same_cache(a, b):
    """The same videos with the same tokens, bit for bit, and the same settings."""
    ca, cb = _contents(a), _contents(b)
    assert sorted(ca) == sorted(cb) and len(ca) == 10
    for vid, (frames, tokens) in ca.items():
        assert np.array_equal(frames, cb[vid][0])
        assert tokens.dtype == cb[vid][1].dtype and np.array_equal(tokens, cb[vid][1]), vid
    assert json.loads((Path(a) / "meta.json").read_text()) == json.loads((Path(b) / "meta.json").read_text())


@pytest.mark.parametrize("point, count", [("video", 3), ("video-part", 6)])
def test_an_extraction_killed_midway_resumes_to_the_same_tokens(manifest, reference, tmp_path, point, count):
    """Killed just after a video is in the cache, or with one half-written: the rerun does the
    rest, leaves nothing half-written, and the cache is the uninterrupted one's, bit for bit."""
    out = tmp_path / "killed"
    args = _command(manifest, out, "--workers", "1")[3:]
    killed = subprocess.run([sys.executable, str(Path(__file__).parent / "kill_at.py"), point, str(count), *args],
                            capture_output=True, text=True, timeout=900)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    finished = len(list((out / "videos").glob("*.safetensors")))
    assert finished == (count if point == "video" else count - 1)

    done = subprocess.run(_command(manifest, out, "--workers", "1"), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"extracted {10 - finished} videos" in done.stdout and f"skipped {finished} already" in done.stdout
    assert not list((out / "videos").glob(".*"))  # nothing half-written left behind
    _assert_same_cache(out, reference)


def test_torchrun_with_two_cpu_processes_gives_the_same_cache_as_one(manifest, reference, tmp_path):
    out = tmp_path / "torchrun"
    done = torchrun(["--nproc_per_node", "2", *_command(manifest, out, "--workers", "0")[1:]])
    assert done.returncode == 0, done.stderr
    # counts are summed over the ranks: a video done twice would show as more than 10
    assert "extracted 10 videos" in done.stdout and "skipped 0" in done.stdout
    _assert_same_cache(out, reference)  # each video batched alone: the same tokens on any rank


def test_unreadable_videos_are_listed_and_the_exit_status_says_so(tmp_path, real_clips, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    good = real_clips / "people_h264_340x256_6fps.mp4"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": str(bad)}) + "\n" + json.dumps({"path": str(good)}) + "\n")
    out = tmp_path / "cache"
    assert main(["extract", str(manifest), "--out", str(out), "--workers", "0", "--size", "64", "--quiet"]) == 3
    printed = capsys.readouterr().out
    assert "extracted 1 videos" in printed and "1 videos could not be read" in printed
    rows = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(bad)] and rows[0]["reason"]
    assert TokenStore(out).videos() == ["people_h264_340x256_6fps"]

    code = main(["extract", str(manifest), "--out", str(out), "--workers", "0", "--size", "64", "--dtype", "int8"])
    assert code == 2
    assert "dtype: cache has 'float16', asked for 'int8'" in capsys.readouterr().err
