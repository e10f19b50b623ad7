"""Harvest's video tower: the image-text checkpoint's own vision tower over the frames, most
patches dropped before the transformer layers in training, all kept in evaluation, equal to
transformers' forward there; and patch dropping on cached tokens for the frozen tower."""

import pytest
import torch
import transformers
from test_text import tokenizer

from stillmotion.config import ConfigError, load_config
from stillmotion.data.captions import CaptionSuiteConfig, generate_caption_suite
from stillmotion.data.manifest import read_manifest
from stillmotion.model import model_for
from stillmotion.model.harvest import HarvestTower, vision_tower
from stillmotion.train.evaluate import evaluate_run
from stillmotion.train.trainer import train

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny CLIP checkpoint (32 px images, 8 px patches: 16 patches) with its tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=40, max_position_embeddings=24, eos_token_id=2, pad_token_id=0, bos_token_id=1,
                         **TINY),
        vision_config=dict(image_size=32, patch_size=8, **TINY), projection_dim=24)
    transformers.CLIPModel(cfg).save_pretrained(folder)
    tokenizer(folder, {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    return folder


def test_the_tower_drops_patches_in_training_only_and_equals_clip_when_it_keeps_them(clip_folder):
    tower = HarvestTower(vision_tower(str(clip_folder)), keep=0.25)
    pixels = torch.randn(2, 3, 3, 32, 32)
    ref = transformers.CLIPModel.from_pretrained(clip_folder).eval()  # the whole checkpoint, as CLIP runs it
    tower.eval()
    with torch.no_grad():
        frames = tower.frames(pixels.flatten(0, 1))
        assert tower.kept_tokens == 17  # the class token and all 16 patches
        want = ref.visual_projection(ref.vision_model(pixel_values=pixels.flatten(0, 1)).pooler_output)
        assert torch.allclose(frames, want, atol=1e-5)
        clip = tower(pixels)
    per_frame = torch.nn.functional.normalize(frames, dim=-1).view(2, 3, -1).mean(1)
    assert torch.allclose(clip, torch.nn.functional.normalize(per_frame, dim=-1) * 1 / 0.07, atol=1e-4)
    tower.train()
    out = tower(pixels, torch.tensor([[True, True, False], [True, True, True]]))
    assert tower.kept_tokens == 1 + 4 and out.shape == (2, 24)
    out.sum().backward()
    assert tower.vision.vision_model.embeddings.patch_embedding.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        HarvestTower(tower.vision, keep=0)


def test_a_siglip_tower_pools_with_its_head(tmp_path):
    torch.manual_seed(0)
    vision = transformers.SiglipVisionModel(transformers.SiglipVisionConfig(image_size=32, patch_size=8, **TINY))
    vision.save_pretrained(tmp_path)
    tower = HarvestTower(vision_tower(str(tmp_path)), keep=0.5).eval()
    pixels = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(tower.frames(pixels), vision.eval()(pixel_values=pixels).pooler_output, atol=1e-5)
    tower.train()
    tower(pixels[None])
    assert tower.kept_tokens == 8  # no class token: half of the 16 patches


def test_cached_tokens_are_dropped_at_the_same_positions_in_every_frame():
    cfg = load_config(None, ["data.train=unused", "task.name=video_text", "temporal.name=identity", "head.mode=clip"])
    model = model_for(cfg, "embedding", 8, 16, (4, 4))
    seen = {}
    model.core.register_forward_hook(lambda m, args, out: seen.setdefault("x", args[0]))
    x = torch.randn(2, 3, 16, 16)
    torch.manual_seed(5)
    model(x, keep=0.25)
    torch.manual_seed(5)
    chosen = torch.randperm(16)[:4].sort().values
    assert torch.equal(seen["x"], x[:, :, chosen])


def test_a_harvest_run_trains_on_pixels_evaluates_and_is_refused_on_cached_tokens(clip_folder, tmp_path):
    manifest = generate_caption_suite(tmp_path / "suite", CaptionSuiteConfig(train=3, val=2, frames=6, size=64),
                                      progress=False)
    settings = [f"data.train={manifest}", "data.online=true", f"data.encoder={clip_folder}", "data.size=32",
                "data.frames=4", "task.name=video_text", f"task.text={clip_folder}", "task.tower=harvest",
                "task.keep=0.25", "train.steps=2", "train.batch_size=2", "train.eval_every=100",
                "train.checkpoint_every=100"]
    result = train(load_config(None, settings), tmp_path / "run", progress=False)
    assert result["val"]["videos"] == 4 and 0 <= result["val"]["t2v_r1"] <= 1
    again = evaluate_run(tmp_path / "run", progress=False)
    assert again["val"] == pytest.approx(result["val"], abs=1e-5)
    from stillmotion.videotext import open_video_text, search

    ranked = search(open_video_text(tmp_path / "run", device="cpu"), "a red disc",
                    [s for s in read_manifest(manifest) if s.split == "val"], progress=False)
    assert len(ranked) == 4
    with pytest.raises(ConfigError, match="data.online=true"):
        load_config(None, [s for s in settings if s != "data.online=true"])


def test_an_image_text_model_as_is_classifies_videos_zero_shot(clip_folder, tmp_path, capsys):
    import numpy as np

    from stillmotion.cli import main
    from stillmotion.video import sampling
    from stillmotion.video.decode import read_frames
    from stillmotion.videotext import class_embeddings, open_video_text, zero_shot

    manifest = generate_caption_suite(tmp_path / "suite", CaptionSuiteConfig(train=2, val=1, frames=6, size=64),
                                      progress=False)
    samples = read_manifest(manifest)
    vt = open_video_text(str(clip_folder), device="cpu")  # not a run: the checkpoint as is
    found, videos, failed = vt.videos(samples, progress=False)
    assert len(found) == 6 and not failed
    ref = transformers.CLIPModel.from_pretrained(clip_folder).eval()
    for s, got in zip(found, videos):
        frames = read_frames(s.path)[sampling.spread(6, 8)]
        with torch.no_grad():
            pixels = vt.loaded.encoder.preprocess(np.ascontiguousarray(frames))
            each = ref.visual_projection(ref.vision_model(pixel_values=pixels).pooler_output)
        want = torch.nn.functional.normalize(torch.nn.functional.normalize(each, dim=-1).mean(0), dim=0)
        assert torch.allclose(got, want, atol=1e-5)
    names = ["red disc", "blue square", "green diamond"]
    result = zero_shot(vt, names, samples, progress=False)
    best = (videos @ class_embeddings(vt, names).T).argmax(1).tolist()
    assert [top[0][0] for _, top in result["predictions"]] == [names[i] for i in best]
    assert main(["search", "no-such-model-anywhere", "a red disc", str(manifest), "--quiet"]) == 2
    assert "cannot load image-text model 'no-such-model-anywhere'" in capsys.readouterr().err
