// Shared by every page. Plain JavaScript, no build step; the page reads without it.
"use strict";

// <time datetime="...Z"> elements: shown in the browser's time zone, the UTC time kept on hover.
function localTimes(root) {
  for (const element of root.querySelectorAll("time[datetime]")) {
    if (element.dataset.local) continue;
    const instant = new Date(element.getAttribute("datetime"));
    if (Number.isNaN(instant.getTime())) continue;
    element.textContent = instant.toLocaleString(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    element.dataset.local = "1";
  }
}

document.addEventListener("DOMContentLoaded", () => localTimes(document));
document.addEventListener("htmx:afterSwap", (event) => localTimes(event.target));
