"""Untrusted files that training reads: a planted checkpoint never runs code, and a data tarball's
links and escaping paths are refused, each in one sentence."""

from __future__ import annotations

import io
import json
import pickle
import tarfile

import numpy as np
import pytest
import torch

from latentscape.errors import LatentscapeError
from latentscape.train import data, loop


class _Payload:
    """Unpickling this writes a marker file: the proof that a full unpickle would run a planted payload."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _plant(path, marker, how: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"step": 0, "modules": {}, "optimizer": {}, "ema": {}, "extra": {"x": _Payload(marker)}, "config": {}}
    if how == "torch.save":
        torch.save(blob, path)
    elif how == "legacy":
        torch.save(blob, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(blob))


def _tiny_dataset(folder):
    images = np.full((4, 64, 64, 3), 255, np.uint8)
    items = [data.Entry(f"{i}.png", f"shape {i % 2}", None, s, "Objects") for i, s in enumerate(["google", "twitter"] * 2)]
    return data.write(folder / "emoji64.npz", images, items, np.array([False, False, True, False]))


def test_the_planted_payload_would_run_under_a_full_unpickle(tmp_path):
    """The control: the same file does run code when unpickled without ``weights_only`` (the hole closed here)."""
    marker = tmp_path / "ran"
    _plant(tmp_path / "last.pt", marker, "torch.save")
    torch.load(tmp_path / "last.pt", weights_only=False)
    assert marker.read_text() == "pwned"


PLANTED = "names (builtins.)?exec, not only tensors and plain values, so it could run code"


@pytest.mark.parametrize("how, says", [("torch.save", PLANTED), ("legacy", PLANTED), ("raw pickle", "could not be read")])
def test_a_planted_checkpoint_is_refused_and_its_payload_never_runs(how, says, tmp_path, capsys):
    from latentscape.interfaces import train_cli

    marker = tmp_path / "ran"
    runs = tmp_path / "runs"
    _plant(runs / "vae" / "last.pt", marker, how)
    before = sorted(p.name for p in (runs / "vae").iterdir())
    code = train_cli.main(["train", "vae", "--tiny", "--data", str(_tiny_dataset(tmp_path)), "--runs", str(runs),
                           "--steps", "1", "--batch-size", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("latentscape train: error: the checkpoint") and "--fresh" in err
    assert not marker.exists()  # the payload never ran
    assert sorted(p.name for p in (runs / "vae").iterdir()) == before  # nothing written next to it
    with pytest.raises(LatentscapeError, match=says):
        loop.read_checkpoint(runs / "vae" / "last.pt")
    assert not marker.exists()


@pytest.mark.parametrize("content, says", [(b"", "could not be read"), (b"\x00garbage" * 10, "could not be read")])
def test_an_unreadable_checkpoint_is_one_sentence(content, says, tmp_path):
    (tmp_path / "last.pt").write_bytes(content)
    with pytest.raises(LatentscapeError, match=says):
        loop.read_checkpoint(tmp_path / "last.pt")


def test_a_weights_only_file_that_is_not_a_checkpoint_is_one_sentence(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "last.pt")
    with pytest.raises(LatentscapeError, match="not a latentscape training checkpoint.*lacks step, modules, optimizer, ema"):
        loop.read_checkpoint(tmp_path / "last.pt")


# --- data tarballs ----------------------------------------------------------------------------------
def _tgz(path, members: list[tarfile.TarInfo], blobs: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as t:
        for info in members:
            blob = blobs.get(info.name)
            if blob is not None:
                info.size = len(blob)
            t.addfile(info, io.BytesIO(blob) if blob is not None else None)


def _member(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


EMOJI = [{"name": "A", "image": "a.png", "sort_order": 1, "category": "Objects", "has_img_google": True, "has_img_twitter": True}]


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), (255, 0, 0, 255)).save(buf, "PNG")
    return buf.getvalue()


def _cache(tmp_path, bad: tarfile.TarInfo | None, where: str):
    """The three package tarballs; ``bad`` is added to the ``where`` package."""
    tars = {"emoji-datasource": ([_member("package/emoji.json")], {"package/emoji.json": json.dumps(EMOJI).encode()})}
    for style in data.STYLES:
        name = f"package/img/{style}/64/a.png"
        tars[f"emoji-datasource-{style}"] = ([_member(name)], {name: _png()})
    for package, (members, blobs) in tars.items():
        if bad is not None and package == where:
            members = [bad, *members]
        _tgz(tmp_path / f"{package}-16.0.0.tgz", members, blobs)
    return tmp_path


BAD_MEMBERS = [
    (_member("package/img/google/64/a.png", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
    (_member("package/img/google/64/b.png", tarfile.LNKTYPE, "package/emoji.json"), "hard link"),
    (_member("/etc/cron.d/x"), "absolute path"),
    (_member("package/../../x.png"), "'..'"),
    (_member("package/dev", tarfile.CHRTYPE), "device"),
]


@pytest.mark.parametrize("bad, says", BAD_MEMBERS, ids=["symlink", "hardlink", "absolute", "dotdot", "device"])
@pytest.mark.parametrize("where", ["emoji-datasource", "emoji-datasource-google"])
def test_a_tarball_with_a_link_or_escaping_member_is_refused(bad, says, where, tmp_path):
    cache = _cache(tmp_path, bad, where)
    with pytest.raises(LatentscapeError, match=says) as info:
        data.build(cache, fraction=0.0)
    assert "\n" not in str(info.value) and f"{where}-16.0.0.tgz" in str(info.value)
    assert not (cache / data.DATA_FILE).exists() and not list(cache.glob("*.partial"))


def test_the_data_cli_reports_a_bad_tarball_in_one_sentence(tmp_path, capsys):
    from latentscape.interfaces import train_cli

    cache = _cache(tmp_path, BAD_MEMBERS[0][0], "emoji-datasource-twitter")
    assert train_cli.main(["train", "data", "--cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "symbolic link" in err and err.startswith("latentscape train: error:")


def test_clean_tarballs_still_build(tmp_path):
    out = data.build(_cache(tmp_path, None, ""), fraction=0.0)
    assert data.load(out).images.shape == (2, 64, 64, 3)


def test_export_never_replaces_a_folder_that_is_not_a_model(tmp_path):
    """``train export --out DIR`` on a user's folder (or a file, or a link) is refused before any work, and
    the folder, its ``.old``/``.partial`` neighbours and their files all survive."""
    from latentscape.errors import LatentscapeError
    from latentscape.train.export import export

    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.txt").write_text("years of work")
    link = tmp_path / "link"
    link.symlink_to(home)
    note = tmp_path / "note.txt"
    note.write_text("x")
    old = tmp_path / "model.old"
    old.mkdir()
    (old / "photo.jpg").write_bytes(b"precious")
    for out, what in ((home, "holds no model"), (link, "is a file or a link"), (note, "is a file or a link"),
                      (tmp_path / "model", "holds no model")):
        with pytest.raises(LatentscapeError, match=what):
            export(tmp_path / "no-vae-run", tmp_path / "no-diffusion-run", out)
    assert (home / "thesis.txt").read_text() == "years of work" and (old / "photo.jpg").read_bytes() == b"precious"
    assert note.read_text() == "x" and link.is_symlink()
