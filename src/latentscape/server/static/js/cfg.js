// CFG explorer: one prompt swept over CFG x seeds (jobs/sweep); a 1..15 slider from "exploratory" to
// "adherent" picks a column of the grid and a place on the measured adherence/diversity chart.
import { fileUrl, progressOf, submitJob, waitJob } from "./api.js";
import { showJobResult } from "./result.js";
import { clearError, el, numberField, setStatus, showError } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}, text) => {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
};

/** The CFG values typed in the form: comma-separated numbers >= 0, at least one. */
export function parseCfgs(text) {
  const parts = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
  const values = parts.map(Number);
  if (!parts.length || values.some((x) => !Number.isFinite(x) || x < 0)) {
    throw new Error(`CFG values: '${text}' is not a comma-separated list of numbers >= 0 (e.g. 1,3,5,7.5,10,15).`);
  }
  return values;
}

/** An SVG line chart of adherence (left axis, 0..1) and diversity (right axis) against CFG, with a marker. */
export function drawChart(container, table, markerCfg) {
  const W = 560, H = 260, L = 48, R = 56, T = 28, B = 40;
  const xs = table.map((r) => r.cfg);
  const xmin = Math.min(1, ...xs), xmax = Math.max(15, ...xs);
  const X = (c) => L + ((c - xmin) / (xmax - xmin || 1)) * (W - L - R);
  const hasAdh = table.some((r) => typeof r.adherence === "number");
  const dmax = Math.max(1e-6, ...table.map((r) => r.diversity || 0)) * 1.1;
  const Ya = (a) => T + (1 - a) * (H - T - B);
  const Yd = (d) => T + (1 - d / dmax) * (H - T - B);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "presentation" });
  root.append(svg("text", { x: L, y: 16, "font-weight": 700 }, "Measured on this sweep: adherence and diversity against CFG"));
  for (let i = 0; i <= 4; i++) {
    const a = i / 4, y = Ya(a);
    root.append(svg("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    if (hasAdh) root.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, a.toFixed(2)));
    root.append(svg("text", { x: W - R + 6, y: y + 4 }, (dmax * a).toFixed(3)));
  }
  for (const c of xs) {
    root.append(svg("line", { x1: X(c), x2: X(c), y1: H - B, y2: H - B + 4, class: "axis" }));
    root.append(svg("text", { x: X(c), y: H - B + 16, "text-anchor": "middle" }, String(c)));
  }
  root.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  root.append(svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, "CFG scale  (exploratory ← → adherent)"));
  if (hasAdh) {
    root.append(svg("text", { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`, "text-anchor": "middle" }, "adherence"));
    root.append(svg("polyline", { class: "adh", points: table.map((r) => `${X(r.cfg)},${Ya(r.adherence)}`).join(" ") }));
    for (const r of table) root.append(svg("circle", { cx: X(r.cfg), cy: Ya(r.adherence), r: 3, fill: "var(--accent)" }));
  }
  const rx = W - 8;
  root.append(svg("text", { x: rx, y: (T + H - B) / 2, transform: `rotate(90 ${rx} ${(T + H - B) / 2})`, "text-anchor": "middle" }, "diversity"));
  root.append(svg("polyline", { class: "div", points: table.map((r) => `${X(r.cfg)},${Yd(r.diversity)}`).join(" ") }));
  for (const r of table) root.append(svg("circle", { cx: X(r.cfg), cy: Yd(r.diversity), r: 3, fill: "#c2410c" }));
  const legendY = T + 4;
  if (hasAdh) {
    root.append(svg("line", { x1: W - R - 190, x2: W - R - 170, y1: legendY, y2: legendY, class: "adh" }));
    root.append(svg("text", { x: W - R - 166, y: legendY + 4 }, "adherence"));
  }
  root.append(svg("line", { x1: W - R - 96, x2: W - R - 76, y1: legendY, y2: legendY, class: "div" }));
  root.append(svg("text", { x: W - R - 72, y: legendY + 4 }, "diversity"));
  const marker = svg("line", { class: "marker", x1: X(markerCfg), x2: X(markerCfg), y1: T, y2: H - B, id: "cfg-marker" });
  root.append(marker);
  container.replaceChildren(root);
  return (c) => { marker.setAttribute("x1", X(c)); marker.setAttribute("x2", X(c)); };
}

export function setupCfg() {
  const $ = (id) => document.getElementById(id);
  const slider = $("cfg-slider"), out = $("cfg-slider-out"), reading = $("cfg-reading");
  const grid = $("cfg-grid"), chart = $("cfg-chart"), resultEl = $("cfg-result");
  const progress = $("cfg-progress"), progressLabel = $("cfg-progress-label"), run = $("cfg-run");
  let sweep = null;  // {cfgs, seeds, table (null: no measurements), moveMarker} of the sweep on show

  function nearest(c) {
    let best = 0;
    sweep.cfgs.forEach((x, i) => { if (Math.abs(x - c) < Math.abs(sweep.cfgs[best] - c)) best = i; });
    return best;
  }

  function onSlider() {
    const c = Number(slider.value);
    out.textContent = String(c);
    const side = c <= 4 ? "exploratory" : c >= 10 ? "adherent" : "balanced";
    slider.setAttribute("aria-valuetext", `CFG ${c}, ${side}`);
    if (!sweep) { reading.textContent = `CFG ${c}: ${side}. Run a sweep to see what it does to this prompt.`; return; }
    const j = nearest(c);
    grid.querySelectorAll(".selected").forEach((n) => n.classList.remove("selected"));
    grid.querySelectorAll(`[data-col="${j}"]`).forEach((n) => n.classList.add("selected"));
    const row = sweep.table ? sweep.table[j] : null;
    let text = `CFG ${c} (${side}); nearest measured column CFG ${sweep.cfgs[j]}`;
    if (row) {
      if (typeof row.adherence === "number") text += `: adherence ${row.adherence.toFixed(2)}`;
      if (typeof row.diversity === "number") text += `${typeof row.adherence === "number" ? "," : ":"} diversity ${row.diversity.toFixed(3)}`;
    }
    reading.textContent = text + ".";
    grid.dataset.selected = String(j);
    if (sweep.moveMarker) sweep.moveMarker(c);
  }
  slider.addEventListener("input", onSlider);
  onSlider();

  $("cfg-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    let body;
    try {
      const prompt = $("cfg-prompt").value.trim();
      if (!prompt) throw new Error("Prompt: write the prompt to sweep.");
      body = {
        prompts: [prompt],
        cfgs: parseCfgs($("cfg-values").value),
        seeds: numberField("cfg-seeds", { integer: true }),
        seed: numberField("cfg-seed", { integer: true }),
        steps: numberField("cfg-steps", { integer: true }),
      };
    } catch (err) { showError(err); return; }
    run.disabled = true;
    progress.value = 0;
    progressLabel.textContent = "queued";
    try {
      const { id } = await submitJob("sweep", body);
      const job = await waitJob(id, (j) => {
        const p = progressOf(j);
        progress.value = p.fraction;
        progressLabel.textContent = `Sweep ${p.text}`;
      });
      if (job.status !== "done") {
        if (job.status === "failed") showError(new Error(job.error || "the sweep failed."));
        setStatus(`Sweep ${job.status}.`);
        return;
      }
      await showSweep(job, body);
      setStatus(`Sweep done: ${body.seeds} seeds x ${body.cfgs.length} CFG values.`);
    } catch (err) {
      showError(err);
    } finally {
      run.disabled = false;
    }
  });

  async function showSweep(job, body) {
    const results = job.results || [];
    const pngs = results.filter((r) => r.kind === "png");
    const chartPng = pngs.find((r) => /chart/i.test(r.name));
    const sheetPng = pngs.find((r) => /sheet|grid/i.test(r.name));
    const cells = pngs.filter((r) => r !== chartPng && r !== sheetPng)
      .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
    const cfgs = (job.info && job.info.cfgs) || body.cfgs;
    const seeds = (job.info && job.info.seeds) || Array.from({ length: body.seeds }, (_, i) => body.seed + i);
    // the server's measurements (job.info, one row per CFG); a job without them shows the server's chart.png
    const table = job.info && Array.isArray(job.info.table) && job.info.table.length ? job.info.table : null;
    sweep = { cfgs, seeds, table, moveMarker: null };

    grid.replaceChildren();
    if (cells.length === cfgs.length * seeds.length) {
      grid.style.gridTemplateColumns = `auto repeat(${cfgs.length}, minmax(0, 96px))`;
      grid.append(el("span"));
      cfgs.forEach((c, j) => grid.append(el("span", { class: "col-label", "data-col": j, text: `CFG ${c}` })));
      seeds.forEach((s, i) => {
        grid.append(el("span", { class: "row-label", text: `seed ${s}` }));
        cfgs.forEach((c, j) => {
          const r = cells[i * cfgs.length + j];
          grid.append(el("img", { src: fileUrl(r.url), alt: `seed ${s} at CFG ${c}`, "data-col": j, width: 96, height: 96 }));
        });
      });
    } else if (sheetPng) {
      grid.style.gridTemplateColumns = "1fr";
      grid.append(el("img", { src: fileUrl(sheetPng.url), alt: `the sweep grid: seeds by CFG ${cfgs.join(", ")}`, style: "max-width:100%" }));
    }
    if (table && table.length) {
      sweep.moveMarker = drawChart(chart, table, Number(slider.value));
      chart.setAttribute("aria-label", "Measured against CFG: " + table.map((r) =>
        `CFG ${r.cfg}: ${typeof r.adherence === "number" ? `adherence ${r.adherence.toFixed(2)}, ` : ""}diversity ${Number(r.diversity).toFixed(3)}`).join("; "));
    } else if (chartPng) {
      chart.replaceChildren(el("img", { src: fileUrl(chartPng.url), alt: "measured adherence and diversity against CFG" }));
    } else {
      chart.replaceChildren(el("p", { class: "muted", text: "The server returned no measurements for this sweep." }));
    }
    onSlider();
    await showJobResult(resultEl, job, sheetPng || cells[0] || null);
  }
}
