"""A self-contained HTML page for a latent map: every image inlined as a base64 PNG data URI; hovering a
cell shows its coordinates and recipe in a side panel (no network, no external files, no framework)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image

from latentscape.io.files import atomic_path


@dataclass(frozen=True)
class Cell:
    """One picture on the page: ``x``/``y`` in [0, 1] (left to right, top to bottom) for a scatter, or its
    grid ``row``/``col``; ``details`` (coordinates etc.) and ``recipe`` are shown on hover."""

    image: Image.Image
    label: str
    details: Mapping[str, Any]
    recipe: str | None = None  # JSON text
    row: int = 0
    col: int = 0
    x: float = 0.0
    y: float = 0.0


def data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:18px;margin:0 0 4px} p.sub{margin:0 0 12px;color:#555;font-size:13px}
.wrap{display:flex;gap:16px;align-items:flex-start}
.grid{display:grid;gap:4px}
.cell{position:relative;cursor:crosshair;line-height:0}
.cell img{image-rendering:pixelated;border:2px solid transparent}
.cell:hover img,.cell.on img{border-color:#e4572e}
.scatter{position:relative;background:#fff;border:1px solid #ccc}
.scatter .cell{position:absolute}
#panel{flex:1;min-width:280px;max-width:560px;font-size:12px;background:#fff;border:1px solid #ddd;padding:8px;
  position:sticky;top:8px}
#panel h2{font-size:14px;margin:0 0 6px} #panel pre{white-space:pre-wrap;word-break:break-word;margin:0}
table.kv td{padding:1px 8px 1px 0;vertical-align:top}
"""

_SCRIPT = """
const cells = JSON.parse(document.getElementById('cells').textContent);
const panel = document.getElementById('panel');
function esc(s){return String(s).replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));}
function show(i){
  const c = cells[i];
  let rows = Object.entries(c.details).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('');
  let recipe = c.recipe ? `<h2>recipe</h2><pre>${esc(JSON.stringify(JSON.parse(c.recipe), null, 1))}</pre>` : '';
  panel.innerHTML = `<h2>${esc(c.label)}</h2><table class="kv">${rows}</table>${recipe}`;
}
document.querySelectorAll('.cell').forEach(el => el.addEventListener('mouseenter', () => show(+el.dataset.i)));
"""


def page(title: str, cells: Sequence[Cell], *, cols: int | None = None, scatter: bool = False, subtitle: str = "",
         scale: int = 1) -> str:
    """The page's HTML: a grid of ``cols`` columns (cells placed by row/col) or a scatter (by x/y)."""
    first = cells[0].image
    w, h = first.width * scale, first.height * scale
    items = []
    for i, c in enumerate(cells):
        tip = html.escape(c.label + " — " + ", ".join(f"{k}: {v}" for k, v in c.details.items()), quote=True)
        if scatter:
            side = _scatter_side(len(cells), w)
            pos = f' style="left:{c.x * (side - w):.1f}px;top:{c.y * (side - h):.1f}px"'
        else:
            pos = f' style="grid-row:{c.row + 1};grid-column:{c.col + 1}"'
        items.append(f'<div class="cell" data-i="{i}" title="{tip}"{pos}><img src="{data_uri(c.image)}" width="{w}" height="{h}" alt="{html.escape(c.label, quote=True)}"></div>')
    meta = json.dumps([{"label": c.label, "details": {k: _jsonable(v) for k, v in c.details.items()}, "recipe": c.recipe} for c in cells])
    # keep the JSON inside its <script> element: no "</script>", and no "<!--" (which makes the HTML parser
    # look for a nested "<script>"); "\u003c" is the same character to JSON.parse
    meta = meta.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if scatter:
        side = _scatter_side(len(cells), w)
        body = f'<div class="scatter" style="width:{side}px;height:{side}px">{"".join(items)}</div>'
    else:
        body = f'<div class="grid" style="grid-template-columns:repeat({cols},{w + 4}px)">{"".join(items)}</div>'
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"sub\">{html.escape(subtitle)}</p>"
        f"<div class=\"wrap\">{body}<div id=\"panel\"><h2>hover a cell</h2>its coordinates and recipe appear here.</div></div>"
        f"<script type=\"application/json\" id=\"cells\">{meta}</script><script>{_SCRIPT}</script></body></html>\n"
    )


def _scatter_side(n: int, w: int) -> int:
    return max(6, int(round(n ** 0.5 * 2))) * w // 2 + w


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


def write_page(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
