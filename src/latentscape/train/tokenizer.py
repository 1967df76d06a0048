"""A CLIP BPE vocabulary trained on the captions, saved so that ``CLIPTokenizer.from_pretrained`` loads it.

Same conventions as OpenAI's CLIP vocabulary: text lower-cased and split by CLIP's regex, bytes mapped
to printable characters (GPT-2's byte-to-unicode table), a word's last symbol carries ``</w>``; ids are
the 256 byte symbols, the 256 byte symbols with ``</w>``, one id per merge, then ``<|startoftext|>`` and
``<|endoftext|>`` (also the pad token). The merges are learned with the ``tokenizers`` BPE trainer, with
enough of them that nearly every caption word becomes one token (a word-level-ish vocabulary), while
any other text still tokenizes through the byte symbols.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def learn_merges(texts: Sequence[str], max_merges: int = 6000) -> list[tuple[str, str]]:
    """BPE merges over the texts, pre-tokenized exactly as ``CLIPTokenizer`` does."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(BPE(end_of_word_suffix="</w>", continuing_subword_prefix="", unk_token=EOS))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    alphabet = list(bytes_to_unicode().values())
    trainer = BpeTrainer(
        vocab_size=2 * len(alphabet) + max_merges + 2,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        continuing_subword_prefix="",
        special_tokens=[],
    )
    tok.train_from_iterator(list(texts), trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def build_vocab(merges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """CLIP's id layout: bytes, bytes + ``</w>``, merged symbols, then the two special tokens."""
    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]:
        vocab.setdefault(s, len(vocab))
    return vocab


def save(folder: Path, merges: Sequence[tuple[str, str]], max_length: int) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer config; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(merges)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps({k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}, indent=2))
    return folder


def train(texts: Sequence[str], folder: Path, max_length: int, max_merges: int = 6000):
    """Learn merges on ``texts``, save them to ``folder`` and return the loaded ``CLIPTokenizer``."""
    from transformers import CLIPTokenizer

    save(folder, learn_merges(texts, max_merges), max_length)
    return CLIPTokenizer.from_pretrained(folder)
