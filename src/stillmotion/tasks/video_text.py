"""Video-text alignment (`video_text`): the video tower learns to land next to its caption in a
frozen text encoder's space.

The captions come from the manifest's `caption` field (a string, or a list of captions of the
same video); the text encoder (`task.text`) is frozen, so every caption is embedded once, when
the task starts. A clip is `data.frames` rows spread over the whole video (a random row in each
of equal segments for training, evenly from the first to the last for evaluation, the same
frames for a video and its reversal), because a caption tells
what happens over the whole video. Training draws one of the video's captions per clip.

Loss: the symmetric InfoNCE of CLIP: in a batch, each video against every caption and each
caption against every video, logits = cosine / temperature (the temperature is learned, in the
readout). Under torchrun the video embeddings of every rank are gathered, with gradients, so
each video competes with the whole global batch. A caption that two clips of a batch share is
not counted as a negative of either.

Metrics, over the evaluated videos and all their captions: text-to-video R@1/5/10 and median
rank (each caption ranks the videos), video-to-text R@1/5/10 (each video ranks the captions;
its best-ranked own caption counts), chance R@1, and, when the manifest pairs videos (`pair`:
another video's id, as the synthetic caption suite pairs a clip with its reversal),
`pair_accuracy`: how often a video's own caption scores above its pair's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stillmotion import dist
from stillmotion.tasks.base import Clip, Task, Video
from stillmotion.tasks.config import TaskConfig
from stillmotion.video import sampling


def captions_of(sample) -> list[str]:
    """A sample's captions: its `caption` field as a list (empty when it has none)."""
    caption = sample.caption
    if caption is None:
        return []
    return [caption] if isinstance(caption, str) else [str(c) for c in caption if str(c).strip()]


