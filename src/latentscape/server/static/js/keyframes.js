// Keyframe editors: a row of prompt + seed (+ CFG) (+ an uploaded image), read back as the API's keyframe spec.
import { blobToBase64 } from "./api.js";
import { el } from "./ui.js";

let counter = 0;

/**
 * A keyframe editor row. `value`: {prompt, seed, cfg, image (base64), ...other spec fields kept as they are}.
 * Returns {node, read(): spec, title(text)}.
 */
export function keyframeEditor(value = {}, { title = "", withCfg = true, withImage = true, buttons = [] } = {}) {
  const n = ++counter;
  const state = { ...value };
  const titleEl = el("span", { class: "kf-title", text: title });
  const prompt = el("input", { type: "text", class: "kf-prompt", id: `kf${n}-prompt`, value: value.prompt ?? "",
    "aria-label": `${title || "keyframe"} prompt`, placeholder: "a prompt" });
  const seed = el("input", { type: "number", class: "kf-seed", id: `kf${n}-seed`, value: value.seed ?? "", step: "1" });
  const row = el("div", { class: "kf-row" },
    titleEl,
    el("div", { class: "kf-buttons" }, ...buttons),
    el("label", { class: "prompt", for: `kf${n}-prompt` }, prompt),
    el("label", { for: `kf${n}-seed` }, "seed", seed));
  let cfg = null;
  if (withCfg) {
    cfg = el("input", { type: "number", class: "kf-cfg", id: `kf${n}-cfg`, value: value.cfg ?? "", min: "0", max: "30",
      step: "0.5", placeholder: "default" });
    row.append(el("label", { for: `kf${n}-cfg` }, "CFG", cfg));
  }
  let file = null;
  if (withImage) {
    file = el("input", { type: "file", accept: "image/png,image/jpeg,image/webp", id: `kf${n}-image`, class: "kf-file" });
    const thumb = el("img", { class: "kf-thumb", alt: "", hidden: !state.image });
    if (state.image) thumb.src = `data:image/png;base64,${state.image}`;
    const clear = el("button", { type: "button", text: "remove image", hidden: !state.image });
    file.addEventListener("change", async () => {
      const f = file.files && file.files[0];
      if (!f) return;
      state.image = await blobToBase64(f);
      thumb.src = `data:${f.type || "image/png"};base64,${state.image}`;
      thumb.alt = `image: ${f.name}`;
      thumb.hidden = false; clear.hidden = false;
    });
    clear.addEventListener("click", () => {
      delete state.image; file.value = ""; thumb.hidden = true; thumb.removeAttribute("src"); clear.hidden = true;
    });
    row.append(el("label", { for: `kf${n}-image` }, "image", file), thumb, clear);
    if (state.image) thumb.alt = "the pinned point's image";
  }
  const setTitle = (text) => {
    titleEl.textContent = text;
    prompt.setAttribute("aria-label", `${text} prompt`);
    seed.setAttribute("aria-label", `${text} seed`);
    if (cfg) cfg.setAttribute("aria-label", `${text} CFG`);
    if (file) file.setAttribute("aria-label", `${text} image`);
  };
  setTitle(title || "keyframe");

  function read() {
    const spec = { ...state };
    const p = prompt.value.trim();
    if (p) spec.prompt = p; else delete spec.prompt;
    if (seed.value.trim() !== "") {
      const s = Number(seed.value);
      if (!Number.isInteger(s)) throw new Error(`${titleEl.textContent}: seed '${seed.value}' is not a whole number.`);
      spec.seed = s;
    } else delete spec.seed;
    if (cfg && cfg.value.trim() !== "") {
      const c = Number(cfg.value);
      if (!Number.isFinite(c) || c < 0) throw new Error(`${titleEl.textContent}: CFG '${cfg.value}' is not a number >= 0.`);
      spec.cfg = c;
    } else delete spec.cfg;
    if (!spec.prompt && !spec.image && spec.seed === undefined) {
      throw new Error(`${titleEl.textContent} is empty: give a prompt, a seed or an image.`);
    }
    return spec;
  }
  return { node: row, read, setTitle, prompt, seed };
}
