// Morph studio: an editable keyframe list, path settings, a render job with a progress bar, a frame scrubber
// and the job's video downloads.
import { cancelJob, fileUrl, progressOf, submitJob, waitJob } from "./api.js";
import { keyframeEditor } from "./keyframes.js";
import { showJobResult } from "./result.js";
import { clearError, el, numberField, setStatus, showError } from "./ui.js";

const VIDEO_KINDS = ["mp4", "gif", "webp"];

/** The frame PNGs of a morph job, in frame order (names sort as numbers: frame_00000.png, ...). */
export function frameResults(results) {
  const pngs = (results || []).filter((r) => r.kind === "png");
  const frames = pngs.filter((r) => /^frame_\d+\.png$/i.test(r.name));
  const list = frames.length ? frames : pngs.filter((r) => !/sheet|chart|keyframe/i.test(r.name));
  return list.slice().sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
}

export function setupMorph() {
  const $ = (id) => document.getElementById(id);
  const listEl = $("morph-keyframes");
  const editors = [];

  function relabel() {
    editors.forEach((e, i) => {
      e.setTitle(`keyframe ${i + 1}`);
      e.up.disabled = i === 0;
      e.down.disabled = i === editors.length - 1;
      e.remove.disabled = editors.length <= 2;
    });
  }

  function add(spec = {}, { focus = false } = {}) {
    const up = el("button", { type: "button", text: "↑", title: "move up" });
    const down = el("button", { type: "button", text: "↓", title: "move down" });
    const remove = el("button", { type: "button", text: "✕", title: "remove" });
    const editor = keyframeEditor(spec, { buttons: [up, down, remove] });
    Object.assign(editor, { up, down, remove });
    const li = el("li", {}, editor.node);
    editor.li = li;
    const index = () => editors.indexOf(editor);
    up.setAttribute("aria-label", "move keyframe up");
    down.setAttribute("aria-label", "move keyframe down");
    remove.setAttribute("aria-label", "remove keyframe");
    up.addEventListener("click", () => move(index(), -1, up));
    down.addEventListener("click", () => move(index(), +1, down));
    remove.addEventListener("click", () => {
      const i = index();
      editors.splice(i, 1); li.remove(); relabel();
      const next = editors[Math.min(i, editors.length - 1)];
      if (next) next.prompt.focus();
    });
    editors.push(editor); listEl.append(li); relabel();
    if (focus) editor.prompt.focus();
    return editor;
  }

  function move(i, delta, button) {
    const j = i + delta;
    if (j < 0 || j >= editors.length) return;
    [editors[i], editors[j]] = [editors[j], editors[i]];
    listEl.replaceChildren(...editors.map((e) => e.li));
    relabel();
    if (!button.disabled) button.focus(); else editors[j].prompt.focus();
  }

  add({ prompt: "grinning face, google style", seed: 1 });
  add({ prompt: "cat face, twitter style", seed: 2 });
  $("morph-add").addEventListener("click", () => add({}, { focus: true }));

  // ---- render ----
  const progress = $("morph-progress"), progressLabel = $("morph-progress-label");
  const renderButton = $("morph-render"), cancelButton = $("morph-cancel");
  const frameImg = $("morph-frame"), frameCaption = $("morph-frame-caption");
  // a live preview that finished loading while the morph still renders (counted for the browser test)
  frameImg.addEventListener("load", () => {
    if (frameImg.dataset.live === "true") frameImg.dataset.previews = String(Number(frameImg.dataset.previews || 0) + 1);
  });
  const scrub = $("morph-scrub"), scrubOut = $("morph-scrub-out"), play = $("morph-play");
  const downloads = $("morph-downloads"), resultEl = $("morph-result");
  let current = null;   // the job being rendered
  let frames = [];      // [{url, name}]
  const preloaded = [];

  function readBody() {
    const keyframes = editors.map((e) => e.read());
    if (keyframes.length < 2) throw new Error("A morph needs at least 2 keyframes.");
    const formats = [...$("morph-formats").querySelectorAll("input:checked")].map((i) => i.value);
    if (!formats.length) throw new Error("Videos: pick at least one of mp4, gif and webp.");
    return {
      keyframes,
      frames: numberField("morph-frames", { integer: true }),
      steps: numberField("morph-steps", { integer: true }),
      cfg: numberField("morph-cfg"),
      pacing: $("morph-pacing").value,
      fps: numberField("morph-fps"),
      closed: $("morph-loop").checked,
      pingpong: $("morph-pingpong").checked,
      formats,
    };
  }

  $("morph-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    let body;
    try { body = readBody(); } catch (err) { showError(err); return; }
    stopPlaying();
    renderButton.disabled = true;
    progress.value = 0;
    progressLabel.textContent = "queued";
    try {
      const { id } = await submitJob("morph", body);
      current = id;
      cancelButton.hidden = false;
      $("view-morph").dataset.job = id;
      const job = await waitJob(id, (j) => {
        const p = progressOf(j);
        progress.value = p.fraction;
        progressLabel.textContent = `Morph ${p.text}`;
        // the server's x0 preview of the step just done; asked for only when the job says it has one (no 404)
        if (j.preview && j.status === "running") {
          frameImg.dataset.live = "true";
          frameImg.src = fileUrl(`/latentscape/v1/jobs/${encodeURIComponent(j.id)}/preview?t=${Date.now()}`);
          frameImg.alt = `Live preview of the morph being rendered (${p.text})`;
          frameCaption.textContent = `live preview · ${p.text}`;
        }
      });
      cancelButton.hidden = true;
      if (job.status !== "done") {
        if (job.status === "failed") showError(new Error(job.error || "the morph failed."));
        setStatus(`Morph ${job.status}.`);
        return;
      }
      await showMorph(job);
      setStatus(`Morph done: ${frames.length} frames.`);
    } catch (err) {
      showError(err);
    } finally {
      renderButton.disabled = false;
      cancelButton.hidden = true;
    }
  });

  cancelButton.addEventListener("click", async () => {
    if (!current) return;
    try { await cancelJob(current); setStatus("Cancelling the morph…"); } catch (err) { showError(err); }
  });

  async function showMorph(job) {
    frames = frameResults(job.results).map((r) => ({ name: r.name, url: fileUrl(r.url), result: r }));
    preloaded.length = 0;
    for (const f of frames) { const im = new Image(); im.src = f.url; preloaded.push(im); }
    scrub.max = String(Math.max(0, frames.length - 1));
    scrub.value = "0";
    scrub.disabled = frames.length < 2;
    play.disabled = frames.length < 2;
    showFrame(0);
    downloads.replaceChildren();
    const videos = (job.results || []).filter((r) => VIDEO_KINDS.includes(r.kind));
    if (videos.length) downloads.append("Download: ");
    for (const r of videos) {
      downloads.append(el("a", { href: fileUrl(r.url), download: r.name, text: `${r.kind} (${r.name})` }));
    }
    // the manifest, and the keyframe file + images a `--keyframes keyframes.json` command line reads
    const files = (job.results || []).filter((r) => r.kind === "json" || /^keyframe/i.test(r.name));
    if (files.length) downloads.append(el("br"), "Files: ");
    for (const r of files) downloads.append(el("a", { href: fileUrl(r.url), download: r.name, text: r.name }));
    await showJobResult(resultEl, job, frames.length ? frames[0].result : null, { byRecipe: true });
  }

  function showFrame(i) {
    const f = frames[i];
    if (!f) return;
    frameImg.dataset.live = "false";
    frameImg.src = f.url;
    frameImg.alt = `Morph frame ${i + 1} of ${frames.length}`;
    frameImg.dataset.frame = String(i);
    scrubOut.textContent = `${i + 1} / ${frames.length}`;
    scrub.setAttribute("aria-valuetext", `frame ${i + 1} of ${frames.length}`);
    frameCaption.textContent = f.name;
  }
  scrub.addEventListener("input", () => showFrame(Number(scrub.value)));

  let timer = null;
  function stopPlaying() {
    if (timer) clearInterval(timer);
    timer = null;
    play.textContent = "Play"; play.setAttribute("aria-pressed", "false");
  }
  play.addEventListener("click", () => {
    if (timer) { stopPlaying(); return; }
    const fps = Math.max(1, Math.min(60, Number($("morph-fps").value) || 12));
    play.textContent = "Pause"; play.setAttribute("aria-pressed", "true");
    timer = setInterval(() => {
      const next = (Number(scrub.value) + 1) % frames.length;
      scrub.value = String(next);
      showFrame(next);
    }, 1000 / fps);
  });

  return {
    /** Append a keyframe spec (from a pinned map point). */
    addKeyframe(spec) { add(spec); },
    get count() { return editors.length; },
  };
}
