"""A frozen text encoder: a transformers text model and its tokenizer behind one interface.

    text = load("minilm")                       # the embedded default (all-MiniLM-L6-v2)
    emb = text.encode(["a red disc goes left"])  # (B, D) float32, unit length, on the CPU
    ids = text.tokenize(["..."])                # input_ids, attention_mask (B, L)
    states = text.token_states(ids)              # (B, L, H): every token's last hidden state

Families, by the checkpoint's model type:
- `clip` (the text tower of a CLIP checkpoint): the projected end-of-text embedding
  (`CLIPTextModelWithProjection.text_embeds`), as CLIP compares it with images;
- `siglip` / `siglip2`: the pooled last token through the text head (`pooler_output`), the
  tokenizer padding to the model's 64 positions as SigLIP was trained;
- anything else transformers loads with `AutoModel` (BERT-like sentence encoders such as
  all-MiniLM-L6-v2): the mean of the token states over the attention mask, as
  sentence-transformers pools it.
Embeddings are L2-normalised. The model never trains: eval mode, no gradients.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from stillmotion.errors import UsageError

#: how each family turns token states into one embedding, and the model class that loads it
FAMILIES = {
    "clip": ("projection", "CLIPTextModelWithProjection"),
    "clip_text_model": ("projection", "CLIPTextModelWithProjection"),
    "siglip": ("pooler", "SiglipTextModel"),
    "siglip_text_model": ("pooler", "SiglipTextModel"),
    "siglip2": ("pooler", "Siglip2TextModel"),
    "siglip2_text_model": ("pooler", "Siglip2TextModel"),
}


class FrozenTextEncoder(nn.Module):
    def __init__(self, model: nn.Module, tokenizer, name: str, pooling: str, max_length: int,
                 pad_to_max: bool = False):
        super().__init__()
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.pooling, self.max_length, self.pad_to_max = pooling, max_length, pad_to_max
        config = model.config
        self.hidden = config.hidden_size
        self.dim = getattr(config, "projection_dim", None) if pooling == "projection" else config.hidden_size
        self.vocab_size = len(tokenizer)
        # the token that hides a word for masked-text prediction: the tokenizer's mask token, or
        # (CLIP and SigLIP tokenizers have none) its unknown token
        self.mask_token_id = next(i for i in (tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id)
                                  if i is not None)
        self.special_ids = set(tokenizer.all_special_ids)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenTextEncoder:  # mode is ignored: frozen by design
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def fingerprint(self) -> str:
        """Changes with the checkpoint, the pooling and the tokenizer: cached text embeddings
        made with another encoder are not reused."""
        first = next(iter(self.model.state_dict().values()))
        digest = hashlib.sha256(json.dumps({
            "name": self.name, "config": self.model.config.to_dict(), "pooling": self.pooling,
            "max_length": self.max_length, "vocab": self.vocab_size, "weights": float(first.double().sum()),
        }, sort_keys=True, default=str).encode()).hexdigest()
        return digest[:16]

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Texts -> {"input_ids", "attention_mask"} (B, L) on the encoder's device."""
        batch = self.tokenizer(list(texts), padding="max_length" if self.pad_to_max else True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        mask = batch.get("attention_mask", torch.ones_like(batch["input_ids"]))
        return {"input_ids": batch["input_ids"].to(self.device), "attention_mask": mask.to(self.device)}

    @torch.inference_mode()
    def token_states(self, ids: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tokenized texts -> every token's last hidden state (B, L, H)."""
        return self._run(ids).last_hidden_state.float()

    def _run(self, ids: dict[str, torch.Tensor]):
        kw = {"attention_mask": ids["attention_mask"]} if self.pooling != "pooler" or not self.pad_to_max else {}
        return self.model(input_ids=ids["input_ids"], **kw)

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Texts -> unit-length embeddings (B, D) float32 on the CPU."""
        out = []
        for start in range(0, len(texts), batch_size):
            ids = self.tokenize(texts[start:start + batch_size])
            result = self._run(ids)
            if self.pooling == "projection":
                emb = result.text_embeds
            elif self.pooling == "pooler":
                emb = result.pooler_output
            else:
                mask = ids["attention_mask"][..., None].to(result.last_hidden_state.dtype)
                emb = (result.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def from_pretrained(name: str, path: str | Path, **kw) -> FrozenTextEncoder:
    """A text encoder from a hub id or a local folder holding the model and its tokenizer."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(str(path), **kw)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), **kw)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load text encoder {name!r} ({path}): {exc}. Give a known name, a Hugging Face hub id "
                         "(weights must be downloadable or cached), or a local folder with the model and its "
                         "tokenizer") from exc
    pooling, model_class = FAMILIES.get(config.model_type, ("mean", "AutoModel"))
    if config.model_type == "clip":  # a whole CLIP checkpoint: its text tower with the model's projection width
        config.text_config.projection_dim = config.projection_dim
        kw = {**kw, "config": config.text_config}
    model = getattr(transformers, model_class).from_pretrained(str(path), **kw)
    text_config = getattr(config, "text_config", None) or config
    max_length = int(getattr(text_config, "max_position_embeddings", 512) or 512)
    if pooling == "mean":
        max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
        sbert = Path(str(path)) / "sentence_bert_config.json"  # a sentence-transformers folder's own limit
        if sbert.is_file():
            max_length = int(json.loads(sbert.read_text()).get("max_seq_length", max_length))
    return FrozenTextEncoder(model, tokenizer, name, pooling, max_length, pad_to_max=pooling == "pooler")
