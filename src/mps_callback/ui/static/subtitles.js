// The subtitle viewer: every cue of the track (fetched once as JSON), drawn as a virtualised list so
// 20,000 cues cost a few dozen rows in the DOM; clicking a cue seeks the player, the playing cue is
// highlighted and kept in view. Without JavaScript the server's table and pager stay.
"use strict";

// Seek a player that may not have loaded anything yet: players are preload="none" (a notification's
// URL is not fetched on page load), so the first seek asks for the media, and seeks once it knows it.
function seekPlayer(player, time) {
  if (player.readyState === 0 && player.preload === "none") {
    player.preload = "metadata";
    player.load();
  }
  player.currentTime = time; // before the metadata: where the player starts once it has it
}

const SubtitleViewer = (() => {
  const ROW = 30; // px: .cue-row's height in task.css
  const SPARE = 8; // rows drawn above and below the visible ones

  function clock(seconds) {
    if (seconds === null || !Number.isFinite(seconds)) return "";
    const millis = Math.round(Math.max(seconds, 0) * 1000);
    const h = Math.floor(millis / 3600000);
    const m = Math.floor((millis % 3600000) / 60000);
    const s = Math.floor((millis % 60000) / 1000);
    const ms = String(millis % 1000).padStart(3, "0");
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? `${h}:` : "") + `${mm}:${String(s).padStart(2, "0")}.${ms}`;
  }

  // The index of the cue playing at `time`: the last one starting at or before it, if it has not ended.
  function playing(cues, time) {
    let low = 0;
    let high = cues.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (cues[middle][0] <= time) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    if (found < 0) return -1;
    const [start, end] = cues[found];
    const until = end !== null && end > start ? end : start + 2;
    return time < until ? found : -1;
  }

  function create(root, cues) {
    const player = root.querySelector("video#player");
    const viewport = document.createElement("div");
    viewport.className = "cue-viewport";
    viewport.tabIndex = 0;
    viewport.setAttribute("role", "list");
    viewport.setAttribute("aria-label", `${cues.length} subtitle cues`);
    const spacer = document.createElement("div");
    spacer.className = "cue-spacer";
    spacer.style.height = `${cues.length * ROW}px`;
    viewport.style.height = `${Math.min(cues.length * ROW + 2, 420)}px`; // .cue-viewport's max-height
    viewport.append(spacer);

    const bar = document.createElement("div");
    bar.className = "cue-search";
    const input = document.createElement("input");
    input.type = "search";
    input.placeholder = "find in the cues";
    input.setAttribute("aria-label", "find in the cues");
    const counter = document.createElement("span");
    counter.className = "muted";
    counter.textContent = `${cues.length} cues`;
    bar.append(input, counter);

    let active = -1;
    let found = new Set();

    function row(index) {
      const [start, end, text, translation] = cues[index];
      const element = document.createElement("div");
      element.className = "cue-row";
      element.setAttribute("role", "listitem");
      element.dataset.index = String(index);
      element.style.top = `${index * ROW}px`;
      const time = document.createElement("span");
      time.className = "cue-time";
      time.textContent = clock(start);
      time.title = `${clock(start)} → ${clock(end)}`;
      const source = document.createElement("span");
      source.className = "cue-text";
      source.textContent = text;
      source.title = text;
      const trans = document.createElement("span");
      trans.className = "cue-trans";
      trans.textContent = translation;
      trans.title = translation;
      element.append(time, source, trans);
      if (index === active) element.classList.add("active");
      if (found.has(index)) element.classList.add("found");
      return element;
    }

    function draw() {
      const first = Math.max(Math.floor(viewport.scrollTop / ROW) - SPARE, 0);
      const last = Math.min(Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + SPARE, cues.length);
      const rows = [];
      for (let index = first; index < last; index += 1) rows.push(row(index));
      spacer.replaceChildren(...rows);
    }

    let pending = false;
    function redraw() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        draw();
      });
    }

    function reveal(index) {
      const top = index * ROW;
      if (top < viewport.scrollTop || top + ROW > viewport.scrollTop + viewport.clientHeight) {
        viewport.scrollTop = Math.max(top - viewport.clientHeight / 3, 0);
      }
    }

    function activate(index) {
      if (index === active) return;
      active = index;
      if (index >= 0) reveal(index);
      draw();
    }

    viewport.addEventListener("scroll", redraw, { passive: true });
    viewport.addEventListener("click", (event) => {
      const element = event.target.closest(".cue-row");
      if (!element) return;
      const index = Number(element.dataset.index);
      if (player) seekPlayer(player, cues[index][0]);
      activate(index);
    });
    if (player) {
      const follow = () => activate(playing(cues, player.currentTime));
      player.addEventListener("timeupdate", follow);
      player.addEventListener("seeked", follow);
    }

    input.addEventListener("input", () => {
      const needle = input.value.trim().toLowerCase();
      found = new Set();
      if (needle) {
        cues.forEach(([, , text, translation], index) => {
          if (text.toLowerCase().includes(needle) || translation.toLowerCase().includes(needle)) found.add(index);
        });
        counter.textContent = `${found.size} of ${cues.length} cues`;
        const first = found.values().next();
        if (!first.done) viewport.scrollTop = first.value * ROW;
      } else {
        counter.textContent = `${cues.length} cues`;
      }
      draw();
    });

    const place = root.querySelector(".cues");
    for (const old of place.querySelectorAll("#cue-table, #cue-pager")) old.hidden = true;
    place.append(bar, viewport);
    draw();
    root.dataset.ready = "1";
    return { activate, seek: (index) => player && seekPlayer(player, cues[index][0]) };
  }

  async function init(document_) {
    const root = document_.getElementById("subtitle-viewer");
    if (!root || !root.dataset.cues) return null;
    const answer = await fetch(root.dataset.cues, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!answer.ok) return null; // the server's table stays
    const body = await answer.json();
    return create(root, body.cues);
  }

  return { init, playing, clock };
})();

document.addEventListener("DOMContentLoaded", () => {
  SubtitleViewer.init(document).catch(() => {
    /* the server-rendered table stays */
  });
});
