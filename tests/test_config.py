import subprocess
import sys

import pytest

from stillmotion.config import ConfigError, differences, from_yaml, load_config, to_yaml


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_file_then_overrides_then_checks(tmp_path):
    path = _write(tmp_path, "data:\n  train: videos/\ntask:\n  name: prp\ntrain:\n  steps: 50\n")
    cfg = load_config(path, ["train.steps=7", "temporal.name=gmmix", "temporal.kw.layers=1", "task.rates=[1,3]"])
    assert (cfg.data.train, cfg.task.name, cfg.train.steps) == ("videos/", "prp", 7)
    assert (cfg.temporal.name, cfg.temporal.kw, cfg.task.rates) == ("gmmix", {"layers": 1}, [1, 3])
    assert from_yaml(to_yaml(cfg)) == cfg
    assert differences(cfg, load_config(path, ["train.steps=7"])) == ["task.rates", "temporal.kw", "temporal.name"]


@pytest.mark.parametrize("text, overrides, key", [
    ("data:\n  train: v/\noptim:\n  lrr: 0.1\n", [], "optim.lrr"),  # unknown key in the file
    ("data:\n  train: v/\ntrain:\n  steps: many\n", [], "train.steps"),  # wrong type in the file
    ("data:\n  train: v/\n", ["train.stepz=3"], "train.stepz"),  # unknown key in an override
    ("data:\n  train: v/\n", ["train.batch_size=0.5"], "train.batch_size"),  # wrong type in an override
    ("data:\n  train: v/\n", ["temporal.name=lstm"], "temporal.name"),  # not a known core
    ("data:\n  train: v/\n", ["head.mode=sideways"], "head.mode"),
    ("data:\n  train: v/\n", ["train.steps=0"], "train.steps"),
    ("task:\n  name: prp\n", [], "data.train"),  # required and missing
])
def test_errors_name_the_key(tmp_path, text, overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(_write(tmp_path, text), overrides)


def test_override_without_equals_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["data.train"])
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_cli_reports_the_key_and_exits_2(tmp_path):
    path = _write(tmp_path, "data:\n  train: v/\noptim:\n  lrr: 0.1\n")
    run = subprocess.run([sys.executable, "-m", "stillmotion.cli", "train", str(path), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "optim.lrr" in run.stderr and "c.yaml" in run.stderr
    bad = _write(tmp_path, "data: [1\n  train: v/\n")  # not YAML: one line, where and what
    run = subprocess.run([sys.executable, "-m", "stillmotion.cli", "train", str(bad), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"{bad}: not valid YAML at line 2, column 8: did not find expected ',' or ']'" in run.stderr


def test_overrides_go_anywhere_on_the_command_line(tmp_path, capsys):
    from stillmotion.cli import main

    assert main(["train", "prp", "data.train=clips", "--out", str(tmp_path / "r"), "train.steps=7", "--print-config",
                 "temporal.name=gru"]) == 0
    printed = capsys.readouterr().out
    assert "train: clips" in printed and "steps: 7" in printed and "name: gru" in printed
    with pytest.raises(SystemExit) as exit_:  # what is not KEY=VALUE is still argparse's error
        main(["train", "prp", "--out", str(tmp_path / "r"), "--stepz", "7"])
    assert exit_.value.code == 2 and "unrecognized arguments: --stepz" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # commands without overrides take none
        main(["configs", "list", "train.steps=7"])
    assert "unrecognized arguments: train.steps=7" in capsys.readouterr().err


def test_configs_list_gives_each_config_one_whole_sentence(capsys):
    from stillmotion import configs
    from stillmotion.cli import main

    assert main(["configs", "list"]) == 0
    listed = capsys.readouterr().out
    for name in configs.names():
        summary = configs.summary(name)
        assert f"{name:<34} {summary}\n" in listed
        assert summary.endswith(".") and len(summary) <= 110 and "aper 00" not in summary, (name, summary)


def test_shipped_configs_load(tmp_path):
    from pathlib import Path

    configs = sorted(Path(__file__).parent.parent.glob("configs/**/*.yaml"))
    assert len(configs) >= 2
    for path in configs:
        cfg = load_config(path, ["data.train=videos/"])
        assert cfg.train.steps >= 1


def test_collectives_use_the_gpu_under_nccl_and_the_cpu_otherwise(monkeypatch):
    import torch

    from stillmotion import dist

    assert dist.reduce_device() == torch.device("cpu")  # no process group
    monkeypatch.setattr(dist.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist.dist, "get_backend", lambda: "gloo")
    assert dist.reduce_device() == torch.device("cpu")
    monkeypatch.setattr(dist.dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(dist.torch.cuda, "current_device", lambda: 3)
    assert dist.reduce_device() == torch.device("cuda", 3)
    calls = []
    monkeypatch.setattr(dist.dist, "barrier", lambda **kw: calls.append(kw))
    dist.barrier()
    assert calls == [{"device_ids": [3]}]


def test_every_extract_command_in_a_config_makes_a_cache_the_config_accepts(tmp_path, capsys):
    """The commands in the configs' comments, run with the embedded encoder in place of theirs
    on two small videos: the caches they write open under the config's own settings."""
    import re
    import shlex
    from pathlib import Path

    import numpy as np

    from stillmotion.cache.extract import ExtractConfig, cache_meta
    from stillmotion.cache.store import TokenStore
    from stillmotion.cli import main
    from stillmotion.encoders import encoder_options, load
    from stillmotion.video.write import write_video

    videos = tmp_path / "videos"
    for i in range(2):
        write_video(videos / f"v{i}.mp4", np.random.default_rng(i).integers(0, 255, (6, 48, 64, 3), dtype=np.uint8),
                    fps=12)
    found = 0
    for path in sorted(Path(__file__).parent.parent.glob("configs/**/*.yaml")):
        text = re.sub(r"\\\n#\s*", " ", path.read_text())  # join continued comment lines
        for line in re.findall(r"^#\s*stillmotion extract (.*)$", text, re.M):
            words = shlex.split(line)[1:]  # the flags after the source
            flags, skip = [], False
            for word in words:
                if skip:
                    skip = False
                    continue
                if word in ("--labels", "--encoder", "--out"):  # the source's own files, the encoder, the output
                    skip = True
                    continue
                flags.append(word)
            out = tmp_path / f"cache-{path.stem}"
            assert main(["extract", str(videos), "--encoder", "efficientnet-lite0", "--out", str(out), "--quiet",
                         *flags]) == 0, capsys.readouterr().err
            d = load_config(path, ["data.train=x"]).data
            encoder = load("efficientnet-lite0", **encoder_options(d.size, d.tokens, d.layers))
            TokenStore(out, cache_meta(encoder, ExtractConfig(fps=d.fps, views=d.views, pool_space=d.pool_space,
                                                              pool_channels=d.pool_channels, dtype=d.dtype)))
            found += 1
    assert found >= 2
