// The tasks page's live view: ask every few seconds whether anything changed, while the tab is visible.
// The server answers 204 (htmx swaps nothing) until a task arrives or changes; then the new counts and rows.
"use strict";

(() => {
  function poll() {
    const live = document.getElementById("tasks-live");
    if (live && !document.hidden && window.htmx) window.htmx.trigger(live, "tasks-poll");
  }

  function start() {
    const live = document.getElementById("tasks-live");
    if (!live) return;
    const period = Number(live.dataset.pollMs) || 5000;
    window.setInterval(poll, period);
    // Back on the tab: catch up at once rather than at the next tick.
    document.addEventListener("visibilitychange", poll);
  }

  // The filter form leaves out the fields left empty (and "match" without a search), so the URL to
  // share says only what was asked; the server treats empty fields as "any" all the same.
  function compactForm(event) {
    const form = event.target;
    const search = form.elements.namedItem("q");
    for (const field of form.elements) {
      const unused = field.name === "match" ? !(search && search.value) : field.value === "";
      if (field.name && unused) field.disabled = true;
    }
  }

  function enableForm() {  // back to the page (bfcache): the fields must be editable again
    for (const field of document.querySelectorAll(".task-filters [disabled]")) field.disabled = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    start();
    const form = document.querySelector("form.task-filters");
    if (form) form.addEventListener("submit", compactForm);
  });
  window.addEventListener("pageshow", enableForm);
})();
