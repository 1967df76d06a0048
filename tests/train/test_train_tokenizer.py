"""The caption BPE vocabulary, saved as CLIP vocab.json + merges.txt, as CLIPTokenizer reads it."""

from __future__ import annotations

import json

from transformers import CLIPTokenizer

from latentscape.train import tokenizer as bpe

CAPTIONS = [
    "grinning face, google style",
    "grinning face, twitter style",
    "father christmas: light skin tone, google style",
    "father christmas: medium-dark skin tone, twitter style",
    "keycap: *, google style",
]


def test_clip_tokenizer_loads_the_trained_vocabulary(tmp_path):
    tok = bpe.train(CAPTIONS, tmp_path / "tokenizer", max_length=16)
    assert isinstance(tok, CLIPTokenizer)
    # Loads again from the folder alone, the way pipelines load it.
    tok = CLIPTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert tok.model_max_length == 16
    ids = tok("Father  Christmas: LIGHT skin tone, google style").input_ids
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    # lower-cased, whitespace-normalised, caption words are whole tokens with CLIP's </w> suffix
    assert tokens[1:-1] == ["father</w>", "christmas</w>", ":</w>", "light</w>", "skin</w>", "tone</w>", ",</w>",
                            "google</w>", "style</w>"]
    assert tok.pad_token == "<|endoftext|>"
    padded = tok([""], padding="max_length", max_length=16, truncation=True).input_ids[0]
    assert padded == [tok.bos_token_id] + [tok.eos_token_id] * 15


def test_unseen_text_tokenizes_through_bytes_without_unknowns(tmp_path):
    tok = bpe.train(CAPTIONS, tmp_path / "tokenizer", max_length=16)
    ids = tok("zebra café").input_ids
    assert tok.unk_token_id not in ids[1:-1]
    assert tok.decode(ids, skip_special_tokens=True) == "zebra café"


def test_vocab_layout_matches_clip(tmp_path):
    bpe.train(CAPTIONS, tmp_path / "tok", max_length=16)
    vocab = json.loads((tmp_path / "tok" / "vocab.json").read_text())
    merges = (tmp_path / "tok" / "merges.txt").read_text().splitlines()
    assert merges[0].startswith("#version")
    assert vocab["!"] == 0 and vocab["!</w>"] == 256  # bytes, then bytes + </w>, as in OpenAI's file
    assert vocab["<|endoftext|>"] == len(vocab) - 1 and vocab["<|startoftext|>"] == len(vocab) - 2
    assert len(vocab) == 512 + len(merges) - 1 + 2
