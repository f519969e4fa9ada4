// Models: the searchable list, and one model's page (metadata, what is live per environment, aliases,
// a metric across versions, the version timeline, deployments and training jobs).
import { api, apiOr, ApiError } from "./api.js";
import { lineChart } from "./charts.js";
import { ago, append, badge, bytes, clear, empty, h, json, keyValues, link, num, route, section, table, when } from "./dom.js";

const PAGE_SIZE = 25;

// The search route (GET /models/search) when the gateway has it, else the list's substring filter.
async function findModels(q, page, signal) {
  if (q) {
    try {
      const found = await api("/models/search", { query: { q, page, page_size: PAGE_SIZE }, signal });
      if (Array.isArray(found.models)) return { ...found, via: "search" };
    } catch (error) {
      // refused for this role, or the search service is absent or failing: the plain list still answers
      if (!(error instanceof ApiError) || !(error.status === 403 || error.status === 404 || error.status >= 500)) throw error;
      const list = await api("/models", { query: { q, page, page_size: PAGE_SIZE, sort: "-created_at" }, signal });
      return { ...list, via: "list", note: `Search is unavailable (${error.message}); showing name and description matches.` };
    }
  }
  return { ...(await api("/models", { query: { q, page, page_size: PAGE_SIZE, sort: "-created_at" }, signal })), via: "list" };
}

export async function modelsView(main, _params, query, signal) {
  const q = query.get("q") || "";
  const page = Math.max(1, Number(query.get("page")) || 1);
  const form = h("form", { class: "search", role: "search" },
    h("input", { type: "search", name: "q", value: q, placeholder: "Search models by name or description", "aria-label": "search" }),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route("models", { q: form.elements.q.value.trim() });
  });
  append(main, h("h1", null, "Models"), form);
  const found = await findModels(q, page, signal);
  const pages = Math.max(1, Math.ceil(found.total / PAGE_SIZE));
  if (found.note) append(main, h("p", { class: "muted", id: "search-note" }, found.note));
  append(main, section(`${found.total} model${found.total === 1 ? "" : "s"}${q ? ` matching “${q}”` : ""}`,
    found.models.length ? table(["Name", "Type", "Framework", "Version", "Task", "Tags", "Owner", "Updated"],
      found.models.map((m) => h("tr", { "data-model": m.name },
        h("td", null, link(m.name, route("models", m.name))), h("td", null, m.type), h("td", null, m.framework),
        h("td", null, m.version ? [h("code", null, m.version), " ", m.status ? badge(m.status) : null] : "—"),
        h("td", null, m.task || "—"), h("td", null, tagChips(m.tags)), h("td", null, m.owner),
        h("td", { title: when(m.updated_at) }, ago(m.updated_at)))), { id: "models-table" }) : empty("No models found."),
    pages > 1 ? h("nav", { class: "pager" },
      page > 1 ? link("← Newer", route("models", { q, page: page - 1 })) : null,
      h("span", null, `page ${page} of ${pages}`),
      page < pages ? link("Older →", route("models", { q, page: page + 1 })) : null) : null));
}

function tagChips(tags) {
  return Object.entries(tags || {}).map(([k, v]) => h("span", { class: "chip" }, v ? `${k}:${v}` : k));
}

