// CFG explorer: one prompt swept over CFG x seeds (jobs/sweep) with the server's measured adherence/diversity
// chart; a 1..15 slider from "exploratory" to "adherent" picks the nearest column of the grid.
import { fileUrl, progressOf, submitJob, waitJob } from "./api.js";
import { showJobResult } from "./result.js";
import { clearError, el, numberField, setStatus, showError } from "./ui.js";

/** The CFG values typed in the form: comma-separated numbers >= 0, at least one. */
export function parseCfgs(text) {
  const parts = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
  const values = parts.map(Number);
  if (!parts.length || values.some((x) => !Number.isFinite(x) || x < 0)) {
    throw new Error(`CFG values: '${text}' is not a comma-separated list of numbers >= 0 (e.g. 1,3,5,7.5,10,15).`);
  }
  return values;
}

export function setupCfg() {
  const $ = (id) => document.getElementById(id);
  const slider = $("cfg-slider"), out = $("cfg-slider-out"), reading = $("cfg-reading");
  const grid = $("cfg-grid"), chart = $("cfg-chart"), resultEl = $("cfg-result");
  const progress = $("cfg-progress"), progressLabel = $("cfg-progress-label"), run = $("cfg-run");
  let sweep = null;  // {cfgs, seeds} of the sweep on show

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
    reading.textContent = `CFG ${c} (${side}); nearest swept column: CFG ${sweep.cfgs[j]}.`;
    grid.dataset.selected = String(j);
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
    const cfgs = body.cfgs;
    const seeds = Array.from({ length: body.seeds }, (_, i) => body.seed + i);
    sweep = { cfgs, seeds };

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
    if (chartPng) {
      chart.replaceChildren(el("img", { src: fileUrl(chartPng.url), alt: "measured adherence and diversity against CFG" }));
    } else {
      chart.replaceChildren(el("p", { class: "muted", text: "The server made no chart for this sweep." }));
    }
    onSlider();
    await showJobResult(resultEl, job, sheetPng || cells[0] || null);
  }
}
