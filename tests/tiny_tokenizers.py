"""Tokenizers for the tiny test models, built locally (no hub): a byte-level BPE CLIP tokenizer and a
Unigram T5 tokenizer, both learned from a small prompt-like corpus."""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import CLIPTokenizer, T5TokenizerFast

# A small prompt-like corpus: BPE merges and Unigram words are learned from it, so prompts built from these
# words tokenize into a few tokens while anything else still tokenizes (bytes / characters).
CORPUS = (
    "a photo of a cat sitting on a red chair . a painting of a squirrel eating a burger . an astronaut riding "
    "a horse on the moon , highly detailed . portrait of a woman with blue eyes , oil painting . a dog running "
    "in the snow at sunset . city street at night , neon lights , rain . mountain landscape with a lake and "
    "trees , golden hour . a bowl of fruit on a wooden table , still life . the sea and the sky , 4k photo ."
)

# ---------------------------------------------------------------------------------------------- tokenizers
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table (byte-level BPE alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]  # control bytes, space, ... -> U+0100 onwards
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}


def _bpe_merges(words: list[str], num_merges: int) -> list[tuple[str, str]]:
    """Greedy BPE on ``words`` (CLIP style: the last symbol of a word carries ``</w>``), ties by pair order."""
    byte_char = _bytes_to_unicode()
    counts = Counter(words)
    splits = {w: [byte_char[b] for b in w.encode()] for w in counts}
    for symbols in splits.values():
        symbols[-1] += "</w>"
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for w, symbols in splits.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[w]
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])  # deterministic: first in sorted order wins ties
        merges.append(best)
        for w, symbols in splits.items():
            i, merged = 0, []
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[w] = merged
    return merges


def clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """A CLIP tokenizer over all 256 bytes (+ ``</w>`` forms), the corpus merges and the two specials."""
    chars = list(_bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    words = re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", CORPUS)
    merges = _bpe_merges(words, num_merges=200)
    for a, b in merges:
        if a + b not in vocab:
            vocab.append(a + b)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
        Path(tmp, "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77, pad_token=pad_token)


def t5_tokenizer() -> T5TokenizerFast:
    """A T5 (SentencePiece-Unigram-style) tokenizer: corpus words as ``▁word`` pieces, printable ASCII chars."""
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    words = sorted(set(CORPUS.split()))
    pieces = [("▁", -3.0)] + [("▁" + w, -5.0) for w in words]
    pieces += [(chr(c), -9.0) for c in range(33, 127)] + [("▁" + chr(c), -9.5) for c in range(33, 127)]
    scores: dict[str, float] = {}
    for piece, score in specials + pieces:
        scores.setdefault(piece, score)  # "▁a" is both a word and a character piece: keep the first
    vocab = list(scores.items())
    backend = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return T5TokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=512,
    )


