"""Using a trained video-text run: videos and texts in one space, to search, classify zero-shot
and choose among candidate captions.

    vt = open_video_text("runs/video_text")            # or an image-text model as is: "clip-b16"
    ranked = search(vt, "the red disc goes left", load_samples("videos/"))      # [(score, sample)]
    result = zero_shot(vt, ["jumping", "running"], load_samples("videos/"))

A video's embedding is the run's evaluation clip (`data.frames` rows spread from its first to
its last cached frame) through the core and readout (a harvest run: its decoded, preprocessed
frames through the trained vision tower), made unit length. Embeddings are kept in
RUN/embeddings/<checkpoint>.safetensors by video path, so a second search over the same folder
reads no video and runs no encoder; the tokens come from the run's token cache (videos not in it
are extracted into it first). Texts go through the run's frozen text encoder (`task.text`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from stillmotion.data.manifest import Sample
from stillmotion.errors import UsageError
from stillmotion.model import LoadedModel, checkpoint, load_model
from stillmotion.text import FrozenTextEncoder, load as load_text
from stillmotion.train.source import ClipSource
from stillmotion.video import sampling
from stillmotion.video.decode import read_frames

#: prompt templates averaged for zero-shot class embeddings ({} is the class name)
TEMPLATES = ("{}", "a video of {}.", "a video showing {}.")


@dataclass
class VideoTextRun:
    loaded: LoadedModel
    text: FrozenTextEncoder

    @property
    def run_dir(self) -> Path:
        return self.loaded.checkpoint.parent.parent

    def texts(self, texts: list[str]) -> torch.Tensor:
        """Texts -> unit embeddings (B, E)."""
        return self.text.encode(list(texts))

    def videos(self, samples: list[Sample], progress: bool = True) -> tuple[list[Sample], torch.Tensor, list]:
        """(the readable samples, their unit embeddings (V, E), [(path, why)] of the others)."""
        store_path = self.run_dir / "embeddings" / f"{self.loaded.checkpoint.name}.safetensors"
        kept = load_file(str(store_path)) if store_path.is_file() else {}
        key = {s.id: str(Path(s.path).resolve()) for s in samples}
        todo = [s for s in samples if key[s.id] not in kept]
        failed = []
        if todo:
            cfg = self.loaded.cfg
            harvest = cfg.task.tower == "harvest"  # its tower reads pixels: decode them
            cfg = replace(cfg, data=replace(cfg.data, online=harvest))
            source = ClipSource(cfg, self.loaded.encoder, todo, Path(cfg.data.cache) if cfg.data.cache
                                else self.run_dir / "cache", progress=progress)
            failed = list(source.failed)
            model, device = self.loaded.model, self.loaded.device
            with torch.inference_mode():
                for s in todo:
                    if s.id not in source.sources:
                        continue
                    rows = sampling.spread(len(source.sources[s.id]), cfg.data.frames).tolist()
                    if harvest:
                        unique, inverse = np.unique(source.sources[s.id][rows], return_inverse=True)
                        frames = read_frames(s.path, unique.tolist())[inverse]
                        x = self.loaded.encoder.preprocess(frames)[None].to(device)
                    else:
                        x = torch.from_numpy(source.store.read(s.id, frames=rows)).float()[None].to(device)
                    kept[key[s.id]] = F.normalize(model(x).float(), dim=-1)[0].cpu()
            store_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = store_path.with_name(store_path.name + ".tmp")
            save_file({k: v.contiguous() for k, v in kept.items()}, str(tmp))
            tmp.replace(store_path)
        found = [s for s in samples if key[s.id] in kept]
        embeddings = torch.stack([kept[key[s.id]] for s in found]) if found else torch.zeros(0, self.text.dim)
        return found, embeddings, failed


def open_video_text(run: str | Path, step: int | str | None = None, device: str | None = None) -> VideoTextRun:
    """A trained video_text run (its latest checkpoint, or `step`) with its text encoder; or,
    given anything that is not a run, an image-text model as is (`image_text_model`)."""
    path = Path(run)
    if not ((path / "checkpoints").is_dir() or (path / checkpoint.CONFIG).is_file()):  # not a run: a model
        return image_text_model(str(run), device=device)
    loaded = load_model(run, device=device, step=step)
    if loaded.kind != "embedding":
        raise UsageError(f"{run}: a {loaded.cfg.task.name} run; search, zero-shot and choices need a video_text run "
                         "(stillmotion train configs/cpu/video_text.yaml ...)")
    return VideoTextRun(loaded, load_text(loaded.cfg.task.text))


def image_text_model(name: str, frames: int = 8, device: str | None = None) -> VideoTextRun:
    """An image-text checkpoint (`clip-b16`, `siglip-b`, a hub id or a folder) as a video-text
    model with no video training: its vision tower over `frames` frames spread over each video,
    every patch kept, the frames' embeddings averaged; its own text tower. The baseline that
    post-pretraining must beat. Video embeddings are kept in a temporary folder."""
    from stillmotion.config import load_config
    from stillmotion.encoders import load as load_encoder
    from stillmotion.model.harvest import HarvestTower, vision_tower

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = load_config(None, ["data.train=none", "data.online=true", f"data.encoder={name}", f"data.frames={frames}",
                             "task.name=video_text", f"task.text={name}", "task.tower=harvest"])
    model = HarvestTower(vision_tower(name), keep=1.0).to(device).eval()
    work = Path(tempfile.mkdtemp(prefix="stillmotion-image-text-"))
    loaded = LoadedModel(load_encoder(name, device=device), model, cfg, "embedding", [], work / "checkpoints" / "as-is")
    return VideoTextRun(loaded, load_text(name, device=device))


def search(vt: VideoTextRun, query: str, samples: list[Sample], top: int | None = None,
           progress: bool = True) -> list[tuple[float, Sample]]:
    """Videos ranked by their cosine similarity with `query`, best first."""
    found, videos, _ = vt.videos(samples, progress)
    scores = (videos @ vt.texts([query])[0]).tolist()
    ranked = sorted(zip(scores, found), key=lambda pair: -pair[0])
    return ranked[:top] if top else ranked


def class_embeddings(vt: VideoTextRun, classes: list[str], templates=TEMPLATES) -> torch.Tensor:
    """One unit embedding per class: the mean of its prompts' embeddings, made unit length."""
    prompts = [t.format(c) for c in classes for t in templates]
    return F.normalize(vt.texts(prompts).view(len(classes), len(templates), -1).mean(1), dim=-1)


