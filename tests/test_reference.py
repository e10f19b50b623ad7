"""Our modules against paper 000's reference code, through fixtures made by running that code on
tiny random models (weights under the reference's names, inputs, outputs; a README beside them).

The folder comes from STILLMOTION_REFERENCE_FIXTURES (default: ../shared/data/reference-models
beside the repository). Without the variable and without the default folder the tests skip,
saying so; with the variable set, a missing or mismatching fixture fails. Every size is read
from the fixture's JSON, so any set made the same way (other sizes, seeds, frame counts) runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stillmotion.cli import main as cli_main
from stillmotion.reference.cores import ARCHS, CLASSES, core_from_reference, core_settings, load_strict
from stillmotion.reference.readouts import (
    box_readout,
    classification_readout,
    depth_readout,
    layer_mix,
    mixed_layers,
    part,
    point_readout,
    pose_readout,
)
from stillmotion.temporal.layer_mix import LayerMix

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-models"
FIXTURES = Path(os.environ.get("STILLMOTION_REFERENCE_FIXTURES", DEFAULT))
CORES = ["gated_transformer", "mamba", "mambamix", "gatedmambamix"]


def fixture(stem: str) -> tuple[dict, dict, dict]:
    """(the JSON, the weights, the inputs and outputs) of fixture `stem`."""
    path = FIXTURES / stem
    if not path.with_suffix(".json").is_file():
        if "STILLMOTION_REFERENCE_FIXTURES" in os.environ:
            pytest.fail(f"reference fixture {path}.json not found in STILLMOTION_REFERENCE_FIXTURES")
        pytest.skip(f"reference fixtures not found at {FIXTURES} (set STILLMOTION_REFERENCE_FIXTURES to their folder)")
    meta = json.loads(path.with_suffix(".json").read_text())
    return meta, load_file(f"{path}.weights.safetensors"), load_file(f"{path}.io.safetensors")


@pytest.mark.parametrize("stem", CORES)
def test_reference_cores_match_clip_and_stream(stem):
    meta, weights, io = fixture(f"cores/{stem}")
    core = core_from_reference(meta["arch_in_reference"], meta["constructor"]["kwargs"], weights).eval()
    x = io["input.tokens"]
    assert x.shape[-1] == meta["constructor"]["kwargs"]["d_model"]
    with torch.no_grad():
        clip = core(x)
        state, steps = core.init_state(x.shape[0], x.shape[2]), []
        for t in range(x.shape[1]):
            y, state = core.step(x[:, t], state)
            steps.append(y)
    assert (clip - io["output.clip"]).abs().max().item() < 1e-4
    assert (torch.stack(steps, 1) - io["output.step"]).abs().max().item() < 1e-4


def test_reference_core_settings_and_weights_are_checked():
    meta, weights, _ = fixture("cores/gatedmambamix")
    kwargs = meta["constructor"]["kwargs"]
    assert core_settings("dinov3_gatedmambamix", kwargs)[:2] == ("gmmix", kwargs["d_model"])
    with pytest.raises(ValueError, match="unknown reference architecture 'dinov3_lstm'"):
        core_settings("dinov3_lstm", kwargs)
    with pytest.raises(ValueError, match="reference setting.* colour have no counterpart"):
        core_settings("dinov3_gatedmambamix", {**kwargs, "colour": 1})
    with pytest.raises(ValueError, match="an MLP gate"):
        core_settings("dinov3_gatedmambamix", {**kwargs, "gate_hidden": 8})
    broken = dict(weights)
    broken["extra.weight"] = broken.pop("gates.0.weight")
    with pytest.raises(ValueError, match=r"missing gates\.0\.weight; unknown extra\.weight"):
        core_from_reference("dinov3_gatedmambamix", kwargs, broken)
    assert set(ARCHS.values()) == {"rvm", "mamba", "mmix", "gmmix"}


def test_a_strict_load_names_wrong_shapes():
    module = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError,
                       match=r"layer: the weights do not fit: wrong shape weight \(2, 4\) \(expected \(2, 3\)\)"):
        load_strict(module, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, "layer")


def encoder_inputs(io: dict) -> torch.Tensor:
    """The fixture's K layers of tokens as LayerMix reads them: (B, T, K, N, D), [CLS | registers | patches]."""
    cls, regs, patches = (io["input.interm_cls_token"], io["input.interm_storage_tokens"],
                          io["input.interm_patch_tokens"])
    return torch.cat([cls[:, :, :, None], regs, patches], dim=3).permute(1, 2, 0, 3, 4)


