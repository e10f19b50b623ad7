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
    with pytest.raises(ValueError, match="width 10 is not divisible by num_heads 4"):
        AttentiveProbe(10, 2, num_heads=4)
    with pytest.raises(ValueError, match="width 9 is not divisible by num_heads 2"):
        AttentiveProbe(16, 5, num_heads=2, width=9)


def test_the_attentive_probe_can_be_narrower_than_the_tokens_and_read_per_query():
    probe = AttentiveProbe(16, 5, num_queries=3, num_heads=2, width=8, per_query=True)
    assert probe(torch.randn(4, 7, 16)).shape == (4, 15) and probe.k.out_features == 8
    assert AttentiveProbe(16, 5, num_queries=3, num_heads=2, width=8)(torch.randn(4, 7, 16)).shape == (4, 5)
