// headwater dashboard: reads /api/views, /api/runs and POST /features/online.
// Data is only ever written with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "headwater.token";
const REFRESH_MS = 30000;
const RUN_LIMIT = 25;
const INTEGER_TYPES = /^u?int(8|16|32|64)$/;
const FLOAT_TYPES = /^(float|halffloat|double)$/;

let views = [];

const $ = (id) => document.getElementById(id);

class AuthError extends Error {}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    showTokenPanel(token ? "The server refused this token." : null);
    throw new AuthError("unauthorized");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.fix = body.fix;
    throw error;
  }
  return body;
}

// ------------------------------------------------------------------ formatting
function fmtTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
}

function fmtSpan(seconds) {
  const s = Math.abs(seconds);
  if (s < 1) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function fmtInt(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

function badge(status, label) {
  const known = ["success", "failed", "interrupted", "aborted", "running", "stale"].includes(status);
  return el("span", { class: `badge ${known ? status : "none"}`, text: label || status });
}

function cell(content, cls) {
  const td = el("td", { class: cls });
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function twoLines(main, sub, mainClass) {
  const span = el("span", {}, [el("span", { class: mainClass, text: main })]);
  if (sub) span.append(el("span", { class: "sub", text: sub }));
  return span;
}

function emptyRow(tbody, columns, text) {
  tbody.replaceChildren(el("tr", { class: "empty" }, [el("td", { colspan: columns, text })]));
}

// ------------------------------------------------------------------ views
function renderViews(data) {
  views = data.views;
  $("project").textContent = data.project;
  $("views-count").textContent = `${views.length} view${views.length === 1 ? "" : "s"}`;
  const tbody = $("views-table").tBodies[0];
  if (!views.length) return emptyRow(tbody, 8, "No feature views: run `headwater apply`.");
  tbody.replaceChildren(
    ...views.map((v) => {
      const features = v.features.map((f) => f.name).join(", ");
      const keys = v.join_keys.map((k) => k.name).join(", ");
      const freshness = el("span");
      if (v.newest_event_age_seconds !== null) {
        freshness.append(`${fmtSpan(v.newest_event_age_seconds)} ago `);
        if (v.stale) freshness.append(badge("stale", "older than ttl"));
      } else freshness.append("—");
      const run = v.last_run;
      const lastRun = run
        ? el("span", {}, [badge(run.status), el("span", { class: "sub time", text: fmtTime(run.started_at) })])
        : badge("none", "never run");
      return el("tr", { "data-view": v.name }, [
        cell(twoLines(v.name, features, "view-name")),
        cell(twoLines(v.shape, v.window)),
        cell(twoLines(v.entity, keys)),
        cell(twoLines(v.source, v.source_kind)),
        cell(fmtInt(v.offline_rows), "num"),
        cell(fmtTime(v.newest_event), "time"),
        cell(freshness),
        cell(lastRun),
      ]);
    }),
  );
  fillViewSelects();
}

function fillViewSelects() {
  for (const id of ["runs-view", "lookup-view"]) {
    const select = $(id);
    const current = select.value;
    const options = id === "runs-view" ? [el("option", { value: "", text: "all views" })] : [];
    const choices = id === "lookup-view" ? views.filter((v) => v.online !== false) : views;
    for (const v of choices) options.push(el("option", { value: v.name, text: v.name }));
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }
  renderKeyInputs();
}

// ------------------------------------------------------------------ runs
async function loadRuns() {
  const view = $("runs-view").value;
  const query = new URLSearchParams({ limit: String(RUN_LIMIT) });
  if (view) query.set("view", view);
  const data = await api(`/api/runs?${query}`);
  const tbody = $("runs-table").tBodies[0];
  if (!data.runs.length) return emptyRow(tbody, 8, "No runs yet: run `headwater run`.");
  tbody.replaceChildren(
    ...data.runs.map((r) =>
      el("tr", { "data-run": r.run_id }, [
        cell(badge(r.status)),
        cell(r.view, "view-name"),
        cell(r.kind),
        cell(fmtTime(r.started_at), "time"),
        cell(r.duration_seconds === null ? "—" : fmtSpan(r.duration_seconds), "num"),
        cell(fmtInt(r.rows_in), "num"),
        cell(fmtInt(r.rows_out), "num"),
        cell(el("span", { class: "error-text", text: r.error || "", title: r.error })),
      ]),
    ),
  );
}

// ------------------------------------------------------------------ lookup
function selectedView() {
  return views.find((v) => v.name === $("lookup-view").value);
}

function renderKeyInputs() {
  const view = selectedView();
  const keys = $("lookup-keys");
  const previous = Object.fromEntries([...keys.querySelectorAll("input")].map((i) => [i.name, i.value]));
  keys.replaceChildren(
    ...(view ? view.join_keys : []).map((k) =>
      el("label", {}, [
        k.name,
        el("input", { name: k.name, required: "", value: previous[k.name] ?? "", placeholder: k.type || "" }),
      ]),
    ),
  );
}

function typedKey(raw, type) {
  const text = raw.trim();
  if (type && INTEGER_TYPES.test(type) && /^-?\d+$/.test(text)) return Number(text);
  if (type && FLOAT_TYPES.test(type) && text !== "" && !Number.isNaN(Number(text))) return Number(text);
  return text;
}

function showValue(value) {
  if (value === null || value === undefined) return el("span", { class: "muted", text: "null" });
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

async function lookup(event) {
  event.preventDefault();
  const view = selectedView();
  const error = $("lookup-error");
  const table = $("lookup-result");
  error.hidden = true;
  if (!view) return;
  const entities = {};
  for (const input of $("lookup-keys").querySelectorAll("input")) {
    const key = view.join_keys.find((k) => k.name === input.name);
    entities[input.name] = [typedKey(input.value, key && key.type)];
  }
  const body = { features: view.features.map((f) => `${view.name}:${f.name}`), entities };
  try {
    const data = await api("/features/online", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    table.tBodies[0].replaceChildren(
      ...view.features.map((f) =>
        el("tr", { "data-feature": f.name }, [
          cell(f.name, "view-name"),
          cell(showValue(data.results[f.name][0])),
          cell(f.type || "", "muted"),
        ]),
      ),
    );
    table.hidden = false;
  } catch (e) {
    if (e instanceof AuthError) return;
    table.hidden = true;
    showError(error, e);
  }
}

// ------------------------------------------------------------------ token and loading
function showError(node, e) {
  node.replaceChildren(e.message);
  if (e.fix) node.append(el("span", { class: "fix", text: `Fix: ${e.fix}` }));
  node.hidden = false;
}

function showTokenPanel(message) {
  $("token-panel").hidden = false;
  $("token-error").hidden = !message;
  $("token-error").textContent = message || "";
  $("token-input").focus();
}

async function load() {
  $("load-error").hidden = true;
  try {
    renderViews(await api("/api/views"));
    await loadRuns();
    $("token-panel").hidden = true;
    $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (!(e instanceof AuthError)) showError($("load-error"), e);
  }
  $("forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

document.addEventListener("DOMContentLoaded", () => {
  $("refresh").addEventListener("click", load);
  $("runs-view").addEventListener("change", () => loadRuns().catch((e) => showError($("load-error"), e)));
  $("lookup-view").addEventListener("change", renderKeyInputs);
  $("lookup-form").addEventListener("submit", lookup);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    load();
  });
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    load();
  });
  load();
  setInterval(() => {
    if (document.visibilityState === "visible" && $("token-panel").hidden) load();
  }, REFRESH_MS);
});
