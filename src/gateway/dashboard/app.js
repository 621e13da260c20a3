// Asya dashboard: actors, jobs (live progress, payloads, errors, trace timeline) and tools (a form
// per tool). Vanilla JavaScript on the gateway's public REST API only (docs/dashboard.md). Every
// API call carries the client token when one was given; the page never builds HTML from data
// (textContent and DOM nodes only), and the Content-Security-Policy allows no inline script.
"use strict";

const TOKEN_KEY = "asya-gateway-token";
const PAYLOAD_DISPLAY_LIMIT = 20000; // characters of a payload or result shown
const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let cleanups = []; // stop timers and streams of the current view

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- DOM helpers ----

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function view() {
  return document.getElementById("view");
}

function notice(text) {
  document.getElementById("notice").textContent = text || "";
}

function statusBadge(status) {
  return el("span", { class: "status status-" + status, text: status || "-" });
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms >= 10000) return (ms / 1000).toFixed(1) + " s";
  return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
}

function formatNumber(value, digits) {
  if (value === null || value === undefined) return "-";
  return digits === undefined ? String(value) : Number(value).toFixed(digits);
}

function formatTime(iso) {
  if (!iso) return "-";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString();
}

// Pretty JSON, cut at PAYLOAD_DISPLAY_LIMIT characters.
function jsonBlock(value, label) {
  let text = JSON.stringify(value, null, 2);
  if (text === undefined) text = "null";
  const total = text.length;
  if (total > PAYLOAD_DISPLAY_LIMIT) {
    text = text.slice(0, PAYLOAD_DISPLAY_LIMIT) + "\n… (" + total + " characters, first " +
      PAYLOAD_DISPLAY_LIMIT + " shown; GET the job from the API for all of it)";
  }
  return el("pre", { tabindex: "0", "aria-label": label }, text);
}

// ---- API ----

async function api(path, options) {
  const init = Object.assign({ headers: {} }, options || {});
  init.headers = Object.assign({}, init.headers);
  if (token) init.headers["Authorization"] = "Bearer " + token;
  if (init.body !== undefined) init.headers["Content-Type"] = "application/json";
  const response = await fetch(path, init);
  if (response.status === 401) {
    showTokenPanel(token ? "The token was refused: enter the gateway's client token (ASYA_GATEWAY_TOKEN)."
                         : "This gateway needs its client token (ASYA_GATEWAY_TOKEN).");
    throw new ApiError(401, "needs the client token");
  }
  if (init.raw) return response;
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (e) {
    throw new ApiError(response.status, "the gateway answered something that is not JSON");
  }
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.error) || "HTTP " + response.status);
  }
  return { body, headers: response.headers };
}

function reportError(error) {
  if (error && error.status === 401) return; // the token panel says it
  notice(error && error.message ? error.message : String(error));
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header). Calls
// onEvent(event name, data object) for each event until the stream ends or the view changes.
async function followEvents(path, onEvent) {
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  const response = await api(path, { raw: true, signal: controller.signal,
                                     headers: { Accept: "text/event-stream" } });
  if (!response.ok) throw new ApiError(response.status, "HTTP " + response.status + " on " + path);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

function every(ms, task) {
  const timer = setInterval(task, ms);
  cleanups.push(() => clearInterval(timer));
}

// ---- Token ----

function showTokenPanel(message) {
  const panel = document.getElementById("token-panel");
  panel.hidden = false;
  document.getElementById("token-button").setAttribute("aria-expanded", "true");
  if (message) document.getElementById("token-message").textContent = message;
  document.getElementById("token-input").focus();
}

function setupToken() {
  const panel = document.getElementById("token-panel");
  const button = document.getElementById("token-button");
  button.addEventListener("click", () => {
    if (panel.hidden) showTokenPanel();
    else {
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
    }
  });
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = document.getElementById("token-input").value.trim();
    document.getElementById("token-input").value = "";
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    route();
  });
  document.getElementById("token-forget").addEventListener("click", () => {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("token-message").textContent = "Token forgotten.";
  });
}