@pytest.mark.parametrize("stem", ["classification_gatedmambamix", "classification_gated_transformer"])
def test_reference_classification_matches_from_layers_to_logits(stem):
    meta, weights, io = fixture(f"tasks/{stem}")
    kwargs = meta["constructor"]["kwargs"]
    core_meta = kwargs["sequential_core"]
    assert CLASSES[core_meta["class"]] == meta["arch_in_reference"]
    extra = io["input.interm_storage_tokens"].shape[3] + 1
    mix = layer_mix(kwargs["d_enc"], part(weights, "encoder."), extra).eval()
    core = core_from_reference(meta["arch_in_reference"], core_meta["kwargs"], part(weights, "sequential_core.")).eval()
    readout = classification_readout(kwargs, weights).eval()
    with torch.no_grad():
        tokens = mix(encoder_inputs(io))
        assert (tokens - io["intermediate.encoder_tokens"]).abs().max().item() < 1e-4
        core_tokens = core(tokens)
        assert (core_tokens - io["intermediate.core_tokens"]).abs().max().item() < 1e-4
        logits = torch.stack([readout(core_tokens[:, t]) for t in range(core_tokens.shape[1])], 1)
    assert logits.shape == io["output.logits"].shape
    assert (logits - io["output.logits"]).abs().max().item() < 1e-4


@pytest.mark.parametrize("stem,build,output", [("depth_gatedmambamix", depth_readout, "output.pred_depth"),
                                                ("pose_gatedmambamix", pose_readout, "output.pose")])
def test_reference_depth_and_pose_readouts_match_per_frame(stem, build, output):
    meta, weights, io = fixture(f"tasks/{stem}")
    readout = build(meta["constructor"]["kwargs"], weights).eval()
    core_tokens = io["intermediate.core_tokens"]
    with torch.no_grad():
        out = torch.stack([readout(core_tokens[:, t]) for t in range(core_tokens.shape[1])], 1)
    assert out.shape == io[output].shape
    assert (out - io[output]).abs().max().item() < 1e-4


def test_reference_box_readout_matches_teacher_forced_and_free_running():
    meta, weights, io = fixture("tasks/tracking_gatedmambamix")
    readout = box_readout(meta["constructor"]["kwargs"], weights).eval()
    y, first = io["intermediate.core_tokens"], io["input.init_bbox"]
    with torch.no_grad():
        forced = readout.track(y, first, teacher=io["intermediate.bbox_query_input"])
        free = readout.track(y, first)
    # float32 rounding of the top Fourier frequencies feeds back through free running (the
    # reference's own float32 and float64 runs part by 0.5 after a few frames); teacher forcing
    # compares each frame alone
    assert (forced - io["output.bboxes"]).abs().max().item() < 1e-4
    assert (free[:, 0] - io["output.bboxes"][:, 0]).abs().max().item() < 1e-4
    assert torch.equal(readout.track(y[:, :1], first), free[:, :1])


def test_reference_point_readout_matches():
    meta, weights, io = fixture("tasks/points_gatedmambamix")
    readout = point_readout(meta["constructor"]["kwargs"], weights).eval()
    with torch.no_grad():
        xy, visible, uncertain = readout.track(io["intermediate.core_tokens"], io["input.query_points"],
                                               io["input.query_frame"])
    for ours, key in ((xy, "output.pred_points"), (visible, "output.pred_visibility"),
                      (uncertain, "output.pred_uncertainty")):
        assert ours.shape == io[key].shape
        assert (ours - io[key]).abs().max().item() < 1e-3, key


