"""`stillmotion convert-rvm`: DeepMind's RVM checkpoint (.npz, JAX layout) -> a transformers ViT
folder and our RVM core, on a tiny random file written here in that layout (the reference's own
fixtures are checked in test_reference.py). Each weight lands where the JAX model applies it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stillmotion import encoders
from stillmotion.cli import main
from stillmotion.reference.rvm import convert, load_core, read_npz

D, H, HD, MLP = 16, 2, 8, 64


def jax_rvm(vit_layers: int = 1, core_layers: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays named and shaped as in DeepMind's RVM .npz (a 16-wide, 2-head toy)."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.normal(0, 0.2, shape).astype(np.float32)

    def attention(prefix):
        out = {f"{prefix}/{p}/kernel": r(D, H, HD) for p in ("query", "key", "value")}
        out.update({f"{prefix}/{p}/bias": r(H, HD) for p in ("query", "key", "value")})
        return {**out, f"{prefix}/out/kernel": r(H, HD, D), f"{prefix}/out/bias": r(D)}

    def block(prefix, norms, attentions):
        out = {f"{prefix}/{n}/{p}": r(D) for n in norms for p in ("scale", "bias")}
        for a in attentions:
            out.update(attention(f"{prefix}/{a}"))
        return {**out, f"{prefix}/mlp/dense_in/kernel": r(D, MLP), f"{prefix}/mlp/dense_in/bias": r(MLP),
                f"{prefix}/mlp/dense_out/kernel": r(MLP, D), f"{prefix}/mlp/dense_out/bias": r(D)}

    arrays = {"cls_token": r(1, D), "tokenizer/patch_embedding/Conv_0/kernel": r(1, 16, 16, 3, D),
              "tokenizer/patch_embedding/Conv_0/bias": r(D), "encoder/LayerNorm_0/scale": r(D),
              "encoder/LayerNorm_0/bias": r(D), "rnn_core/state_layer_norm/scale": r(D),
              "rnn_core/transformer/output_norm/scale": r(D), "rnn_core/transformer/output_norm/bias": r(D)}
    for i in range(vit_layers):
        arrays.update(block(f"encoder/layers_{i}", ("attention_norm", "mlp_norm"), ("attention",)))
    for i in range(core_layers):
        arrays.update(block(f"rnn_core/transformer/xa_blocks_{i}", ("ca_attention_norm", "mlp_norm", "attention_norm"),
                            ("ca_attention", "attention")))
    arrays.update({f"rnn_core/{g}/kernel": r(D, D) for g in ("input_update", "input_reset", "state_update",
                                                             "state_reset")})
    return arrays


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "rvm.npz"
    np.savez(path, **jax_rvm(), **{"decoder/layers_0/mlp/dense_in/kernel": np.zeros((2, 2), np.float32),
                                   "mask_token": np.zeros((1, D), np.float32)})  # the decoder's side: not read
    return path


def test_each_weight_lands_where_the_jax_model_applies_it(npz, tmp_path):
    arrays = jax_rvm()
    folder = convert(npz, tmp_path / "rvm")
    encoder = encoders.load(str(folder), size=32, tokens="all")  # a 2 x 2 grid: [CLS | 4 patches]
    vit = encoder.model
    image = torch.rand(1, 3, 32, 32)
    # the patch embedding is the (1, p, p, C, D) kernel over channels-last patches
    patches = image[0].permute(1, 2, 0).reshape(2, 16, 2, 16, 3).permute(0, 2, 1, 3, 4).reshape(4, 16, 16, 3)
    expected = np.einsum("nhwc,hwcd->nd", patches.numpy(), arrays["tokenizer/patch_embedding/Conv_0/kernel"][0])
    got = vit.embeddings.patch_embeddings(image)[0]
    assert np.allclose(got.detach().numpy(), expected + arrays["tokenizer/patch_embedding/Conv_0/bias"], atol=1e-4)
    # a query projection is x . kernel (D, H, hd) + bias (H, hd), heads laid out one after another
    x = torch.randn(3, D)
    layer = vit.layers[0] if hasattr(vit, "layers") else vit.encoder.layer[0]
    query = getattr(layer.attention, "q_proj", None) or layer.attention.attention.query
    kernel, bias = arrays["encoder/layers_0/attention/query/kernel"], arrays["encoder/layers_0/attention/query/bias"]
    expected = np.einsum("nd,dhk->nhk", x.numpy(), kernel) + bias
    assert np.allclose(query(x).detach().numpy(), expected.reshape(3, H * HD), atol=1e-5)
    # the class token has no position; the patches' is MAE's table, row 0 all sin(0) / cos(0)
    pos = vit.embeddings.position_embeddings[0]
    assert torch.equal(pos[0], torch.zeros(D)) and torch.equal(pos[1], torch.tensor([0.0, 1.0] * (D // 2)))
    assert encoder(image).shape == (1, 5, D)
    # the core's attention stacks q, k, v as nn.MultiheadAttention does; its gates are kernel.T
    core = load_core(folder)
    attn = core.transformer.layers[0].ca_attn
    prefix = "rnn_core/transformer/xa_blocks_0/ca_attention"
    for i, name in enumerate(("query", "key", "value")):
        rows = attn.in_proj_weight[i * D : (i + 1) * D].detach().numpy()
        assert np.allclose(x.numpy() @ rows.T, np.einsum("nd,dhk->nhk", x.numpy(),
                                                          arrays[f"{prefix}/{name}/kernel"]).reshape(3, D), atol=1e-5)
    assert torch.equal(core.input_update.weight, torch.from_numpy(arrays["rnn_core/input_update/kernel"].T))
    assert torch.equal(core.state_layer_norm.bias, torch.zeros(D))  # JAX's norm has no bias
    assert torch.equal(core.output_norm.weight, torch.ones(D))  # no JAX counterpart: a task checkpoint brings it
    assert core(torch.randn(1, 2, 5, D)).shape == (1, 2, 5, D)


def test_the_cli_converts_and_names_the_folder_it_wrote(npz, tmp_path, capsys):
    assert main(["convert-rvm", str(npz), "--out", str(tmp_path / "out")]) == 0
    assert f"-> {tmp_path / 'out'}" in capsys.readouterr().out
    assert main(["convert-rvm", str(npz)]) == 2
    assert "give --size base|large" in capsys.readouterr().err
    assert main(["convert-rvm", str(npz), "--size", "base", "--out", str(tmp_path / "b")]) == 2
    assert "--size base is {'dim': 768" in capsys.readouterr().err


def test_an_unconverted_name_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("STILLMOTION_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"'rvm-l' is not converted yet .*stillmotion convert-rvm "
                                         r"pretrain_rvm_large16_256\.npz --size large"):
        encoders.load("rvm-l")
    assert {"rvm-b", "rvm-l"} <= set(encoders.known_names())


@pytest.mark.parametrize("damage, message", [
    ("junk", r"unknown array\(s\) encoder/layers_0/attention/extra/kernel"),
    ("no-core-key", r"lacks array\(s\) rnn_core/transformer/xa_blocks_0/attention/key/kernel$"),
    ("no-vit-key", r"lacks array\(s\) encoder/layers_0/mlp/dense_in/kernel$"),
    ("objects", "holds pickled objects, which are never loaded"),
    ("text", r"not an \.npz archive"),
    ("missing", "RVM checkpoint not found"),
])
def test_a_bad_checkpoint_is_one_clear_line(tmp_path, capsys, damage, message):
    arrays = jax_rvm()
    path = tmp_path / "bad.npz"
    if damage == "junk":
        np.savez(path, **arrays, **{"encoder/layers_0/attention/extra/kernel": np.zeros(2, np.float32)})
    elif damage in ("no-core-key", "no-vit-key"):
        gone = message.split(" ")[-1].rstrip("$")
        np.savez(path, **{k: v for k, v in arrays.items() if k != gone})
    elif damage == "objects":
        np.savez(path, **arrays, note=np.array([{"a": 1}], dtype=object))
    elif damage == "text":
        path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=message):
        read_npz(path) if damage in ("objects", "text", "missing") else convert(path, tmp_path / "out")
    assert main(["convert-rvm", str(path), "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
