// Entry point: sign-in, the hash router, and the shell. Each view is a function
// (main, params, query, signal) => Promise that fills `main`; `signal` aborts when the user navigates
// away, which also closes a live training stream.
import { api, ApiError, session } from "./api.js";
import { append, clear, errorBox, h } from "./dom.js";
import { auditView } from "./view-audit.js";
import { compareView } from "./view-compare.js";
import { jobView } from "./view-job.js";
import { modelView, modelsView } from "./view-models.js";
import { overviewView } from "./view-overview.js";

const ROUTES = [
  [/^$/, overviewView, "overview"],
  [/^models$/, modelsView, "models"],
  [/^models\/([^/]+)$/, modelView, "models"],
  [/^jobs\/([^/]+)$/, jobView, "models"],
  [/^compare$/, compareView, "compare"],
  [/^audit$/, auditView, "audit"],
];

const $ = (id) => document.getElementById(id);
let current = null; // AbortController of the view on screen

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  return { path: path.replace(/\/$/, ""), query: new URLSearchParams(search) };
}

async function render() {
  if (!session.key()) return showLogin();
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  const main = clear($("main"));
  const { path, query } = parseHash();
  const match = ROUTES.map(([re, view, nav]) => [path.match(re), view, nav]).find(([m]) => m);
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", match && a.dataset.nav === match[2]);
  if (!match) {
    append(main, h("section", { class: "card" }, h("h1", null, "Not found"), h("p", null, "No such page. "), h("a", { href: "#/" }, "Overview")));
    return;
  }
  const [m, view] = match;
  main.setAttribute("aria-busy", "true");
  try {
    await view(main, m.slice(1).map(decodeURIComponent), query, signal);
  } catch (error) {
    if (signal.aborted || error?.name === "AbortError") return;
    append(main, errorBox(error));
  } finally {
    if (!signal.aborted) main.removeAttribute("aria-busy");
  }
}

function showLogin(message = "") {
  current?.abort();
  $("main").hidden = true;
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("api-key").focus();
}

async function showApp() {
  const me = await api("/me");
  $("who").textContent = `${me.name} · ${me.role}`;
  $("who").title = me.permissions.join(", ");
  $("login").hidden = true;
  $("main").hidden = false;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  document.body.dataset.role = me.role;
  await render();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  session.set(key);
  $("api-key").value = "";
  try {
    await showApp();
  } catch (error) {
    session.clear();
    showLogin(error instanceof ApiError && error.status === 401 ? "That key was not accepted." : `Sign-in failed: ${error.message}`);
  }
}

function start() {
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => { session.clear(); showLogin(); });
  window.addEventListener("hashchange", () => { if (session.key()) render(); });
  window.addEventListener("cairn:signed-out", () => showLogin("Your key was refused or revoked; sign in again."));
  if (session.key()) showApp().catch(() => { session.clear(); showLogin(); });
  else showLogin();
}

start();
