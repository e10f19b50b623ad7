import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network in tests: fail fast instead of retrying

import pytest
import torch

torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
REAL_CLIPS = REPO / "tests" / "data" / "real-clips"  # five real clips kept in the repository (Apache-2.0)

#: frame counts of a full sequential decode, from tests/data/real-clips/README.md
REAL_CLIP_FRAMES = {
    "arm_wrestling_h264_340x256.mp4": 280,
    "people_h264_340x256_6fps.mp4": 57,
    "clip_mpeg4_320x240.avi": 164,
    "clip_h264_340x256_30fps.mp4": 300,
    "ntu_rgbd_sample_h264_1920x1080.avi": 103,
}


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip, saying so, where no GPU is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run `make gpu-test` on a machine with one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_clips() -> Path:
    if not REAL_CLIPS.is_dir():
        pytest.skip(f"{REAL_CLIPS} not found (the repository's test clips are missing)")
    return REAL_CLIPS


@pytest.fixture(scope="session")
def encoder64():
    """The embedded default at 64 px: a 4 x 4 token grid, fast enough for tests."""
    from stillmotion.encoders import load

    return load("efficientnet-lite0", size=64)