def test_layer_mix_keeps_the_last_layers_extra_tokens_and_averages_the_enriched_patches():
    torch.manual_seed(0)
    mix = LayerMix(8, layers=3, extra=2).eval()
    x = torch.randn(2, 4, 3, 2 + 6, 8)  # (B, T, K, 2 extra + 6 patches, D)
    y = mix(x)
    assert y.shape == (2, 4, 8, 8) and torch.equal(y[:, :, :2], x[:, :, -1, :2])
    for branch in mix.interm_mlps:
        torch.nn.init.zeros_(branch.mlp[2].weight)
        torch.nn.init.zeros_(branch.mlp[2].bias)
    assert torch.allclose(mix(x)[:, :, 2:], x[:, :, :, 2:].mean(2), atol=1e-6)  # P_k + 0, averaged over k
    mix.train()
    branch = mix.interm_mlps[0]
    p = x[:, :, 0, 2:]
    flat = p.reshape(-1, 8)
    expected = (flat - flat.mean(0)) / torch.sqrt(flat.var(0, unbiased=False) + branch.bn.eps)
    assert torch.allclose(branch.bn(flat), expected, atol=1e-5)  # one BatchNorm over every patch token of the batch
    with pytest.raises(ValueError, match=r"expects \(B, T, 3, N, D\)"):
        mix(x[:, :, :2])


