import pytest
import torch

from stillmotion.heads.classifier import StreamingClassifier
from stillmotion.temporal import REGISTRY, build


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_stepping_through_a_clip_equals_the_clip_forward(name):
    torch.manual_seed(0)
    core = build(name, 8).eval()
    x = torch.randn(2, 7, 5, 8)
    whole = core(x)
    state = core.init_state(2, 5)
    steps = []
    for t in range(7):
        y, state = core.step(x[:, t], state)
        steps.append(y)
    assert whole.shape == (2, 7, 5, core.out_dim)
    assert torch.allclose(torch.stack(steps, 1), whole, atol=1e-5)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_outputs_on_real_frames_ignore_end_padding(name):
    torch.manual_seed(0)
    core = build(name, 8).eval()
    x = torch.randn(1, 4, 3, 8)
    padded = torch.cat([x, torch.randn(1, 3, 3, 8) * 100], 1)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    assert torch.allclose(core(padded, mask)[:, :4], core(x), atol=1e-5)


def test_mean_core_is_the_running_mean_and_blind_to_order():
    core = build("mean", 4)
    x = torch.randn(2, 6, 3, 4)
    y = core(x)
    assert torch.allclose(y[:, 2], x[:, :3].mean(1), atol=1e-6)
    assert torch.allclose(core(x.flip(1))[:, -1], y[:, -1], atol=1e-6)


def test_gru_core_sees_order():
    core = build("gru", 4, hidden=6)
    x = torch.randn(1, 6, 3, 4)
    assert not torch.allclose(core(x.flip(1))[:, -1], core(x)[:, -1], atol=1e-4)


def test_unknown_core_is_named():
    with pytest.raises(ValueError, match="unknown temporal core 'lstm'.*gru"):
        build("lstm", 8)


def test_classifier_stream_equals_forward_and_last_respects_mask():
    torch.manual_seed(0)
    model = StreamingClassifier(8, 4, core="gru", core_kw={"hidden": 12}).eval()
    x = torch.randn(3, 5, 6, 8)
    logits = model(x)
    assert logits.shape == (3, 5, 4)
    assert torch.allclose(model.stream(x), logits, atol=1e-5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    last = StreamingClassifier.last(logits, mask)
    assert torch.equal(last, torch.stack([logits[0, 4], logits[1, 1], logits[2, 2]]))