// ---- Actors ----

// A sparkline of `values` (nulls skipped) as an inline SVG polyline.
function sparkline(values, label, extraClass) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark" + (extraClass ? " " + extraClass : ""));
  svg.setAttribute("viewBox", "0 0 120 24");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const points = values.map((v, i) => [i, v]).filter(([, v]) => v !== null && v !== undefined);
  if (points.length > 1) {
    const max = Math.max(1, ...points.map(([, v]) => v));
    const last = values.length - 1;
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.map(([i, v]) =>
      (i / last * 118 + 1).toFixed(1) + "," + (22 - v / max * 20).toFixed(1)).join(" "));
    svg.append(line);
  }
  return svg;
}

// Per-sample increases of a counter (a restart's drop counts as 0).
function increases(values) {
  const out = [];
  for (let i = 1; i < values.length; i++) {
    const a = values[i - 1];
    const b = values[i];
    out.push(a === undefined || b === undefined || a === null || b === null ? null : Math.max(0, b - a));
  }
  return out;
}

async function showActors() {
  const container = el("div");
  view().replaceChildren(el("h2", { text: "Actors" }), container);
  async function refresh() {
    let data;
    try {
      data = (await api("/actors")).body;
    } catch (error) {
      reportError(error);
      return;
    }
    notice("");
    const minutes = Math.round(data.interval_ms * Math.max(1, data.actors[0] ? data.actors[0].history.length : 1) / 60000);
    const source = el("p", { class: "muted" },
      "Queues from the " + data.sources.queues + "; ",
      data.sources.replicas ? "replicas, counts and rates from " + data.sources.replicas +
        (data.sources.replicas_error ? " (unavailable: " + data.sources.replicas_error + ")" : "")
        : "replicas, counts and rates are not known to this gateway (no asya up supervisor; see the sidecars' /metrics)",
      ". Sparklines: the last " + (minutes || 1) + " min.");
    const head = el("tr", {},
      el("th", { scope: "col", text: "Actor" }), el("th", { scope: "col", text: "State" }),
      el("th", { scope: "col", class: "num", text: "Replicas ready/desired" }),
      el("th", { scope: "col", class: "num", text: "Queued" }),
      el("th", { scope: "col", class: "num", text: "In flight" }),
      el("th", { scope: "col", class: "num", text: "Processed" }),
      el("th", { scope: "col", class: "num", text: "Errors" }),
      el("th", { scope: "col", class: "num", text: "Rate /s" }),
      el("th", { scope: "col", text: "Queue depth" }),
      el("th", { scope: "col", text: "Processed per sample" }));
    const rows = data.actors.map((a) => {
      const depth = a.history.map((s) => s.ready === null ? null : s.ready + s.in_flight);
      const processed = increases(a.history.map((s) => s.processed));
      const errors = increases(a.history.map((s) => s.errors));
      return el("tr", { "data-actor": a.name },
        el("th", { scope: "row", text: a.name + (a.end_actor ? " (end)" : "") }),
        el("td", {}, a.state ? statusBadge(a.state) : "-"),
        el("td", { class: "num", text: a.replicas ? a.replicas.ready + "/" + a.replicas.desired : "-" }),
        el("td", { class: "num", text: a.queue ? a.queue.ready : "?", title: a.queue_error || null }),
        el("td", { class: "num", text: a.queue ? a.queue.in_flight : "?" }),
        el("td", { class: "num", text: formatNumber(a.processed) }),
        el("td", { class: "num", text: formatNumber(a.errors) }),
        el("td", { class: "num", text: formatNumber(a.rate, 2) }),
        el("td", {}, sparkline(depth, "queue depth of " + a.name + " over the last minutes")),
        el("td", {}, sparkline(processed, "messages processed by " + a.name + " per sample"),
           errors.some((v) => v) ? sparkline(errors, "errors of " + a.name + " per sample", "errors") : null));
    });
    container.replaceChildren(source,
      el("table", { id: "actors-table" }, el("caption", { class: "muted", text: "Actors of this gateway's routes" }),
         el("thead", {}, head), el("tbody", {}, rows)));
  }
  await refresh();
  every(REFRESH_MS, refresh);
}

