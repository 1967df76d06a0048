"""The studio page's files, checked without a browser: everything the page loads ships in the package and
is same-origin (it works offline, no CDN), every ES-module import resolves, every element the scripts look
up by id exists, and every form control has a label (accessibility basics)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import latentscape

STATIC = Path(latentscape.__file__).parent / "server" / "static"
SCRIPTS = sorted((STATIC / "js").glob("*.js"))


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.ids, self.controls, self.label_for, self.open_labels = [], set(), [], set(), 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("src", "href"):
            if a.get(key):
                self.refs.append(a[key])
        if tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append({**a, "_inside_label": self.open_labels > 0})

    def handle_endtag(self, tag):
        if tag == "label":
            self.open_labels -= 1


def _page() -> _Page:
    page = _Page()
    page.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return page


def test_every_file_the_page_loads_is_in_the_package_and_same_origin():
    page = _page()
    assert page.refs, "index.html references no files"
    for ref in page.refs:
        if ref.startswith("data:"):
            continue
        assert ref.startswith("/static/"), f"index.html loads '{ref}', which is not one of the page's own files"
        assert (STATIC / ref[len("/static/"):]).is_file(), f"index.html loads '{ref}', which is missing"
    for path in [STATIC / "index.html", STATIC / "studio.css", *SCRIPTS]:
        text = path.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://|//cdn|@import", text), f"{path.name} reaches outside the server (the page must work offline)"


def test_every_module_import_resolves():
    for path in SCRIPTS:
        for target in re.findall(r"""^\s*(?:import|export)\b[^;]*?from\s+["']([^"']+)["']""", path.read_text(encoding="utf-8"), re.M):
            assert target.startswith("./"), f"{path.name} imports '{target}'; only the page's own modules are allowed"
            assert (path.parent / target).is_file(), f"{path.name} imports '{target}', which is missing"


def test_every_id_the_scripts_use_exists_in_the_page():
    page = _page()
    used = set()
    for path in SCRIPTS:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""getElementById\(\s*["']([\w-]+)["']\s*\)""", text))
        used |= set(re.findall(r"""\$\(\s*["']([\w-]+)["']\s*\)""", text))
    assert used, "the scripts look up no elements"
    missing = sorted(used - page.ids)
    assert not missing, f"the scripts use ids that index.html does not have: {missing}"


def test_every_form_control_has_a_label():
    page = _page()
    for control in page.controls:
        labelled = control["_inside_label"] or control.get("id") in page.label_for or control.get("aria-label")
        assert labelled, f"control {control} has no label"
