"""The map page's embedded JSON survives any prompt text (issue 12): `<!--`, `</script>`, `<script>`."""

import json
import re

from PIL import Image

from latentscape.io.html_map import Cell, page


def test_script_breaking_text_stays_inside_the_json_element():
    nasty = '<!-- <script> </script> & "quotes" </SCRIPT '
    recipe = json.dumps({"workflow": "map", "params": {"prompt": nasty}})
    cells = [Cell(Image.new("RGB", (4, 4)), nasty, {"prompt": nasty, "u": 0.5}, recipe=recipe)]
    html = page(nasty, cells, cols=1)
    body = re.search(r'<script type="application/json" id="cells">(.*?)</script>', html, re.S).group(1)
    assert "<" not in body and ">" not in body  # nothing in the element the HTML parser could act on
    data = json.loads(body)  # what JSON.parse sees in the browser
    assert data[0]["label"] == nasty and data[0]["details"]["prompt"] == nasty
    assert json.loads(data[0]["recipe"])["params"]["prompt"] == nasty
    assert html.count("<script") == 2 and html.count("</script>") == 2  # the JSON element and the page script
