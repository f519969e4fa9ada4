// Overview: how many models, the newest ones, what is live where, training jobs, recent audit events.
import { api, apiOr } from "./api.js";
import { bars } from "./charts.js";
import { ago, append, badge, clear, empty, h, link, num, route, section, table, when } from "./dom.js";

const RECENT = 12;
const ENVIRONMENTS = ["production", "staging"];

export async function overviewView(main, _params, _query, signal) {
  append(main, h("h1", null, "Overview"));
  const page = await api("/models", { query: { page_size: RECENT, sort: "-created_at" }, signal });
  const models = page.models;
  const [live, jobs, audit] = await Promise.all([
    liveVersions(models, signal),
    recentJobs(models, signal),
    apiOr(null, "/audit", { query: { page_size: 10 }, signal }),
  ]);
  const lastHour = audit && await apiOr(null, "/audit", { query: { page_size: 500, since: new Date(Date.now() - 3600_000).toISOString() }, signal });
  const running = jobs.filter((j) => j.job.state === "running" || j.job.state === "queued");

  append(main, h("div", { class: "stats" },
    stat("Models", page.total, "models-total"),
    stat("Live in production", live.filter((l) => l.environment === "production").length, "live-total"),
    stat("Training now", running.length, "running-total"),
    stat("Events in the last hour", lastHour ? `${lastHour.entries.length}${lastHour.next_cursor ? "+" : ""}` : "—", "events-hour")));

  append(main, h("div", { class: "grid-2" },
    section("Recent models", models.length ? table(["Name", "Type", "Framework", "Owner", "Created"],
      models.map((m) => h("tr", { "data-model": m.name },
        h("td", null, link(m.name, route("models", m.name))), h("td", null, m.type), h("td", null, m.framework),
        h("td", null, m.owner), h("td", { title: when(m.created_at) }, ago(m.created_at)))), { id: "recent-models" })
      : empty("No models yet. Register one with POST /api/v1/models.")),
    section("Live versions", live.length ? table(["Model", "Environment", "Version", "Since"],
      live.map((l) => h("tr", null, h("td", null, link(l.model.name, route("models", l.model.name))),
        h("td", null, badge(l.environment, "env")), h("td", null, h("code", null, l.version)),
        h("td", { title: when(l.updated_at) }, ago(l.updated_at)))), { id: "live-versions" })
      : empty("Nothing is live yet among the recent models."))));

  append(main, leaderboard(signal));
  append(main, h("div", { class: "grid-2" },
    section("Training jobs", jobs.length ? table(["Model", "Job", "State", "Epoch", "Result", "Created"],
      jobs.slice(0, 12).map(({ model, job }) => h("tr", null,
        h("td", null, link(model.name, route("models", model.name))),
        h("td", null, link(job.job_id.slice(0, 8), route("jobs", job.job_id))),
        h("td", null, badge(job.state)),
        h("td", null, job.progress ? `${job.progress.epoch}/${job.progress.epochs}` : "—"),
        h("td", null, job.result?.version ? h("code", null, job.result.version) : ""),
        h("td", { title: when(job.created_at) }, ago(job.created_at)))), { id: "recent-jobs" })
      : empty("No training jobs for the recent models.")),
    section("Recent activity", audit === null ? empty("Your role cannot read the audit log (audit:read).")
      : audit.entries.length ? table(["When", "Event", "Subject", "Actor"],
        audit.entries.map((e) => h("tr", null, h("td", { title: when(e.occurred_at), class: "nowrap" }, ago(e.occurred_at)),
          h("td", null, e.event_type), h("td", { class: "clip" }, subject(e, models)), h("td", { class: "clip" }, e.actor || "—"))),
        { id: "recent-audit" })
        : empty("No audit entries yet."))));
}

// An entry about a model shows the model's name (linked) when it is among the recent ones.
function subject(entry, models) {
  const model = entry.model_id && models.find((m) => m.model_id === entry.model_id);
  return model ? link(model.name, route("models", model.name)) : (entry.subject || "—");
}

function stat(label, value, id) {
  return h("div", { class: "stat card", id }, h("div", { class: "stat-value" }, typeof value === "number" ? num(value) : value),
    h("div", { class: "stat-label" }, label));
}

async function liveVersions(models, signal) {
  const found = await Promise.all(models.flatMap((model) => ENVIRONMENTS.map(async (environment) => {
    const view = await apiOr(null, `/models/${encodeURIComponent(model.model_id)}/production`, { query: { environment }, signal });
    return view ? { model, environment, version: view.version, updated_at: view.updated_at } : null;
  })));
  return found.filter(Boolean);
}

async function recentJobs(models, signal) {
  const pages = await Promise.all(models.map(async (model) => {
    const page = await apiOr({ jobs: [] }, `/models/${encodeURIComponent(model.model_id)}/training-jobs`, { query: { page_size: 5 }, signal });
    return page.jobs.map((job) => ({ model, job }));
  }));
  return pages.flat().sort((a, b) => (a.job.created_at < b.job.created_at ? 1 : -1));
}

const BOARD_METRICS = ["accuracy", "f1_macro", "latency_p99_ms", "throughput_per_s", "parameters", "size_bytes", "flops"];
const LOWER_IS_BETTER = new Set(["latency_p50_ms", "latency_p99_ms", "loss", "parameters", "size_bytes", "flops"]);

// Every model on one metric, by its representative version (the one in production, else the newest),
// from the search index; absent when search is not available to this key.
function leaderboard(signal) {
  const select = h("select", { "aria-label": "leaderboard metric" }, BOARD_METRICS.map((m) => h("option", { value: m }, m)));
  const holder = h("div", { id: "leaderboard" });
  const box = section("Models compared", h("label", { class: "inline" }, "Metric ", select), holder);
  const draw = async () => {
    const metric = select.value;
    const order = LOWER_IS_BETTER.has(metric) ? "asc" : "desc";
    let found;
    try {
      found = await api("/models/search", { query: { sort_by: metric, order, metric: `${metric}>=0`, page_size: 15 }, signal });
    } catch (error) {
      if (signal.aborted) return;
      clear(holder).append(empty(`The search service did not answer (${error.message}).`));
      return;
    }
    const rows = found.models.filter((m) => typeof m.metrics?.[metric] === "number")
      .map((m) => ({ label: `${m.name}@${m.version}`, value: m.metrics[metric], href: route("models", m.name) }));
    clear(holder).append(rows.length ? bars(rows, { width: 1180 }) : empty(`No model has ${metric} yet.`),
      h("p", { class: "muted small" }, `${order === "asc" ? "Lower" : "Higher"} is better; each model by its production version, else its newest.`));
  };
  select.addEventListener("change", draw);
  draw();
  return box;
}
