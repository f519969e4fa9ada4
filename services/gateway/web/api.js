// The public API, called with the key kept in session storage (never in a URL, never in local storage).

const KEY = "cairn.apiKey";

export const session = {
  key: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && typeof problem === "object" ? (problem.detail || problem.title) : problem;
    super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(extra = {}) {
  return { authorization: `Bearer ${session.key()}`, ...extra };
}

function signedOut(response) {
  if (response.status === 401) {
    session.clear();
    window.dispatchEvent(new CustomEvent("cairn:signed-out"));
  }
}

async function body(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) return response.json();
  return response.text();
}

export async function api(path, { method = "GET", json, signal, accept = "application/json", query } = {}) {
  const params = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== "")) : null;
  const url = `/api/v1${path}${params && params.toString() ? `?${params}` : ""}`;
  const init = { method, signal, cache: "no-store", credentials: "omit", headers: headers({ accept }) };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(url, init);
  signedOut(response);
  const data = await body(response);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// The same, but a 404 (absent) or 403 (not allowed for this role) gives `fallback` instead of throwing.
export async function apiOr(fallback, path, options) {
  try {
    return await api(path, options);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 403)) return fallback;
    throw error;
  }
}

export async function blob(path, { json, accept }) {
  const response = await fetch(`/api/v1${path}`, {
    method: "POST", cache: "no-store", credentials: "omit",
    headers: headers({ accept, "content-type": "application/json" }), body: JSON.stringify(json),
  });
  signedOut(response);
  if (!response.ok) throw new ApiError(response.status, await body(response));
  return response.blob();
}

// Server-Sent Events over fetch: EventSource cannot send an Authorization header. Yields
// {id, event, data} per event (data parsed as JSON when it is JSON) until the server ends the stream.
export async function* serverSentEvents(path, { signal, lastEventId } = {}) {
  const extra = { accept: "text/event-stream" };
  if (lastEventId) extra["last-event-id"] = lastEventId;
  const response = await fetch(`/api/v1${path}`, { signal, cache: "no-store", credentials: "omit", headers: headers(extra) });
  signedOut(response);
  if (!response.ok) throw new ApiError(response.status, await body(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: null, event: "message", data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (event.data.length) yield { id: event.id, event: event.event, data: parse(event.data.join("\n")) };
          event = { id: event.id, event: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue; // comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data.push(text);
        else if (field === "event") event.event = text;
        else if (field === "id") event.id = text;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
