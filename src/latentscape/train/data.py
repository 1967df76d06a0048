"""The emoji dataset: npm packages -> one compressed array file of 64x64 RGB images with captions.

Sources (fetched with ``npm pack`` into a cache folder outside git, never committed):
``emoji-datasource`` (names and categories in ``emoji.json``), ``emoji-datasource-google`` (Noto Emoji,
Apache-2.0) and ``emoji-datasource-twitter`` (Twemoji, CC-BY 4.0), each with ``img/<style>/64/*.png``.

Caption: ``<name>[: <skin tone(s)>], <style> style``, e.g. ``father christmas: light skin tone, twitter style``.
Coarser captions of the same image (:func:`caption_levels`) name only its group and style (``a face smiling
emoji, twitter style``, from emoji-datasource's subcategory), only its style, or only its name; the diffusion
stage can sample one per image per step, so a coarse caption covers many emoji and seeds choose among them.

Split: a seeded 5 % of *images* is held out, chosen so that every held-out image's emoji name keeps at
least one training image (in the other style or another skin tone). The VAE is evaluated on the held-out
images; prompt adherence asks for the nearest *training* image, so each name must exist in training.
"""

from __future__ import annotations

import io
import json
import logging
import lzma
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from latentscape.errors import LatentscapeError

log = logging.getLogger(__name__)

STYLES: tuple[str, ...] = ("google", "twitter")
PACKAGES: tuple[str, ...] = ("emoji-datasource", *(f"emoji-datasource-{s}" for s in STYLES))
SKIN_TONES: dict[str, str] = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}
SIZE = 64
DATA_FILE = "emoji64.npz"


def default_cache() -> Path:
    """``$LATENTSCAPE_CACHE/emoji`` or ``~/.cache/latentscape/emoji``."""
    root = os.environ.get("LATENTSCAPE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "latentscape") / "emoji"


# --- captions ---------------------------------------------------------------------------------------
def tone_words(tone_key: str) -> str:
    """``"1F3FB"`` -> ``"light skin tone"``; ``"1F3FB-1F3FF"`` -> ``"light skin tone, dark skin tone"``.

    Two equal tones (couples in one tone) read as one.
    """
    parts = [SKIN_TONES[p] for p in tone_key.upper().split("-")]
    if len(parts) == 2 and parts[0] == parts[1]:
        parts = parts[:1]
    return ", ".join(parts)


def caption(name: str, style: str, tones: str | None = None) -> str:
    """The training caption: ``<name>[: <tones>], <style> style``."""
    name = " ".join(name.lower().split())
    return f"{name}: {tones}, {style} style" if tones else f"{name}, {style} style"


@dataclass(frozen=True)
class Entry:
    """One image to extract: its file in the style's package and its labels."""

    image: str  # file name under img/<style>/64/
    name: str  # lower-cased emoji name (the adherence label)
    tones: str | None
    style: str
    category: str
    subcategory: str = ""

    @property
    def caption(self) -> str:
        return caption(self.name, self.style, self.tones)


LEVELS: tuple[str, ...] = ("fine", "group", "style", "name")


def group_phrase(category: str, subcategory: str = "") -> str:
    """``("Smileys & Emotion", "face-smiling")`` -> ``"a face smiling emoji"`` (the category when no subcategory)."""
    words = " ".join((subcategory or category).lower().replace("&", "and").replace("-", " ").split()) or "other"
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words} emoji"


def caption_levels(name: str, style: str, tones: str | None, category: str, subcategory: str = "") -> tuple[str, ...]:
    """The image's captions from fine to coarse, in :data:`LEVELS` order: the training caption,
    ``<group>, <style> style``, ``<style> style`` and ``<name>``."""
    name = " ".join(name.lower().split())
    return caption(name, style, tones), f"{group_phrase(category, subcategory)}, {style} style", f"{style} style", name


def entries(emoji_json: Sequence[dict], styles: Iterable[str] = STYLES) -> list[Entry]:
    """Every (emoji or skin-tone variant, style) whose image exists for that style (``has_img_<style>``)."""
    out: list[Entry] = []
    for style in styles:
        for e in sorted(emoji_json, key=lambda e: e.get("sort_order", 0)):
            name = " ".join(str(e["name"] or e.get("short_name", "")).lower().split())
            if e.get(f"has_img_{style}"):
                out.append(Entry(e["image"], name, None, style, e.get("category", ""), e.get("subcategory", "")))
            for key, var in sorted((e.get("skin_variations") or {}).items()):
                if var.get(f"has_img_{style}"):
                    out.append(Entry(var["image"], name, tone_words(key), style, e.get("category", ""), e.get("subcategory", "")))
    return out


