// latentscape studio: tabs, the model line, and the wiring between views (a pinned map point -> a morph keyframe).
import { info } from "./api.js";
import { setupCfg } from "./cfg.js";
import { setupMap } from "./map.js";
import { setupMorph } from "./morph.js";
import { showError } from "./ui.js";

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab, focus) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    history.replaceState(null, "", `${location.pathname}${location.search}#${tab.id.replace("tab-", "")}`);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", (ev) => {
      const d = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
      if (d) { ev.preventDefault(); select(tabs[(i + d + tabs.length) % tabs.length], true); }
      if (ev.key === "Home") { ev.preventDefault(); select(tabs[0], true); }
      if (ev.key === "End") { ev.preventDefault(); select(tabs[tabs.length - 1], true); }
    });
  });
  const fromHash = () => tabs.find((t) => `#${t.id.replace("tab-", "")}` === location.hash);
  if (fromHash()) select(fromHash(), false);
  window.addEventListener("hashchange", () => { if (fromHash()) select(fromHash(), false); });
  return select;
}

async function showInfo() {
  const line = document.getElementById("model-info");
  try {
    const i = await info();
    line.textContent = `model ${i.model} (${i.family}, ${i.size[0]}x${i.size[1]})`;
    document.body.dataset.ready = "true";
    return i;
  } catch (err) {
    line.textContent = "not connected";
    showError(err);
    return null;
  }
}

const select = setupTabs();
const morph = setupMorph();
setupMap({
  onPin(keyframe) {
    morph.addKeyframe(keyframe);
    document.getElementById("tab-morph").textContent = `Morph studio (${morph.count})`;
  },
});
setupCfg();
showInfo().then((i) => {
  if (!i) return;
  const steps = i.limits && i.limits.max_steps;
  if (steps) for (const input of document.querySelectorAll('input[id$="steps"]')) input.max = String(steps);
  const frames = i.limits && i.limits.max_frames;
  if (frames) document.getElementById("morph-frames").max = String(frames);
});
export { select };
