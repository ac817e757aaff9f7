// The health page's charts: uPlot over /ui/health/series.json, refreshed once per sampling interval.
// The page reads without this: the tables under each chart hold the same figures as totals.
"use strict";

(() => {
  const HEIGHT = 170;
  const OUTCOME_COLOURS = {
    accepted: "#1a7f37", duplicate: "#6e7781", spooled: "#9a6700", refused: "#c62828", unavailable: "#8250df",
  };
  const PALETTE = ["#0b5cad", "#c62828", "#9a6700", "#8250df", "#1a7f37", "#bf3989", "#0a7f8c", "#6e7781"];

  const count = (_u, value) => (value == null ? "-" : `${Math.round(value)}`);
  const ms = (_u, value) => (value == null ? "-" : `${value.toFixed(1)} ms`);

  // One series per label (outcome or reason); a chart with none gets a zero line rather than nothing.
  function perLabel(byLabel, minutes, empty) {
    const names = Object.keys(byLabel);
    if (names.length === 0) {
      return { series: [{ label: empty, stroke: PALETTE[7], width: 1.5, value: count }], values: [minutes.map(() => 0)] };
    }
    return {
      series: names.map((name, i) => ({
        label: name, stroke: OUTCOME_COLOURS[name] || PALETTE[i % PALETTE.length], width: 1.5, value: count,
      })),
      values: names.map((name) => byLabel[name]),
    };
  }

  // What each chart (data-chart) draws from the JSON.
  const CHARTS = {
    notifications: (data) => perLabel(data.notifications, data.minutes, "none"),
    refusals: (data) => perLabel(data.refusals, data.minutes, "none refused"),
    journal: (data) => ({
      series: [
        { label: "mean", stroke: PALETTE[0], width: 1.5, value: ms },
        { label: "95th percentile", stroke: PALETTE[1], width: 1.5, value: ms },
      ],
      values: [data.journal.mean_ms, data.journal.p95_ms],
    }),
  };

  const AXIS_UNITS = { notifications: "per minute", refusals: "per minute", journal: "ms" };

  // Axis text in the page's own colour, so the charts read in dark mode too.
  function axis(settings) {
    const ink = getComputedStyle(document.body).color;
    const line = { stroke: "rgba(128, 128, 128, 0.25)", width: 1 };
    return { stroke: ink, grid: line, ticks: line, ...settings };
  }

  function options(kind, element, series) {
    return {
      width: Math.max(element.clientWidth, 200),
      height: HEIGHT,
      series: [{}, ...series],
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [axis({}), axis({ label: AXIS_UNITS[kind], size: 60 })],
      cursor: { drag: { x: false, y: false } },
    };
  }

  function draw(element, data) {
    const kind = element.dataset.chart;
    const shape = CHARTS[kind](data);
    const aligned = [data.minutes, ...shape.values];
    const labels = shape.series.map((s) => s.label).join("\n");
    if (element.uplot && element.dataset.labels === labels) {
      element.uplot.setData(aligned);
      return;
    }
    if (element.uplot) element.uplot.destroy();
    element.textContent = "";
    element.uplot = new uPlot(options(kind, element, shape.series), aligned, element);
    element.dataset.labels = labels;
  }

  function say(container, message) {
    let note = container.querySelector(".health-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "health-note error";
      container.prepend(note);
    }
    note.textContent = message;
    note.hidden = !message;
  }

  async function load(container) {
    let data;
    try {
      const answer = await fetch(container.dataset.series, { headers: { Accept: "application/json" } });
      if (!answer.ok) {
        say(container, `The charts could not be loaded (${answer.status}).`);
        return null;
      }
      data = await answer.json();
    } catch (error) {
      say(container, "The charts could not be loaded: the service did not answer.");
      return null;
    }
    say(container, "");
    for (const element of container.querySelectorAll(".health-chart[data-chart]")) draw(element, data);
    container.dataset.drawn = String(Date.now());
    return data;
  }

  async function start() {
    const container = document.querySelector(".health-charts[data-series]");
    if (!container || typeof uPlot === "undefined") return;
    const data = await load(container);
    const seconds = Math.min(Math.max((data && data.sample_seconds) || 60, 5), 60);
    setInterval(() => load(container), seconds * 1000);
    new ResizeObserver(() => {
      for (const element of container.querySelectorAll(".health-chart")) {
        if (element.uplot) element.uplot.setSize({ width: Math.max(element.clientWidth, 200), height: HEIGHT });
      }
    }).observe(container);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
