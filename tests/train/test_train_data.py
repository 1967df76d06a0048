"""The emoji dataset builder: captions, tones, the held-out split, and a build from fake npm tarballs."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from latentscape.train import data

FAKE_EMOJI = [
    {"name": "GRINNING FACE", "image": "1f600.png", "category": "Smileys & Emotion", "sort_order": 1,
     "has_img_google": True, "has_img_twitter": True},
    {"name": "FATHER CHRISTMAS", "image": "1f385.png", "category": "People & Body", "sort_order": 2,
     "has_img_google": True, "has_img_twitter": True,
     "skin_variations": {
         "1F3FB": {"image": "1f385-1f3fb.png", "has_img_google": True, "has_img_twitter": True},
         "1F3FF": {"image": "1f385-1f3ff.png", "has_img_google": True, "has_img_twitter": False},
     }},
    {"name": "COUPLE WITH HEART", "image": "1f491.png", "category": "People & Body", "sort_order": 3,
     "has_img_google": True, "has_img_twitter": True,
     "skin_variations": {
         "1F3FC-1F3FE": {"image": "1f491-1f3fc-1f3fe.png", "has_img_google": True, "has_img_twitter": True},
         "1F3FD-1F3FD": {"image": "1f491-1f3fd-1f3fd.png", "has_img_google": True, "has_img_twitter": True},
     }},
    {"name": "GOOGLE ONLY THING", "image": "1fabf.png", "category": "Objects", "sort_order": 4,
     "has_img_google": True, "has_img_twitter": False},
]


def test_captions_lower_case_names_tones_and_style():
    assert data.caption("GRINNING  FACE", "google") == "grinning face, google style"
    assert data.caption("FATHER CHRISTMAS", "twitter", data.tone_words("1F3FB")) == "father christmas: light skin tone, twitter style"
    assert data.tone_words("1f3fc-1f3fe") == "medium-light skin tone, medium-dark skin tone"
    assert data.tone_words("1F3FD-1F3FD") == "medium skin tone"  # one tone for both people reads once


def test_entries_follow_has_img_flags():
    items = data.entries(FAKE_EMOJI)
    captions = [e.caption for e in items]
    assert "father christmas: dark skin tone, google style" in captions
    assert "father christmas: dark skin tone, twitter style" not in captions  # has_img_twitter False
    assert "google only thing, twitter style" not in captions
    assert "couple with heart: medium-light skin tone, medium-dark skin tone, twitter style" in captions
    assert len(items) == (1 + 3 + 3 + 1) + (1 + 2 + 3)  # google, twitter
    assert {e.name for e in items} == {"grinning face", "father christmas", "couple with heart", "google only thing"}


def test_split_is_seeded_and_keeps_every_name_in_training():
    names = [f"emoji {i // 4}" for i in range(400)] + ["single"]
    a = data.split_heldout(names, 0.1, seed=3)
    b = data.split_heldout(names, 0.1, seed=3)
    c = data.split_heldout(names, 0.1, seed=4)
    assert (a == b).all() and not (a == c).all()
    assert a.sum() == 40
    assert not a[-1]  # a name with one image is never held out
    train_names = {n for n, h in zip(names, a) if not h}
    assert train_names == set(names)


def _png(color) -> bytes:
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    im.paste(Image.new("RGBA", (32, 32), color), (16, 16))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _tgz(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as t:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))


def test_build_from_cached_tarballs(tmp_path):
    """With the tarballs already in the cache, build() runs no npm and writes the array file."""
    _tgz(tmp_path / "emoji-datasource-16.0.0.tgz", {"emoji.json": json.dumps(FAKE_EMOJI).encode()})
    for style, color in (("google", (255, 0, 0, 255)), ("twitter", (0, 0, 255, 128))):
        files = {}
        for e in data.entries(FAKE_EMOJI, [style]):
            files[f"img/{style}/64/{e.image}"] = _png(color)
        _tgz(tmp_path / f"emoji-datasource-{style}-16.0.0.tgz", files)
    out = data.build(tmp_path, fraction=0.2, seed=0)
    d = data.load(out)
    assert d.images.shape == (14, 64, 64, 3) and d.images.dtype == np.uint8
    assert (d.images[:, 0, 0] == 255).all()  # transparent corners composited on white
    google = d.images[d.styles == "google"][0]
    assert tuple(google[32, 32]) == (255, 0, 0)
    twitter = d.images[d.styles == "twitter"][0]
    assert tuple(twitter[32, 32]) == (127, 127, 255)  # half-transparent blue on white
    assert d.heldout.sum() == 3
    assert set(d.train.names.tolist()) == set(d.names.tolist())


def test_load_missing_file_says_how_to_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="latentscape train data"):
        data.load(tmp_path / "nope.npz")


def test_write_uses_the_exact_name_and_leaves_no_partial(tmp_path):
    items = [data.Entry("a.png", "a", None, "google", "Objects")]
    out = data.write(tmp_path / "foo", np.zeros((1, 64, 64, 3), np.uint8), items, np.zeros(1, bool))
    assert out == tmp_path / "foo" and sorted(p.name for p in tmp_path.iterdir()) == ["foo"]
    assert data.load(out).captions.tolist() == ["a, google style"]


def test_npm_pack_picks_the_highest_version_not_the_last_in_text_order(tmp_path):
    for version in ("16.9.0", "16.10.0", "9.2.1"):
        (tmp_path / f"emoji-datasource-{version}.tgz").write_bytes(b"")
        (tmp_path / f"emoji-datasource-google-{version}.tgz").write_bytes(b"")
    tars = data.npm_pack(["emoji-datasource", "emoji-datasource-google"], tmp_path)  # all cached: no npm
    assert tars == {"emoji-datasource": tmp_path / "emoji-datasource-16.10.0.tgz",
                    "emoji-datasource-google": tmp_path / "emoji-datasource-google-16.10.0.tgz"}


def test_caption_levels_from_fine_to_coarse():
    levels = data.caption_levels("Cat Face", "twitter", None, "Animals & Nature", "animal-mammal")
    assert levels == ("cat face, twitter style", "an animal mammal emoji, twitter style", "twitter style", "cat face")
    toned = data.caption_levels("waving hand", "google", "light skin tone", "People & Body", "hand-fingers-open")
    assert toned[0] == "waving hand: light skin tone, google style" and toned[1] == "a hand fingers open emoji, google style"
    assert data.group_phrase("Smileys & Emotion") == "a smileys and emotion emoji"  # no subcategory: the category


def test_subcategories_are_stored_and_old_files_still_load(tmp_path):
    items = [data.Entry("a.png", "cat face", None, "google", "Animals & Nature", "animal-mammal"),
             data.Entry("b.png", "cat face", None, "twitter", "Animals & Nature", "animal-mammal")]
    out = data.write(tmp_path / "d.npz", np.zeros((2, 64, 64, 3), np.uint8), items, np.array([False, True]))
    d = data.load(out)
    assert d.subcategories.tolist() == ["animal-mammal"] * 2
    assert d.captions_at("group").tolist() == ["an animal mammal emoji, google style", "an animal mammal emoji, twitter style"]
    assert d.captions_at("fine").tolist() == d.captions.tolist() and d.test.captions_at("name").tolist() == ["cat face"]
    with np.load(out) as z:  # a file from before subcategories were stored
        old = {k: z[k] for k in z.files if k != "subcategories"}
    np.savez(tmp_path / "old.npz", **old)
    assert data.load(tmp_path / "old.npz").captions_at("group")[0] == "an animals and nature emoji, google style"
