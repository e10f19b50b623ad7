import pytest
import torch

from stillmotion.heads import AttentiveProbe


def test_streaming_mode_gives_one_output_per_clip_and_ignores_token_order():
    torch.manual_seed(0)
    probe = AttentiveProbe(16, 5, num_queries=2, num_heads=4).eval()
    x = torch.randn(3, 10, 16)  # (B, N, D)
    out = probe(x)
    assert out.shape == (3, 5)
    assert torch.allclose(probe(x[:, torch.randperm(10)]), out, atol=1e-5)


def test_clip_mode_adds_time_position_and_interpolates_it():
    torch.manual_seed(0)
    probe = AttentiveProbe(16, 3, max_frames=4).eval()
    with torch.no_grad():
        probe.time_embed.normal_()
    x = torch.randn(2, 4, 6, 16)  # (B, T, N, D)
    assert probe(x).shape == (2, 3)
    assert not torch.allclose(probe(x.flip(1)), probe(x))  # time position matters
    assert probe(torch.randn(2, 7, 6, 16)).shape == (2, 3)  # other T: interpolated embedding


def test_width_must_split_into_heads():
    with pytest.raises(ValueError, match="dim 10 is not divisible by num_heads 4"):
        AttentiveProbe(10, 2, num_heads=4)
