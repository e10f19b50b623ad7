"""Using a video_text run: search, zero-shot classification and multiple choice, with video
embeddings kept beside the run so a second query reads no video."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stillmotion.cli import main
from stillmotion.config import load_config
from stillmotion.data.captions import CaptionSuiteConfig, generate_caption_suite
from stillmotion.data.manifest import Sample, read_manifest, write_manifest
from stillmotion.train.trainer import train
from stillmotion.video import sampling
from stillmotion.videotext import TEMPLATES, choose, class_embeddings, open_video_text, search, zero_shot

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("videotext")
    manifest = generate_caption_suite(root / "suite", CaptionSuiteConfig(train=6, val=3, frames=8, size=64),
                                      progress=False)
    cfg = load_config(REPO / "configs/cpu/video_text.yaml", [
        f"data.train={manifest}", "data.size=64", "temporal.kw.hidden=16", "train.steps=4", "train.batch_size=4",
        "train.eval_every=100", "train.checkpoint_every=100"])
    train(cfg, root / "run", progress=False)
    return root / "run", manifest


def _own_embeddings(vt, samples):
    """Each video's embedding computed here from the run's cache, the model and the eval rows."""
    store, out = vt.loaded, []
    from stillmotion.cache.store import TokenStore

    cache = TokenStore(vt.run_dir / "cache")
    for s in samples:
        rows = sampling.spread(len(cache.frame_indices(s.id)), 8).tolist()
        tokens = torch.from_numpy(cache.read(s.id, frames=rows)).float()[None]
        with torch.no_grad():
            out.append(F.normalize(store.model(tokens), dim=-1)[0])
    return torch.stack(out)


def test_search_ranks_by_cosine_and_then_needs_no_video(run, tmp_path):
    folder, manifest = run
    vt = open_video_text(folder, device="cpu")
    samples = [s for s in read_manifest(manifest) if s.split == "val"]
    query = samples[0].caption
    ranked = search(vt, query, samples, progress=False)
    want = _own_embeddings(vt, samples) @ vt.texts([query])[0]
    order = sorted(range(len(samples)), key=lambda k: -float(want[k]))
    assert [s.id for _, s in ranked] == [samples[k].id for k in order]
    assert [score for score, _ in ranked] == pytest.approx(sorted(want.tolist(), reverse=True), abs=1e-5)
    assert (folder / "embeddings" / "step_00000004.safetensors").is_file()
    # the videos and the token cache gone: the kept embeddings answer the same
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    shutil.rmtree(moved / "cache")
    again = search(open_video_text(moved, device="cpu"), query, samples, top=3, progress=False)
    assert [(round(a, 5), s.id) for a, s in again] == [(round(a, 5), s.id) for a, s in ranked[:3]]
    assert not (moved / "cache").exists()


def test_zero_shot_gives_each_video_its_most_similar_class(run, tmp_path, capsys):
    folder, manifest = run
    vt = open_video_text(folder, device="cpu")
    names = ["red things moving", "blue things moving", "a quiet field"]
    samples = [Sample(id=s.id, path=s.path, label=names[k % 2]) for k, s in enumerate(read_manifest(manifest)[:6])]
    result = zero_shot(vt, names, samples, progress=False)
    sim = _own_embeddings(vt, samples) @ class_embeddings(vt, names).T
    assert [top[0][0] for _, top in result["predictions"]] == [names[i] for i in sim.argmax(1).tolist()]
    assert result["top1"] == pytest.approx(
        float((sim.argmax(1) == torch.tensor([k % 2 for k in range(6)])).float().mean()))
    assert result["top5"] == 1.0 and result["scored"] == 6 and result["chance_top1"] == pytest.approx(1 / 3)
    prompts = vt.texts([t.format(names[0]) for t in TEMPLATES])
    assert torch.allclose(class_embeddings(vt, names)[0], F.normalize(prompts.mean(0), dim=0), atol=1e-6)
    (tmp_path / "classes.txt").write_text("\n".join(names))
    videos = write_manifest(tmp_path / "videos.jsonl", samples)
    assert main(["zeroshot", str(folder), "--classes", str(tmp_path / "classes.txt"), str(videos), "--quiet",
                 "--out", str(tmp_path / "z.jsonl")]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert printed["top1"] == pytest.approx(result["top1"]) and printed["videos"] == 6
    assert len((tmp_path / "z.jsonl").read_text().splitlines()) == 6


def test_multiple_choice_picks_the_most_similar_caption(run, tmp_path, capsys):
    folder, manifest = run
    vt = open_video_text(folder, device="cpu")
    pool = read_manifest(manifest)
    samples = [Sample(id=s.id, path=s.path, extra={"options": [s.caption, pool[k - 1].caption], "answer": 0})
               for k, s in enumerate(pool[:6])]
    result = choose(vt, samples, progress=False)
    own = _own_embeddings(vt, samples)
    want = [int((vt.texts(s.extra["options"]) @ v).argmax()) for s, v in zip(samples, own)]
    assert [c for _, c in result["choices"]] == want
    assert result["accuracy"] == pytest.approx(want.count(0) / 6) and result["chance"] == 0.5
    with pytest.raises(ValueError, match="needs \"options\""):
        choose(vt, [Sample(id="x", path=samples[0].path)], progress=False)
    questions = write_manifest(tmp_path / "q.jsonl", samples)
    assert main(["choose", str(folder), str(questions), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["accuracy"] == pytest.approx(result["accuracy"])


def test_search_runs_from_the_command_line_and_refuses_other_runs(run, tmp_path, capsys):
    folder, manifest = run
    assert main(["search", str(folder), "the red disc goes left", str(manifest), "--top", "2", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and float(lines[0].split()[0]) >= float(lines[1].split()[0])
    from test_streaming import make_run

    other = make_run(tmp_path, "classes")
    assert main(["search", str(other), "anything", str(manifest), "--quiet"]) == 2
    assert "need a video_text run" in capsys.readouterr().err
