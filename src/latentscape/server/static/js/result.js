// One result panel: infotext, recipe, "Replay" (POST jobs/replay) and "Copy as CLI command" (the job's `cli`).
import { blobToBase64, fetchBlob, fileUrl, submitJob, waitJob, progressOf, pngMetadata } from "./api.js";
import { showError, setStatus } from "./ui.js";

async function pixels(blob) {
  const bitmap = await createImageBitmap(blob);
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width; canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

/** The largest per-channel difference (0..255) between two images, or null if their sizes differ. */
export async function maxDifference(a, b) {
  const [pa, pb] = await Promise.all([pixels(a), pixels(b)]);
  if (pa.length !== pb.length) return null;
  let max = 0;
  for (let i = 0; i < pa.length; i++) max = Math.max(max, Math.abs(pa[i] - pb[i]));
  return max;
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try { await navigator.clipboard.writeText(text); return true; } catch (_) { /* fall through */ }
  }
  const area = document.createElement("textarea");
  area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
  document.body.appendChild(area); area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
  area.remove();
  return ok;
}

/**
 * Fill `container` with a result.
 * spec: {infotext, recipe, cli, noCliReason (the disabled copy button's title when cli is null), image: Blob|null (the PNG to compare a replay with), compareName (its result name),
 *        replayBody: () => Promise<object>|null (the body of POST jobs/replay), onReplayed(job)}
 */
export function showResult(container, spec) {
  container.replaceChildren(document.getElementById("result-template").content.cloneNode(true));
  container.hidden = false;
  const q = (sel) => container.querySelector(sel);
  q(".infotext").textContent = spec.infotext || "(this result carries no infotext)";
  q(".recipe").textContent = spec.recipe ? JSON.stringify(spec.recipe, null, 2) : "(no recipe)";
  const copy = q(".copy-cli"), replay = q(".replay"), note = q(".copied"), cliBox = q(".cli");
  if (spec.cli) {
    cliBox.textContent = spec.cli; cliBox.hidden = false;
    copy.addEventListener("click", async () => {
      const ok = await copyText(spec.cli);
      note.textContent = ok ? "copied" : "select the command below and copy it";
    });
  } else {
    copy.disabled = true; copy.title = spec.noCliReason || "the server gave no command line for this result";
  }
  if (spec.replayBody) {
    replay.addEventListener("click", async () => {
      replay.disabled = true;
      try {
        const body = await spec.replayBody();
        const { id } = await submitJob("replay", body);
        note.textContent = "replay queued";
        const job = await waitJob(id, (j) => { note.textContent = "replay " + progressOf(j).text; });
        if (job.status !== "done") throw new Error(`the replay ${job.status}: ${job.error || "no reason given"}`);
        const results = job.results || [];
        const png = results.find((r) => r.name === spec.compareName) || results.find((r) => r.kind === "png");
        if (png && spec.image) {
          const again = await fetchBlob(png.url);
          const diff = await maxDifference(spec.image, again);
          note.textContent = diff === 0 ? "replayed: identical pixels"
            : diff === null ? "replayed (a different size)" : `replayed: pixels within ${diff}/255`;
          container.dataset.replayDiff = String(diff);
        } else {
          note.textContent = `replayed (job ${job.id})`;
        }
        if (spec.onReplayed) spec.onReplayed(job);
        setStatus("replay done");
      } catch (err) {
        note.textContent = "";
        showError(err);
      } finally {
        replay.disabled = false;
      }
    });
  } else {
    replay.disabled = true; replay.title = "this result has no recipe to replay";
  }
}

/**
 * A result panel for a finished job: infotext, recipe and command from the job; "Replay" sends the job's PNG
 * `pngResult` (it carries the recipe chunk) or, with `byRecipe`, the job's recipe object, and compares the
 * replay's result of the same name with the original.
 */
export async function showJobResult(container, job, pngResult, { byRecipe = false } = {}) {
  let image = null, meta = { infotext: null, recipe: null };
  if (pngResult) {
    image = await fetchBlob(pngResult.url);
    meta = await pngMetadata(image);
  }
  const recipe = job.recipe || meta.recipe;
  let replayBody = null;
  if (byRecipe && job.recipe) replayBody = async () => ({ recipe: job.recipe });
  else if (image && meta.recipe) replayBody = async () => ({ image: await blobToBase64(image) });
  else if (job.recipe) replayBody = async () => ({ recipe: job.recipe });
  showResult(container, {
    infotext: job.infotext || meta.infotext, recipe, cli: job.cli, image, compareName: pngResult ? pngResult.name : null,
    replayBody,
  });
  return image;
}

export { fileUrl };
