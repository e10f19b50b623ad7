"""`stillmotion import-reference`: paper 000's checkpoints, saved as the reference saves them
(a Lightning `state_dict` under `model.`), become run folders whose model streams the reference's
outputs. The fixtures come from test_reference's folder (skipped, saying why, without them);
the refusals need none."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from test_reference import encoder_inputs, fixture

from stillmotion.cli import main
from stillmotion.data.manifest import Sample, write_manifest
from stillmotion.errors import UsageError
from stillmotion.heads.tracking import to_cxcywh, to_xyxy
from stillmotion.model import checkpoint, model_for
from stillmotion.reference.cores import CLASSES
from stillmotion.reference.release import ReferenceImportError, import_reference, read_state
from stillmotion.tasks import TASKS as OUR_TASKS
from stillmotion.temporal.layer_mix import LayerMix
from stillmotion.video.decode import probe
from stillmotion.video.write import write_video

#: fixture -> the released task it stands for
STEMS = {"classification_gatedmambamix": "ssv2", "classification_gated_transformer": "ssv2",
         "tracking_gatedmambamix": "waymo", "points_gatedmambamix": "pt", "depth_gatedmambamix": "scannet",
         "pose_gatedmambamix": "nuscenes"}


def as_released(weights: dict, path) -> str:
    """The weights saved as a Lightning checkpoint (plus the training-only entries it carries)."""
    state = {f"model.{k}": v for k, v in weights.items()}
    state["loss_fn.log_sigma"] = torch.zeros(2)
    torch.save({"state_dict": state, "epoch": 3, "global_step": 1200, "hyper_parameters": {"lr": 1e-4}}, path)
    return str(path)


def heads(meta: dict) -> dict:
    """The fixture's attention heads as `import_reference` takes them (its sizes are not a release's)."""
    kwargs = meta["constructor"]["kwargs"]
    core = kwargs["sequential_core"]["kwargs"]
    return {"core_heads": core.get("num_heads") or core.get("spatial_num_heads"),
            "readout_heads": kwargs.get("readout_num_heads")}


def imported(stem: str, tmp_path, **kw):
    """(meta, io, the imported run's model, its config) for a task fixture."""
    meta, weights, io = fixture(f"tasks/{stem}")
    kwargs = meta["constructor"]["kwargs"]
    folder = import_reference(as_released(weights, tmp_path / "model.ckpt"), meta["arch_in_reference"], STEMS[stem],
                              "small", tmp_path / "run", **heads(meta), **kw)
    assert checkpoint.resolve(tmp_path / "run") == folder
    cfg = checkpoint.load_config(folder)
    assert cfg.data.tokens == "all" and cfg.data.layers == 4 and cfg.head.name == "reference"
    grid = round(io["input.interm_patch_tokens"].shape[3] ** 0.5)
    extra = 1 + io["input.interm_storage_tokens"].shape[3]
    model = model_for(cfg, OUR_TASKS[cfg.task.name].kind, len(cfg.task.classes or []), kwargs["d_enc"], (grid, grid),
                      layers=4, extra=extra)
    model.load_state_dict(checkpoint.load_weights(folder))
    return meta, io, model.eval(), cfg


def tokens_as_cached(io: dict) -> torch.Tensor:
    """The fixture's 4 layers laid out as the token cache stores them: (B, T, K * N, D)."""
    return encoder_inputs(io).flatten(2, 3)


@pytest.mark.parametrize("stem,output", [("classification_gatedmambamix", "output.logits"),
                                         ("classification_gated_transformer", "output.logits"),
                                         ("depth_gatedmambamix", "output.pred_depth"),
                                         ("pose_gatedmambamix", "output.pose")])
def test_imported_models_stream_the_reference_outputs(stem, output, tmp_path):
    _, io, model, _ = imported(stem, tmp_path)
    out = model.stream(tokens_as_cached(io))
    assert out.shape == io[output].shape
    assert (out - io[output]).abs().max().item() < 1e-4


def test_imported_box_model_follows_the_reference_frame_by_frame(tmp_path):
    _, io, model, cfg = imported("tracking_gatedmambamix", tmp_path)
    assert cfg.task.name == "box_tracking" and cfg.data.size == 256
    first = to_xyxy(io["input.init_bbox"])
    with torch.no_grad():
        y = model.readable(model.core(model.mixed(tokens_as_cached(io))))
        forced = model.head.track(y, first, teacher=to_xyxy(io["intermediate.bbox_query_input"]))
    # the tasks' corner boxes round-trip through the readout's centre boxes: a 1e-7 rounding that
    # the query's top Fourier frequency (2^15 pi) turns into up to ~2.5e-4, as the fixtures' README says
    assert (to_cxcywh(forced) - io["output.bboxes"]).abs().max().item() < 1e-3
    streamed = model.stream(tokens_as_cached(io), first)
    assert (to_cxcywh(streamed[:, 0]) - io["output.bboxes"][:, 0]).abs().max().item() < 1e-3


def test_imported_point_model_matches_away_from_the_query_frames(tmp_path):
    _, io, model, _ = imported("points_gatedmambamix", tmp_path)
    out = model.stream(tokens_as_cached(io), io["input.query_points"]).transpose(1, 2)  # (B, Q, T, 4)
    t = torch.arange(out.shape[2])
    other = (t != io["input.query_frame"][..., None]) & (t != 0)  # ours queries every point at frame 0
    assert other.any()
    assert (out[..., :2] - io["output.pred_points"])[other].abs().max().item() < 1e-3
    assert (out[..., 2] - io["output.pred_visibility"])[other].abs().max().item() < 1e-3
    assert (out[..., 3] - io["output.pred_uncertainty"])[other].abs().max().item() < 1e-3


def test_pixels_to_logits_through_an_imported_run_and_a_converted_vit(tmp_path, capsys):
    """The whole chain as a user runs it: the original ViT weights converted to a transformers
    folder, the checkpoint imported by the command line, frames through `encoders.load` with all
    tokens of 4 layers, then the stream."""
    from transformers import DINOv3ViTModel

    from stillmotion.encoders import load
    from stillmotion.reference.dinov3 import config_for, to_transformers
    from stillmotion.reference.readouts import part

    meta, weights, io = fixture("e2e/classification_gatedmambamix_tinyvit")
    kwargs = meta["constructor"]["kwargs"]
    vit_kw = kwargs["encoder"]["kwargs"]["encoder"]["kwargs"]
    vit_state = part(weights, "encoder.encoder.")
    vit = DINOv3ViTModel(config_for(vit_state, vit_kw["num_heads"], vit_kw["pos_embed_rope_base"],
                                    image_size=vit_kw["img_size"]))
    vit.load_state_dict(to_transformers(vit_state), strict=True)
    vit.save_pretrained(tmp_path / "vit")
    trained = {k: v for k, v in weights.items() if not k.startswith("encoder.encoder.")}
    names = tmp_path / "labels.json"  # as SSv2 ships its class names: {"name": "index"}, in any order
    names.write_text(json.dumps({f"action {i}": str(i) for i in reversed(range(kwargs["num_classes"]))}))
    code = main(["import-reference", as_released(trained, tmp_path / "e2e.ckpt"), "--arch",
                 CLASSES[kwargs["sequential_core"]["class"]],
                 "--task", "ssv2", "--size", "small", "--out", str(tmp_path / "run"),
                 "--encoder", str(tmp_path / "vit"), "--classes", str(names),
                 "--core-heads", str(kwargs["sequential_core"]["kwargs"]["spatial_num_heads"]),
                 "--readout-heads", str(kwargs["readout_num_heads"])])
    assert code == 0
    found = checkpoint.resolve(tmp_path / "run")
    cfg = checkpoint.load_config(found)
    assert cfg.task.classes[3] == "action 3" and cfg.data.encoder == str(tmp_path / "vit")
    encoder = load(cfg.data.encoder, tokens=cfg.data.tokens, layers=cfg.data.layers, size=vit_kw["img_size"])
    frames = io["input.frames"]
    b, t = frames.shape[:2]
    tokens = encoder.encode(frames.flatten(0, 1)).unflatten(0, (b, t))
    model = model_for(cfg, "classes", len(cfg.task.classes), encoder.dim, encoder.grid, encoder.num_layers,
                      encoder.extra)
    model.load_state_dict(checkpoint.load_weights(found))
    logits = model.eval().stream(tokens)
    assert (logits - io["output.logits"]).abs().max().item() < 1e-4

    # `eval` scores the imported run on labelled videos it is given (it has none of its own)
    rng = np.random.default_rng(0)
    samples = []
    for i, label in enumerate(["action 1", "action 3", "not a class"]):
        write_video(tmp_path / f"v{i}.mp4", rng.integers(0, 255, (20, 48, 64, 3), dtype=np.uint8), fps=6)
        samples.append(Sample(id=f"v{i}", path=f"v{i}.mp4", label=label))
    manifest = write_manifest(tmp_path / "videos.jsonl", samples)
    assert main(["eval", str(tmp_path / "run")]) == 2
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--data", str(manifest), "--quiet"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert (scored["split"] == "all" and scored["all"]["clips"] == 2 * cfg.task.eval_clips
            and 0 <= scored["all"]["top1"] <= 1)

    # `stream` runs it over a video file: one answer per frame, one annotated frame per frame
    capsys.readouterr()
    assert main(["stream", str(tmp_path / "v0.mp4"), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "s.mp4"),
                 "--jsonl", str(tmp_path / "s.jsonl"), "--quiet"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(20)) and probe(tmp_path / "s.mp4").num_frames == 20
    assert all(r["top"][0][0].startswith("action ") and sum(p for _, p in r["top"]) <= 1 + 1e-4 for r in rows)
    assert "20 frames of" in capsys.readouterr().out