def test_original_dinov3_weights_run_in_transformers_as_in_the_original_code():
    from transformers import DINOv3ViTModel

    from stillmotion.reference.dinov3 import config_for, to_transformers

    meta, weights, io = fixture("dinov3/tiny_vit")
    kw, sizes = meta["constructor"]["kwargs"], meta["sizes"]
    config = config_for(weights, heads=sizes["heads"], rope_base=kw["pos_embed_rope_base"], eps=meta["layer_norm_eps"],
                        image_size=kw["img_size"])
    model = DINOv3ViTModel(config).eval()
    model.load_state_dict(to_transformers(weights), strict=True)
    extra = 1 + sizes["storage_tokens"]
    for tag in ("square", "wide"):
        with torch.no_grad():
            out = model(pixel_values=io[f"input.{tag}.images"], output_hidden_states=True)
        blocks = torch.stack(out.hidden_states[1:])  # every block's output, before the final norm
        assert (out.hidden_states[0] - io[f"output.{tag}.embeddings"]).abs().max().item() < 1e-4
        assert (blocks - io[f"output.{tag}.block_outputs"]).abs().max().item() < 1e-4
        normed = model.norm(blocks[meta["interm_layer_indices"]])
        assert (normed[:, :, extra:] - io[f"output.{tag}.interm_patch_tokens"]).abs().max().item() < 1e-4
        assert (normed[:, :, 0] - io[f"output.{tag}.interm_cls_token"]).abs().max().item() < 1e-4
        assert (normed[:, :, 1:extra] - io[f"output.{tag}.interm_storage_tokens"]).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="unknown key"):
        to_transformers({**weights, "head.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="rope_embed.periods do not match"):
        config_for(weights, heads=sizes["heads"], rope_base=10.0)


def test_reference_pixels_to_logits_through_transformers_dinov3():
    from transformers import DINOv3ViTModel

    from stillmotion.reference.dinov3 import config_for, to_transformers

    meta, weights, io = fixture("e2e/classification_gatedmambamix_tinyvit")
    kwargs = meta["constructor"]["kwargs"]
    vit_kw = kwargs["encoder"]["kwargs"]["encoder"]["kwargs"]
    vit_state = part(weights, "encoder.encoder.")
    depth = vit_kw["depth"]
    assert mixed_layers(depth) == meta["interm_layer_indices"] and mixed_layers(24) == [5, 11, 17, 23]
    vit = DINOv3ViTModel(config_for(vit_state, vit_kw["num_heads"], vit_kw["pos_embed_rope_base"],
                                    image_size=vit_kw["img_size"])).eval()
    vit.load_state_dict(to_transformers(vit_state), strict=True)
    rest = {k: v for k, v in weights.items() if not k.startswith("encoder.encoder.")}
    extra = 1 + vit.config.num_register_tokens
    mix = layer_mix(kwargs["d_enc"], part(rest, "encoder."), extra).eval()
    core_meta = kwargs["sequential_core"]
    core = core_from_reference(CLASSES[core_meta["class"]], core_meta["kwargs"], part(rest, "sequential_core.")).eval()
    readout = classification_readout(kwargs, rest).eval()
    frames = io["input.frames"]
    b, t = frames.shape[:2]
    with torch.no_grad():
        hidden = vit(pixel_values=frames.flatten(0, 1), output_hidden_states=True).hidden_states
        layers = vit.norm(torch.stack([hidden[i + 1] for i in mixed_layers(depth)], 1))  # (B*T, K, N, D)
        tokens = mix(layers.unflatten(0, (b, t)))
        assert (tokens - io["intermediate.encoder_tokens"]).abs().max().item() < 1e-4
        core_tokens = core(tokens)
        logits = torch.stack([readout(core_tokens[:, i]) for i in range(t)], 1)
    assert (logits - io["output.logits"]).abs().max().item() < 1e-4


# ---- RVM: the frozen ViT and core of `--arch rvm`, from DeepMind's .npz ------------------------
def test_reference_rvm_npz_converts_key_by_key_as_the_reference_converter():
    from stillmotion.reference.rvm import npz_to_reference, read_npz

    meta, weights, _ = fixture("rvm/npz_conversion")
    ours = npz_to_reference(read_npz(FIXTURES / "rvm" / meta["npz_file"]))
    assert sorted(ours) == sorted(weights)
    assert all(ours[k].shape == weights[k].shape and torch.equal(ours[k], weights[k]) for k in weights)


def test_reference_rvm_encoder_runs_in_transformers_as_in_the_reference():
    from stillmotion.reference.rvm import position_table, vit_model

    meta, weights, io = fixture("rvm/encoder")
    sizes = meta["sizes"]
    assert torch.equal(position_table(sizes["D"], sizes["base_token_shape"][0]),
                       weights["_base_posenc"].reshape(-1, sizes["D"]))
    vit = vit_model(weights, sizes["heads"])
    for tag in ("square", "wide"):
        images = io[f"input.{tag}.images_uint8"].float() / 255
        with torch.no_grad():
            out = vit(pixel_values=images, interpolate_pos_encoding=True).last_hidden_state
        assert (out - io[f"output.{tag}.tokens"]).abs().max().item() < 1e-4  # [CLS | patches], final LayerNorm
    table = vit.embeddings.interpolate_pos_encoding(torch.zeros(1, 197, sizes["D"]), 224, 224)[:, 1:]
    assert (table - io["intermediate.posenc_14x14"]).abs().max().item() < 1e-5  # bicubic 16x16 -> 14x14
    with pytest.raises(ValueError, match="not MAE's sin/cos table"):
        vit_model({**weights, "_base_posenc": weights["_base_posenc"] + 0.1}, sizes["heads"])
    with pytest.raises(ValueError, match=r"unknown weight\(s\) encoder\.layers\.0\.extra\.weight"):
        vit_model({**weights, "encoder.layers.0.extra.weight": torch.zeros(1)}, sizes["heads"])


def test_reference_rvm_converted_folder_is_an_encoder_and_a_core(tmp_path, monkeypatch):
    from stillmotion import encoders
    from stillmotion.reference.rvm import load_core

    meta, _, io = fixture("rvm/npz_conversion")
    sizes = meta["sizes"]
    monkeypatch.setenv("STILLMOTION_HOME", str(tmp_path / "home"))
    folder = tmp_path / "home" / "encoders" / "rvm-b"
    assert cli_main(["convert-rvm", str(FIXTURES / "rvm" / meta["npz_file"]), "--out", str(folder)]) == 0
    frames = io["input.frames_uint8"][0].permute(0, 2, 3, 1).numpy()  # (T, S, S, 3) uint8
    by_name = encoders.load("rvm-b", size=sizes["image"], tokens="all")
    by_folder = encoders.load(str(folder), size=sizes["image"], tokens="all")
    assert by_name.name == "rvm-b" and by_name.std == (255.0,) * 3 and by_name.mean == (0.0,) * 3
    assert by_name.num_tokens == sizes["tokens_per_frame"]
    tokens = by_name.encode_frames(frames)
    assert torch.equal(tokens, by_folder.encode_frames(frames))
    assert (tokens - io["output.encoder_tokens"][0]).abs().max().item() < 1e-4
    core = load_core(folder)
    with torch.no_grad():
        assert (core(tokens[None]) - io["output.core_tokens"]).abs().max().item() < 1e-4