export async function modelView(main, [ref], _query, signal) {
  const enc = encodeURIComponent(ref);
  const model = await api(`/models/${enc}`, { signal });
  const id = encodeURIComponent(model.model_id);
  const [versionsPage, stages, deployments, aliases, jobs] = await Promise.all([
    api(`/models/${id}/versions`, { query: { page_size: 100 }, signal }),
    apiOr({ stages: [] }, `/models/${id}/stages`, { signal }),
    apiOr({ deployments: [] }, `/models/${id}/deployments`, { signal }),
    apiOr([], `/models/${id}/aliases`, { signal }),
    apiOr({ jobs: [], total: 0 }, `/models/${id}/training-jobs`, { query: { page_size: 20 }, signal }),
  ]);
  const versions = versionsPage.versions; // newest first
  const stageOf = new Map(); // version -> {environment: stage}
  for (const st of stages.stages) stageOf.set(st.version, { ...(stageOf.get(st.version) || {}), [st.environment]: st.stage });
  const environments = [...new Set(["staging", "production", ...stages.stages.map((st) => st.environment)])];

  append(main,
    h("p", { class: "crumbs" }, link("Models", "#/models"), " / "),
    h("h1", { id: "model-name" }, model.name, " ", badge(model.type, "type")),
    model.description ? h("p", { class: "lead" }, model.description) : null);

  append(main, h("div", { class: "grid-2" },
    section("Details", keyValues([
      ["Model id", h("code", null, model.model_id)], ["Framework", model.framework], ["Task", model.task],
      ["Owner", model.owner], ["Created", when(model.created_at)], ["Updated", when(model.updated_at)],
      ["Tags", tagChips(model.tags)], ["Versions", String(versionsPage.total)],
    ]), Object.keys(model.metadata || {}).length ? h("details", null, h("summary", null, "Metadata"), json(model.metadata)) : null),
    section("Deployed", liveCards(environments, stages.stages),
      h("h3", null, "Aliases"),
      aliases.length ? h("div", { id: "aliases" }, aliases.map((a) => h("span", { class: "chip alias" }, `${a.alias} → ${a.version}`)))
        : empty("No aliases."))));

  append(main, experiments(model, jobs.jobs));
  append(main, metricTrend(versions));
  append(main, timeline(model, versions, stageOf, environments));
  append(main, h("div", { class: "grid-2" },
    section("Deployment history", deployments.deployments.length ? table(["Environment", "Version", "From", "Until", "Why", "By"],
      deployments.deployments.map((d) => h("tr", null, h("td", null, badge(d.environment, "env")),
        h("td", null, h("code", null, d.version)), h("td", null, when(d.started_at)),
        h("td", null, d.ended_at ? when(d.ended_at) : badge("live")), h("td", { class: "clip" }, [d.reason, d.end_reason ? ` · ended: ${d.end_reason}` : ""]),
        h("td", null, d.actor))), { id: "deployments" }) : empty("Never deployed.")),
    section("Training jobs", jobs.jobs.length ? table(["Job", "State", "Epoch", "Dataset", "Version", "Created"],
      jobs.jobs.map((j) => h("tr", null, h("td", null, link(j.job_id.slice(0, 8), route("jobs", j.job_id))),
        h("td", null, badge(j.state)), h("td", null, j.progress ? `${j.progress.epoch}/${j.progress.epochs}` : "—"),
        h("td", null, j.spec?.dataset || "—"), h("td", null, j.result?.version ? h("code", null, j.result.version) : ""),
        h("td", { title: when(j.created_at) }, ago(j.created_at)))), { id: "model-jobs" }) : empty("No training jobs."))));
}

function liveCards(environments, stages) {
  return h("div", { class: "env-cards", id: "live" }, environments.map((environment) => {
    const here = stages.filter((st) => st.environment === environment);
    const live = here.filter((st) => st.stage === "production");
    const staged = here.filter((st) => st.stage === "staging");
    return h("div", { class: "env-card", "data-environment": environment },
      h("div", { class: "env-name" }, environment),
      live.length ? live.map((st) => h("div", { class: "env-live" }, h("code", null, st.version), " ", badge("live", "production")))
        : h("div", { class: "muted" }, "nothing live"),
      staged.length ? h("div", { class: "muted small" }, `staging: ${staged.map((st) => st.version).join(", ")}`) : null);
  }));
}

// One metric across versions (oldest → newest), chosen from the metrics the versions carry.
function metricTrend(versions) {
  const ordered = [...versions].reverse();
  const names = [...new Set(ordered.flatMap((v) => Object.keys(v.metrics || {})))].sort();
  const box = section("Metric across versions");
  if (!names.length) return append(box, empty("No version carries metrics yet."));
  const preferred = ["accuracy", "val_accuracy", "f1_macro", "f1"].find((n) => names.includes(n)) || names[0];
  const select = h("select", { "aria-label": "metric" }, names.map((n) => h("option", { value: n, selected: n === preferred }, n)));
  const holder = h("div", { id: "metric-trend" });
  const draw = () => {
    const name = select.value;
    const labels = ordered.map((v) => v.version);
    const points = ordered.map((v, i) => [i, v.metrics?.[name]]).filter(([, y]) => typeof y === "number");
    clear(holder).append(lineChart([{ name, points }], { xLabel: "version", yLabel: name, xLabels: labels, width: 1180 }));
  };
  select.addEventListener("change", draw);
  draw();
  return append(box, h("label", { class: "inline" }, "Metric ", select), holder);
}

