import pytest
import torch

from stillmotion.model.video import VideoModel, last_real
from stillmotion.temporal import REGISTRY, SIZES, build

#: per core, settings that change what a step keeps: windows, temporal kernels, depths, sizes
STREAM_SETTINGS = {
    "causal-attention": [{"window": 3}, {"window": 8, "layers": 1}, {"size": "tiny"}, {}],
    "tmm": [{"kernel": 1}, {"kernel": 3, "depth": 2}, {"kernel": 5}, {"size": "tiny"}],
    "gru": [{"layers": 2}, {"size": "tiny"}, {}],
    "mamba": [{"layers": 3}, {"size": "tiny"}, {}],
    "rvm": [{"layers": 1}, {"size": "tiny"}, {}],
}


@pytest.mark.parametrize("name,settings", [(n, s) for n in sorted(REGISTRY) for s in STREAM_SETTINGS.get(n, [{}])])
def test_stepping_through_a_clip_equals_the_clip_forward(name, settings):
    torch.manual_seed(0)
    settings = dict(settings)
    core = build(name, 8, size=settings.pop("size", "small"), **settings).eval()
    for length in (1, 5, 9, 17, 33):
        x = torch.randn(2, length, 4, 8)  # 4 tokens: a 2 x 2 grid for tmm
        whole = core(x)
        state = core.init_state(2, 4)
        steps = []
        for t in range(length):
            y, state = core.step(x[:, t], state)
            steps.append(y)
        assert whole.shape == (2, length, 4, core.out_dim)
        assert torch.allclose(torch.stack(steps, 1), whole, atol=1e-5), length


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_outputs_on_real_frames_ignore_end_padding(name):
    torch.manual_seed(0)
    core = build(name, 8).eval()
    x = torch.randn(1, 4, 4, 8)
    padded = torch.cat([x, torch.randn(1, 3, 4, 8) * 100], 1)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    assert torch.allclose(core(padded, mask)[:, :4], core(x), atol=1e-5)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_core_trains_under_bf16_autocast(name):
    """The trainer's CUDA setting, on the CPU: bf16 autocast must not meet an op that takes one
    dtype with two (a gate's lerp did, in GMMix)."""
    torch.manual_seed(0)
    core = build(name, 16, size="tiny")
    x = torch.randn(2, 5, 4, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = core(x)
    y.float().square().mean().backward()
    assert y.shape == (2, 5, 4, core.out_dim) and torch.isfinite(x.grad).all()


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


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - {"identity", "mean"}))
def test_named_sizes_grow_and_keywords_override_them(name):
    counts = [sum(p.numel() for p in build(name, 16, size=size).parameters()) for size in SIZES]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    assert sum(p.numel() for p in build(name, 16).parameters()) == counts[list(SIZES).index("small")]
    core = build("gmmix", 16, size="base", layers=1)
    assert len(core.temporal) == 1 and core.spatial[0].attn.num_heads == 8
    with pytest.raises(ValueError, match="unknown core size 'huge'.*tiny"):
        build(name, 16, size="huge")


def test_unknown_core_or_setting_is_named():
    with pytest.raises(ValueError, match="unknown temporal core 'lstm'.*gru"):
        build("lstm", 8)
    with pytest.raises(ValueError,
                       match="'tmm' has no setting hidden; it takes: width, inner, depth, kernel, causal, grid"):
        build("tmm", 8, hidden=4)


def test_classifier_stream_equals_forward_and_last_respects_mask():
    torch.manual_seed(0)
    model = VideoModel(8, "classes", 4, core="gru", core_kw={"hidden": 12}).eval()
    x = torch.randn(3, 5, 6, 8)
    logits = model.per_frame(model.core(x))
    assert logits.shape == (3, 5, 4)
    assert torch.allclose(model.stream(x), logits, atol=1e-5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    last = last_real(logits, mask)
    assert torch.equal(last, torch.stack([logits[0, 4], logits[1, 1], logits[2, 2]]))
    assert torch.allclose(model(x, mask), last, atol=1e-6)


def _scan_inputs(b=3, length=37, e=5, s=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, e, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(b, length, e, generator=g))
    a = -torch.exp(torch.randn(e, s, generator=g))
    bm, cm = torch.randn(b, length, s, generator=g), torch.randn(b, length, s, generator=g)
    return x, dt, a, bm, cm, torch.randn(e, generator=g), torch.randn(b, e, s, generator=g)


def test_the_scan_loop_is_the_recurrence_element_by_element():
    from stillmotion.temporal.scan import selective_scan_loop

    x, dt, a, bm, cm, d, h0 = _scan_inputs(b=1, length=4, e=2, s=3)
    y, h_last = selective_scan_loop(x, dt, a, bm, cm, d, h0)
    h = h0[0].clone()
    for t in range(4):
        for i in range(2):
            for n in range(3):
                h[i, n] = torch.exp(dt[0, t, i] * a[i, n]) * h[i, n] + dt[0, t, i] * bm[0, t, n] * x[0, t, i]
            expected = sum(cm[0, t, n] * h[i, n] for n in range(3)) + d[i] * x[0, t, i]
            assert torch.isclose(y[0, t, i], expected, atol=1e-5)
    assert torch.allclose(h_last[0], h, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 5, 16, 64])
