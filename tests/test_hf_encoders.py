"""Every Hugging Face family builds from a tiny in-memory config and gives the right tokens."""

import json

import numpy as np
import pytest
import torch
import transformers as T

from stillmotion.encoders import load
from stillmotion.encoders.hf import HFEncoder

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)

#: family -> (config, native size, leading class tokens, register tokens)
CONFIGS = {
    "dinov2": (lambda: T.Dinov2Config(**SMALL, patch_size=14, image_size=56), 56, 1, 0),
    "dinov2-registers": (lambda: T.Dinov2WithRegistersConfig(**SMALL, patch_size=14, image_size=56,
                                                             num_register_tokens=4), 56, 1, 4),
    "dinov3": (lambda: T.DINOv3ViTConfig(**SMALL, patch_size=16, image_size=64, num_register_tokens=4), 64, 1, 4),
    "siglip": (lambda: T.SiglipVisionConfig(**SMALL, patch_size=16, image_size=64), 64, 0, 0),
    "siglip2": (lambda: T.Siglip2VisionConfig(**SMALL, patch_size=16, num_patches=16), 64, 0, 0),
    "clip": (lambda: T.CLIPVisionConfig(**SMALL, patch_size=16, image_size=64), 64, 1, 0),
    "clip-image-text": (lambda: T.CLIPConfig(vision_config=dict(**SMALL, patch_size=16, image_size=64),
                                             text_config=dict(**SMALL)), 64, 1, 0),
    "ijepa": (lambda: T.IJepaConfig(**SMALL, patch_size=16, image_size=64), 64, 0, 0),
    "vit": (lambda: T.ViTConfig(**SMALL, patch_size=16, image_size=64), 64, 1, 0),
}


@pytest.mark.parametrize("family", sorted(CONFIGS))
@pytest.mark.parametrize("scale", [1, 2])
def test_family_gives_patch_tokens_only(family, scale):
    make, native, n_cls, n_reg = CONFIGS[family]
    torch.manual_seed(0)
    enc = HFEncoder.from_config(make(), size=native * scale)
    grid = native * scale // enc.patch
    assert enc.grid == (grid, grid) and enc.dim == 32 and enc.num_registers == n_reg
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    pixels = torch.randn(2, 3, native * scale, native * scale)
    out = enc.encode_all(pixels)
    tokens = enc.encode(pixels)
    assert tokens.shape == (2, grid * grid, 32)
    assert torch.allclose(tokens, out["patches"], atol=1e-5)
    assert out["registers"].shape == (2, n_reg, 32)
    assert (out["cls"] is None) == (n_cls == 0)
    if family != "siglip2":  # the full sequence, to check exactly which tokens were dropped
        kw = {"interpolate_pos_encoding": True} if enc.family.interpolate else {}
        with torch.no_grad():
            hidden = enc.model(pixel_values=pixels, **kw).last_hidden_state
        assert hidden.shape[1] == n_cls + n_reg + grid * grid
        assert torch.allclose(tokens, hidden[:, n_cls + n_reg :], atol=1e-5)
        if n_cls:
            assert torch.allclose(out["cls"], hidden[:, 0], atol=1e-5)


def test_local_folder_loads_through_from_pretrained_with_its_statistics(tmp_path):
    torch.manual_seed(0)
    model = T.Dinov2WithRegistersModel(CONFIGS["dinov2-registers"][0]())
    model.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.1, 0.2, 0.3],
                                                                   "image_std": [0.5, 0.5, 0.25]}))
    enc = load(str(tmp_path), size=42)
    assert enc.name == str(tmp_path) and enc.grid == (3, 3) and enc.num_registers == 4
    assert enc.mean == pytest.approx((25.5, 51.0, 76.5)) and enc.std == pytest.approx((127.5, 127.5, 63.75))
    frames = np.random.default_rng(0).integers(0, 256, (2, 50, 60, 3), dtype=np.uint8)
    tokens = enc.encode_frames(frames)
    assert tokens.shape == (2, 9, 32)
    with torch.no_grad():
        pixels = enc.preprocess(frames)
        expected = model.eval()(pixel_values=pixels).last_hidden_state[:, 5:]
    assert torch.allclose(tokens, expected, atol=1e-5)
    assert enc.fingerprint == load(str(tmp_path), size=42).fingerprint != load(str(tmp_path), size=56).fingerprint


def test_unavailable_or_unsupported_models_say_what_to_do(tmp_path):
    with pytest.raises(ValueError,
                       match=r"(?s)cannot load encoder 'dinov2-s' \(facebook/dinov2-small\).*local model folder"):
        load("dinov2-s")
    T.BertModel(T.BertConfig(**SMALL)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model type 'bert' is not a supported vision encoder"):
        load(str(tmp_path))
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        HFEncoder.from_config(CONFIGS["dinov2"][0](), size=50)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_all_tokens_and_intermediate_layers(family):
    """tokens="all" keeps the leading tokens; layers=K gives K blocks, each normed as the last
    one is, so the last of them equals the usual output and the others equal the model's own
    hidden states through its final norm."""
    make, native, n_cls, n_reg = CONFIGS[family]
    config = make()
    vision = getattr(config, "vision_config", None) or config
    vision.num_hidden_layers = 4
    torch.manual_seed(0)
    plain = HFEncoder.from_config(config)
    torch.manual_seed(0)
    enc = HFEncoder.from_config(config, tokens="all", layers=2)
    assert enc.layers == (1, 3) and enc.extra == n_cls + n_reg
    grid = plain.grid[0] * plain.grid[1]
    assert enc.num_tokens == 2 * (n_cls + n_reg + grid) and plain.num_tokens == grid
    pixels = torch.randn(2, 3, native, native)
    tokens = enc.encode(pixels).view(2, 2, n_cls + n_reg + grid, 32)
    assert torch.allclose(tokens[:, 1, n_cls + n_reg:], plain.encode(pixels), atol=1e-5)
    if family != "siglip2":
        kw = {"interpolate_pos_encoding": True} if enc.family.interpolate else {}
        with torch.no_grad():
            out = enc.model(pixel_values=pixels, output_hidden_states=True, **kw)
            assert torch.allclose(tokens[:, 1], out.last_hidden_state, atol=1e-5)
            norm = enc.model.get_submodule(enc.family.final_norm) if enc.family.final_norm else (lambda h: h)
            assert torch.allclose(tokens[:, 0], norm(out.hidden_states[2]), atol=1e-5)
            assert not torch.allclose(tokens[:, 0], tokens[:, 1], atol=1e-3)
    assert enc.settings()["layers"] == [1, 3] and "layers" not in plain.settings()
    assert enc.fingerprint != plain.fingerprint


def test_layer_choices_and_refusals():
    from stillmotion.encoders.hf import block_indices

    assert block_indices(24, 4) == (5, 11, 17, 23) and block_indices(12, 4) == (2, 5, 8, 11)
    assert block_indices(12, None) == () and block_indices(12, [0, 4]) == (0, 4)
    with pytest.raises(ValueError, match="between 1 and its 12 blocks"):
        block_indices(12, 13)
    with pytest.raises(ValueError, match=r"must lie in 0\.\.11"):
        block_indices(12, [12])
    with pytest.raises(ValueError, match="tokens must be one of patches, all"):
        HFEncoder.from_config(CONFIGS["dinov3"][0](), tokens="cls")
    with pytest.raises(ValueError, match="need a transformers ViT"):
        load("efficientnet-lite0", layers=4)