def test_checkpoints_that_do_not_fit_are_refused_with_the_keys(tmp_path):
    meta, weights, _ = fixture("tasks/pose_gatedmambamix")
    broken = dict(weights)
    broken["pose_head.9.weight"] = broken.pop("pose_head.3.weight")
    with pytest.raises(ReferenceImportError, match=r"missing head\.mlp\.3\.weight; unknown head\.mlp\.9\.weight"):
        import_reference(as_released(broken, tmp_path / "a.ckpt"), "dinov3_gatedmambamix", "nuscenes", "small",
                         tmp_path / "a", **heads(meta))
    with pytest.raises(ReferenceImportError, match="no depth readout"):
        import_reference(as_released(weights, tmp_path / "b.ckpt"), "dinov3_gatedmambamix", "scannet", "small",
                         tmp_path / "b", **heads(meta))
    import_reference(as_released(weights, tmp_path / "c.ckpt"), "dinov3_gatedmambamix", "nuscenes", "small",
                     tmp_path / "c", **heads(meta))
    with pytest.raises(ReferenceImportError, match="already holds a run"):
        import_reference(tmp_path / "c.ckpt", "dinov3_gatedmambamix", "nuscenes", "small", tmp_path / "c",
                         **heads(meta))


def test_heads_that_do_not_divide_the_width_are_one_line_naming_the_option(tmp_path, capsys):
    meta, weights, _ = fixture("tasks/classification_gatedmambamix")
    kwargs = meta["constructor"]["kwargs"]
    dim, width = kwargs["d_enc"], int(weights["readout.key_proj.weight"].shape[0])
    base = ["import-reference", as_released(weights, tmp_path / "m.ckpt"), "--arch", meta["arch_in_reference"],
            "--task", "ssv2", "--size", "small", "--out", str(tmp_path / "run")]
    right = heads(meta)
    cases = [(["--core-heads", dim + 1, "--readout-heads", right["readout_heads"]],
              f"the core is {dim} wide and {dim + 1} attention heads do not divide it", "--core-heads"),
             (["--core-heads", right["core_heads"], "--readout-heads", width + 1],
              f"the readout is {width} wide and {width + 1} attention heads do not divide it", "--readout-heads")]
    for options, said, option in cases:
        assert main([*base, *map(str, options)]) == 2
        err = capsys.readouterr().err
        assert said in err and option in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


