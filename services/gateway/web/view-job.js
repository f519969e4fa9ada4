// A training job: its spec, and live loss / accuracy curves from the job's Server-Sent Events. The
// stream replays what happened so far, then follows until the job ends; a dropped connection resumes
// after the last event id it saw.
import { api, serverSentEvents } from "./api.js";
import { lineChart } from "./charts.js";
import { append, badge, clear, empty, errorBox, h, keyValues, link, num, route, section, table, when } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const RETRY_MS = 2000;

export async function jobView(main, [jobId], _query, signal) {
  const job = await api(`/training-jobs/${encodeURIComponent(jobId)}`, { signal });
  const model = await api(`/models/${encodeURIComponent(job.model_id)}`, { signal }).catch(() => ({ name: job.model_id }));
  const state = { job, epochs: new Map(), status: job.state, lastId: null, events: 0, note: "" };

  const stateBadge = h("span", { id: "job-state" });
  const status = h("p", { id: "stream-status", class: "muted" });
  const lossBox = h("div", { id: "loss-chart" });
  const accBox = h("div", { id: "accuracy-chart" });
  const epochsBox = h("div", { id: "epochs" });
  const resultBox = h("div", { id: "job-result" });
  const jobBox = h("div", { id: "job-details" });
  // a queued or running job can be stopped from here (needs training:write; the API says no otherwise)
  const cancelForm = h("form", { class: "cancel-form", id: "cancel-form" },
    h("input", { name: "reason", placeholder: "why (optional)", maxlength: 500, "aria-label": "cancel reason" }),
    h("button", { type: "submit", class: "danger" }, "Cancel job"));
  const cancelOut = h("div", { id: "cancel-result" });
  cancelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    cancelForm.elements[1].disabled = true;
    try {
      state.job = await api(`/training-jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST", json: { reason: cancelForm.elements.reason.value.trim() }, signal });
      state.status = state.job.state;
      draw();
    } catch (error) {
      if (!signal.aborted) clear(cancelOut).append(errorBox(error));
    } finally {
      cancelForm.elements[1].disabled = false;
    }
  });
  const details = (j) => keyValues([
    ["Job id", h("code", null, j.job_id)], ["Model", link(model.name, route("models", model.name))],
    ["Dataset", j.spec?.dataset], ["Pool", j.pool], ["Device", j.device || "—"], ["Worker", j.worker || "—"],
    ["Attempt", `${j.attempt} of at most ${j.max_attempts}`], ["Requested by", j.created_by],
    ["Created", when(j.created_at)], ["Started", when(j.started_at)], ["Finished", when(j.finished_at)],
  ]);
  // the job row itself changes on start, retry and end; read it again then (progress events carry their numbers)
  const refresh = async () => {
    state.job = await api(`/training-jobs/${encodeURIComponent(jobId)}`, { signal }).catch(() => state.job);
    draw();
  };

  append(main,
    h("p", { class: "crumbs" }, link(model.name, route("models", model.name)), " / training job"),
    h("div", { class: "title-row" }, h("h1", null, "Training job ", h("code", null, job.job_id.slice(0, 8)), " ", stateBadge),
      h("span", { class: "spacer" }), cancelForm),
    cancelOut,
    h("div", { class: "grid-2" },
      section("Job", jobBox),
      section("Hyperparameters", keyValues(Object.entries(job.spec?.hyperparameters || {}).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)])),
        resultBox)),
    section("Live curves", status, h("div", { class: "grid-2 charts" }, lossBox, accBox)),
    section("Epochs", epochsBox));

  const draw = () => {
    clear(stateBadge).append(badge(state.status));
    cancelForm.hidden = TERMINAL.has(state.status);
    clear(jobBox).append(details(state.job));
    const rows = [...state.epochs.values()].sort((a, b) => a.epoch - b.epoch);
    const series = (key) => rows.filter((r) => typeof r[key] === "number").map((r) => [r.epoch, r[key]]);
    clear(lossBox).append(lineChart([{ name: "train loss", points: series("train_loss") }, { name: "validation loss", points: series("val_loss") }],
      { xLabel: "epoch", yLabel: "loss", title: "Loss" }));
    clear(accBox).append(lineChart([{ name: "validation accuracy", points: series("val_accuracy") }],
      { xLabel: "epoch", yLabel: "accuracy", title: "Accuracy" }));
    clear(epochsBox).append(rows.length ? table(["Epoch", "Train loss", "Val loss", "Val accuracy", "Samples/s", "Learning rate"],
      rows.map((r) => h("tr", null, h("td", null, `${r.epoch}/${r.epochs}`), h("td", null, num(r.train_loss)), h("td", null, num(r.val_loss)),
        h("td", null, num(r.val_accuracy)), h("td", null, num(r.samples_per_second, 3)), h("td", null, num(r.learning_rate, 3)))),
      { id: "epochs-table" }) : empty("No epoch finished yet."));
    const finished = TERMINAL.has(state.status);
    status.textContent = `${finished ? "Finished" : "Live"} · ${state.epochs.size} epoch${state.epochs.size === 1 ? "" : "s"} · ${state.events} events${state.note ? ` · ${state.note}` : ""}`;
    status.dataset.done = String(finished);
    const result = state.job.result;
    clear(resultBox);
    if (result?.version) {
      resultBox.append(h("p", { class: "result" }, "Produced version ", link(result.version, route("models", model.name)),
        result.metrics ? h("span", { class: "muted" }, " · ", Object.entries(result.metrics).slice(0, 4).map(([k, v]) => `${k} ${num(v)}`).join(" · ")) : null));
    }
    if (state.job.last_error && state.status === "failed") resultBox.append(h("p", { class: "error" }, state.job.last_error));
    if (state.job.cancel_reason) resultBox.append(h("p", { class: "muted" }, `Cancelled: ${state.job.cancel_reason}`));
  };

  const apply = (event) => {
    state.events += 1;
    if (event.id) state.lastId = event.id;
    const data = event.data || {};
    if (data.state) state.status = data.state;
    if (event.event === "progress" && typeof data.epoch === "number") state.epochs.set(data.epoch, data);
    if (event.event === "failed" && data.reason) state.note = `attempt ${data.attempt} failed: ${data.reason}`;
  };

  draw();
  // Follow the stream in the background; the view is on screen until `signal` aborts.
  (async () => {
    // Always read the stream once (it replays a finished job's history), then follow until the job ends.
    for (let first = true; !signal.aborted && (first || !TERMINAL.has(state.status)); first = false) {
      if (!first) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      try {
        for await (const event of serverSentEvents(`/training-jobs/${encodeURIComponent(jobId)}/events`, { signal, lastEventId: state.lastId })) {
          apply(event);
          draw();
          if (event.event !== "progress") refresh();
        }
      } catch (error) {
        if (signal.aborted) return;
        const refused = error.status >= 400 && error.status < 500; // a retry would be refused the same way
        state.note = refused ? `live progress refused (${error.message})` : `connection lost (${error.message}); retrying`;
        draw();
        if (refused) return;
      }
    }
    if (signal.aborted) return;
    await refresh();
    state.status = state.job.state;
    state.note = "";
    draw();
  })();
}
