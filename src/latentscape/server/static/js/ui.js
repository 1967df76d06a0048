// Small page-wide helpers: the status line, the error banner, number fields.
const statusEl = () => document.getElementById("status");
const errorEl = () => document.getElementById("error");

export function setStatus(text) { statusEl().textContent = text; }

export function showError(err) {
  if (err && err.name === "AbortError") return;
  const el = errorEl();
  let text = err && err.message ? err.message : String(err);
  text = text.charAt(0).toUpperCase() + text.slice(1);
  el.textContent = text;
  el.hidden = false;
}

export function clearError() { const el = errorEl(); el.hidden = true; el.textContent = ""; }

/** The number in an <input>, or a clear error naming its label. */
export function numberField(id, { integer = false } = {}) {
  const input = document.getElementById(id);
  const value = Number(input.value);
  const label = (input.closest("label") || {}).textContent || id;
  if (input.value.trim() === "" || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new Error(`${label.trim().replace(/\s+/g, " ")}: '${input.value}' is not ${integer ? "a whole number" : "a number"}.`);
  }
  return value;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}