class NotWeights:
    """Anything but tensors: unpickling it would run its code (here, write a file)."""

    def __init__(self, marker):
        self.marker = marker

    def __setstate__(self, state):
        Path(state["marker"]).write_text("code from the checkpoint ran")


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_objects_beside_the_weights_never_run_and_never_block_them(tmp_path):
    import argparse

    marker = tmp_path / "ran.txt"
    hyper = {"args": argparse.Namespace(lr=1e-4, data=Path("/data/ssv2")), "callback": NotWeights(marker)}
    torch.save({"state_dict": {"model.x": torch.ones(2)}, "hyper_parameters": hyper, "epoch": 3}, tmp_path / "a.ckpt")
    assert {k: v.tolist() for k, v in read_state(tmp_path / "a.ckpt").items()} == {"x": [1.0, 1.0]}
    torch.save({"state_dict": {"model.x": torch.zeros(1), "model.y": NotWeights(marker)}}, tmp_path / "in.ckpt")
    with pytest.raises(ReferenceImportError, match=r"in\.ckpt: the weights hold a pickled "
                                                   r"test_import_reference\.NotWeights at model\.y, not a tensor"):
        read_state(tmp_path / "in.ckpt")
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "cb": Exploit(marker)}, tmp_path / "os.ckpt")
    with pytest.raises(ReferenceImportError, match=r"os\.ckpt: cannot be read as plain weights .*\w+\.system"):
        read_state(tmp_path / "os.ckpt")
    assert not marker.exists()


