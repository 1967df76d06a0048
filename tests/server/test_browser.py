"""The studio web page in a real browser: Debian's Chromium, driven headless by selenium, against a live
``latentscape serve`` subprocess on 127.0.0.1 (a free port, a fresh data folder) with the embedded model.

Each test loads the page afresh and checks one view end to end with the server's real renders (low steps):
the map point dragged and moved by keys changes the image under it, and a pinned point becomes a morph
keyframe; a 6-frame morph renders with a progress bar and scrubs frame by frame; the CFG explorer runs a
sweep and draws its measurements; a result replays to identical pixels; no view logs a console error.

With ``LATENTSCAPE_STUDIO_SCREENSHOTS=DIR`` each view's screenshot is saved as DIR/studio-{map,morph,cfg}.png
(palette PNGs, well under 300 KB): ``LATENTSCAPE_STUDIO_SCREENSHOTS=docs/images python -m pytest tests/server/test_browser.py``.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver); "
                "the studio page's browser test needs them", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
pytest.importorskip("fastapi", reason="the studio server needs fastapi (pip install -e '.[serve]')")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from latentscape.interfaces.cli import build_parser  # noqa: E402
from latentscape.server.point import point_weights  # noqa: E402

SHOTS = os.environ.get("LATENTSCAPE_STUDIO_SCREENSHOTS")
# low steps keep the test fast; the screenshots for the docs get pictures worth looking at
GRID, GRID_STEPS, DRAG_STEPS, FULL_STEPS, RENDER_STEPS = (5, 10, 6, 20, 16) if SHOTS else (3, 2, 2, 4, 3)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_helpers import LiveServer, free_port

    live = LiveServer(tmp_path_factory.mktemp("studio") / "data", free_port()).start()
    yield live.url
    live.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1360,1000",
                "--force-device-scale-factor=1", "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _open(browser, server, view: str):
    browser.get("about:blank")  # a fresh document each time (a change of #hash alone would keep the page)
    browser.get(f"{server}/#{view}")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    browser.get_log("browser")  # start each view's console check from an empty log


def _console_errors(browser) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def _pixels(browser, element_id: str) -> list[int]:
    """The image's pixels as the page shows them (drawn to a canvas), so a change of src alone is not enough."""
    return browser.execute_script("""
        const img = document.getElementById(arguments[0]);
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);""", element_id)


def _data(browser, element_id: str, key: str):
    return browser.execute_script("return document.getElementById(arguments[0]).dataset[arguments[1]] ?? null;", element_id, key)


def _set(browser, element_id: str, value) -> None:
    el = browser.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(str(value))


def _screenshot(browser, name: str) -> None:
    if not SHOTS:
        return
    from PIL import Image

    browser.execute_script("window.scrollTo(0, 0); document.activeElement.blur();")
    time.sleep(0.3)
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    out = Path(SHOTS) / f"studio-{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    assert out.stat().st_size < 300_000, f"{out} is {out.stat().st_size} bytes; keep studio screenshots under 300 KB"


