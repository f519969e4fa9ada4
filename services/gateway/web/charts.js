// Charts drawn as inline SVG, no library: a line chart (training curves, a metric across versions) and
// paired bars (two versions per metric). Colours come from CSS classes (series-0, series-1...).
import { h, num, s } from "./dom.js";

const WIDTH = 640; // viewBox units; a wide chart (a full-width card) gets a wider box, so text keeps its size
const H = 260;
const PAD = { left: 56, right: 16, top: 16, bottom: 40 };

// Round tick steps (1, 2, 5 × 10^n) covering [lo, hi].
export function ticks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad; hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((m) => raw <= m);
  const out = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < hi) out.push(Number((out[out.length - 1] + step).toPrecision(12)));
  return out;
}

// series: [{name, points: [[x, y], ...]}]; options: {xLabel, yLabel, xLabels (x index → text), title}
export function lineChart(series, { xLabel = "", yLabel = "", xLabels = null, title = "", width = WIDTH } = {}) {
  const W = width;
  const all = series.flatMap((line) => line.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const svg = s("svg", { class: "chart line-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title || yLabel });
  if (!all.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, class: "chart-empty", "text-anchor": "middle" }, "no data yet"));
    return wrap(svg, series, title);
  }
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  // categorical x (versions): every label has its slot, with or without a value
  const xt = xLabels ? xLabels.map((_, i) => i) : ticks(Math.min(...xs), Math.max(...xs), 6).filter(Number.isInteger);
  const yt = ticks(Math.min(...ys), Math.max(...ys));
  const [x0, x1] = [Math.min(...xs, ...xt), Math.max(...xs, ...xt)];
  const [y0, y1] = [yt[0], yt[yt.length - 1]];
  const px = (x) => PAD.left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const py = (y) => H - PAD.bottom - (y1 === y0 ? 0.5 : (y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);

  const grid = s("g", { class: "grid" });
  for (const y of yt) {
    grid.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: py(y), y2: py(y) }));
    grid.append(s("text", { x: PAD.left - 6, y: py(y) + 4, "text-anchor": "end", class: "tick" }, num(y, 3)));
  }
  const every = Math.max(1, Math.ceil(xt.length / 10));
  xt.forEach((x, i) => {
    if (i % every) return;
    grid.append(s("text", { x: px(x), y: H - PAD.bottom + 16, "text-anchor": "middle", class: "tick" },
      xLabels ? (xLabels[x] ?? "") : num(x)));
  });
  grid.append(s("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom }));
  grid.append(s("line", { class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: H - PAD.bottom }));
  if (xLabel) grid.append(s("text", { x: (PAD.left + W - PAD.right) / 2, y: H - 6, "text-anchor": "middle", class: "axis-label" }, xLabel));
  if (yLabel) grid.append(s("text", { x: 14, y: (PAD.top + H - PAD.bottom) / 2, "text-anchor": "middle", class: "axis-label",
    transform: `rotate(-90 14 ${(PAD.top + H - PAD.bottom) / 2})` }, yLabel));
  svg.append(grid);

  series.forEach((line, i) => {
    const points = line.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).sort((a, b) => a[0] - b[0]);
    if (!points.length) return;
    const g = s("g", { class: `series series-${i}`, "data-series": line.name });
    g.append(s("polyline", { points: points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ") }));
    for (const [x, y] of points) {
      g.append(s("circle", { class: "pt", cx: px(x).toFixed(1), cy: py(y).toFixed(1), r: 3 },
        s("title", null, `${line.name} ${xLabels ? xLabels[x] : x}: ${num(y)}`)));
    }
    svg.append(g);
  });
  return wrap(svg, series, title);
}

function wrap(svg, series, title) {
  return h("figure", { class: "chart-box" },
    title ? h("figcaption", null, title) : null,
    svg,
    h("div", { class: "legend" }, series.map((line, i) => h("span", { class: `key series-${i}` }, line.name))));
}

// rows: [{name, a, b, better}] with labels for a and b; each metric gets its own scale (accuracy and
// latency in ms cannot share an axis), so bar lengths compare the two versions within a metric.
export function pairedBars(rows, { labelA = "A", labelB = "B", width = 1180 } = {}) {
  const rowH = 46;
  const left = 170;
  const right = 110;
  const height = rows.length * rowH + 10;
  const svg = s("svg", { class: "chart bar-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "metric comparison" });
  rows.forEach((row, i) => {
    const top = 6 + i * rowH;
    const scale = Math.max(Math.abs(row.a), Math.abs(row.b)) || 1;
    const barLength = (v) => Math.max(1, (Math.abs(v) / scale) * (width - left - right));
    const g = s("g", { class: "metric-row", "data-metric": row.name });
    g.append(s("text", { x: left - 8, y: top + 24, "text-anchor": "end", class: "metric-name" }, row.name));
    [["a", row.a, 0], ["b", row.b, 1]].forEach(([side, value, k]) => {
      const y = top + 3 + k * 19;
      const cls = `bar bar-${side}${row.better === side ? " better" : ""}`;
      g.append(s("rect", { class: cls, x: left, y, width: barLength(value).toFixed(1), height: 16, rx: 3 },
        s("title", null, `${side === "a" ? labelA : labelB}: ${num(value)}`)));
      g.append(s("text", { x: left + barLength(value) + 6, y: y + 12, class: "bar-value" }, num(value)));
    });
    svg.append(g);
  });
  return h("figure", { class: "chart-box" }, svg,
    h("div", { class: "legend" }, h("span", { class: "key bar-a" }, labelA), h("span", { class: "key bar-b" }, labelB)));
}

// rows: [{label, value, href}] as horizontal bars on one scale (one metric across models).
export function bars(rows, { width = 640, format = num } = {}) {
  const rowH = 26;
  const left = 190;
  const right = 90;
  const max = Math.max(...rows.map((r) => Math.abs(r.value)), 0) || 1;
  const svg = s("svg", { class: "chart bar-chart single", viewBox: `0 0 ${width} ${rows.length * rowH + 8}`, role: "img", "aria-label": "bars" });
  rows.forEach((row, i) => {
    const y = 4 + i * rowH;
    const length = Math.max(1, (Math.abs(row.value) / max) * (width - left - right));
    const label = s("text", { x: left - 8, y: y + 15, "text-anchor": "end", class: "metric-name" }, row.label);
    const g = s("g", { class: "bar-row", "data-label": row.label });
    g.append(row.href ? s("a", { href: row.href }, label) : label);
    g.append(s("rect", { class: `bar series-bar${i === 0 ? " better" : ""}`, x: left, y: y + 3, width: length.toFixed(1), height: 16, rx: 3 },
      s("title", null, `${row.label}: ${format(row.value)}`)));
    g.append(s("text", { x: left + length + 6, y: y + 15, class: "bar-value" }, format(row.value)));
    svg.append(g);
  });
  return h("figure", { class: "chart-box" }, svg);
}
