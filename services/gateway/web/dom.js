// Small DOM helpers. Every value is put in as text or as an attribute, never parsed as HTML, so a model
// name or an audit payload cannot inject markup or script.

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") throw new Error("inline styles are refused by the CSP; use a class");
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, ...children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// "#/models/<ref>" links; every part is encoded, so data never changes the route's shape.
export function route(...parts) {
  const last = parts[parts.length - 1];
  let query = "";
  if (last && typeof last === "object") {
    parts = parts.slice(0, -1);
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(last)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    query = params.toString() ? `?${params}` : "";
  }
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/") + query;
}

export function link(text, href, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

// Local time as "2026-12-02 07:37:20": sortable, short, the same in every locale.
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function ago(iso) {
  if (!iso) return "";
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86400)}d ago`;
}

export function num(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) >= 1000) return value.toLocaleString();
  if (Math.abs(value) >= 1000) return value.toFixed(0);
  return String(Number(value.toPrecision(digits)));
}

export function bytes(n) {
  if (typeof n !== "number") return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${String(kind).replace(/[^a-z0-9_-]/gi, "")}` }, text);
}

export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", null, h("tr", null, headers.map((name) => h("th", null, name)))),
    h("tbody", null, rows));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), children);
}

export function empty(text) {
  return h("p", { class: "muted empty" }, text);
}

export function keyValues(entries) {
  return h("dl", { class: "kv" }, entries.filter(([, v]) => v !== undefined).map(([k, v]) => [
    h("dt", null, k), h("dd", null, v === null || v === "" ? "—" : v)]));
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

// A failed request shown in place: the problem's detail and the fields it names.
export function errorBox(error) {
  const problem = error && typeof error.problem === "object" ? error.problem : null;
  return h("div", { class: "error-box", role: "alert" },
    h("strong", null, error && error.status ? `Request failed (${error.status})` : "Something went wrong"),
    h("p", null, problem?.detail || problem?.title || error?.message || String(error)),
    problem?.errors?.length
      ? h("ul", null, problem.errors.map((e) => h("li", null, `${e.field ?? ""}: ${e.message ?? e.detail ?? ""}`)))
      : null);
}
