"""Harvest's video tower (paper 003): the image-text model's own vision tower, trained over a
clip's frames with most patches dropped.

Each frame goes through the patch and position embedding; in training only a random `keep`
share of its patches goes on into the transformer layers (the class token always does), so the
layers' compute falls with the keep ratio; evaluation keeps every patch. Each frame's embedding
is the tower's own (CLIP: the class token through the final LayerNorm and the visual
projection; SigLIP: the attention-pooling head), unit length; the clip's is their mean over its
real frames, unit length again, times a learned 1 / temperature (as `TextAlignment` gives), so
it lands in the frozen text tower's space of the same checkpoint.

x (B, T, 3, S, S) normalized pixels, mask (B, T) -> (B, E).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stillmotion.errors import UsageError
from stillmotion.heads.masked_text import MaskedTextDecoder
from stillmotion.heads.text_alignment import INITIAL_TEMPERATURE, MAX_SCALE


class HarvestTower(nn.Module):
    kind = "embedding"

    def __init__(self, vision: nn.Module, keep: float = 0.1, temperature: float = INITIAL_TEMPERATURE,
                 text: tuple[int, int] | None = None):
        super().__init__()
        if not 0 < keep <= 1:
            raise UsageError(f"task.keep: the share of patches kept must be in (0, 1], got {keep}")
        self.vision, self.keep = vision, keep
        self.family = "clip" if hasattr(vision, "visual_projection") else "siglip"
        if self.family == "siglip" and not hasattr(vision, "head"):
            raise UsageError("the harvest tower needs CLIP's vision tower with its projection or SigLIP's with its "
                             "pooling head (SigLIP2 NaFlex is not supported)")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))
        width = vision.config.projection_dim if self.family == "clip" else vision.config.hidden_size
        # masked-text prediction reads the frames' embeddings as the video's tokens
        self.text_decoder = MaskedTextDecoder(text[0], width, text[1]) if text else None
        self.kept_tokens = 0  # tokens per frame that entered the layers in the last forward

    def _drop(self, x: torch.Tensor, lead: int) -> torch.Tensor:
        """(M, lead + P, W) embedded frames -> the lead tokens and a random `keep` share of the
        P patches (each frame its own, in their original order)."""
        if not self.training or self.keep >= 1:
            return x
        patches = x.shape[1] - lead
        k = max(1, round(self.keep * patches))
        chosen = torch.rand(x.shape[0], patches, device=x.device).argsort(1)[:, :k].sort(1).values + lead
        index = torch.cat([torch.arange(lead, device=x.device).expand(x.shape[0], lead), chosen], 1)
        return x.gather(1, index[..., None].expand(-1, -1, x.shape[2]))

    def frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalized pixels (M, 3, S, S) -> each frame's embedding (M, E), not yet unit length."""
        if self.family == "clip":
            v = self.vision.vision_model
            x = self._drop(v.embeddings(pixels, interpolate_pos_encoding=True), lead=1)
            self.kept_tokens = x.shape[1]
            x = v.encoder(inputs_embeds=v.pre_layrnorm(x)).last_hidden_state
            return self.vision.visual_projection(v.post_layernorm(x[:, 0]))
        v = self.vision
        x = self._drop(v.embeddings(pixels, interpolate_pos_encoding=True), lead=0)
        self.kept_tokens = x.shape[1]
        return v.head(v.post_layernorm(v.encoder(inputs_embeds=x).last_hidden_state))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, text: torch.Tensor | None = None,
                words_at: torch.Tensor | None = None):
        """With `text` and `words_at` (masked-text prediction), {"video": (B, E), "words": (K, V)}."""
        b, t = x.shape[:2]
        frames = self.frames(x.flatten(0, 1)).view(b, t, -1)
        per_frame = F.normalize(frames, dim=-1)
        weight = torch.ones(b, t, 1, device=x.device) if mask is None else mask[..., None].to(per_frame.dtype)
        clip = (per_frame * weight).sum(1) / weight.sum(1).clamp(min=1)
        video = F.normalize(clip, dim=-1) * self.log_scale.exp().clamp(max=MAX_SCALE)
        if text is None:
            return video
        return {"video": video, "words": self.text_decoder(text, frames, words_at, mask)}


def vision_tower(name: str, size: int | None = None) -> nn.Module:
    """The trainable vision tower, with its projection, of an image-text checkpoint (a short
    encoder name, hub id or folder)."""
    import transformers

    from stillmotion.encoders.hf import SHORT_NAMES

    hub_id = SHORT_NAMES.get(name, name)
    try:
        config = transformers.AutoConfig.from_pretrained(hub_id)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load image-text model {name!r} ({hub_id}): {exc}. Give a known name (clip-b16, "
                         "siglip-b, ...), a Hugging Face hub id or a local model folder") from exc
    model_type = getattr(getattr(config, "vision_config", None), "model_type", None) or config.model_type
    if model_type.startswith("clip"):
        vision = getattr(config, "vision_config", None) or config
        if hasattr(config, "vision_config"):  # a whole CLIP checkpoint: its projection width is the model's
            vision.projection_dim = config.projection_dim
        return transformers.CLIPVisionModelWithProjection.from_pretrained(hub_id, config=vision)
    if model_type in ("siglip", "siglip_vision_model"):
        return transformers.SiglipVisionModel.from_pretrained(hub_id)
    raise UsageError(f"{name}: a {model_type} model; the harvest tower trains CLIP or SigLIP vision towers "
                     "(data.encoder=clip-b16, siglip-b, a hub id or a folder of one)")