def test_the_parallel_scan_equals_the_loop(chunk):
    from stillmotion.temporal.scan import selective_scan_loop, selective_scan_parallel

    x, dt, a, bm, cm, d, h0 = _scan_inputs()
    for start in (None, h0):
        y_loop, h_loop = selective_scan_loop(x, dt, a, bm, cm, d, start)
        y_par, h_par = selective_scan_parallel(x, dt, a, bm, cm, d, start, chunk=chunk)
        assert torch.allclose(y_par, y_loop, atol=1e-5) and torch.allclose(h_par, h_loop, atol=1e-5)


def test_the_parallel_scan_recomputes_its_chunks_in_backward_with_the_same_gradients():
    from stillmotion.temporal.scan import selective_scan_loop, selective_scan_parallel

    inputs = [t.clone().requires_grad_(t.is_floating_point()) for t in _scan_inputs()[:6]]
    grads, saved = {}, {}
    for name, run in (("loop", lambda: selective_scan_loop(*inputs)),
                      ("kept", lambda: selective_scan_parallel(*inputs, chunk=8, recompute=False)),
                      ("recomputed", lambda: selective_scan_parallel(*inputs, chunk=8, recompute=True))):
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t, sizes=sizes: sizes.append(t.numel()) or t, lambda t: t):
            y, h = run()
        (y.square().sum() + h.sum()).backward()
        grads[name] = [t.grad.clone() for t in inputs]
        saved[name] = sum(sizes)
        for t in inputs:
            t.grad = None
    for name in ("kept", "recomputed"):
        assert all(torch.allclose(g, w, atol=1e-4) for g, w in zip(grads[name], grads["loop"]))
    # what backward keeps: the (B, chunk, E, S) doubling tensors without recomputation, far less with
    assert saved["recomputed"] * 4 < saved["kept"], saved


def test_tmm_is_advises_resnet3d_stage_at_base_size():
    d, inner, out = 768, 256, 512
    bn = 2 * (inner + inner + out + out)  # BatchNorm scales and shifts, shortcut's included
    core = build("tmm", d, size="base")
    assert sum(p.numel() for p in core.parameters()) == d * out + 3 * d * inner + 9 * inner**2 + inner * out + bn
    released = build("tmm", d, size="base", depth=4, kernel=1)  # AdViSe's released config
    later = out * inner + 9 * inner**2 + inner * out + 2 * (inner + inner + out)  # no shortcut conv
    assert (sum(p.numel() for p in released.parameters())
            == d * out + d * inner + 9 * inner**2 + inner * out + bn + 3 * later)
    assert core(torch.randn(1, 3, 4, d)).shape == (1, 3, 4, out)


def test_tmm_is_causal_by_default_and_centred_on_request():
    torch.manual_seed(0)
    causal = build("tmm", 8, size="tiny").eval()
    centred = build("tmm", 8, size="tiny", causal=False).eval()
    centred.load_state_dict(causal.state_dict())
    x = torch.randn(1, 6, 4, 8)
    changed = x.clone()
    changed[:, 4] += 1
    assert torch.equal(causal(changed)[:, :4], causal(x)[:, :4])  # the past only
    assert torch.equal(centred(changed)[:, :3], centred(x)[:, :3])  # one frame ahead, no further
    assert not torch.allclose(centred(changed)[:, 3], centred(x)[:, 3], atol=1e-4)
    assert not torch.allclose(causal(changed)[:, 5], causal(x)[:, 5], atol=1e-4)
    with pytest.raises(ValueError, match="cannot stream"):
        centred.init_state(1, 4)
    pointwise = build("tmm", 8, size="tiny", kernel=1, causal=False).eval()
    state = pointwise.init_state(1, 4)  # a 1-frame kernel looks nowhere: it streams either way
    assert torch.allclose(pointwise.step(x[:, 0], state)[0], pointwise(x)[:, 0], atol=1e-6)


