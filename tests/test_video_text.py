"""The video_text task: the caption suite's order-dependent captions, segment sampling, the
contrastive loss, retrieval metrics, and an order-blind tower held at exactly 0.5 pair accuracy."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchrun import torchrun

from stillmotion.config import TaskConfig, load_config
from stillmotion.data.captions import CaptionSuiteConfig, caption, generate_caption_suite, render, reversed_events
from stillmotion.data.manifest import Sample, read_manifest
from stillmotion.tasks import TASKS, Clip
from stillmotion.train.trainer import train
from stillmotion.video import sampling

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def task():
    samples = [Sample(id=f"v{i}", path=f"v{i}.mp4", caption=c) for i, c in
               enumerate(["a cat jumps", ["a dog runs", "a dog is running"], "a cat jumps", None])]
    samples[0].extra["pair"] = "v1"
    samples[1].extra["pair"] = "v0"
    return TASKS["video_text"](TaskConfig(name="video_text"), 4, samples=samples)


def test_captions_are_embedded_once_per_distinct_text(task):
    assert task.captions == ["a cat jumps", "a dog runs", "a dog is running"]
    assert task.video_captions == {"v0": [0], "v1": [1, 2], "v2": [0]}
    assert task.embeddings.shape == (3, 384) and task.num_outputs == 384
    assert torch.allclose(task.embeddings, task.text.encode(task.captions))


def test_segments_draw_one_row_in_each_equal_part():
    rng = np.random.default_rng(0)
    for n in (1, 7, 16, 33):
        for _ in range(20):
            rows = sampling.segments(n, 8, rng)
            assert len(rows) == 8 and (np.diff(rows) >= 0).all() and rows.min() >= 0 and rows.max() < n
            if n >= 8:
                assert all(k * n // 8 <= r < -(-(k + 1) * n // 8) for k, r in enumerate(rows))
    assert sampling.spread(16, 8).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]  # mirrored: 15 - x is in it too
    for n, k in ((16, 8), (17, 5), (31, 7), (30, 6), (9, 9), (5, 8)):
        rows = sampling.spread(n, k)
        assert sorted((n - 1 - rows).tolist()) == rows.tolist()


def test_the_loss_is_clips_symmetric_infonce_without_shared_captions_as_negatives(task):
    torch.manual_seed(0)
    out = torch.randn(3, 384, requires_grad=True)
    target = torch.tensor([0, 1, 2])
    loss = task.loss(out, {"target": target})
    logits = out @ task.embeddings[target].T
    want = (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.T, torch.arange(3))) / 2
    assert torch.allclose(loss, want)
    loss.backward()
    assert out.grad.abs().sum() > 0
    # two clips of one caption: neither counts the other as a negative
    shared = task.loss(out.detach(), {"target": torch.tensor([0, 0, 1])})
    logits = out.detach() @ task.embeddings[[0, 0, 1]].T
    logits[0, 1] = logits[1, 0] = float("-inf")
    want = (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.T, torch.arange(3))) / 2
    assert torch.allclose(shared, want)


def test_retrieval_metrics_on_known_embeddings(task):
    clips = [Clip("v0", (0,), 0), Clip("v1", (0,), 1), Clip("v2", (0,), 0)]
    e = task.embeddings
    perfect = task.metrics([e[0], e[1], e[0]], clips)
    # v0 and v2 share their caption: each is its best-ranked video; v1 has two captions
    assert perfect["t2v_r1"] == 1.0 and perfect["v2t_r1"] == 1.0 and perfect["t2v_median_rank"] == 1.0
    assert perfect["pair_accuracy"] == 1.0 and perfect["captions"] == 3 and perfect["chance_r1"] == pytest.approx(1 / 3)
    swapped = task.metrics([e[1], e[0], e[1]], clips)  # every video where another's caption is
    assert swapped["v2t_r1"] == 0.0 and swapped["pair_accuracy"] == 0.0
    same = task.metrics([e[0], e[0], e[0]], clips)  # one embedding for all: a tie counts half
    assert same["pair_accuracy"] == 0.5


def test_the_suite_reverses_frames_and_events():
    cfg = CaptionSuiteConfig(train=2, val=1, frames=8, size=64)
    frames, first, second = render(cfg, "train", 1)
    assert frames.shape == (8, 64, 64, 3)
    assert not np.array_equal(frames[0], frames[3]) and not np.array_equal(frames[4], frames[7])  # two moves
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    back = reversed_events(first, second)
    assert back == ((second[0], second[1], opposite[second[2]]), (first[0], first[1], opposite[first[2]]))
    assert caption(first, second) == (f"the {first[0]} {first[1]} goes {first[2]}, "
                                      f"then the {second[0]} {second[1]} goes {second[2]}")
    assert first[0] != second[0]  # two colours: the caption says which object moved


def test_an_order_blind_tower_cannot_tell_a_clip_from_its_reversal(tmp_path):
    manifest = generate_caption_suite(tmp_path / "suite", CaptionSuiteConfig(train=6, val=4, frames=8, size=64),
                                      progress=False)
    samples = read_manifest(manifest)
    pairs = {s.id: s.extra["pair"] for s in samples}
    assert len(samples) == 20 and all(pairs[pairs[i]] == i for i in pairs)
    assert {s.split for s in samples if s.id.startswith("val")} == {"val"}
    cfg = load_config(REPO / "configs/cpu/video_text.yaml", [
        f"data.train={manifest}", "data.size=64", "data.frames=8", "temporal.name=mean", "train.steps=3",
        "train.batch_size=4", "train.eval_every=100", "train.checkpoint_every=100"])
    result = train(cfg, tmp_path / "mean", progress=False)
    assert result["val"]["pair_accuracy"] == 0.5  # the same frames in either order: the same embedding
    assert result["val"]["videos"] == 8 and result["val_shares_training"] == 0
    gru = train(load_config(None, [*_overrides(cfg), "temporal.name=gru", "temporal.kw.hidden=16"]),
                tmp_path / "gru", progress=False)
    assert set(gru["val"]) >= {"t2v_r1", "t2v_r5", "t2v_r10", "t2v_median_rank", "v2t_r1", "pair_accuracy"}
    # the run loads from its checkpoint alone and scores the same
    from stillmotion.train.evaluate import evaluate_run

    again = evaluate_run(tmp_path / "gru", progress=False)
    assert again["split"] == "val" and again["val"] == pytest.approx(gru["val"], abs=1e-6)


def _overrides(cfg) -> list[str]:
    return [f"data.train={cfg.data.train}", "data.size=64", "data.frames=8", "train.steps=3", "train.batch_size=4",
            "train.eval_every=100", "train.checkpoint_every=100", "task.name=video_text", "head.mode=stream",
            "temporal.input=diff", "temporal.norm=true"]


def test_masked_text_prediction_hides_words_and_predicts_them_from_the_video():
    from stillmotion.model import model_for

    captions = ["the red disc goes left, then the blue square goes up", "a dog runs"]
    samples = [Sample(id=f"v{i}", path=f"v{i}.mp4", caption=c) for i, c in enumerate(captions)]
    task = TASKS["video_text"](TaskConfig(name="video_text", mask_text=0.5, text_weight=0.7), 3, samples=samples)
    assert task.model_extras() == {"text": (384, 30522)}
    cfg = load_config(None, ["data.train=unused", "task.name=video_text", "temporal.kw.hidden=16"])
    torch.manual_seed(0)
    model = model_for(cfg, "embedding", 384, 32, (2, 2), **task.model_extras())
    batch = {"tokens": torch.randn(2, 3, 4, 32), "mask": torch.ones(2, 3, dtype=torch.bool),
             "target": torch.tensor([0, 1])}
    inputs = task.train_inputs(batch)
    hide, ids = inputs["words_at"], task.text.tokenize(captions)
    special = torch.isin(ids["input_ids"], torch.tensor(sorted(task.text.special_ids)))
    assert hide.any(1).all() and not (hide & (special | ~ids["attention_mask"].bool())).any()
    assert batch["words"].tolist() == ids["input_ids"][hide].tolist()
    masked = ids["input_ids"].masked_fill(hide, task.text.mask_token_id)
    assert torch.allclose(inputs["text"], task.text.token_states({**ids, "input_ids": masked}))
    out = model(batch["tokens"], batch["mask"], **inputs)
    assert out["video"].shape == (2, 384) and out["words"].shape == (int(hide.sum()), 30522)
    loss = task.loss(out, batch)
    want = task.contrastive(out["video"], batch) + 0.7 * F.cross_entropy(out["words"], batch["words"])
    assert torch.allclose(loss, want)
    loss.backward()
    assert model.text_decoder.out.weight.grad.abs().sum() > 0 and model.core.parameters().__next__().grad is not None
    with torch.no_grad():  # evaluation reads the video alone
        assert model(batch["tokens"], batch["mask"]).shape == (2, 384)


def test_two_processes_train_the_same_model_as_one(tmp_path):
    """The contrastive loss gathers every rank's videos with their gradients: 2 ranks of 2 clips
    see the same 4 x 4 similarities as 1 process of 4, and end with the same weights."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from stillmotion.model import checkpoint

    manifest = generate_caption_suite(tmp_path / "suite", CaptionSuiteConfig(train=4, val=2, frames=8, size=64),
                                      progress=False)
    overrides = [f"data.train={manifest}", "data.size=64", f"data.cache={tmp_path / 'cache'}",
                 "temporal.kw.hidden=16", "train.steps=3", "train.batch_size=4", "train.eval_every=100",
                 "train.checkpoint_every=100"]
    base = [str(REPO / "configs/cpu/video_text.yaml"), *overrides, "--quiet"]
    one = subprocess.run([sys.executable, "-m", "stillmotion.cli", "train", *base, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = torchrun(["--nproc_per_node", "2", "-m", "stillmotion.cli", "train", *base, "--out", tmp_path / "two"],
                   env=env)
    assert two.returncode == 0, two.stderr
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert a["val"] == pytest.approx(b["val"], abs=1e-5)
    wa, wb = (load_file(str(checkpoint.latest(tmp_path / d) / "model.safetensors")) for d in ("one", "two"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