def split_heldout(names: Sequence[str], fraction: float = 0.05, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out images: a seeded ``fraction`` of images, never a name's last training image."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    remaining: dict[str, int] = {}
    for n in names:
        remaining[n] = remaining.get(n, 0) + 1
    heldout = np.zeros(len(names), dtype=bool)
    target = int(round(fraction * len(names)))
    for i in order:
        if heldout.sum() >= target:
            break
        if remaining[names[i]] > 1:
            heldout[i] = True
            remaining[names[i]] -= 1
    return heldout


# --- images -----------------------------------------------------------------------------------------
def on_white(png: bytes, size: int = SIZE) -> np.ndarray:
    """PNG bytes -> (size, size, 3) uint8, transparency composited on white."""
    with Image.open(io.BytesIO(png)) as im:
        rgba = im.convert("RGBA")
    if rgba.size != (size, size):
        rgba = rgba.resize((size, size), Image.Resampling.LANCZOS)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)


def _version(package: str, tarball: Path) -> tuple[int, ...]:
    """``emoji-datasource-15.10.2.tgz`` -> ``(15, 10, 2)``: tarballs compare by version, not by text."""
    return tuple(int(n) for n in re.findall(r"\d+", tarball.name[len(package) + 1 : -len(".tgz")]))


def _tarballs(package: str, cache: Path) -> list[Path]:
    """The package's tarballs in ``cache``, oldest version first."""
    return sorted(cache.glob(f"{package}-[0-9]*.tgz"), key=lambda t: (_version(package, t), t.name))