@pytest.mark.parametrize("window", [3, 16])
def test_causal_attention_streams_past_its_window(window):
    torch.manual_seed(0)
    core = build("causal-attention", 8, window=window).eval()
    for length in (1, 2, window // 2 + 1, window - 1, window, window + 1, 2 * window + 3):
        x = torch.randn(2, length, 4, 8)
        state = core.init_state(2, 4)
        steps = []
        for t in range(length):
            y, state = core.step(x[:, t], state)
            steps.append(y)
        assert torch.allclose(torch.stack(steps, 1), core(x), atol=1e-5), length
    x = torch.randn(2, 9, 4, 8)
    changed = x.clone()
    # frame 0 lies outside the window of frames >= 3 (one layer: 2 frames back)
    changed[:, 0] += 10 * torch.randn(2, 4, 8)
    one = build("causal-attention", 8, window=3, layers=1).eval()
    assert torch.allclose(one(changed)[:, 3:], one(x)[:, 3:], atol=1e-5)
    assert not torch.allclose(one(changed)[:, 2], one(x)[:, 2], atol=1e-3)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_few_training_steps_lower_a_loss_on_a_temporal_target(name):
    torch.manual_seed(0)
    core = build(name, 8)
    head = torch.nn.Linear(core.out_dim, 1)
    x = torch.randn(4, 6, 4, 8)
    target = x[..., :1] + 0.5 * torch.cat([torch.zeros_like(x[:, :1, :, :1]), x[:, :-1, :, 1:2]], 1)
    params = list(core.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(head(core(x)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses[::5]


def test_summary_counts_parameters_flops_and_state(capsys):
    from stillmotion.cli import main
    from stillmotion.temporal.summary import summarize

    gru = summarize("gru", 8, 4, hidden=6)
    assert gru["parameters"] == 2 * 8 + 3 * 6 * (8 + 6) + 2 * 3 * 6  # LayerNorm + GRU weights and biases
    assert gru["state_bytes"] == 1 * 4 * 6 * 4  # (layers, B * N, hidden) float32
    assert gru["flops_per_frame"] == 2 * 4 * 3 * 6 * (8 + 6)  # the two matrix products per token
    assert summarize("identity", 8, 4) == {"core": "identity", "parameters": 0, "flops_per_frame": 0, "state_bytes": 0}
    assert main(["temporal", "summary", "--dim", "8", "--tokens", "4", "gru", "mean"]) == 0
    table = capsys.readouterr().out
    assert "| gru |" in table and "| mean | 0 | 0.00 | 0.1 |" in table


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("feed", ["diff", "both"])
def test_difference_inputs_stream_as_they_run_on_clips(name, feed):
    torch.manual_seed(0)
    core = build(name, 8, size="tiny", input=feed, norm=True).eval()
    for t in (1, 2, 5, 8):  # causal-attention's tiny window is 8 frames
        x = torch.randn(2, t, 4, 8) * 6
        state, steps = core.init_state(2, 4), []
        for i in range(t):
            y, state = core.step(x[:, i], state)
            steps.append(y)
        assert torch.allclose(torch.stack(steps, 1), core(x), atol=1e-5), t


def test_difference_inputs_feed_the_change_and_keep_its_size():
    from stillmotion.temporal.baselines import Identity
    from stillmotion.temporal.inputs import TokenInputs

    x = torch.randn(1, 5, 3, 4)
    for feed, width in (("diff", 4), ("both", 8)):
        y = TokenInputs(Identity(width), 4, feed)(x)
        change = y[..., -4:]
        assert y.shape[-1] == width and torch.equal(change[:, 0], torch.zeros(1, 3, 4))  # nothing moved before frame 0
        assert torch.allclose(change[:, 1:], x[:, 1:] - x[:, :-1])
    normed = TokenInputs(Identity(8), 4, "both", norm=True)(x * 100)
    plain = torch.nn.functional.layer_norm(x, (4,))
    assert torch.allclose(normed[..., :4], plain, atol=1e-4)  # tokens normalised first ...
    assert torch.allclose(normed[:, 1:, :, 4:], plain[:, 1:] - plain[:, :-1], atol=1e-4)  # ... then differenced


@pytest.mark.parametrize("feed", ["diff", "both"])
def test_the_order_blind_controls_stay_blind_whatever_they_are_fed(feed):
    core = build("mean", 4, input=feed, norm=True)
    x = torch.randn(2, 6, 3, 4)
    assert torch.allclose(core(x.flip(1))[:, -1], core(x)[:, -1], atol=1e-6)
    assert build("gru", 4, input=feed).core.norm.normalized_shape[0] == (8 if feed == "both" else 4)


def test_the_mlp_head_is_the_token_mean_then_linear_relu_linear():
    torch.manual_seed(0)
    model = VideoModel(8, "classes", 3, core="identity", head="mlp", mode="clip", hidden=16).eval()
    x = torch.randn(2, 5, 4, 8)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    pooled = torch.stack([x[0].mean((0, 1)), x[1, :3].mean((0, 1))])  # real frames only
    first, last = model.head.mlp[0], model.head.mlp[2]
    assert first.out_features == 16
    assert torch.allclose(model(x, mask), last(torch.relu(first(pooled))), atol=1e-6)
    streamed = VideoModel(8, "classes", 3, core="identity", head="mlp", hidden=16).eval()
    streamed.load_state_dict(model.state_dict())
    assert torch.allclose(streamed(x, mask)[1], last(torch.relu(first(x[1, 2].mean(0)))), atol=1e-6)  # last real frame