def test_map_point_drag_and_keys_rerender_the_image_and_pin_makes_a_keyframe(browser, server):
    _open(browser, server, "map")
    _set(browser, "map-grid", GRID)
    _set(browser, "map-grid-steps", GRID_STEPS)
    _set(browser, "map-drag-steps", DRAG_STEPS)
    _set(browser, "map-full-steps", FULL_STEPS)
    browser.find_element(By.ID, "map-build").click()
    wait = WebDriverWait(browser, 120 if SHOTS else 60)
    wait.until(lambda d: _data(d, "map-area", "ready") == "true" and _data(d, "map-image", "quality") == "full")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#map-cells img")) == GRID * GRID
    assert (_data(browser, "map-image", "u"), _data(browser, "map-image", "v")) == ("0.5", "0.5")
    before = _pixels(browser, "map-image")
    infotext = browser.find_element(By.CSS_SELECTOR, "#map-result .infotext").text
    assert f"Steps: {FULL_STEPS}," in infotext and "Seed: " in infotext, infotext

    browser.execute_script("document.getElementById('map-area').scrollIntoView({block: 'center'})")
    point = browser.find_element(By.ID, "map-point")
    area = browser.find_element(By.ID, "map-area").rect
    # drag from the centre towards the top-left corner in a few moves, pausing as a hand does
    ActionChains(browser).click_and_hold(point).move_by_offset(-40, -30).pause(0.2).move_by_offset(-40, -30) \
        .pause(0.2).move_by_offset(-20, -20).release().perform()
    wait.until(lambda d: _data(d, "map-image", "quality") == "full" and _data(d, "map-image", "u") != "0.5")
    u, v = float(_data(browser, "map-image", "u")), float(_data(browser, "map-image", "v"))
    span = (GRID - 1) / GRID  # the point moves between the centres of the first and the last cell
    assert u == pytest.approx(0.5 - 100 / (area["width"] * span), abs=0.03)
    assert v == pytest.approx(0.5 - 80 / (area["height"] * span), abs=0.03)
    after = _pixels(browser, "map-image")
    assert len(after) == len(before) and after != before, "the image under the point did not change after the drag"
    # "Copy as CLI command": the server's blend command for the point now under the cursor
    wait.until(lambda d: f"--steps {FULL_STEPS} " in d.find_element(By.CSS_SELECTOR, "#map-result .cli").text)
    assert browser.find_element(By.CSS_SELECTOR, "#map-result .copy-cli").is_enabled()
    command = build_parser().parse_args(shlex.split(browser.find_element(By.CSS_SELECTOR, "#map-result .cli").text)[1:])
    corners = int(_data(browser, "map-area", "corners"))
    assert command.command == "blend" and len(command.inputs) == corners
    assert [float(w) for w in command.weights.split(",")] == pytest.approx(point_weights(corners, u, v), abs=1e-4)
    shown = int(_data(browser, "map-image", "shown"))

    # the keyboard moves the point by 0.05 and the image follows (a low-step preview, then full quality)
    point.send_keys(Keys.ARROW_RIGHT)
    wait.until(lambda d: _data(d, "map-image", "quality") == "full"
               and float(_data(d, "map-image", "u")) == pytest.approx(round(u + 0.05, 2)))
    assert int(_data(browser, "map-image", "shown")) > shown
    assert browser.find_element(By.ID, "map-point").get_attribute("aria-valuetext").startswith(f"u {u + 0.05:.2f}")

    # Enter pins the point: the morph studio gets a third keyframe
    point.send_keys(Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#morph-keyframes li")) == 3)
    pinned = browser.find_element(By.CSS_SELECTOR, "#morph-keyframes li:nth-child(3) img.kf-thumb")
    assert pinned.get_attribute("hidden") is None and pinned.get_attribute("src").startswith("data:image/png;base64,")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#map-pins span")) == 1
    _screenshot(browser, "map")

    # ... and the morph through it renders (the pinned keyframe goes as its image)
    browser.find_element(By.ID, "tab-morph").click()
    _set(browser, "morph-frames", 3)
    _set(browser, "morph-steps", 2)
    browser.find_element(By.ID, "morph-render").click()
    WebDriverWait(browser, 90).until(lambda d: d.find_element(By.ID, "morph-scrub").is_enabled())
    assert browser.find_element(By.ID, "morph-scrub").get_attribute("max") == "2"
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#morph-downloads a")]
    assert "keyframes.json" in names and any(n.startswith("keyframe-") and n.endswith(".png") for n in names), names
    assert "--keyframes keyframes.json" in browser.find_element(By.CSS_SELECTOR, "#morph-result .cli").text
    assert _console_errors(browser) == []


def test_morph_renders_six_frames_and_scrubs_them(browser, server):
    _open(browser, server, "morph")
    prompts = lambda: [e.get_attribute("value") for e in browser.find_elements(By.CSS_SELECTOR, "#morph-keyframes .kf-prompt")]  # noqa: E731
    start = prompts()
    assert len(start) == 2
    browser.find_element(By.ID, "morph-add").click()
    assert len(prompts()) == 3
    browser.find_element(By.CSS_SELECTOR, "#morph-keyframes li:nth-child(3) [aria-label='remove keyframe']").click()
    browser.find_element(By.CSS_SELECTOR, "#morph-keyframes li:nth-child(1) [aria-label='move keyframe down']").click()
    assert prompts() == start[::-1]
    browser.find_element(By.CSS_SELECTOR, "#morph-keyframes li:nth-child(2) [aria-label='move keyframe up']").click()
    assert prompts() == start
    _set(browser, "morph-frames", 6)
    _set(browser, "morph-steps", RENDER_STEPS)
    browser.find_element(By.ID, "morph-render").click()
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: d.find_element(By.ID, "morph-scrub").is_enabled())
    assert browser.find_element(By.ID, "morph-progress").get_attribute("value") == "1"
    assert int(_data(browser, "morph-frame", "previews") or 0) > 0, "no live preview was shown while the morph rendered"
    scrub = browser.find_element(By.ID, "morph-scrub")
    assert scrub.get_attribute("max") == "5"
    assert _data(browser, "morph-frame", "frame") == "0"
    wait.until(lambda d: d.execute_script("const i = document.getElementById('morph-frame'); return i.complete && i.naturalWidth > 0"))
    first = _pixels(browser, "morph-frame")
    for expected in ("1", "2", "3"):
        scrub.send_keys(Keys.ARROW_RIGHT)
        assert _data(browser, "morph-frame", "frame") == expected
    wait.until(lambda d: d.execute_script("const i = document.getElementById('morph-frame'); return i.complete && i.naturalWidth > 0"))
    assert _pixels(browser, "morph-frame") != first, "frame 4 looks like frame 1"
    assert browser.find_element(By.ID, "morph-scrub-out").text == "4 / 6"
    links = {a.text.split(" ")[0] for a in browser.find_elements(By.CSS_SELECTOR, "#morph-downloads a")}
    assert {"mp4", "gif", "webp"} <= links
    cli = browser.find_element(By.CSS_SELECTOR, "#morph-result .cli").text
    assert cli.startswith("latentscape morph") and "--frames 6" in cli, cli
    assert f"Steps: {RENDER_STEPS}," in browser.find_element(By.CSS_SELECTOR, "#morph-result .infotext").text
    _screenshot(browser, "morph")
    assert _console_errors(browser) == []


