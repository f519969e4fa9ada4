// Compare two versions (of one model or two): metric bars and deltas, hyperparameter and config
// differences, structure counts, and the evaluation service's HTML report as a download.
import { api, apiOr, blob } from "./api.js";
import { pairedBars } from "./charts.js";
import { append, badge, clear, empty, errorBox, h, json, keyValues, num, route, section, table, when } from "./dom.js";

export async function compareView(main, _params, query, signal) {
  const picked = { m1: query.get("m1") || "", v1: query.get("v1") || "", m2: query.get("m2") || "", v2: query.get("v2") || "" };
  append(main, h("h1", null, "Compare versions"));
  const models = await api("/models", { query: { page_size: 100, sort: "name" }, signal });
  const names = h("datalist", { id: "model-names" }, models.models.map((m) => h("option", { value: m.name })));

  const side = (n) => {
    const model = h("input", { name: `m${n}`, list: "model-names", value: picked[`m${n}`], placeholder: "model name or id", required: true, "aria-label": `model ${n}` });
    const version = h("select", { name: `v${n}`, required: true, "aria-label": `version ${n}` });
    const load = async () => {
      clear(version);
      if (!model.value.trim()) return;
      const page = await apiOr({ versions: [] }, `/models/${encodeURIComponent(model.value.trim())}/versions`, { query: { page_size: 100 }, signal });
      for (const v of page.versions) version.append(h("option", { value: v.version, selected: v.version === picked[`v${n}`] }, v.version));
      if (!page.versions.length) version.append(h("option", { value: "" }, "no versions"));
    };
    model.addEventListener("change", load);
    return { fields: h("fieldset", null, h("legend", null, n === 1 ? "A (from)" : "B (to)"), model, version), load, model, version };
  };
  const a = side(1);
  const b = side(2);
  const form = h("form", { class: "compare-form card", id: "compare-form" }, names, a.fields, b.fields, h("button", { type: "submit" }, "Compare"));
  const out = h("div", { id: "compare-result" });
  append(main, form, out);
  await Promise.all([a.load(), b.load()]);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // the choice goes into the URL (no secret in it), so a comparison can be bookmarked and reloaded
    location.hash = route("compare", { m1: a.model.value.trim(), v1: a.version.value, m2: b.model.value.trim(), v2: b.version.value });
  });
  if (picked.m1 && picked.v1 && picked.m2 && picked.v2) {
    const request = { model_1: { model_id: picked.m1, version: picked.v1 }, model_2: { model_id: picked.m2, version: picked.v2 } };
    append(out, h("p", { class: "muted" }, "Comparing…"));
    try {
      const result = await api("/models/compare", { method: "POST", json: request, signal });
      clear(out).append(...renderComparison(result, request));
    } catch (error) {
      if (signal.aborted) throw error;
      clear(out).append(errorBox(error));
    }
  }
}

function label(v) {
  return `${v.name}@${v.version}`;
}

