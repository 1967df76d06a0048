// The studio's only door to the server: JSON calls with the token, file URLs, job polling, PNG text chunks.
// Everything is same-origin; nothing here reaches the network beyond the page's own server.

const API = "/latentscape/v1";
const token = new URLSearchParams(window.location.search).get("token") || "";

export class ApiError extends Error {}

function headers(extra = {}) {
  const h = { ...extra };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

/** A server URL usable by <img>/<a>: the token goes in the query (the server accepts ?token= on GET files). */
export function fileUrl(url) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

async function errorOf(response) {
  let text = "";
  try {
    const body = await response.json();
    text = body && typeof body.error === "string" ? body.error : "";
  } catch (_) { /* not JSON */ }
  return new ApiError(text || `the server answered ${response.status} ${response.statusText}.`);
}

async function call(method, path, body, { raw = false, signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      signal,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError("the studio server cannot be reached; is `latentscape serve` still running?");
  }
  if (!response.ok) throw await errorOf(response);
  return raw ? response : response.json();
}

export const getJSON = (path, opts) => call("GET", path, undefined, opts);
export const postJSON = (path, body, opts) => call("POST", path, body, opts);

export const info = () => getJSON(`${API}/info`);
export const health = () => getJSON("/health");
export const submitJob = (verb, body) => postJSON(`${API}/jobs/${verb}`, body);
export const getJob = (id) => getJSON(`${API}/jobs/${encodeURIComponent(id)}`);
export const cancelJob = (id) => postJSON(`${API}/jobs/${encodeURIComponent(id)}/cancel`, {});
export const pin = (body) => postJSON(`${API}/point/pin`, body);

/** POST /point: a PNG rendered synchronously; returns {blob, seed, infotext, cli} (cli: null when no command
 * line can make that point, e.g. a corner with its own CFG). */
export async function point(body, opts) {
  const response = await call("POST", `${API}/point`, body, { ...opts, raw: true });
  const blob = await response.blob();
  return {
    blob,
    seed: response.headers.get("X-Latentscape-Seed"),
    infotext: unescapeHeader(response.headers.get("X-Latentscape-Infotext")),
    cli: unescapeHeader(response.headers.get("X-Latentscape-Cli")),
  };
}

/** A header value the server ASCII-escaped (Python's backslashreplace, newlines as \\n) back to its text. */
export function unescapeHeader(value) {
  if (!value) return null;
  return value.replace(/\\(?:n|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))/g, (m, x, u, U) =>
    m === "\\n" ? "\n" : String.fromCodePoint(parseInt(x || u || U, 16)));
}

const TERMINAL = new Set(["done", "failed", "cancelled"]);

/** Poll a job until it ends; onUpdate(job) on every poll. Resolves with the final job (any terminal status). */
export async function waitJob(id, onUpdate, { interval = 300, signal } = {}) {
  for (;;) {
    const job = await getJob(id);
    if (onUpdate) onUpdate(job);
    if (TERMINAL.has(job.status)) return job;
    await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, interval);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(t); reject(new DOMException("aborted", "AbortError")); }, { once: true });
    });
  }
}

/** A job's progress as a fraction in [0, 1] and a sentence. */
export function progressOf(job) {
  const p = job.progress || {};
  const frames = p.frames || 0, total = p.total || 0;
  let fraction = 0;
  if (frames > 0 && total > 0) fraction = (Math.max(0, (p.frame || 0)) + Math.min(1, (p.step || 0) / total)) / frames;
  else if (total > 0) fraction = (p.step || 0) / total;
  if (job.status === "done") fraction = 1;
  fraction = Math.max(0, Math.min(1, fraction));
  let text = job.status;
  if (job.status === "running") {
    const parts = [];
    if (frames > 0) parts.push(`frame ${Math.min(frames, (p.frame || 0) + 1)} of ${frames}`);
    if (total > 0) parts.push(`step ${p.step || 0} of ${total}`);
    text = `running${parts.length ? ": " + parts.join(", ") : ""}`;
  } else if (job.status === "failed") {
    text = `failed: ${job.error || "no reason given"}`;
  }
  return { fraction, text };
}

export async function fetchBlob(url) {
  const response = await call("GET", url, undefined, { raw: true });
  return response.blob();
}

export function blobToBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(new ApiError("the image could not be read."));
    reader.readAsDataURL(blob);
  });
}

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The text chunks of a PNG (tEXt, zTXt, iTXt) as {keyword: text}; {} for anything that is not a PNG. */
export async function pngText(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 8 || signature.some((b, i) => bytes[i] !== b)) return {};
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder("latin1"), utf8 = new TextDecoder("utf-8");
  const out = {};
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const length = view.getUint32(pos);
    const type = latin1.decode(bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, Math.min(bytes.length, pos + 8 + length));
    pos += 12 + length;
    if (type === "IEND") break;
    if (type !== "tEXt" && type !== "zTXt" && type !== "iTXt") continue;
    const nul = data.indexOf(0);
    if (nul < 0) continue;
    const keyword = latin1.decode(data.subarray(0, nul));
    try {
      if (type === "tEXt") out[keyword] = latin1.decode(data.subarray(nul + 1));
      else if (type === "zTXt") out[keyword] = latin1.decode(await inflate(data.subarray(nul + 2)));
      else {
        const compressed = data[nul + 1] === 1;
        let i = nul + 3;
        i = data.indexOf(0, i) + 1;  // language tag
        i = data.indexOf(0, i) + 1;  // translated keyword
        const text = data.subarray(i);
        out[keyword] = utf8.decode(compressed ? await inflate(text) : text);
      }
    } catch (_) { /* a damaged chunk is skipped, the image still shows */ }
  }
  return out;
}

/** Infotext and recipe of a PNG made by latentscape (chunks `parameters` and `latentscape`). */
export async function pngMetadata(blob) {
  const chunks = await pngText(blob);
  let recipe = null;
  if (chunks.latentscape) {
    try { recipe = JSON.parse(chunks.latentscape); } catch (_) { recipe = null; }
  }
  return { infotext: chunks.parameters || null, recipe };
}
