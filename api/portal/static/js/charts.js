// Bar charts as inline SVG (no library): stacked series per time bucket, with a data table beside
// them for screen readers and anyone who prefers numbers.

import { h, lang, svg, t } from "./ui.js";

let serial = 0;

function niceMax(n) {
  if (n <= 5) return 5;
  const pow = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) if (step * pow >= n) return step * pow;
  return 10 * pow;
}

const SUB_DAY = new Set(["1s", "10s", "1min", "10min", "1h"]);

/** A bucket's label in local time: the time of day for buckets shorter than a day, else the date. */
export function bucketLabel(iso, unit) {
  const d = new Date(iso);
  if (!SUB_DAY.has(unit)) return d.toLocaleDateString(lang);
  const seconds = unit === "1s" || unit === "10s";
  return d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined, hour12: false });
}

/** buckets: [{t, key: n, …}], series: [{key, label, cls}] → a <div> holding the SVG and a table. */
export function barChart({ buckets, series, title, unit }) {
  const unitLabel = t(`chart.unit.${unit}`);
  const label = (b) => bucketLabel(b.t, unit);
  const id = `chart${++serial}`;
  const W = 640;
  const H = 220;
  const pad = { left: 44, right: 8, top: 12, bottom: 40 };
  const innerW = W - pad.left - pad.right;
  const innerH = H - pad.top - pad.bottom;
  const totals = buckets.map((b) => series.reduce((n, s) => n + (b[s.key] || 0), 0));
  const max = niceMax(Math.max(1, ...totals));
  const slot = innerW / Math.max(1, buckets.length);
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  const y = (v) => pad.top + innerH - (v / max) * innerH;
  const parts = [svg("title", { id: `${id}-title` }, title), svg("desc", { id: `${id}-desc` }, t("chart.desc", { n: buckets.length, unit: unitLabel }))];
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    parts.push(svg("line", { x1: pad.left, x2: W - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    parts.push(svg("text", { x: pad.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(Math.round(v))));
  }
  buckets.forEach((b, i) => {
    let base = 0;
    const x = pad.left + i * slot + (slot - barW) / 2;
    for (const s of series) {
      const v = b[s.key] || 0;
      if (!v) continue;
      parts.push(svg("rect", { x, y: y(base + v), width: barW, height: y(base) - y(base + v), class: s.cls },
        svg("title", {}, `${label(b)} · ${s.label}: ${v}`)));
      base += v;
    }
  });
  const labelEvery = Math.max(1, Math.ceil(buckets.length / 6));
  buckets.forEach((b, i) => {
    if (i % labelEvery !== 0 && i !== buckets.length - 1) return;
    parts.push(svg("text", { x: pad.left + i * slot + slot / 2, y: H - pad.bottom + 16, class: "axis", "text-anchor": "middle" }, label(b)));
  });
  parts.push(svg("line", { x1: pad.left, x2: W - pad.right, y1: y(0), y2: y(0), class: "baseline" }));
  const legend = h("ul", { class: "legend" }, series.map((s) => h("li", {}, h("span", { class: `swatch ${s.cls}`, "aria-hidden": "true" }), s.label)));
  const table = h("details", { class: "chart-table" }, h("summary", {}, t("chart.table")),
    h("div", { class: "table-wrap" }, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("chart.period")), series.map((s) => h("th", { scope: "col" }, s.label)))),
      h("tbody", {}, buckets.map((b) => h("tr", {}, h("th", { scope: "row" }, `${new Date(b.t).toLocaleString(lang)}`), series.map((s) => h("td", {}, String(b[s.key] || 0)))))))));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-title ${id}-desc`, class: "chart-svg" }, parts);
  return h("div", {}, chart, legend, table);
}
