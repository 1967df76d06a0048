// Latent map explorer: 2-4 corners, a coarse grid of low-step cells, a draggable point whose image re-renders
// (low steps while moving, full steps when still), neighbours pre-rendered, pinned points -> morph keyframes.
import { point, pin, pngMetadata, blobToBase64 } from "./api.js";
import { keyframeEditor } from "./keyframes.js";
import { showResult } from "./result.js";
import { clearError, numberField, setStatus, showError, el } from "./ui.js";

const DEFAULT_CORNERS = [
  { prompt: "grinning face, google style", seed: 1 },
  { prompt: "cat face, twitter style", seed: 2 },
  { prompt: "fire, google style", seed: 3 },
  { prompt: "ghost, twitter style", seed: 4 },
];
const TITLES = {
  2: ["left", "right"],
  3: ["top-left (u = v = 0)", "top-right (u = 1)", "bottom-left (v = 1)"],
  4: ["top-left", "top-right", "bottom-left", "bottom-right"],
};
const round = (x) => Math.round(x * 100) / 100;  // request positions on a 0.01 lattice, so the cache hits
const SETTLE_KEYS_MS = 350;  // full quality once the keys rest this long
const SETTLE_DRAG_MS = 600;  // ... or the pointer rests this long while still held
const CACHE_LIMIT = 400;