def test_cfg_explorer_sweeps_and_the_slider_picks_a_column(browser, server):
    _open(browser, server, "cfg")
    _set(browser, "cfg-seeds", 2)
    _set(browser, "cfg-steps", RENDER_STEPS)
    _set(browser, "cfg-values", "1,7.5,12")  # 6 cells: caption retrieval scores each against 32 captions
    browser.find_element(By.ID, "cfg-run").click()
    wait = WebDriverWait(browser, 90)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#cfg-grid img") and d.find_element(By.ID, "cfg-run").is_enabled())
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cfg-grid img")) == 6
    # the page charts the job's measurements itself (job.info.table), with a marker at the slider's CFG
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cfg-chart svg polyline")) == 2  # adherence and diversity
    assert browser.find_element(By.ID, "cfg-chart").get_attribute("aria-label").count("CFG ") == 3
    marker_x = lambda: float(browser.find_element(By.ID, "cfg-marker").get_attribute("x1"))  # noqa: E731
    slider = browser.find_element(By.ID, "cfg-slider")
    slider.send_keys(Keys.HOME)
    at_one = marker_x()
    assert _data(browser, "cfg-grid", "selected") == "0"
    assert "adherence" in browser.find_element(By.ID, "cfg-reading").text
    assert "exploratory" in slider.get_attribute("aria-valuetext")
    slider.send_keys(Keys.END)
    assert _data(browser, "cfg-grid", "selected") == "2" and marker_x() > at_one
    assert "adherent" in slider.get_attribute("aria-valuetext")
    for _ in range(10):
        slider.send_keys(Keys.ARROW_LEFT)  # 15 -> 10: the nearest measured column is CFG 12
    assert _data(browser, "cfg-grid", "selected") == "2"
    for _ in range(5):
        slider.send_keys(Keys.ARROW_LEFT)  # 7.5
    assert _data(browser, "cfg-grid", "selected") == "1"
    assert "CFG 7.5" in browser.find_element(By.ID, "cfg-reading").text
    assert browser.find_element(By.CSS_SELECTOR, "#cfg-result .cli").text.startswith("latentscape sweep")
    _screenshot(browser, "cfg")
    assert _console_errors(browser) == []


