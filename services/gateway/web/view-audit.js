// The audit log: filters, pages by cursor, each entry's payload on demand, and the hash-chain check.
import { api } from "./api.js";
import { append, badge, clear, empty, errorBox, h, json, route, section, table, when } from "./dom.js";

const PAGE_SIZE = 50;

export async function auditView(main, _params, query, signal) {
  const filters = { model_id: query.get("model_id") || "", event_type: query.get("event_type") || "", actor: query.get("actor") || "" };
  const form = h("form", { class: "filters", id: "audit-filters" },
    h("input", { name: "event_type", value: filters.event_type, placeholder: "event type, e.g. VersionPromoted", "aria-label": "event type" }),
    h("input", { name: "actor", value: filters.actor, placeholder: "actor", "aria-label": "actor" }),
    h("input", { name: "model_id", value: filters.model_id, placeholder: "model id (uuid)", "aria-label": "model id" }),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = route("audit", Object.fromEntries(["event_type", "actor", "model_id"].map((k) => [k, form.elements[k].value.trim()])));
  });

  const verifyOut = h("div", { id: "verify-result" });
  const verify = h("button", { type: "button", id: "verify-chain", class: "secondary" }, "Verify hash chain");
  verify.addEventListener("click", async () => {
    verify.disabled = true;
    clear(verifyOut).append(h("p", { class: "muted" }, "Recomputing the chain…"));
    try {
      const r = await api("/audit/verify", { signal });
      clear(verifyOut).append(r.ok
        ? h("p", { class: "ok-box", "data-ok": "true" }, `Chain intact: ${r.checked} entries checked; head #${r.head.seq} ${r.head.hash.slice(0, 16)}…`)
        : h("p", { class: "error-box", "data-ok": "false" }, `Chain broken at #${r.first_broken.seq}: ${r.first_broken.reason} (${r.checked} checked)`));
    } catch (error) {
      clear(verifyOut).append(errorBox(error));
    } finally {
      verify.disabled = false;
    }
  });

  const body = h("tbody", null);
  const more = h("button", { type: "button", class: "secondary", id: "audit-more", hidden: true }, "Older entries");
  append(main, h("h1", null, "Audit log"),
    h("div", { class: "toolbar" }, form, h("span", { class: "spacer" }), verify), verifyOut,
    section("Entries", h("table", { id: "audit-table" },
      h("thead", null, h("tr", null, ["#", "When", "Event", "Subject", "Actor", "Source", ""].map((t) => h("th", null, t)))), body), more));

  let cursor = null;
  const load = async () => {
    const page = await api("/audit", { query: { ...filters, page_size: PAGE_SIZE, cursor }, signal });
    for (const entry of page.entries) body.append(...row(entry));
    if (!body.children.length) body.append(h("tr", null, h("td", { colspan: 7 }, empty("No entries match."))));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", () => load().catch((error) => more.replaceWith(errorBox(error))));
  await load();
}

function row(entry) {
  const detail = h("tr", { class: "payload", hidden: true }, h("td", { colspan: 7 }, json(entry.payload),
    h("p", { class: "muted small" }, `event ${entry.event_id} · topic ${entry.topic || "—"} · recorded ${when(entry.recorded_at)} · hash ${entry.hash.slice(0, 16)}… ← ${entry.prev_hash.slice(0, 16)}…`)));
  const toggle = h("button", { type: "button", class: "link" }, "payload");
  toggle.addEventListener("click", () => { detail.hidden = !detail.hidden; });
  const main = h("tr", { class: "audit-row", "data-seq": entry.seq, "data-event-type": entry.event_type },
    h("td", null, String(entry.seq)), h("td", null, when(entry.occurred_at)), h("td", null, badge(entry.event_type, "event")),
    h("td", { class: "clip" }, entry.model_id ? h("a", { href: route("models", entry.model_id) }, entry.subject || entry.model_id) : (entry.subject || "—")),
    h("td", null, entry.actor || "—"), h("td", null, entry.source), h("td", null, toggle));
  return [main, detail];
}