class VideoText(Task):
    name = "video_text"
    kind = "embedding"
    main_metric = "t2v_r1"

    def __init__(self, cfg: TaskConfig, frames: int, classes: list[str] | None = None, samples: list | None = None):
        super().__init__(cfg, frames)
        from stillmotion.text import load

        self.text = load(cfg.text)
        index: dict[str, int] = {}
        self.video_captions: dict[str, list[int]] = {}
        self.pairs: dict[str, str] = {}
        for sample in samples or []:
            ids = [index.setdefault(c, len(index)) for c in captions_of(sample)]
            if ids:
                self.video_captions[sample.id] = ids
            if sample.extra.get("pair"):
                self.pairs[sample.id] = str(sample.extra["pair"])
        self.captions = list(index)
        self.embeddings = self.text.encode(self.captions)  # (C, E), unit length, frozen

    @property
    def num_outputs(self) -> int:
        return self.text.dim

    def usable(self, video: Video) -> bool:
        """Videos with at least one caption."""
        return video.num_frames >= 1 and video.id in self.video_captions

    def train_clips(self, video: Video, count: int, rng: np.random.Generator) -> list[Clip]:
        captions = self.video_captions[video.id]
        return [Clip(video.id, tuple(sampling.segments(video.num_frames, self.frames, rng).tolist()),
                     int(captions[rng.integers(len(captions))])) for _ in range(count)]

    def eval_clips(self, video: Video) -> list[Clip]:
        rows = tuple(sampling.spread(video.num_frames, self.frames).tolist())
        return [Clip(video.id, rows, self.video_captions[video.id][0])]

    def model_extras(self) -> dict:
        """The masked-text decoder's sizes when masked-text prediction is on."""
        return {"text": (self.text.hidden, self.text.vocab_size)} if self.cfg.mask_text > 0 else {}

    def train_inputs(self, batch: dict) -> dict:
        """With `task.keep` < 1 on the frozen tower: the share of cached token positions kept.
        With `task.mask_text`: each clip's caption with a share of its words hidden, as the
        frozen encoder's token states (B, L, H), and where the hidden words are; the words to
        predict go into batch["words"] for the loss."""
        dropping = {"keep": self.cfg.keep} if self.cfg.keep < 1 and self.cfg.tower == "frozen" else {}
        if self.cfg.mask_text <= 0:
            return dropping
        device = batch["tokens"].device
        if self.text.device != device:  # the frozen text tower runs where the model trains
            self.text.to(device)
        ids = self.text.tokenize([self.captions[i] for i in batch["target"].tolist()])
        real = ids["attention_mask"].bool() & ~torch.isin(ids["input_ids"], torch.tensor(sorted(self.text.special_ids),
                                                                                     device=self.text.device))
        hide = (torch.rand(real.shape, device=real.device) < self.cfg.mask_text) & real
        first = real.float().argmax(1)  # at least one hidden word per caption
        hide[torch.arange(len(hide)), first] |= real[torch.arange(len(hide)), first]
        batch["words"] = ids["input_ids"][hide]
        masked = {**ids, "input_ids": ids["input_ids"].masked_fill(hide, self.text.mask_token_id)}
        return {**dropping, "text": self.text.token_states(masked).to(device).clone(), "words_at": hide.to(device)}

    def loss(self, outputs, batch: dict) -> torch.Tensor:
        """Symmetric InfoNCE over the global batch, plus `task.text_weight` x the cross-entropy of
        the hidden words when masked-text prediction is on. outputs: (B, E) unit video
        embeddings times the learned 1 / temperature (or {"video": that, "words": (K, V)});
        batch["target"] (B,): each clip's caption."""
        if isinstance(outputs, dict):
            words = F.cross_entropy(outputs["words"], batch["words"].to(outputs["words"].device))
            return self.contrastive(outputs["video"], batch) + self.cfg.text_weight * words
        return self.contrastive(outputs, batch)

    def contrastive(self, outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        target = batch["target"].to(outputs.device)
        videos, target = _gathered(outputs), _gathered(target)
        text = self.embeddings.to(outputs.device)[target]
        logits = videos @ text.T  # (B, B): already cosine / temperature
        same = target[:, None] == target[None, :]
        logits = logits.masked_fill(same & ~torch.eye(len(target), dtype=torch.bool, device=logits.device),
                                    float("-inf"))
        labels = torch.arange(len(target), device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    def score(self, outputs: torch.Tensor, batch: dict) -> list:
        """Per clip: its unit video embedding (E,)."""
        return list(F.normalize(outputs.float(), dim=-1).cpu())

    def metrics(self, scores: list, clips: list[Clip]) -> dict:
        if not scores:
            return {"t2v_r1": 0.0, "videos": 0}
        videos = [c.video for c in clips]
        v = torch.stack(scores)  # (V, E)
        caption_ids = sorted({i for vid in videos for i in self.video_captions[vid]})
        column = {c: k for k, c in enumerate(caption_ids)}
        sim = v @ self.embeddings[caption_ids].T  # (V, C)
        owner = torch.zeros(sim.shape, dtype=torch.bool)  # (V, C): caption c belongs to video v
        for k, vid in enumerate(videos):
            owner[k, [column[i] for i in self.video_captions[vid]]] = True
        # text -> video: the rank of each caption's own video (the best when several share it)
        t2v = _ranks(sim.T, owner.T)
        v2t = _ranks(sim, owner)
        out = {f"t2v_r{k}": float((t2v <= k).float().mean()) for k in (1, 5, 10)}
        out["t2v_median_rank"] = float(t2v.float().median())
        out |= {f"v2t_r{k}": float((v2t <= k).float().mean()) for k in (1, 5, 10)}
        out["chance_r1"] = 1 / len(videos)
        where = {vid: k for k, vid in enumerate(videos)}
        pairs = [(where[a], where[b]) for a, b in self.pairs.items() if a in where and b in where]
        if pairs:
            own = torch.stack([sim[a, column[self.video_captions[videos[a]][0]]] for a, _ in pairs])
            other = torch.stack([sim[a, column[self.video_captions[videos[b]][0]]] for a, b in pairs])
            out["pair_accuracy"] = float(((own > other).float() + 0.5 * (own == other).float()).mean())
        out["videos"] = len(videos)
        out["captions"] = len(caption_ids)
        return out


def _ranks(sim: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """For each row of sim (Q, K), the 1-based rank of its best-scoring relevant column."""
    best = sim.masked_fill(~relevant, float("-inf")).max(1).values
    return (sim > best[:, None]).sum(1) + 1


def _gathered(x: torch.Tensor) -> torch.Tensor:
    """x from every rank, concatenated in rank order; gradients flow back to this rank's part."""
    here = dist.current()
    if here.world == 1:
        return x
    import torch.distributed.nn.functional as dist_nn

    return torch.cat(dist_nn.all_gather(x))
