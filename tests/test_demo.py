import json
import subprocess
import sys

from PIL import Image

from stillmotion.cli import main


def test_tiny_demo_writes_every_report_file(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--size", "64", "--frames", "6", "--train-per-class", "3",
            "--val-per-class", "1", "--test-per-class", "1", "--epochs", "1", "--hidden", "16", "--quiet"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    for key in ("baseline_accuracy", "temporal_accuracy"):
        assert 0.0 <= report[key] <= 1.0
    assert report["temporal_core"] == "gru" and report["encoder"] == "efficientnet-lite0"
    assert report["token_grid"] == [4, 4] and report["token_dim"] == 112
    assert report["train_seconds"] > 0
    assert report["clips"] == {"train": 12, "val": 4, "test": 4}
    assert len(report["curves"]["temporal"]["val_accuracy"]) == 1
    from stillmotion.model.video import VideoModel

    def count(model):
        return sum(p.numel() for p in model.parameters())

    assert report["trainable_parameters"] == {
        "baseline": count(VideoModel(112, "classes", 4, core="mean", max_frames=6)),
        "temporal": count(VideoModel(112, "classes", 4, core="gru", core_kw={"hidden": 16}, max_frames=6)),
    }
    for role, core in (("baseline", "mean"), ("temporal", "gru")):  # each model is a trainer run
        metrics = json.loads((out / "runs" / core / "metrics.json").read_text())
        assert metrics["core"] == core and metrics["test_videos"] == 4 and metrics["val"]["videos"] == 4
        assert report[f"{role}_accuracy"] == metrics["test"]["top1"]
        assert report["curves"][role]["val_accuracy"] == [metrics["val"]["top1"]]
    table = (out / "report.md").read_text()
    assert "| model | test accuracy | trainable parameters | training time (s) |" in table
    assert "gru temporal core" in table and "mean over time (baseline)" in table
    assert Image.open(out / "curves.png").format == "PNG"
    gif = Image.open(out / "predictions.gif")
    assert gif.format == "GIF" and gif.n_frames == 6
    assert len(list((out / "cache" / "videos").glob("*.safetensors"))) == 20
    printed = capsys.readouterr().out
    assert "| gru temporal core |" in printed and str(out / "report.md") in printed

    assert main(args) == 0  # again: the clips and tokens are reused, the models trained again alike
    rerun = json.loads((out / "report.json").read_text())
    assert rerun["extract_seconds"] == 0.0 and report["extract_seconds"] > 0
    assert rerun["curves"] == report["curves"]


def test_command_line_help_and_errors(tmp_path):
    exe = [sys.executable, "-m", "stillmotion.cli"]
    top = subprocess.run(exe + ["--help"], capture_output=True, text=True)
    assert top.returncode == 0 and "demo" in top.stdout
    demo = subprocess.run(exe + ["demo", "--help"], capture_output=True, text=True)
    assert demo.returncode == 0 and "--out" in demo.stdout and "--core" in demo.stdout
    bad = subprocess.run(exe + ["demo", "--epochs", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "must be a positive whole number" in bad.stderr
    odd = subprocess.run(exe + ["demo", "--out", str(tmp_path), "--size", "100", "--quiet"], capture_output=True,
                         text=True)
    assert odd.returncode == 2 and "multiple of 32" in odd.stderr


def test_quick_and_full_presets_and_flags_beside_them(tmp_path, monkeypatch):
    import dataclasses

    import stillmotion.demo
    from stillmotion.cli import DEMO_FULL, DEMO_QUICK
    from stillmotion.data.synthetic import MotionTaskConfig
    from stillmotion.demo import DemoConfig

    task_names = ("frames", "size", "train_per_class", "val_per_class", "test_per_class")
    defaults = {name: getattr(MotionTaskConfig(), name) for name in task_names}
    assert DEMO_FULL == {**defaults, "epochs": DemoConfig().epochs}  # the full preset is the library's default
    seen = []

    def fake_run_demo(out, cfg, progress=True):
        seen.append(cfg)
        (tmp_path / "report.md").write_text("table")
        return {"total_seconds": 0.0}

    monkeypatch.setattr(stillmotion.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 0
    assert main(["demo", "--out", str(tmp_path), "--quick", "--epochs", "5", "--size", "96"]) == 0
    full, quick, mixed = ({**dataclasses.asdict(c.task), "epochs": c.epochs} for c in seen)
    assert {k: full[k] for k in DEMO_FULL} == DEMO_FULL
    assert {k: quick[k] for k in DEMO_QUICK} == DEMO_QUICK == {
        "epochs": 2, "frames": 6, "size": 64, "train_per_class": 6, "val_per_class": 2, "test_per_class": 2}
    assert {k: mixed[k] for k in DEMO_QUICK} == {**DEMO_QUICK, "epochs": 5, "size": 96}


def test_help_and_readme_name_the_papers_and_where_the_released_files_are():
    import argparse
    import re
    from pathlib import Path

    from stillmotion.cli import build_parser

    parser = build_parser()
    texts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts += [sub.format_help() for sub in action.choices.values()]
    assert not [t for t in texts if re.search(r"[Pp]aper 00\d", t)]  # a reader needs names, not our file numbers
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert not re.search(r"[Pp]aper 00\d", readme)
    for needed in ("Towards Data-Efficient Video", "huggingface.co/tue-mps/towards-video-image-frozen",
                   "something-something-v2-labels.json", "google-deepmind/representations4d"):
        assert needed in readme, needed
