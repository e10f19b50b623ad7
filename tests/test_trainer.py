import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torchrun import torchrun

from stillmotion import runtime
from stillmotion.config import ConfigError, load_config
from stillmotion.model import checkpoint
from stillmotion.train.trainer import Trainer, load_core, train, warmup_cosine

REPO = Path(__file__).resolve().parents[1]
#: a small, quick setting: a narrow GRU, short clips, few steps
QUICK = ["temporal.kw.hidden=32", "data.frames=6", "data.clips_per_video=4", "train.batch_size=8",
         "train.steps=6", "train.eval_every=3", "train.checkpoint_every=3", "train.log_every=1", "task.eval_clips=2",
         "task.rates=[1,2,4]"]


@pytest.fixture(scope="module")
def cache(real_clips, tmp_path_factory):
    """The real clips' tokens, extracted once for every test here."""
    path = tmp_path_factory.mktemp("train") / "cache"
    Trainer(load_config(REPO / "configs/cpu/prp.yaml", [f"data.train={real_clips}", f"data.cache={path}", *QUICK]),
            path.parent / "setup", progress=False)
    return path


def _cfg(real_clips, cache, *overrides, config="prp"):
    return load_config(REPO / f"configs/cpu/{config}.yaml",
                       [f"data.train={real_clips}", f"data.cache={cache}", *QUICK, *overrides])


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "stillmotion.cli", *map(str, args)], capture_output=True, text=True,
                          **kw)


def test_schedule_warms_up_then_falls_to_the_floor():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, floor=0.01) == pytest.approx(0.01)


def test_clip_order_depends_on_seed_and_epoch_only(real_clips, cache, tmp_path):
    a = Trainer(_cfg(real_clips, cache), tmp_path / "a", progress=False)
    b = Trainer(_cfg(real_clips, cache), tmp_path / "b", progress=False)
    assert a.epoch_clips(3)[0] == b.epoch_clips(3)[0] and (a.epoch_clips(3)[1] == b.epoch_clips(3)[1]).all()
    assert a.epoch_clips(3)[0] != a.epoch_clips(4)[0]
    assert len(a.val_clips) == len(a.val_videos) * 3 * 2  # 3 rates, 2 placements each


def test_run_writes_metrics_logs_checkpoints_and_eval_reproduces_them(real_clips, cache, tmp_path):
    out = tmp_path / "run"
    result = train(_cfg(real_clips, cache), out, progress=False)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["val"] == result["val"] and saved["steps"] == 6 and set(saved["val"]) >= {"top1", "chance"}
    assert saved["val"]["chance"] == pytest.approx(1 / 3)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if r["kind"] == "val"] == [3, 6]
    assert (out / "curves.png").stat().st_size > 0 and any((out / "tensorboard").iterdir())
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best", "latest", "step_00000003",
                                                                       "step_00000006"]
    weights = load_file(str(out / "checkpoints" / "step_00000006" / "model.safetensors"))
    assert any(k.startswith("core.") for k in weights) and any(k.startswith("head.") for k in weights)

    run = _cli("eval", out, "--quiet")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["val"] == pytest.approx(saved["val"])


#: checkpoints mid-epoch (2 steps per epoch), log lines between them, validation (and `best`) too
RESUMED = ["train.steps=12", "train.checkpoint_every=3", "train.eval_every=2", "train.log_every=2"]
#: a core whose training draws random numbers (dropout): a resumed step must draw what it drew
DROPOUT = ["temporal.name=mamba", "temporal.kw.layers=1", "temporal.kw.d_state=4", "train.eval_every=6"]