def test_a_result_replays_to_identical_pixels(browser, server):
    _open(browser, server, "map")
    _set(browser, "map-grid", 2)
    _set(browser, "map-grid-steps", 2)
    _set(browser, "map-full-steps", 3)
    browser.find_element(By.ID, "map-build").click()
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: _data(d, "map-image", "quality") == "full")
    browser.find_element(By.CSS_SELECTOR, "#map-result .replay").click()
    wait.until(lambda d: _data(d, "map-result", "replayDiff") is not None)
    assert _data(browser, "map-result", "replayDiff") == "0"
    assert browser.find_element(By.CSS_SELECTOR, "#map-result .copied").text == "replayed: identical pixels"
    assert _console_errors(browser) == []


def test_map_with_two_corners_is_a_line_and_with_three_a_triangle(browser, server):
    from selenium.webdriver.support.ui import Select

    _open(browser, server, "map")
    wait = WebDriverWait(browser, 60)
    _set(browser, "map-grid", 3)
    _set(browser, "map-grid-steps", 1)
    _set(browser, "map-drag-steps", 1)
    _set(browser, "map-full-steps", 2)
    for count, cells in ((2, 3), (3, 6)):  # a triangle keeps the cells with u + v <= 1
        Select(browser.find_element(By.ID, "map-count")).select_by_value(str(count))
        browser.find_element(By.ID, "map-build").click()
        wait.until(lambda d: _data(d, "map-area", "ready") == "true" and _data(d, "map-image", "quality") == "full")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#map-cells img")) == cells
        assert len(browser.find_elements(By.CSS_SELECTOR, "#map-corners li:not([hidden])")) == count
        point = browser.find_element(By.ID, "map-point")
        point.send_keys(Keys.HOME)  # (0, 0)
        wait.until(lambda d: _data(d, "map-image", "quality") == "full" and _data(d, "map-image", "u") == "0")
        point.send_keys(Keys.END)  # towards (1, 1): a line keeps v = 0, a triangle stops on its edge u + v = 1
        expected = (1.0, 0.0) if count == 2 else (0.5, 0.5)
        wait.until(lambda d: _data(d, "map-image", "quality") == "full" and float(_data(d, "map-image", "u")) == expected[0])
        assert float(_data(browser, "map-image", "v")) == expected[1]
        assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
    assert _console_errors(browser) == []


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    """``latentscape serve`` with a token (from LATENTSCAPE_TOKEN, as a user would set it); /health needs it too."""
    import subprocess
    import sys

    import httpx
    from server_helpers import free_port

    token, port = "studio-test-token", free_port()
    folder = tmp_path_factory.mktemp("studio-token")
    env = {**os.environ, "LATENTSCAPE_TOKEN": token, "OMP_NUM_THREADS": "1"}
    with (folder / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "latentscape.interfaces.cli", "serve", "--port", str(port), "--data",
                                 str(folder / "data"), "--threads", "1"], stdout=log, stderr=log, env=env)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {token}"}, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("latentscape serve --token did not come up: " + (folder / "serve.log").read_text(errors="replace")[-2000:])
        time.sleep(0.2)
    yield url, token
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_with_a_token_the_page_sends_it_on_every_call_and_file(browser, token_server):
    import httpx

    url, token = token_server
    assert httpx.get(url + "/latentscape/v1/info").status_code == 401  # the server does want it ...
    assert httpx.get(url + "/").status_code == 401  # ... for the page too (GET /?token=T) ...
    assert httpx.get(url + "/static/js/main.js").status_code == 200  # ... not for its shipped files, which <script> loads
    browser.get("about:blank")
    browser.get(f"{url}/?token={token}#morph")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    browser.get_log("browser")
    _set(browser, "morph-frames", 2)
    _set(browser, "morph-steps", 1)
    browser.find_element(By.ID, "morph-render").click()  # POST with the Bearer header, then <img>/<a> with ?token=
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "morph-scrub").is_enabled())
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "const i = document.getElementById('morph-frame'); return i.complete && i.naturalWidth > 0"))
    assert f"token={token}" in browser.find_element(By.ID, "morph-frame").get_attribute("src")
    assert all(f"token={token}" in a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#morph-downloads a"))
    assert _console_errors(browser) == []