def npm_pack(packages: Sequence[str], cache: Path) -> dict[str, Path]:
    """``npm pack`` each package into ``cache`` unless its tarball is already there; package -> the tarball
    of the highest version."""
    cache.mkdir(parents=True, exist_ok=True)
    found = {p: _tarballs(p, cache) for p in packages}
    missing = [p for p in packages if not found[p]]
    if missing:
        log.info("npm pack %s -> %s", " ".join(missing), cache)
        try:
            subprocess.run(["npm", "pack", *missing], cwd=cache, check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise LatentscapeError("`npm` was not found: install Node.js/npm or put the package tarballs in the cache.") from None
        found = {p: _tarballs(p, cache) for p in packages}
    return {p: tars[-1] for p, tars in found.items()}


MAX_MEMBER_BYTES = 64 * 1024 * 1024  # emoji.json is ~1 MB, each image a few KB


def checked_members(tar: tarfile.TarFile, tarball: Path):
    """The tarball's members, each refused unless it is a plain file or folder with a relative path inside
    the archive and a sane size. Members are only ever read into memory (never extracted to disk), but a
    link would still make ``extractfile`` read another member or fail obscurely, and a package from npm is
    untrusted input: one sentence says what is wrong."""
    for member in tar:
        name = member.name
        what = None
        if member.issym():
            what = f"a symbolic link (to '{member.linkname}')"
        elif member.islnk():
            what = f"a hard link (to '{member.linkname}')"
        elif name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            what = "an absolute path"
        elif ".." in re.split(r"[/\\]", name):
            what = "a path with a '..' part"
        elif not (member.isfile() or member.isdir()):
            what = "a device, FIFO or other special file"
        elif member.size > MAX_MEMBER_BYTES:
            what = f"a file of {member.size} bytes (more than {MAX_MEMBER_BYTES})"
        if what is not None:
            raise LatentscapeError(f"the data tarball {tarball.name} holds '{name}', {what}; refusing to read it "
                                   f"(delete {tarball} and fetch the package again).")
        yield member


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise KeyError(member.name)
    return f.read()


def _read_named(tarball: Path, name: str) -> bytes:
    """One member's bytes, every member on the way checked by :func:`checked_members`."""
    with tarfile.open(tarball) as t:
        for member in checked_members(t, tarball):
            if member.name == name:
                return _read_member(t, member)
    raise LatentscapeError(f"the data tarball {tarball.name} has no '{name}'; delete {tarball} and fetch the package again.")


def build(cache: Path | None = None, out: Path | None = None, *, fraction: float = 0.05, seed: int = 0) -> Path:
    """Fetch the packages (if needed), extract, caption and split; write ``emoji64.npz`` (see :func:`write`)."""
    cache = Path(cache) if cache is not None else default_cache()
    out = Path(out) if out is not None else cache / DATA_FILE
    tars = npm_pack(PACKAGES, cache)
    emoji_json = json.loads(_read_named(tars["emoji-datasource"], "package/emoji.json"))
    items = entries(emoji_json)
    images = np.zeros((len(items), SIZE, SIZE, 3), dtype=np.uint8)
    keep = np.zeros(len(items), dtype=bool)
    for style in STYLES:
        wanted = {f"package/img/{style}/64/{e.image}": i for i, e in enumerate(items) if e.style == style}
        tarball = tars[f"emoji-datasource-{style}"]
        with tarfile.open(tarball) as t:
            for member in checked_members(t, tarball):  # one sequential pass: random access into a .tgz re-reads the stream
                i = wanted.get(member.name)
                if i is not None:
                    images[i] = on_white(_read_member(t, member))
                    keep[i] = True
    if not keep.all():
        log.warning("%d listed images are missing from the packages; skipped", int((~keep).sum()))
    items = [e for e, k in zip(items, keep) if k]
    images = images[keep]
    names = [e.name for e in items]
    heldout = split_heldout(names, fraction, seed)
    write(out, images, items, heldout)
    log.info("wrote %s: %d images (%d held out)", out, len(items), int(heldout.sum()))
    return out


def write(out: Path, images: np.ndarray, items: Sequence[Entry], heldout: np.ndarray) -> Path:
    """The compressed array file: ``images`` (N, 64, 64, 3) uint8, ``captions``, ``names``, ``tones``,
    ``styles``, ``categories`` (str arrays) and ``heldout`` (bool).

    Written to ``<out>.partial`` through a file handle (so numpy adds no ``.npz`` suffix: ``out`` is the exact
    name), then renamed: an interrupted build leaves no truncated file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            images=images,
            captions=np.array([e.caption for e in items]),
            names=np.array([e.name for e in items]),
            tones=np.array([e.tones or "" for e in items]),
            styles=np.array([e.style for e in items]),
            categories=np.array([e.category for e in items]),
            subcategories=np.array([e.subcategory for e in items]),
            heldout=heldout,
        )
    os.replace(tmp, out)
    return out


@dataclass(frozen=True)
class EmojiData:
    """The dataset in memory: images (N, 64, 64, 3) uint8 and per-image labels."""

    images: np.ndarray
    captions: np.ndarray
    names: np.ndarray
    styles: np.ndarray
    heldout: np.ndarray
    tones: np.ndarray  # "" for the base emoji (no skin tone)
    categories: np.ndarray
    subcategories: np.ndarray  # "" in files written before subcategories were stored

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, mask: np.ndarray) -> "EmojiData":
        return EmojiData(self.images[mask], self.captions[mask], self.names[mask], self.styles[mask], self.heldout[mask],
                         self.tones[mask], self.categories[mask], self.subcategories[mask])

    def captions_at(self, level: str) -> np.ndarray:
        """Every image's caption at ``level`` (one of :data:`LEVELS`)."""
        k = LEVELS.index(level)
        return np.array([caption_levels(n, s, t or None, c, sc)[k] for n, s, t, c, sc in
                         zip(self.names, self.styles, self.tones, self.categories, self.subcategories)])

    @property
    def train(self) -> "EmojiData":
        return self.subset(~self.heldout)

    @property
    def test(self) -> "EmojiData":
        return self.subset(self.heldout)


def load(path: Path | str | None = None) -> EmojiData:
    """Read the array file written by :func:`build` (default: in the cache folder) or by :func:`pack`."""
    path = Path(path) if path is not None else default_cache() / DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"dataset '{path}' does not exist; build it with `latentscape train data`.")
    source = io.BytesIO(lzma.decompress(path.read_bytes())) if path.suffix == ".xz" else path  # see pack()
    with np.load(source) as z:
        sub = z["subcategories"] if "subcategories" in z.files else np.full(len(z["names"]), "")
        return EmojiData(z["images"], z["captions"], z["names"], z["styles"], z["heldout"], z["tones"], z["categories"], sub)


def pack(src: Path | str, dst: Path | str, preset: int = 9 | lzma.PRESET_EXTREME) -> Path:
    """The array file ``src`` as one xz-compressed *uncompressed* ``.npz`` (name it ``*.npz.xz``), for carrying to
    another machine: xz over raw pixels beats the deflate inside ``np.savez_compressed`` (the 7,572 emoji:
    12.2 MB instead of 18.6 MB at the default preset, ~90 s here). :func:`load` reads it as it is; the same arrays come back."""
    dst = Path(dst)
    if dst.suffix != ".xz":
        raise LatentscapeError(f"the packed data file '{dst}' must end in .xz (e.g. emoji64.npz.xz); its name says how it is read.")
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    raw = io.BytesIO()
    np.savez(raw, **arrays)
    tmp = dst.with_name(dst.name + ".partial")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(lzma.compress(raw.getvalue(), preset=preset))
    os.replace(tmp, dst)
    return dst


def to_tensor(images: np.ndarray):
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1]."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