def _stress_tool():
    spec = importlib.util.spec_from_file_location("resume_stress", REPO / "tools" / "resume_stress.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resumed_args(real_clips, cache, out, core):
    quick = [o for o in QUICK if not (core and o.startswith("temporal.kw."))]  # the GRU's width
    return ["train", str(REPO / "configs/cpu/prp.yaml"), f"data.train={real_clips}", f"data.cache={cache}", *quick,
            *RESUMED, *core, "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def whole_runs(real_clips, cache, tmp_path_factory):
    """The uninterrupted runs the killed ones are compared with, one per core, made when first asked for."""
    made = {}

    def whole(core: tuple) -> Path:
        if core not in made:
            out = tmp_path_factory.mktemp("whole") / "run"
            done = _cli(*_resumed_args(real_clips, cache, out, core))
            assert done.returncode == 0, done.stderr
            made[core] = out
        return made[core]

    return whole


@pytest.mark.parametrize("core, point, count", [((), "checkpoint", 2), ((), "checkpoint", 4), ((), "log-line", 4),
                                                ((), "renamed", 5), ((), "renamed", 8),
                                                (tuple(DROPOUT), "checkpoint", 1)],
                         ids=["checkpoint", "after-the-last-checkpoint", "half-a-log-line", "rename-5", "rename-8",
                              "dropout-mid-epoch"])
def test_a_run_killed_anywhere_resumes_to_the_same_run(real_clips, cache, whole_runs, tmp_path, core, point, count):
    """Killed at an exact point (a checkpoint just written, mid-epoch or the last one; half a log
    line; between the renames that publish a checkpoint or replace `best`), then rerun: the same
    weights, training state, best checkpoint, log, TensorBoard scalars and metrics as the run never
    killed."""
    out = tmp_path / "killed"
    args = _resumed_args(real_clips, cache, out, core)
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "kill_at.py"), point, str(count), *args],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # the kill point came before the end
    assert not (out / "metrics.json").exists()
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    assert _stress_tool().compare_runs(whole_runs(core), out) == []


def test_the_run_comparison_sees_a_difference(whole_runs, tmp_path):
    tool = _stress_tool()
    copy = tmp_path / "copy"
    shutil.copytree(whole_runs(()), copy)
    assert tool.compare_runs(whole_runs(()), copy) == []
    lines = (copy / "log.jsonl").read_text().splitlines()
    (copy / "log.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    weights = copy / "checkpoints" / "step_00000006" / "model.safetensors"
    tensors = load_file(str(weights))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1e-6
    save_file(tensors, str(weights))
    (copy / ".metrics.json.part").write_text("{")
    assert tool.compare_runs(whole_runs(()), copy) == ["files ['.metrics.json.part']", "step_00000006 weights",
                                                       "log.jsonl"]


def test_changed_settings_are_refused_on_resume(real_clips, cache, tmp_path):
    train(_cfg(real_clips, cache), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="optim.lr"):
        train(_cfg(real_clips, cache, "optim.lr=0.5"), tmp_path / "run", progress=False)


def test_the_training_math_runs_on_train_threads_and_torch_gets_its_setting_back(real_clips, cache, tmp_path,
                                                                                  monkeypatch):
    """One thread by default (multi-threaded products drift in the last bits between processes on
    rare calls, so runs and resumes would differ), one per core with 0; refused below 0."""
    seen, step = [], Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self, batch: (seen.append(torch.get_num_threads()),
                                                                    step(self, batch))[1])
    torch.set_num_threads(2)
    train(_cfg(real_clips, cache, "train.steps=2"), tmp_path / "one", progress=False)
    assert seen == [1, 1] and torch.get_num_threads() == 2
    seen.clear()
    torch.set_num_threads(1)
    try:
        train(_cfg(real_clips, cache, "train.steps=2", "train.threads=0"), tmp_path / "all", progress=False)
    finally:
        torch.set_num_threads(2)
    assert seen == [runtime.cores()] * 2
    with pytest.raises(ConfigError, match="train.threads: must be 0"):
        _cfg(real_clips, cache, "train.threads=-1")