def zero_shot(vt: VideoTextRun, classes: list[str], samples: list[Sample], templates=TEMPLATES,
              progress: bool = True) -> dict:
    """Each video's most similar class names -> {"predictions": [(sample, [(class, score)] top
    5)], "top1", "top5", "scored" (labelled videos whose label is a class), "failed"}."""
    found, videos, failed = vt.videos(samples, progress)
    sim = videos @ class_embeddings(vt, classes, templates).T
    k = min(5, len(classes))
    best = sim.topk(k, dim=1)
    predictions = [(s, [(classes[j], float(v)) for v, j in zip(vals, idx.tolist())])
                   for s, vals, idx in zip(found, best.values, best.indices)]
    labelled = [(p, classes.index(s.label)) for (s, p) in predictions if s.label in classes]
    result = {"predictions": predictions, "scored": len(labelled), "failed": failed}
    if labelled:
        result["top1"] = sum(p[0][0] == classes[y] for p, y in labelled) / len(labelled)
        result["top5"] = sum(classes[y] in [c for c, _ in p] for p, y in labelled) / len(labelled)
        result["chance_top1"] = 1 / len(classes)
    return result


def choose(vt: VideoTextRun, samples: list[Sample], progress: bool = True) -> dict:
    """Multiple choice: each sample's `options` (candidate captions, in its manifest line) ranked
    by similarity with the video -> {"choices": [(sample, chosen index)], "accuracy" over the
    samples with an `answer`, "scored", "failed"}."""
    for s in samples:
        options = s.extra.get("options")
        if not isinstance(options, list) or len(options) < 2:
            raise UsageError(f"{s.path}: a multiple-choice line needs \"options\": [two or more candidate captions]")
    found, videos, failed = vt.videos(samples, progress)
    choices = []
    for s, v in zip(found, videos):
        choices.append((s, int((vt.texts(s.extra["options"]) @ v).argmax())))
    answered = [(c, int(s.extra["answer"])) for s, c in choices if s.extra.get("answer") is not None]
    result = {"choices": choices, "scored": len(answered), "failed": failed}
    if answered:
        result["accuracy"] = sum(c == a for c, a in answered) / len(answered)
        result["chance"] = sum(1 / len(s.extra["options"]) for s, _ in choices
                               if s.extra.get("answer") is not None) / len(answered)
    return result