// ---- Jobs ----

const STATUSES = ["pending", "running", "succeeded", "failed", "cancelled"];

function jobLink(id) {
  return el("a", { href: "#/jobs/" + encodeURIComponent(id), text: id });
}

async function showJobs(params) {
  const status = params.get("status") || "";
  const select = el("select", { id: "job-status-filter", name: "status" },
    el("option", { value: "", text: "any" }),
    STATUSES.map((s) => el("option", { value: s, text: s, selected: s === status })));
  select.addEventListener("change", () => {
    location.hash = "#/jobs" + (select.value ? "?status=" + select.value : "");
  });
  const tbody = el("tbody");
  const more = el("button", { type: "button", id: "jobs-more", hidden: true, text: "Older jobs" });
  view().replaceChildren(
    el("h2", { text: "Jobs" }),
    el("div", { class: "toolbar" }, el("label", { for: "job-status-filter", text: "Status" }), select),
    el("table", { id: "jobs-table" },
      el("thead", {}, el("tr", {},
        ["Job", "Tool", "Status", "Progress", "Created", "Duration", "Message"].map((h) =>
          el("th", { scope: "col", text: h })))),
      tbody),
    more);
  let cursor = null;
  function row(job) {
    return el("tr", { "data-job": job.id },
      el("td", {}, jobLink(job.id)), el("td", { text: job.tool }), el("td", {}, statusBadge(job.status)),
      el("td", { class: "num", text: job.progress_percent + "%" }), el("td", { text: formatTime(job.created_at) }),
      el("td", { class: "num", text: job.duration_ms === undefined ? "-" : formatMs(job.duration_ms) }),
      el("td", { text: job.error || job.message }));
  }
  async function load(append) {
    const query = new URLSearchParams({ limit: "50" });
    if (status) query.set("status", status);
    if (append && cursor) query.set("cursor", cursor);
    let page;
    try {
      page = (await api("/envelopes?" + query)).body;
    } catch (error) {
      reportError(error);
      return;
    }
    notice("");
    const rows = page.jobs.map(row);
    if (append) tbody.append(...rows);
    else tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "7", class: "muted", text: "No jobs yet." }))]));
    if (!append) cursor = page.next_cursor;
    else cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => load(true));
  await load(false);
  every(REFRESH_MS, () => { if (!cursor || tbody.children.length <= 50) load(false); });
}