def test_two_processes_match_one(real_clips, cache, tmp_path):
    overrides = [f"data.train={real_clips}", f"data.cache={cache}", *QUICK]
    one = _cli("train", REPO / "configs/cpu/prp.yaml", *overrides, "--out", tmp_path / "one", "--quiet")
    assert one.returncode == 0, one.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = torchrun(["--nproc_per_node", "2", "-m", "stillmotion.cli", "train", REPO / "configs/cpu/prp.yaml",
                    *overrides, "--out", tmp_path / "two", "--quiet"], env=env)
    assert two.returncode == 0, two.stderr
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert a["val"] == pytest.approx(b["val"], abs=1e-6)
    wa, wb = (load_file(str(checkpoint.latest(tmp_path / d) / "model.safetensors")) for d in ("one", "two"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_pretrained_core_starts_the_finetune_and_delta_is_reported(real_clips, cache, tmp_path):
    pre = tmp_path / "pre"
    train(_cfg(real_clips, cache), pre, progress=False)
    fine = _cfg(real_clips, cache, f"init.core={pre}", config="arrow_of_time")
    result = train(fine, tmp_path / "fine", progress=False)
    assert set(result["delta"]) == {"top1", "top5"}
    assert result["delta"]["top1"] == pytest.approx(result["val"]["top1"] - result["scratch"]["top1"])
    assert json.loads((tmp_path / "fine" / "metrics.json").read_text())["delta"] == result["delta"]

    model = Trainer(fine, tmp_path / "probe", progress=False, init_core=str(pre)).model
    weights = load_file(str(checkpoint.latest(pre) / "model.safetensors"))
    assert all(torch.equal(v, weights[f"core.{k}"]) for k, v in model.core.state_dict().items())
    other = Trainer(_cfg(real_clips, cache, "temporal.kw.hidden=16"), tmp_path / "tmm", progress=False).model
    with pytest.raises(ValueError, match="init.core"):
        load_core(other, pre)
    probe = _cfg(real_clips, cache, f"init.core={pre}", "init.freeze=true", "head.name=linear", config="arrow_of_time")
    frozen = train(probe, tmp_path / "frozen", progress=False)
    trained = load_file(str(checkpoint.latest(tmp_path / "frozen") / "model.safetensors"))
    cores = [k for k in trained if k.startswith("core.")]
    assert cores and all(torch.equal(trained[k], weights[k]) for k in cores)  # the pretext's core, untouched
    start = Trainer(probe, tmp_path / "start", progress=False, init_core=str(pre)).model.state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in trained if k.startswith("head."))  # the probe learnt
    scratch = load_file(str(checkpoint.latest(tmp_path / "frozen" / "scratch") / "model.safetensors"))
    fresh = Trainer(_cfg(real_clips, cache, config="arrow_of_time"), tmp_path / "fresh", progress=False)
    assert all(torch.equal(scratch[k], fresh.model.state_dict()[k]) for k in cores)  # scratch's random core, frozen
    assert set(frozen["delta"]) == {"top1", "top5"}
    with pytest.raises(ValueError, match="init.freeze keeps the core that init.core loads"):
        _cfg(real_clips, cache, "init.freeze=true")
    raw = Trainer(_cfg(real_clips, cache, "temporal.input=tokens", "temporal.norm=false"), tmp_path / "raw",
                  progress=False).model  # the pretext config reads normalised differences
    with pytest.raises(ValueError, match="input and norm"):
        load_core(raw, pre)


def test_masked_tokens_and_online_tokens(real_clips, cache, tmp_path):
    result = train(_cfg(real_clips, cache, "task.name=masked_tokens"), tmp_path / "masked", progress=False)
    assert set(result["val"]) == {"mse", "cosine", "copy_last_mse"} and result["val"]["mse"] > 0

    online = Trainer(_cfg(real_clips, cache, "data.online=true"), tmp_path / "online", progress=False)
    cached = Trainer(_cfg(real_clips, cache), tmp_path / "cached", progress=False)
    clips = cached.val_clips[:3]
    from torch.utils.data import DataLoader

    from stillmotion.train.data import collate

    got = next(iter(DataLoader(online.dataset(clips, "k", train=False), batch_size=3, collate_fn=collate)))
    want = next(iter(DataLoader(cached.dataset(clips, "k", train=False), batch_size=3, collate_fn=collate)))
    tokens = online.source.tokens(got, online.device)
    assert tokens.shape == want["tokens"].shape
    assert torch.allclose(tokens, want["tokens"], atol=0.05 + 2e-3 * want["tokens"].abs().max())  # fp16 cache
    assert online.train_step(next(iter(online.loader(0)))) > 0


def test_the_shipped_pretext_recipes_fit_real_clips_and_the_mean_core_cannot(real_clips, cache, tmp_path):
    """The shipped CPU configs on the five real clips, at fewer steps. One clip is held out by
    default (data.val_fraction), so validation is a single video here: the figures of
    generalisation to unseen videos are bench/real.py's (README, docs/real-footage.md). What must
    hold on any machine: each recipe fits the clips it trains on well above chance, no video is in
    both splits, and the order-blind mean core sits at chance exactly on both."""
    def run(config, *overrides):
        cfg = load_config(REPO / f"configs/cpu/{config}.yaml", [f"data.train={real_clips}", f"data.cache={cache}",
                                                                *overrides])
        return train(cfg, tmp_path / f"{config}-{len(overrides)}", progress=False)

    prp = run("prp", "train.steps=200")  # 0.75 of 48 fixed clips when written
    assert prp["val_shares_training"] == 0 and prp["fit"]["chance"] == 0.25 and prp["fit"]["top1"] >= 0.55
    arrow = run("arrow_of_time", "train.steps=200")  # 0.74 of 96
    assert arrow["val_shares_training"] == 0 and arrow["fit"]["top1"] >= 0.65
    blind = run("arrow_of_time", "temporal.name=mean", "train.steps=60")
    assert blind["val"]["top1"] == blind["fit"]["top1"] == 0.5  # forward and reversed look the same to a mean


def test_a_manifest_with_val_and_test_splits_holds_its_test_split_out_for_the_end(tmp_path):
    from stillmotion.train.trainer import _split

    rows = [{"path": f"{split}{i}.mp4", "label": "a", "split": split}
            for split in ("train", "val", "test") for i in range(2)]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train_, val, test = _split(load_config(None, [f"data.train={manifest}", "task.name=classification"]),
                               "classification")
    assert [[s.split for s in part] for part in (train_, val, test)] == [["train"] * 2, ["val"] * 2, ["test"] * 2]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows if r["split"] != "val"))
    train_, val, test = _split(load_config(None, [f"data.train={manifest}"]), "classification")
    assert [s.split for s in val] == ["test"] * 2 and test == []  # no val split: test validates, none held out


