// Keyboard-first labelling. Every key presses a control that is on the page, so the page works the same
// with a mouse, and nothing here reads or writes the answers' text.
(function () {
  "use strict";
  const form = document.getElementById("label-form");
  const mode = document.body.dataset.mode;

  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "radio"));
  }
  function pick(name, value) {
    const input = form && form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", {bubbles: true})); }
  }
  function checked(name) {
    const input = form && form.querySelector(`input[name="${name}"]:checked`);
    return input ? input.value : null;
  }
  function submit(action) {
    const button = document.getElementById(action === "skip" ? "skip" : "submit");
    if (action === "skip") { button.click(); return; }
    if (form.reportValidity()) { button.click(); }
  }
  function moveConfidence(delta) {
    const now = parseInt(checked("confidence") || "2", 10);
    pick("confidence", String(Math.min(3, Math.max(1, now + delta))));
  }

  // steps mode: one current step, shown with a frame
  const steps = form ? Array.from(form.querySelectorAll(".step")) : [];
  let current = 0;
  function focusStep(i) {
    if (!steps.length) { return; }
    current = Math.min(steps.length - 1, Math.max(0, i));
    steps.forEach((s, k) => s.classList.toggle("current", k === current));
    steps[current].scrollIntoView({block: "nearest"});
  }
  function firstUnlabelled() {
    const k = steps.findIndex((s, i) => checked(`step-${i}`) === null);
    return k === -1 ? 0 : k;
  }
  steps.forEach((s, i) => s.addEventListener("click", () => focusStep(i)));
  if (steps.length) { focusStep(firstUnlabelled()); }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    const key = event.key;
    let handled = true;
    if (key === "u") {
      document.getElementById("undo-form").submit();
    } else if (!form) {
      handled = false;
    } else if (key === "Enter") {
      submit("label");
    } else if (key === "s") {
      submit("skip");
    } else if (key === "r") {
      document.getElementById("reason").focus();
    } else if (mode === "pairs" && ["1", "2", "3"].includes(key)) {
      pick("choice", key);
    } else if (mode === "pairs" && key === "ArrowLeft") {
      pick("choice", "1");
    } else if (mode === "pairs" && key === "ArrowRight") {
      pick("choice", "2");
    } else if (mode === "pairs" && (key === "ArrowUp" || key === "ArrowDown")) {
      moveConfidence(key === "ArrowUp" ? 1 : -1);
    } else if (mode === "steps" && (key === "ArrowUp" || key === "ArrowDown")) {
      focusStep(current + (key === "ArrowUp" ? -1 : 1));
    } else if (mode === "steps" && ["1", "2", "3", "+", "0", "-"].includes(key)) {
      const value = {"1": "+", "2": "0", "3": "-"}[key] || key;
      pick(`step-${current}`, value);
      focusStep(current + 1);
    } else if (mode === "steps" && key === "f") {
      for (let i = 0; i < current; i++) { pick(`step-${i}`, "+"); }
      pick(`step-${current}`, "-");
      focusStep(current + 1);
    } else {
      handled = false;
    }
    if (handled) { event.preventDefault(); }
  });
})();