async function showJob(id) {
  const title = el("h2", {}, "Job ", el("code", { text: id }));
  const facts = el("dl", { class: "facts", id: "job-facts" });
  const progress = el("progress", { id: "job-progress", max: "100", value: "0", "aria-label": "progress" });
  const percent = el("span", { id: "job-percent", text: "0%" });
  const message = el("p", { id: "job-message", role: "status", "aria-live": "polite" });
  const outcome = el("div", { id: "job-outcome" });
  const traceBox = el("div", { id: "job-trace" });
  const payloadBox = el("div", { id: "job-payload" });
  view().replaceChildren(title, facts, el("p", {}, progress, " ", percent), message, outcome,
    el("h3", { text: "Trace" }), traceBox, el("h3", { text: "Payload" }), payloadBox);
  let final = false;

  async function loadJob() {
    const job = (await api("/envelopes/" + encodeURIComponent(id))).body;
    facts.replaceChildren(
      el("dt", { text: "Tool" }), el("dd", { text: job.tool }),
      el("dt", { text: "Status" }), el("dd", {}, statusBadge(job.status)),
      el("dt", { text: "Actors" }), el("dd", { text: (job.route && job.route.actors || []).join(" → ") }),
      el("dt", { text: "Created" }), el("dd", { text: formatTime(job.created_at) }),
      el("dt", { text: "Updated" }), el("dd", { text: formatTime(job.updated_at) }));
    progress.value = job.progress_percent;
    percent.textContent = job.progress_percent + "%";
    message.textContent = job.message;
    payloadBox.replaceChildren(jsonBlock(job.payload, "payload of the call"));
    if (job.status === "succeeded") {
      outcome.replaceChildren(el("h3", { text: "Result" }), el("div", { id: "job-result" }, jsonBlock(job.result, "result")));
    } else if (job.status === "failed" || job.status === "cancelled") {
      const details = job.error_details || {};
      outcome.replaceChildren(el("h3", { text: job.status === "failed" ? "Error" : "Cancelled" }),
        el("p", { class: "error", id: "job-error", text: job.error_message || job.error }),
        details.traceback ? el("details", { open: true }, el("summary", { text: "Traceback" }),
                                el("pre", { tabindex: "0", id: "job-traceback", text: details.traceback })) : null);
    }
    final = ["succeeded", "failed", "cancelled"].includes(job.status);
    return job;
  }

  async function loadTrace() {
    try {
      const trace = (await api("/envelopes/" + encodeURIComponent(id) + "/trace")).body;
      traceBox.replaceChildren(el("p", { class: "muted", text: (trace.trace_ids.length ? "Trace " + trace.trace_ids.join(", ") + ", " : "") +
        trace.spans.length + " spans, " + formatMs(trace.duration_ms) }), timeline(trace, trace.job_id));
    } catch (error) {
      reportError(error);
    }
  }

  try {
    await loadJob();
  } catch (error) {
    reportError(error);
    return;
  }
  loadTrace();
  // Spans arrive a little after the hops they describe: the timeline is re-read meanwhile.
  every(3000, loadTrace);
  if (!final) {
    followEvents("/envelopes/" + encodeURIComponent(id) + "/stream", (name, update) => {
      if (name !== "update") return;
      progress.value = update.progress_percent;
      percent.textContent = update.progress_percent + "%";
      message.textContent = update.message + (update.actor ? " (" + update.actor + ")" : "");
      if (["succeeded", "failed", "cancelled"].includes(update.status)) loadJob().then(loadTrace).catch(reportError);
    }).catch((error) => { if (error.name !== "AbortError") reportError(error); });
  }
}

// ---- Tools ----

async function showTools() {
  let tools;
  try {
    tools = (await api("/tools")).body;
  } catch (error) {
    reportError(error);
    return;
  }
  notice("");
  view().replaceChildren(el("h2", { text: "Tools" }),
    el("div", { class: "cards", id: "tools-list" }, tools.map((t) =>
      el("article", { class: "card", "data-tool": t.name },
        el("h3", {}, el("a", { href: "#/tools/" + encodeURIComponent(t.name), text: t.name })),
        el("p", { text: t.description || "" }),
        el("p", { class: "muted", text: Object.keys((t.inputSchema || {}).properties || {}).join(", ") || "no parameters" })))));
}