function renderComparison(c, request) {
  const [A, B] = [c.model_1, c.model_2];
  // each metric's two values and which side is better ("model_1" / "model_2" / "tie")
  const side = { model_1: "a", model_2: "b", tie: "tie" };
  const rows = (c.performance?.metrics || []).map((m) => ({ ...m, a: m.model_1, b: m.model_2, better: side[m.better] ?? null }))
    .filter((m) => typeof m.a === "number" && typeof m.b === "number");
  const wins = c.performance?.wins || {};
  const download = h("button", { type: "button", class: "secondary", id: "report-download" }, "Download HTML report");
  download.addEventListener("click", async () => {
    download.disabled = true;
    try {
      const file = await blob("/models/compare?format=html", { json: request, accept: "text/html" });
      const url = URL.createObjectURL(file);
      const a = h("a", { href: url, download: `comparison-${c.comparison_id}.html` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } finally {
      download.disabled = false;
    }
  });
  const versionCard = (v, tag) => h("div", { class: "card version-card" }, h("h3", null, badge(tag, `side-${tag.toLowerCase()}`), " ", label(v)),
    keyValues([["Type", v.model_type], ["Dataset", v.dataset ? `${v.dataset} (seed ${v.dataset_seed})` : null],
      ["Evaluated", when(v.evaluated_at)], ["Dataset hash", v.dataset_hash ? h("code", null, v.dataset_hash.slice(0, 16)) : null]]));
  const params = c.parameters || {};
  const diffRows = ["hyperparameters", "config"].flatMap((group) => {
    const d = params[group] || {};
    return [
      ...Object.entries(d.changed || {}).map(([k, v]) => [group, k, v.model_1, v.model_2, "changed"]),
      ...Object.entries(d.only_in_model_2 || {}).map(([k, v]) => [group, k, undefined, v, "added"]),
      ...Object.entries(d.only_in_model_1 || {}).map(([k, v]) => [group, k, v, undefined, "removed"]),
    ];
  });
  const structure = c.structure;
  return [
    h("div", { class: "toolbar" }, h("span", { class: "muted" }, `comparison ${c.comparison_id} · ${when(c.created_at)}`), h("span", { class: "spacer" }), download),
    h("div", { class: "grid-2" }, versionCard(A, "A"), versionCard(B, "B")),
    section("Metrics", h("p", { class: "muted", id: "wins" }, `B is better on ${wins.model_2 ?? 0}, A on ${wins.model_1 ?? 0} of ${rows.length} metrics (ties not counted).`),
      rows.length ? pairedBars(rows, { labelA: `A ${label(A)}`, labelB: `B ${label(B)}` }) : empty("No metric both versions have."),
      rows.length ? table(["Metric", "A", "B", "Change (B − A)", "Better"], rows.map((m) => h("tr", { "data-metric": m.name },
        h("td", null, m.name), h("td", null, num(m.a)), h("td", null, num(m.b)),
        h("td", { class: m.better === "b" ? "good" : m.better === "a" ? "bad" : "" }, m.delta_display ?? num(m.delta)),
        h("td", null, m.better === "tie" ? "tie" : m.better ? m.better.toUpperCase() : "—"))), { id: "metric-table" }) : null),
    section("Parameters", params.model_type ? keyValues([["Model type", params.model_type.same ? `${params.model_type.model_1} (same)` : `${params.model_type.model_1} → ${params.model_type.model_2}`]]) : null,
      diffRows.length ? table(["Group", "Key", "A", "B", ""], diffRows.map(([g, k, va, vb, kind]) => h("tr", null,
        h("td", null, g), h("td", null, h("code", null, k)), h("td", null, fmt(va)), h("td", null, fmt(vb)), h("td", null, badge(kind))))) : empty("Same hyperparameters and config.")),
    structure ? section("Structure", keyValues([
      ["Parameters", `${num(structure.parameters?.model_1)} → ${num(structure.parameters?.model_2)} (${structure.parameters?.delta_display ?? num(structure.parameters?.delta)})`],
      ...Object.entries(structure.counts || {}).map(([k, v]) => [`layers ${k.replace("only_in_1", "only in A").replace("only_in_2", "only in B")}`, String(v)]),
    ]), (structure.layers || []).some((l) => l.status !== "same") ? h("details", null, h("summary", null, "Layers that differ"),
      table(["Layer", "Status", "Differences"], structure.layers.filter((l) => l.status !== "same").map((l) => h("tr", null,
        h("td", null, h("code", null, l.name)), h("td", null, badge(l.status)), h("td", null, (l.differences || []).join("; ")))))) : null) : null,
    c.notes?.length ? section("Notes", h("ul", null, c.notes.map((n) => h("li", null, n)))) : null,
    h("details", { class: "raw" }, h("summary", null, "Raw JSON"), json(c)),
  ].filter(Boolean);
}

function fmt(value) {
  if (value === undefined) return "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}