def test_unsafe_or_unfit_files_are_refused_without_unpickling(tmp_path):
    (tmp_path / "unsafe.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ReferenceImportError, match=r"unsafe\.ckpt: not a PyTorch checkpoint \(neither the zip archive "
                       r"torch\.save writes nor a pickle; it starts with b'not a ch'\); give a Lightning \.ckpt"):
        read_state(tmp_path / "unsafe.ckpt")
    with pytest.raises(ReferenceImportError, match="checkpoint not found"):
        read_state(tmp_path / "missing.ckpt")
    torch.save({"state_dict": {"model.x": torch.zeros(1), "loss_fn.w": torch.ones(1)}}, tmp_path / "ok.ckpt")
    assert list(read_state(tmp_path / "ok.ckpt")) == ["x"]
    with pytest.raises(ReferenceImportError, match="no temporal core"):
        import_reference(tmp_path / "ok.ckpt", "dinov3_gatedmambamix", "ssv2", "large", tmp_path / "run")
    with pytest.raises(ReferenceImportError, match="--arch 'dinov3_lstm'"):
        import_reference(tmp_path / "ok.ckpt", "dinov3_lstm", "ssv2", "large", tmp_path / "run")
    assert main(["import-reference", str(tmp_path / "unsafe.ckpt"), "--arch", "dinov3_mamba", "--task", "pt",
                 "--size", "base", "--out", str(tmp_path / "run")]) == 2


def test_files_that_are_no_checkpoint_are_one_line_each(tmp_path, capsys):
    import zipfile

    (tmp_path / "text.ckpt").write_text("hello, not weights\n")  # torch.load: KeyError: 104
    (tmp_path / "random.pt").write_bytes(bytes(range(7, 200)))
    with zipfile.ZipFile(tmp_path / "other.ckpt", "w") as archive:  # a zip, but not torch.save's layout
        archive.writestr("a.txt", "x")
    (tmp_path / "pickle.ckpt").write_bytes(b"\x80\x02K\x01.")  # a bare pickle of the number 1
    torch.save([1, 2], tmp_path / "list.ckpt")
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 64)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    expected = {
        "text.ckpt": "not a PyTorch checkpoint (neither the zip archive torch.save writes nor a pickle; it starts "
                     "with b'hello, n')",
        "random.pt": "not a PyTorch checkpoint (neither", "empty.ckpt": "it starts with b'')",
        "other.ckpt": "not a PyTorch checkpoint (torch.load: RuntimeError: ",
        "pickle.ckpt": "not a PyTorch checkpoint (torch.load: RuntimeError: Invalid magic number",
        "list.ckpt": "no state dict of tensors in it",
        "bad.safetensors": "not a readable safetensors file (",
    }
    for name, message in expected.items():
        code = main(["import-reference", str(tmp_path / name), "--arch", "dinov3_gatedmambamix", "--task", "ssv2",
                     "--size", "large", "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == 2 and f"{tmp_path / name}: " in err and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    code = main(["import-reference", str(tmp_path / "text.ckpt"), "--arch", "dinov3_gatedmambamix", "--task", "ssv2",
                 "--size", "large", "--classes", str(tmp_path / "labels.txt"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'labels.txt'}: no such file; --classes takes a text file with one class" in err
    from stillmotion.cli import _class_names

    (tmp_path / "names.txt").write_text("b\n\na\n")
    assert _class_names(tmp_path / "names.txt") == ["b", "a"]
    (tmp_path / "gap.json").write_text('{"a": "0", "b": "2"}')
    with pytest.raises(UsageError, match=r"gap\.json: the indices are not 0\.\.1, each once"):
        _class_names(tmp_path / "gap.json")
    (tmp_path / "list.json").write_text('["a", "b"]')
    with pytest.raises(UsageError, match=r"list\.json: not a JSON object of class name -> index"):
        _class_names(tmp_path / "list.json")


# ---- --arch rvm: the readouts on RVM's own frozen ViT and core ---------------------------------
RVM_TASKS = {"classification_rvm": "ssv2", "depth_rvm": "scannet", "pose_rvm": "nuscenes", "tracking_rvm": "waymo",
             "points_rvm": "pt"}


def imported_rvm(stem: str, tmp_path, whole_core: bool = True):
    """(io, the imported model, tokens from pixels (B, T, N, D)) for an `--arch rvm` task fixture:
    RVM converted from the fixtures' .npz, the checkpoint as released (the task's readout and, with
    `whole_core`, the whole core as the reference's key check demands)."""
    from test_reference import FIXTURES

    from stillmotion.encoders import load
    from stillmotion.reference.rvm import core_state, npz_to_reference, read_npz

    meta, weights, io = fixture(f"tasks/{stem}")
    npz = FIXTURES / "rvm" / "npz_conversion.npz"
    rvm = tmp_path / "rvm"
    if not rvm.is_dir():
        assert main(["convert-rvm", str(npz), "--out", str(rvm)]) == 0
    core = {f"sequential_core.{k}": v for k, v in core_state(npz_to_reference(read_npz(npz))).items()}
    released = {**core, **weights} if whole_core else weights
    kwargs = meta["constructor"]["kwargs"]
    args = ["import-reference", as_released(released, tmp_path / f"{stem}.ckpt"), "--arch", "rvm", "--task",
            RVM_TASKS[stem], "--size", "large", "--rvm", str(rvm), "--out", str(tmp_path / stem)]
    if kwargs.get("readout_num_heads"):
        args += ["--readout-heads", str(kwargs["readout_num_heads"])]
    assert main(args) == 0
    folder = checkpoint.resolve(tmp_path / stem)
    cfg = checkpoint.load_config(folder)
    assert cfg.data.tokens == "all" and cfg.data.layers == 1 and cfg.data.encoder == str(rvm.resolve())
    info = json.loads((tmp_path / stem / "imported.json").read_text())
    assert len(info["core_keys_from_rvm"]) == (0 if whole_core else len(core) - 2)  # all but output_norm
    frames = io["input.frames_uint8"]
    b, t, _, side, _ = frames.shape
    encoder = load(cfg.data.encoder, size=side, tokens="all")
    tokens = encoder.encode_frames(frames.flatten(0, 1).permute(0, 2, 3, 1).numpy()).unflatten(0, (b, t))
    assert (tokens - io["intermediate.encoder_tokens"]).abs().max().item() < 1e-4
    model = model_for(cfg, OUR_TASKS[cfg.task.name].kind, len(cfg.task.classes or []), kwargs["d_enc"],
                      encoder.grid, layers=1, extra=1)
    model.load_state_dict(checkpoint.load_weights(folder))
    return io, model.eval(), tokens


@pytest.mark.parametrize("stem,output,whole_core", [("classification_rvm", "output.logits", True),
                                                    ("classification_rvm", "output.logits", False),
                                                    ("depth_rvm", "output.pred_depth", True),
                                                    ("pose_rvm", "output.pose", True)])
def test_rvm_readouts_import_and_stream_the_reference_outputs_from_pixels(stem, output, whole_core, tmp_path):
    io, model, tokens = imported_rvm(stem, tmp_path, whole_core)
    with torch.no_grad():
        assert (model.core(tokens) - io["intermediate.core_tokens"]).abs().max().item() < 1e-4
    out = model.stream(tokens)
    assert out.shape == io[output].shape and (out - io[output]).abs().max().item() < 1e-4


def test_rvm_box_and_point_readouts_follow_the_reference(tmp_path):
    io, model, tokens = imported_rvm("tracking_rvm", tmp_path)
    with torch.no_grad():
        y = model.readable(model.core(tokens))
        teacher = to_xyxy(io["intermediate.bbox_query_input"])
        forced = model.head.track(y, to_xyxy(io["input.init_bbox"]), teacher=teacher)
    assert (to_cxcywh(forced) - io["output.bboxes"]).abs().max().item() < 1e-3
    io, model, tokens = imported_rvm("points_rvm", tmp_path)
    out = model.stream(tokens, io["input.query_points"]).transpose(1, 2)  # (B, Q, T, 4)
    t = torch.arange(out.shape[2])
    other = (t != io["input.query_frame"][..., None]) & (t != 0)
    assert (out[..., :2] - io["output.pred_points"])[other].abs().max().item() < 1e-3


def test_rvm_import_refusals_name_what_is_wrong(tmp_path, capsys, monkeypatch):
    meta, weights, _ = fixture("tasks/classification_rvm")
    ckpt = as_released(weights, tmp_path / "r.ckpt")
    monkeypatch.setenv("STILLMOTION_HOME", str(tmp_path / "home"))
    base = ["import-reference", ckpt, "--arch", "rvm", "--task", "ssv2", "--out", str(tmp_path / "run")]
    assert main([*base, "--size", "large"]) == 2
    assert "'rvm-l' is not converted yet" in capsys.readouterr().err
    assert main([*base, "--size", "small"]) == 2
    assert "released as base and large, not small" in capsys.readouterr().err
    assert main([*base, "--size", "large", "--rvm", str(tmp_path)]) == 2
    assert "no converted RVM there" in capsys.readouterr().err
    assert main([*base, "--size", "large", "--encoder", "dinov3-l"]) == 2
    assert "give the converted RVM with --rvm" in capsys.readouterr().err


def test_rvm_checkpoint_holding_the_frozen_vit_uses_it_only_if_it_is_the_converted_one(tmp_path, capsys):
    from test_reference import FIXTURES

    from stillmotion.reference.rvm import npz_to_reference, read_npz

    meta, weights, _ = fixture("tasks/classification_rvm")
    npz = FIXTURES / "rvm" / "npz_conversion.npz"
    assert main(["convert-rvm", str(npz), "--out", str(tmp_path / "rvm")]) == 0
    backbone = npz_to_reference(read_npz(npz))
    vit = {f"encoder.{k}": v for k, v in backbone.items() if not k.startswith("rvm_core.")}
    core = {f"sequential_core.{k.removeprefix('rvm_core.')}": v for k, v in backbone.items()
            if k.startswith("rvm_core.")}
    heads = str(meta["constructor"]["kwargs"]["readout_num_heads"])
    base = ["--arch", "rvm", "--task", "ssv2", "--size", "large", "--rvm", str(tmp_path / "rvm"),
            "--readout-heads", heads]
    same = as_released({**vit, **core, **weights}, tmp_path / "same.ckpt")
    assert main(["import-reference", same, *base, "--out", str(tmp_path / "run")]) == 0
    assert "used from there" in json.loads((tmp_path / "run" / "imported.json").read_text())["vit_in_checkpoint"]
    vit["encoder.cls_token"] = vit["encoder.cls_token"] + 1
    other = as_released({**vit, **core, **weights}, tmp_path / "other.ckpt")
    assert main(["import-reference", other, *base, "--out", str(tmp_path / "run2")]) == 2
    assert "frozen RVM ViT (encoder.*) differs" in capsys.readouterr().err


@pytest.mark.parametrize("stem", ["classification_gatedmambamix", "depth_gatedmambamix", "pose_gatedmambamix"])
def test_every_key_of_the_file_is_read_or_named(stem, tmp_path):
    meta, weights, _ = fixture(f"tasks/{stem}")
    path = as_released({**weights, "junk.weight": torch.zeros(1)}, tmp_path / "junk.ckpt")
    with pytest.raises(ReferenceImportError, match=r"key\(s\) no part of the model reads: junk\.weight$"):
        import_reference(path, meta["arch_in_reference"], STEMS[stem], "small", tmp_path / "run", **heads(meta))
    if STEMS[stem] != "nuscenes":  # its pose readout may have one; the others never
        path = as_released({**weights, "proj_to_readout.weight": torch.zeros(2, 2)}, tmp_path / "proj.ckpt")
        with pytest.raises(ReferenceImportError, match=r"reads: proj_to_readout\.weight; the reference's \w+ readout "
                                                       "has no proj_to_readout"):
            import_reference(path, meta["arch_in_reference"], STEMS[stem], "small", tmp_path / "run", **heads(meta))


def test_a_checkpoint_without_batchnorm_statistics_loads_with_the_defaults_and_says_so(tmp_path, capsys):
    meta, weights, io = fixture("tasks/classification_gatedmambamix")
    stats = [k for k in weights if k.startswith("encoder.") and ".bn." in k and ".bn.weight" not in k
             and ".bn.bias" not in k]
    assert stats  # running_mean, running_var, num_batches_tracked of each layer's BatchNorm
    kwargs = meta["constructor"]["kwargs"]
    core = kwargs["sequential_core"]["kwargs"]
    folder = import_reference(as_released({k: v for k, v in weights.items() if k not in stats}, tmp_path / "b.ckpt"),
                              meta["arch_in_reference"], "ssv2", "small", tmp_path / "run",
                              core_heads=core.get("spatial_num_heads"), readout_heads=kwargs["readout_num_heads"])
    assert "has no BatchNorm statistics for mix.interm_mlps.0.bn" in capsys.readouterr().err
    loaded = checkpoint.load_weights(folder)
    assert torch.equal(loaded["mix.interm_mlps.0.bn.running_mean"], torch.zeros(kwargs["d_enc"]))
    assert torch.equal(loaded["mix.interm_mlps.0.bn.running_var"], torch.ones(kwargs["d_enc"]))
    info = json.loads((tmp_path / "run" / "imported.json").read_text())
    assert len(info["batchnorm_defaults"]) == len(stats)


def test_a_checkpoint_holding_the_frozen_dinov3_vit_needs_no_download(tmp_path, capsys):
    """Lightning's default state_dict keeps the frozen ViT (`encoder.encoder.*`): it becomes the
    run's encoder folder, and pixels give the reference's logits through it."""
    from stillmotion.encoders import load

    meta, weights, io = fixture("e2e/classification_gatedmambamix_tinyvit")
    kwargs = meta["constructor"]["kwargs"]
    args = ["import-reference", as_released(weights, tmp_path / "full.ckpt"), "--arch",
            CLASSES[kwargs["sequential_core"]["class"]], "--task", "ssv2", "--size", "small",
            "--core-heads", str(kwargs["sequential_core"]["kwargs"]["spatial_num_heads"]),
            "--readout-heads", str(kwargs["readout_num_heads"])]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert "holds the frozen DINOv3 ViT" in capsys.readouterr().err
    cfg = checkpoint.load_config(checkpoint.resolve(tmp_path / "run"))
    assert cfg.data.encoder == str((tmp_path / "run" / "encoder").resolve())
    vit_kw = kwargs["encoder"]["kwargs"]["encoder"]["kwargs"]
    encoder = load(cfg.data.encoder, tokens=cfg.data.tokens, layers=cfg.data.layers, size=vit_kw["img_size"])
    frames = io["input.frames"]
    tokens = encoder.encode(frames.flatten(0, 1)).unflatten(0, frames.shape[:2])
    model = model_for(cfg, "classes", len(cfg.task.classes), encoder.dim, encoder.grid, encoder.num_layers,
                      encoder.extra)
    model.load_state_dict(checkpoint.load_weights(checkpoint.resolve(tmp_path / "run")))
    assert (model.eval().stream(tokens) - io["output.logits"]).abs().max().item() < 1e-4
    # with --encoder the ViT inside is dropped, saying so
    assert main([*args, "--encoder", "dinov3-s", "--out", str(tmp_path / "run2")]) == 0
    assert "keys dropped: --encoder dinov3-s given" in capsys.readouterr().err
    assert not (tmp_path / "run2" / "encoder").exists()


@pytest.mark.parametrize("name,task", [("tracking", "waymo"), ("points", "pt"), ("pose", "nuscenes"),
                                       ("depth", "scannet"), ("classification", "ssv2")])
def test_readouts_wider_than_the_tokens_import_as_the_reference_runs_them(name, task, tmp_path):
    """The small and base builds: `proj_to_readout` widens the core's tokens for the box, point
    and pose readouts; the depth and class readouts' attention is wider than the tokens (1024 and
    768 over a ViT-S). Fixtures made by the reference code itself (tools/reference_proj_fixtures.py)."""
    from safetensors.torch import load_file

    data = load_file(str(Path(__file__).parent / "data" / "reference-proj" / f"{name}.safetensors"))
    sizes = json.loads((Path(__file__).parent / "data" / "reference-proj" / f"{name}.json").read_text())["sizes"]
    weights = {k.removeprefix("weights."): v for k, v in data.items() if k.startswith("weights.")}
    # a release's DINOv3 encoder mix (the reference's stub encoder has none; it is not on the compared path)
    weights.update({f"encoder.{k}": v for k, v in LayerMix(sizes["D"], 4, 5).state_dict().items()})
    folder = import_reference(as_released(weights, tmp_path / "m.ckpt"), "dinov3_rvmrnn", task, "small",
                              tmp_path / "run", core_heads=sizes["heads"], readout_heads=sizes["heads"])
    cfg = checkpoint.load_config(folder)
    if name in ("depth", "classification"):  # no projection: the readout's attention has the width
        assert cfg.head.readout_width is None and cfg.head.width == sizes["readout_width"]
    else:
        assert cfg.head.readout_width == sizes["readout_width"]
    model = model_for(cfg, OUR_TASKS[cfg.task.name].kind, len(cfg.task.classes or ()), sizes["D"], (1, 1), layers=4,
                      extra=5)
    model.load_state_dict(checkpoint.load_weights(folder))
    model.eval()
    tokens = data["input.tokens"]  # the core's input, as the reference's stub encoder gave it
    with torch.no_grad():
        y = model.readable(model.core(tokens))
        if name == "tracking":
            teacher = to_xyxy(data["output.bbox_query_input"][:, : sizes["T"]])
            forced = model.head.track(y, to_xyxy(data["input.init_bbox"]), teacher=teacher)
            assert (to_cxcywh(forced) - data["output.output"]).abs().max().item() < 1e-3
        elif name == "points":
            out = model.head.track(y, data["input.query_point"]).transpose(1, 2)  # (B, Q, T, 4)
            assert (out[:, :, 1:, :2] - data["output.pred_points"][:, :, 1:]).abs().max().item() < 1e-4
            assert (out[:, :, 1:, 2] - data["output.pred_visibility"][:, :, 1:]).abs().max().item() < 1e-4
        elif name == "depth":
            out = model.head(y.flatten(0, 1)).unflatten(0, y.shape[:2])  # (B, T, S, S), each frame alone
            assert (out - data["output.pred_depth"]).abs().max().item() < 1e-4
        else:
            assert (model.per_frame(y) - data["output.output"]).abs().max().item() < 1e-4


def test_streaming_a_real_clip_gives_the_reference_scripts_outputs_from_pixels(tmp_path, capsys):
    """`stillmotion stream` with an imported `--arch rvm` model on a real 30 fps clip: the run's
    rate (6 fps; then 12, where the reference's frame step is not 30/12) and the reference's pixels
    give the per-frame class probabilities the reference's own SSv2 pipeline gives
    (tests/data/reference-stream, made by tools/reference_stream_fixture.py from the same fixtures
    at their 48 px)."""
    import hashlib

    from safetensors.torch import load_file
    from test_reference import FIXTURES

    from stillmotion.reference.rvm import core_state, npz_to_reference, read_npz

    meta, weights, _ = fixture("tasks/classification_rvm")
    data_dir = Path(__file__).parent / "data"
    made_from = json.loads((data_dir / "reference-stream" / "classification_rvm.json").read_text())["fixtures_sha256"]
    if any(hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() != digest for name, digest in made_from.items()):
        pytest.skip("tests/data/reference-stream was made from another fixture set: rerun "
                    "tools/reference_stream_fixture.py on this one")
    expected = load_file(str(data_dir / "reference-stream" / "classification_rvm.safetensors"))
    npz = FIXTURES / "rvm" / "npz_conversion.npz"
    assert main(["convert-rvm", str(npz), "--out", str(tmp_path / "rvm")]) == 0
    core = {f"sequential_core.{k}": v for k, v in core_state(npz_to_reference(read_npz(npz))).items()}
    ckpt = as_released({**core, **weights}, tmp_path / "RVM_readout.ckpt")
    heads = str(meta["constructor"]["kwargs"]["readout_num_heads"])
    assert main(["import-reference", ckpt, "--arch", "rvm", "--task", "ssv2", "--size", "large", "--rvm",
                 str(tmp_path / "rvm"), "--readout-heads", heads, "--out", str(tmp_path / "run")]) == 0
    config = checkpoint.resolve(tmp_path / "run") / "config.yaml"
    assert all(f"{line}\n" in config.read_text() for line in ("resize: reference", "fps: 6.0", "resample: stride"))
    config.write_text(config.read_text().replace("size: 224", f"size: {meta['sizes']['image']}"))  # the tiny model's
    capsys.readouterr()
    clip = data_dir / "real-clips" / "clip_h264_340x256_30fps.mp4"
    assert main(["stream", str(clip), "--model", str(tmp_path / "run"), "--jsonl", str(tmp_path / "s.jsonl"),
                 "--quiet"]) == 0
    for fps, suffix in ((None, ""), ("12", "_12fps")):  # the run's 6 fps; 12, the pt/scannet/nuscenes rate
        rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
        probs = torch.softmax(expected[f"logits{suffix}"], -1)
        # 6 of the clip's 30 frames a second; at 12 fps every round(30/12) = 2nd frame, as the reference steps
        assert len(rows) == len(probs) == len(expected[f"indices{suffix}"])
        for row, p in zip(rows, probs):
            assert all(abs(prob - p[int(name.split("_")[1])].item()) < 1e-4 for name, prob in row["top"])
        if fps is None:
            assert main(["stream", str(clip), "--model", str(tmp_path / "run"), "--jsonl", str(tmp_path / "s.jsonl"),
                         "--fps", "12", "--quiet"]) == 0