function timeline(model, versions, stageOf, environments) {
  const box = section(`Version timeline (${versions.length})`);
  if (!versions.length) return append(box, empty("No versions yet."));
  const chosen = new Set();
  const compare = h("a", { class: "button disabled", id: "compare-selected", href: "#/compare", "aria-disabled": "true" }, "Compare selected (pick 2)");
  const refresh = () => {
    const [a, b] = [...chosen];
    const ready = chosen.size === 2;
    compare.classList.toggle("disabled", !ready);
    compare.setAttribute("aria-disabled", String(!ready));
    compare.href = ready ? route("compare", { m1: model.name, v1: a, m2: model.name, v2: b }) : "#/compare";
  };
  const list = h("ol", { class: "timeline", id: "timeline" }, versions.map((v) => {
    const pick = h("input", { type: "checkbox", "aria-label": `compare ${v.version}` });
    pick.addEventListener("change", () => {
      if (pick.checked) {
        if (chosen.size >= 2) { pick.checked = false; return; }
        chosen.add(v.version);
      } else chosen.delete(v.version);
      refresh();
    });
    const stagesHere = stageOf.get(v.version) || {};
    return h("li", { class: "tl-item", "data-version": v.version },
      h("div", { class: "tl-dot" + (v.live_environments?.length ? " live" : "") }),
      h("div", { class: "tl-body" },
        h("div", { class: "tl-head" },
          h("label", { class: "pick" }, pick),
          h("code", { class: "tl-version" }, v.version), " ", badge(v.version_type, "vtype"),
          // draft is where every version starts: only the stages it reached are shown
          environments.filter((e) => stagesHere[e] && stagesHere[e] !== "draft").map((e) => badge(stagesHere[e] === "production" ? `live in ${e}` : `${stagesHere[e]} in ${e}`, stagesHere[e])),
          v.aliases.map((a) => h("span", { class: "chip alias" }, a)),
          h("span", { class: "spacer" }),
          h("span", { class: "muted small", title: when(v.created_at) }, `${when(v.created_at)} · ${v.created_by}`)),
        v.change_log ? h("p", { class: "tl-log" }, v.change_log) : null,
        h("div", { class: "tl-metrics" }, Object.entries(v.metrics || {}).slice(0, 8).map(([k, val]) => h("span", { class: "metric" }, h("span", { class: "muted" }, k), " ", num(val)))),
        h("div", { class: "muted small" },
          v.tags.length ? ["tags: ", v.tags.join(", "), " · "] : null,
          v.artifact ? `artifact ${bytes(v.artifact.size)} sha256:${String(v.artifact.sha256 || "").slice(0, 12)}` : "no artifact",
          v.lineage?.training_job_id ? [" · ", link("training job", route("jobs", v.lineage.training_job_id))] : null,
          v.lineage?.parent_version ? ` · from ${v.lineage.parent_version}` : null)));
  }));
  return append(box, h("div", { class: "toolbar" }, compare), list);
}

// Training runs side by side (seed 000's experiment record): only the hyperparameters that differ
// between runs are columns, so what changed and what it gave are read on one line; the best run by
// validation accuracy (else lowest validation loss) is marked.
function experiments(model, jobs) {
  const box = section("Experiments");
  const runs = jobs.filter((j) => j.state === "succeeded" && j.result);
  if (!runs.length) return append(box, empty("No finished training run yet."));
  const keys = [...new Set(runs.flatMap((j) => Object.keys(j.spec?.hyperparameters || {})))].sort();
  const shown = (j, k) => JSON.stringify(j.spec?.hyperparameters?.[k] ?? null);
  const varying = keys.filter((k) => new Set(runs.map((j) => shown(j, k))).size > 1);
  if (new Set(runs.map((j) => j.spec?.dataset)).size > 1) varying.unshift("dataset");
  const metricOf = (j, name) => j.result.metrics?.[name];
  const byAccuracy = runs.some((j) => typeof metricOf(j, "val_accuracy") === "number");
  // highest validation accuracy, ties broken by the lower validation loss
  const score = (j) => [byAccuracy ? metricOf(j, "val_accuracy") ?? -Infinity : 0, -(metricOf(j, "val_loss") ?? Infinity)];
  const better = (x, y) => x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
  const best = runs.reduce((a, b) => (better(score(b), score(a)) ? b : a));
  const value = (j, k) => (k === "dataset" ? j.spec?.dataset : j.spec?.hyperparameters?.[k]);
  return append(box,
    h("p", { class: "muted" }, varying.length ? `${runs.length} runs; columns are the settings that differ between them.`
      : `${runs.length} run${runs.length === 1 ? "" : "s"} with the same settings.`),
    table(["Run", ...varying, "Epochs run", "Val accuracy", "Val loss", "Duration", "Version"],
      runs.map((j) => h("tr", { class: j === best ? "best" : null, "data-job": j.job_id },
        h("td", null, link(j.job_id.slice(0, 8), route("jobs", j.job_id)), j === best ? h("span", { class: "badge badge-best", title: byAccuracy ? "highest validation accuracy" : "lowest validation loss" }, "best") : null),
        varying.map((k) => h("td", null, h("code", null, typeof value(j, k) === "object" ? JSON.stringify(value(j, k)) : String(value(j, k) ?? "—")))),
        h("td", null, j.result.epochs_run != null ? `${j.result.epochs_run}${j.result.stopped_early ? " (early stop)" : ""}` : "—"),
        h("td", null, num(metricOf(j, "val_accuracy"))), h("td", null, num(metricOf(j, "val_loss"))),
        h("td", null, typeof j.result.duration_s === "number" ? `${num(j.result.duration_s, 3)} s` : "—"),
        h("td", null, j.result.version ? h("code", null, j.result.version) : "—"))),
      { id: "experiments" }));
}
