"""Every kind of bad input gives a VideoDecodeError naming the file and the problem, or, where
the file is a real (if odd) video, the right frames."""

import shutil

import av
import numpy as np
import pytest
from PIL import Image

from stillmotion.video import VideoDecodeError, probe, read_frames, write_video
from stillmotion.video.sampling import ClipTooShortError, random_window

FRAMES = np.random.default_rng(0).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)


def _truncated_mp4(tmp_path):
    good = write_video(tmp_path / "good.mp4", FRAMES, fps=10)
    data = good.read_bytes()
    (tmp_path / "v.mp4").write_bytes(data[: len(data) // 2])


def _audio_only(tmp_path):
    with av.open(str(tmp_path / "v.mp4"), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _image(fmt):
    def make(tmp_path):
        Image.fromarray(FRAMES[0]).save(tmp_path / f"img.{fmt}")
        shutil.copy(tmp_path / f"img.{fmt}", tmp_path / "v.mp4")
    return make


UNREADABLE = {
    "zero bytes": (lambda d: (d / "v.mp4").write_bytes(b""), "empty"),
    "truncated (index at the end)": (_truncated_mp4, "not a readable video container"),
    "random bytes": (lambda d: (d / "v.mp4").write_bytes(np.random.default_rng(1).bytes(5000)),
                     "not a readable video container"),
    "text file": (lambda d: (d / "v.mp4").write_text("hello\n" * 100), "not a readable video container"),
    "png image": (_image("png"), r"a still image \(png\), not a video"),
    "jpeg image": (_image("jpg"), r"a still image \(jpeg\), not a video"),
    "audio only": (_audio_only, r"no video stream \(streams: audio\)"),
    "directory": (lambda d: (d / "v.mp4").mkdir(), "not a regular file"),
    "dangling link": (lambda d: (d / "v.mp4").symlink_to(d / "gone.mp4"), "dangling symbolic link"),
    "missing": (lambda d: None, "no such file"),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
@pytest.mark.parametrize("reader", ["probe", "read_all", "read_some"])
def test_unreadable_files_raise_a_named_error(tmp_path, kind, reader):
    make, problem = UNREADABLE[kind]
    make(tmp_path)
    path = tmp_path / "v.mp4"
    call = {"probe": probe, "read_all": read_frames, "read_some": lambda p: read_frames(p, [0, 2])}[reader]
    with pytest.raises(VideoDecodeError, match=problem) as info:
        call(path)
    assert str(path) in str(info.value) and "[Errno" not in str(info.value)  # FFmpeg's words, not its error number


def test_truncated_stream_gives_its_good_frames_and_names_the_end(tmp_path):
    """An index-first MP4 cut short: the frames that survive decode; asking past them fails."""
    with av.open(str(tmp_path / "fs.mp4"), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=10)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for f in FRAMES:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = (tmp_path / "fs.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    whole = read_frames(tmp_path / "fs.mp4")
    survivors = read_frames(cut)
    assert 0 < len(survivors) < len(FRAMES)
    assert np.array_equal(read_frames(cut, [0, 3]), whole[[0, 3]])
    with pytest.raises(VideoDecodeError, match=f"frame {len(survivors)} was requested but the video decodes to only "
                       f"{len(survivors)} frames"):
        read_frames(cut, [len(survivors)])  # listed in the container, lost to the cut
    with pytest.raises(VideoDecodeError, match=f"frame {len(FRAMES) - 1} was requested but the video holds only"):
        read_frames(cut, [len(FRAMES) - 1])  # past every packet left


def test_one_frame_video_and_the_short_clip_policy(tmp_path):
    path = write_video(tmp_path / "one.mp4", FRAMES[:1], fps=10)
    info = probe(path)
    assert info.num_frames == 1
    rng = np.random.default_rng(0)
    idx = random_window(info.num_frames, 4, 2, rng)  # policy "pad": the last frame repeated
    clip = read_frames(path, idx)
    assert clip.shape == (4, 64, 64, 3) and all(np.array_equal(clip[0], c) for c in clip)
    with pytest.raises(ClipTooShortError, match="1 frames but the window spans 7"):
        random_window(info.num_frames, 4, 2, rng, policy="reject")


def test_very_large_frames_decode_one_at_a_time(tmp_path):
    big = np.zeros((3, 2160, 3840, 3), np.uint8)
    big[1, :100, :100] = 255
    path = write_video(tmp_path / "4k.mp4", big, fps=5)
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (3840, 2160, 3)
    frame = read_frames(path, [1])
    assert frame.shape == (1, 2160, 3840, 3) and frame[0, 50, 50].min() > 200 and frame[0, 1000, 1000].max() < 30


def test_grayscale_video_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "grey.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width = s.height = 64
        s.pix_fmt = "gray"
        for f in FRAMES[:5, :, :, 0]:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    frames = read_frames(path)
    assert frames.shape == (5, 64, 64, 3)
    assert np.array_equal(frames[..., 0], FRAMES[:5, :, :, 0])  # ffv1 is lossless
    assert np.array_equal(frames[..., 0], frames[..., 2])