def test_the_best_checkpoint_holds_the_weights_of_the_best_validation_score(real_clips, cache, tmp_path):
    out = tmp_path / "run"
    result = train(_cfg(real_clips, cache, "train.steps=12", "train.eval_every=2", "train.checkpoint_every=2",
                        "data.val_fraction=0.4"), out, progress=False)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    val = [(r["step"], r["top1"]) for r in records if r["kind"] == "val"]
    fit = [r["step"] for r in records if r["kind"] == "fit"]
    assert [s for s, _ in val] == fit == [2, 4, 6, 8, 10, 12]  # training videos scored beside validation
    step, value = max(val, key=lambda sv: (sv[1], -sv[0]))  # the first of the best
    assert result["best"] == {"step": step, "metric": "top1", "value": value}
    assert json.loads((out / "checkpoints/best/best.json").read_text()) == result["best"]
    best = load_file(str(out / "checkpoints/best/model.safetensors"))
    same = load_file(str(out / f"checkpoints/step_{step:08d}/model.safetensors"))
    assert all(torch.equal(best[k], same[k]) for k in same)
    assert set(result["fit"]) >= {"top1", "chance"} and result["val_shares_training"] == 0
    run = _cli("eval", out / "checkpoints/best", "--quiet")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["val"]["top1"] == pytest.approx(value)


