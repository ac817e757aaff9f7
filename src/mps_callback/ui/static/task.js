// The task page's small parts: segment times seek the player, the timeline shows where it plays.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const player = document.getElementById("player");
  const timeline = document.getElementById("timeline");

  // A segment's start (table link or timeline block) seeks the player when there is one.
  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-start]");
    if (!target || !player) return;
    const start = Number(target.getAttribute("data-start"));
    if (!Number.isFinite(start)) return;
    event.preventDefault();
    seekPlayer(player, start); // subtitles.js, loaded first
    player.scrollIntoView({ block: "nearest" });
  });

  // A playhead on every lane of the timeline (SVG attributes: the CSP forbids style="").
  if (player && timeline) {
    const length = Number(timeline.dataset.length);
    const heads = [];
    for (const svg of timeline.querySelectorAll("svg.lane-track")) {
      const head = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      head.setAttribute("class", "playhead");
      head.setAttribute("y", "0");
      head.setAttribute("height", "10");
      head.setAttribute("width", "2");
      head.setAttribute("x", "0");
      svg.append(head);
      heads.push(head);
    }
    player.addEventListener("timeupdate", () => {
      if (!(length > 0)) return;
      const x = String(Math.min(player.currentTime / length, 1) * 1000);
      for (const head of heads) head.setAttribute("x", x);
    });
  }
});