export function setupMap({ onPin }) {
  const $ = (id) => document.getElementById(id);
  const area = $("map-area"), cellsEl = $("map-cells"), pointEl = $("map-point"), pinsEl = $("map-pins");
  const image = $("map-image"), caption = $("map-caption"), progress = $("map-progress"), pinButton = $("map-pin");
  const resultEl = $("map-result");

  const editors = DEFAULT_CORNERS.map((value) => keyframeEditor(value, { withCfg: true }));
  const list = $("map-corners");
  editors.forEach((e) => list.append(el("li", {}, e.node)));

  let count = 4;
  function applyCount() {
    count = Number($("map-count").value);
    editors.forEach((e, i) => {
      e.node.parentElement.hidden = i >= count;
      if (i < count) e.setTitle(`corner ${TITLES[count][i]}`);
    });
  }
  $("map-count").addEventListener("change", applyCount);
  applyCount();

  // ---- the map being explored (a snapshot taken when it is rendered) ----
  let map = null;           // {corners, count, n, cfg, dragSteps, fullSteps, gridSteps, generation}
  let generation = 0;
  const cache = new Map();  // key -> {url, blob, seed, infotext, steps}
  let u = 0.5, v = 0.5;
  let shown = null;         // {key, u, v, steps}
  let shownCount = 0;

  const keyOf = (pu, pv, steps) => `${map.generation}|${pu.toFixed(2)}|${pv.toFixed(2)}|${steps}`;

  function body(pu, pv, steps) {
    const b = { corners: map.corners, u: pu, steps };
    if (map.count > 2) b.v = pv;
    if (map.cfg !== null) b.cfg = map.cfg;
    return b;
  }

  function clamp(pu, pv) {
    pu = Math.min(1, Math.max(0, pu));
    pv = map && map.count === 2 ? 0 : Math.min(1, Math.max(0, pv));
    if (map && map.count === 3 && pu + pv > 1) {  // project back onto the triangle's long edge
      const d = (pu + pv - 1) / 2;
      pu = Math.min(1, Math.max(0, pu - d));
      pv = 1 - pu;
    }
    pu = round(pu);
    pv = round(pv);
    if (map && map.count === 3 && pu + pv > 1) pv = round(1 - pu);  // rounding must not step off the triangle
    return [pu, pv];
  }

  // ---- one request at a time: the point's latest wish first, then background cells ----
  let wanted = null, inflight = false;
  const background = [];

  function pump() {
    if (inflight || !map) return;
    let task = null;
    if (wanted) { task = wanted; wanted = null; }
    else {
      while (background.length && !task) {
        const t = background.shift();
        if (t.generation === map.generation && !cache.has(keyOf(t.u, t.v, t.steps))) task = t;
        else if (t.generation === map.generation && t.onDone) t.onDone(cache.get(keyOf(t.u, t.v, t.steps)));
      }
    }
    if (!task) return;
    const key = keyOf(task.u, task.v, task.steps);
    if (cache.has(key)) { finish(task, cache.get(key)); pump(); return; }
    inflight = true;
    point(body(task.u, task.v, task.steps))
      .then((r) => {
        if (task.generation !== map.generation) return;
        const entry = { ...r, url: URL.createObjectURL(r.blob), steps: task.steps };
        remember(key, entry);
        finish(task, entry);
      })
      .catch((err) => { if (task.generation === map.generation) { showError(err); background.length = 0; } })
      .finally(() => { inflight = false; pump(); });
  }

  function remember(key, entry) {
    cache.set(key, entry);
    if (cache.size > CACHE_LIMIT) {
      for (const [k, e] of cache) {
        if (e.keep) continue;
        URL.revokeObjectURL(e.url); cache.delete(k); break;
      }
    }
  }

  function finish(task, entry) {
    if (task.onDone) task.onDone(entry);
    if (task.kind === "point") display(task.u, task.v, entry, task.steps === map.fullSteps ? "full" : "preview");
  }

  function want(pu, pv, steps) {
    wanted = { kind: "point", u: pu, v: pv, steps, generation: map.generation };
    pump();
  }

  // ---- showing the image under the point ----
  async function display(pu, pv, entry, quality) {
    const atPoint = pu === u && pv === v;
    if (!atPoint && shown && shown.u === u && shown.v === v) return;  // never replace the point's own image with an older one
    if (atPoint && shown && shown.u === u && shown.v === v && shown.quality === "full" && quality !== "full") return;
    shown = { u: pu, v: pv, steps: entry.steps, quality };
    image.src = entry.url;
    image.alt = `The image at u ${pu.toFixed(2)}, v ${pv.toFixed(2)} (${entry.steps} steps)`;
    image.dataset.u = pu; image.dataset.v = pv; image.dataset.steps = entry.steps; image.dataset.quality = quality;
    image.dataset.shown = String(++shownCount);
    const where = map.count === 2 ? `u ${pu.toFixed(2)}` : `u ${pu.toFixed(2)}, v ${pv.toFixed(2)}`;
    caption.textContent = `${where} · ${entry.steps} steps${quality === "full" ? "" : quality === "cell" ? " (nearest grid cell)" : " (preview)"}`
      + (entry.seed ? ` · seed ${entry.seed}` : "");
    if (quality === "cell") return;
    const meta = entry.meta || (entry.meta = await pngMetadata(entry.blob));
    if (shown.u !== pu || shown.v !== pv || shown.steps !== entry.steps) return;
    showResult(resultEl, {
      infotext: meta.infotext || entry.infotext, recipe: meta.recipe, cli: entry.cli, image: entry.blob,
      noCliReason: "a corner has its own CFG, and a blend command line has no per-input CFG",
      replayBody: meta.recipe ? async () => ({ image: await blobToBase64(entry.blob) }) : null,
    });
    if (quality === "full") prefetchNeighbours(pu, pv);
  }

  function nearestCell(pu, pv) {
    const n = map.n, iu = Math.round(pu * (n - 1)), iv = map.count === 2 ? 0 : Math.round(pv * (n - 1));
    const cu = iu / (n - 1), cv = map.count === 2 ? 0 : iv / (n - 1);
    return cache.get(keyOf(round(cu), round(cv), map.gridSteps));
  }

  function prefetchNeighbours(pu, pv) {
    const s = keyStep(false);
    const around = [[pu - s, pv], [pu + s, pv], [pu, pv - s], [pu, pv + s]];
    for (const [a, b] of around) {
      const [cu, cv] = clamp(a, b);
      if (cu === pu && cv === pv) continue;
      background.unshift({ kind: "cell", u: cu, v: cv, steps: map.dragSteps, generation: map.generation });
    }
    pump();
  }

  // ---- the point: position, pointer dragging, keyboard ----
  function place() {
    const n = map ? map.n : 5;
    const x = (u * (n - 1) + 0.5) / n;
    const y = map && map.count === 2 ? 0.5 : (v * (n - 1) + 0.5) / n;
    pointEl.style.left = `${x * 100}%`;
    pointEl.style.top = `${y * 100}%`;
    pointEl.setAttribute("aria-valuenow", String(Math.round(u * 100)));
    pointEl.setAttribute("aria-valuetext", map && map.count === 2 ? `u ${u.toFixed(2)}` : `u ${u.toFixed(2)}, v ${v.toFixed(2)}`);
  }

  function moveTo(pu, pv, { settle }) {
    if (!map) return;
    [pu, pv] = clamp(pu, pv);
    const moved = pu !== u || pv !== v;
    u = pu; v = pv;
    place();
    const full = cache.get(keyOf(u, v, map.fullSteps));
    if (full) { display(u, v, full, "full"); wanted = null; return; }
    if (moved) {
      const quick = cache.get(keyOf(u, v, map.dragSteps)) || cache.get(keyOf(u, v, map.gridSteps));
      if (quick) display(u, v, quick, "preview");
      else { const cell = nearestCell(u, v); if (cell) display(u, v, cell, "cell"); }
    }
    clearTimeout(settleTimer);
    if (settle === 0) want(u, v, map.fullSteps);
    else {
      if (!cache.has(keyOf(u, v, map.dragSteps))) want(u, v, map.dragSteps);
      if (settle > 0) settleTimer = setTimeout(() => want(u, v, map.fullSteps), settle);
    }
  }
  let settleTimer = null;

  function fromEvent(ev) {
    const r = area.getBoundingClientRect(), n = map.n;
    const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
    return [(fx * n - 0.5) / (n - 1), (fy * n - 0.5) / (n - 1)];
  }

  let dragging = false;
  area.addEventListener("pointerdown", (ev) => {
    if (!map || ev.button !== 0) return;
    ev.preventDefault();
    dragging = true;
    area.setPointerCapture(ev.pointerId);
    pointEl.classList.add("dragging");
    pointEl.focus({ preventScroll: true });
    moveTo(...fromEvent(ev), { settle: SETTLE_DRAG_MS });
  });
  area.addEventListener("pointermove", (ev) => { if (dragging) moveTo(...fromEvent(ev), { settle: SETTLE_DRAG_MS }); });
  const release = (ev) => {
    if (!dragging) return;
    dragging = false;
    pointEl.classList.remove("dragging");
    if (area.hasPointerCapture(ev.pointerId)) area.releasePointerCapture(ev.pointerId);
    moveTo(...fromEvent(ev), { settle: 0 });
  };
  area.addEventListener("pointerup", release);
  area.addEventListener("pointercancel", release);
  area.addEventListener("dblclick", () => doPin());

  function keyStep(big) { return big && map ? 1 / (map.n - 1) : 0.05; }
  pointEl.addEventListener("keydown", (ev) => {
    if (!map) return;
    const s = keyStep(ev.shiftKey);
    const moves = { ArrowLeft: [-s, 0], ArrowRight: [s, 0], ArrowUp: [0, -s], ArrowDown: [0, s], Home: [-1, -1], End: [1, 1] };
    if (moves[ev.key]) {
      ev.preventDefault();
      moveTo(u + moves[ev.key][0], v + moves[ev.key][1], { settle: SETTLE_KEYS_MS });
    } else if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      doPin();
    }
  });

  // ---- pinning ----
  let pins = 0;
  async function doPin() {
    if (!map) return;
    clearError();
    try {
      const { keyframe } = await pin(body(u, v, map.fullSteps));
      pins += 1;
      const x = (u * (map.n - 1) + 0.5) / map.n, y = map.count === 2 ? 0.5 : (v * (map.n - 1) + 0.5) / map.n;
      pinsEl.append(el("span", { style: `left:${x * 100}%;top:${y * 100}%`, title: `pin ${pins}` }));
      onPin(keyframe, { u, v });
      setStatus(`Pinned u ${u.toFixed(2)}${map.count > 2 ? `, v ${v.toFixed(2)}` : ""} as a keyframe in the morph studio (${pins} pinned).`);
    } catch (err) { showError(err); }
  }
  pinButton.addEventListener("click", doPin);

  // ---- rendering the coarse grid ----
  $("map-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearError();
    try {
      const corners = editors.slice(0, count).map((e) => e.read());
      const n = numberField("map-grid", { integer: true });
      if (n < 2 || n > 9) throw new Error(`Grid cells per side: ${n} is outside 2 to 9.`);
      const cfgText = $("map-cfg").value.trim();
      map = {
        corners, count, n, cfg: cfgText === "" ? null : numberField("map-cfg"),
        gridSteps: numberField("map-grid-steps", { integer: true }),
        dragSteps: numberField("map-drag-steps", { integer: true }),
        fullSteps: numberField("map-full-steps", { integer: true }),
        generation: ++generation, ready: false,
      };
    } catch (err) { showError(err); return; }
    for (const e of cache.values()) URL.revokeObjectURL(e.url);
    cache.clear(); background.length = 0; wanted = null; shown = null;
    pinsEl.replaceChildren();
    area.dataset.corners = String(count);
    buildGrid();
    pinButton.disabled = false;
    place();
    moveTo(u, v, { settle: 0 });
  });

  function buildGrid() {
    const { n } = map;
    const rows = map.count === 2 ? 1 : n;
    cellsEl.style.gridTemplateColumns = `repeat(${n}, 1fr)`;
    cellsEl.style.gridTemplateRows = `repeat(${rows}, 1fr)`;
    cellsEl.replaceChildren();
    const tasks = [];
    for (let j = 0; j < rows; j++) {
      for (let i = 0; i < n; i++) {
        const cu = round(i / (n - 1)), cv = rows === 1 ? 0 : round(j / (n - 1));
        const cell = el("div", { class: "empty", "data-u": cu, "data-v": cv });
        cellsEl.append(cell);
        if (map.count === 3 && cu + cv > 1 + 1e-9) continue;
        tasks.push({ kind: "cell", u: cu, v: cv, steps: map.gridSteps, generation: map.generation, cell });
      }
    }
    // nearest to the point first, so the view around it fills in first
    tasks.sort((a, b) => Math.hypot(a.u - u, a.v - v) - Math.hypot(b.u - u, b.v - v));
    let done = 0;
    for (const t of tasks) {
      t.onDone = (entry) => {
        if (!entry) return;
        const img = el("img", { src: entry.url, alt: "", draggable: "false" });
        t.cell.className = "cell"; t.cell.replaceChildren(img);
        entry.keep = true;
        done += 1;
        progress.textContent = done < tasks.length ? `grid: ${done} of ${tasks.length} cells` : `grid: ${tasks.length} cells at ${map.gridSteps} steps`;
        if (done === tasks.length) { map.ready = true; area.dataset.ready = "true"; }
      };
      background.push(t);
    }
    area.dataset.ready = "false";
    progress.textContent = `grid: 0 of ${tasks.length} cells`;
    pump();
  }

  return {
    /** The point's keyframe spec without asking the server (used by tests of the page's own state). */
    get position() { return { u, v }; },
  };
}