// An input for one property of a JSON schema; returns [field node, read() -> value | undefined].
function inputFor(name, schema, required) {
  const id = "arg-" + name;
  const hintText = [schema.description, schema.type === "object" || schema.type === "array" ? "JSON" : null]
    .filter(Boolean).join(" · ");
  const hint = hintText ? el("span", { class: "hint", id: id + "-hint", text: hintText }) : null;
  const common = { id, name, required: required || null, "aria-describedby": hint ? id + "-hint" : null };
  let input;
  let read;
  if (Array.isArray(schema.enum)) {
    input = el("select", common, required ? null : el("option", { value: "", text: "(none)" }),
      schema.enum.map((v) => el("option", { value: JSON.stringify(v), text: String(v), selected: schema.default === v })));
    read = () => input.value === "" ? undefined : JSON.parse(input.value);
  } else if (schema.type === "boolean") {
    input = el("input", Object.assign({}, common, { type: "checkbox", checked: schema.default === true, required: null }));
    read = () => input.checked;
  } else if (schema.type === "integer" || schema.type === "number") {
    input = el("input", Object.assign({}, common, { type: "number", step: schema.type === "integer" ? "1" : "any",
      min: schema.minimum, max: schema.maximum, value: schema.default }));
    read = () => input.value === "" ? undefined : Number(input.value);
  } else if (schema.type === "object" || schema.type === "array") {
    input = el("textarea", common, schema.default === undefined ? "" : JSON.stringify(schema.default, null, 2));
    read = () => {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch (e) {
        throw new Error(name + ": not valid JSON (" + e.message + ")");
      }
    };
  } else {
    input = el("input", Object.assign({}, common, { type: "text", value: schema.default, autocomplete: "off" }));
    read = () => input.value === "" && !required ? undefined : input.value;
  }
  const label = el("label", { for: id }, name, required ? " (required)" : "");
  return [el("div", { class: "field" }, label, input, hint), read];
}

async function showTool(name) {
  let tools;
  try {
    tools = (await api("/tools")).body;
  } catch (error) {
    reportError(error);
    return;
  }
  const tool = tools.find((t) => t.name === name);
  if (!tool) {
    view().replaceChildren(el("p", { class: "error", text: "No tool named " + name + "." }));
    return;
  }
  const schema = tool.inputSchema || {};
  const required = new Set(schema.required || []);
  const readers = {};
  const fields = Object.entries(schema.properties || {}).map(([prop, propSchema]) => {
    const [field, read] = inputFor(prop, propSchema, required.has(prop));
    readers[prop] = read;
    return field;
  });
  const errorBox = el("p", { role: "alert", class: "error", id: "tool-error" });
  const form = el("form", { id: "tool-form", "aria-labelledby": "tool-title" }, fields,
    el("button", { type: "submit", text: "Call " + name }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.textContent = "";
    const args = {};
    try {
      for (const [prop, read] of Object.entries(readers)) {
        const value = read();
        if (value !== undefined) args[prop] = value;
      }
    } catch (error) {
      errorBox.textContent = error.message;
      return;
    }
    try {
      const answer = await api("/tools/call", { method: "POST", body: JSON.stringify({ name, arguments: args, async: true }) });
      const jobId = answer.headers.get("Asya-Job-Id") ||
        (answer.body.structuredContent && answer.body.structuredContent.job_id);
      if (!jobId) {
        const text = answer.body.content && answer.body.content[0] ? answer.body.content[0].text : "no job was started";
        errorBox.textContent = text;
        return;
      }
      location.hash = "#/jobs/" + encodeURIComponent(jobId);
    } catch (error) {
      if (error.status !== 401) errorBox.textContent = error.message;
    }
  });
  view().replaceChildren(el("h2", { id: "tool-title" }, "Call ", el("code", { text: name })),
    el("p", { text: tool.description || "" }), form, errorBox);
}

// ---- Router ----

function route() {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
  notice("");
  const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "actors";
  const [path, query] = hash.split("?");
  const parts = path.split("/").map(decodeURIComponent);
  const section = parts[0] || "actors";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const params = new URLSearchParams(query || "");
  let shown;
  if (section === "jobs" && parts[1]) shown = showJob(parts[1]);
  else if (section === "jobs") shown = showJobs(params);
  else if (section === "tools" && parts[1]) shown = showTool(parts[1]);
  else if (section === "tools") shown = showTools();
  else shown = showActors();
  shown.catch(reportError);
}

document.addEventListener("DOMContentLoaded", () => {
  setupToken();
  window.addEventListener("hashchange", () => {
    route();
    document.getElementById("main").focus();
  });
  route();
});