def test_validation_on_training_videos_is_said_out_loud(real_clips, cache, tmp_path):
    overrides = [f"data.train={real_clips}", f"data.cache={cache}", *QUICK, "data.val_fraction=0"]
    run = _cli("train", REPO / "configs/cpu/prp.yaml", *overrides, "--out", tmp_path / "run", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "validation videos are training videos too" in run.stderr and "measures fit" in run.stdout
    saved = json.loads((tmp_path / "run/metrics.json").read_text())
    assert saved["val_shares_training"] == saved["val_videos"] and "fit" not in saved


def test_a_reversed_clip_is_the_forward_clip_s_tokens_in_reverse_order(real_clips, cache, tmp_path):
    trainer = Trainer(_cfg(real_clips, cache, config="arrow_of_time"), tmp_path / "run", progress=False)
    clips = trainer.val_clips
    assert [c.target for c in clips] == [0, 1] * (len(clips) // 2)
    data = trainer.dataset(clips, "eval", train=False)
    for i in range(0, len(clips), 2):
        forward, backward = data[i]["tokens"], data[i + 1]["tokens"]
        assert clips[i + 1].rows == clips[i].rows[::-1]
        assert torch.equal(backward, forward.flip(0)) and not torch.equal(backward, forward)


def test_what_a_kill_left_half_done_in_the_checkpoints_is_put_right(tmp_path):
    root = tmp_path / "checkpoints"
    for folder, name in ((".tmp_best", "model.safetensors"), (".old_step_00000003", "model.safetensors"),
                         ("best", "model.safetensors"), (".old_best", "model.safetensors")):
        (root / folder).mkdir(parents=True)
        (root / folder / name).write_text(folder)
    (root / "latest").write_text("step_00000003")
    # while step 3 is aside (a kill between the two renames), readers take it from there
    assert checkpoint.latest(tmp_path) == root / ".old_step_00000003"
    checkpoint.tidy(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["best", "latest", "step_00000003"]
    assert (root / "step_00000003" / "model.safetensors").read_text() == ".old_step_00000003"
    assert (root / "best" / "model.safetensors").read_text() == "best"  # the newer one stays
    assert checkpoint.latest(tmp_path) == root / "step_00000003"


def test_every_rank_meets_the_barrier_after_validation_whatever_best_json_holds(real_clips, cache, tmp_path,
                                                                              monkeypatch):
    """Under torchrun a rank that read best.json after the main rank rewrote it skipped the
    barrier and waited in the next collective for ever. Now only the main rank reads and writes
    best, and every rank meets the barrier after every validation."""
    from dataclasses import replace

    from stillmotion import dist
    from stillmotion.train.logs import RunLog

    trainer = Trainer(_cfg(real_clips, cache), tmp_path / "run", progress=False)
    met = []
    monkeypatch.setattr(dist, "barrier", lambda: met.append(1))
    log = RunLog(tmp_path / "run", enabled=False, resumed_at=0)
    trainer.validate(1, log)  # the first score is the best so far: written
    first = checkpoint.best(tmp_path / "run")
    assert first is not None and first["step"] == 1 and len(met) == 1
    trainer.validate(2, log)  # the same score: not better, nothing written, the barrier all the same
    assert checkpoint.best(tmp_path / "run")["step"] == 1 and len(met) == 2
    trainer.here = replace(trainer.here, rank=1)  # another rank: never touches best, meets the barrier
    (tmp_path / "run" / "checkpoints" / "best" / "best.json").unlink()
    trainer.validate(3, log)
    assert checkpoint.best(tmp_path / "run") is None and len(met) == 3
