// Asya dashboard: a job's trace as a timeline (app.js draws the job page with it). Uses el() and
// formatMs() of app.js; loaded after it.
"use strict";

// Hops of a trace: the spans one sidecar recorded for one delivery of one envelope, as the gateway
// marks them (hop_span_id; same rule as `asya trace`, src/cli/trace_waterfall.hpp).
function hopsOf(trace) {
  const hops = new Map();
  for (const span of trace.spans) {
    if (!span.hop_span_id || span.hop_span_id !== span.span_id) continue;
    let outcome = span.outcome ? String(span.outcome) : "";
    if (!outcome && span.status && span.status.code === "error") outcome = "error";
    hops.set(span.span_id, { actor: span.actor, envelope_id: span.envelope_id || "",
      delivery_count: span.delivery_count, start: span.offset_ms, end: span.offset_ms,
      queue_wait_ms: Number(span.queue_wait_ms) || 0, handler_ms: 0, handler_start: null,
      publish_ms: 0, outcome });
  }
  for (const span of trace.spans) {
    const hop = hops.get(span.hop_span_id);
    if (!hop) continue;
    const start = span.offset_ms;
    hop.start = Math.min(hop.start, start);
    hop.end = Math.max(hop.end, start + span.duration_ms);
    const name = span.name || "";
    if (span.kind === "client" || name.startsWith("runtime") || name.startsWith("handler")) {
      hop.handler_ms += span.duration_ms;
      hop.handler_start = hop.handler_start === null ? start : Math.min(hop.handler_start, start);
    } else if (span.kind === "producer" || name.startsWith("publish")) {
      hop.publish_ms += span.duration_ms;
    }
  }
  return [...hops.values()];
}

// One row per hop, grouped by envelope (fan-out branches one after the other), on one time axis:
// queue wait light, handler dark, the rest of the hop (receive, publish, ack) in between.
function timeline(trace, jobId) {
  const hops = hopsOf(trace);
  if (!hops.length) {
    return el("p", { class: "muted", id: "timeline-empty",
                     text: "No spans for this job yet (the sidecars send them to the gateway's /v1/traces)." });
  }
  const envelopes = [...new Set(hops.map((h) => h.envelope_id))].sort((a, b) =>
    a === jobId ? -1 : b === jobId ? 1 : a.localeCompare(b, undefined, { numeric: true }));
  hops.sort((a, b) => envelopes.indexOf(a.envelope_id) - envelopes.indexOf(b.envelope_id) || a.start - b.start);
  const axisStart = Math.min(0, ...hops.map((h) => h.start - h.queue_wait_ms));
  const axisEnd = Math.max(...hops.map((h) => h.end), trace.duration_ms || 0);
  const width = Math.max(axisEnd - axisStart, 0.001);
  const pct = (ms) => ((ms - axisStart) / width * 100).toFixed(3) + "%";
  const segment = (kind, from, to, label) => {
    const node = el("div", { class: "seg " + kind, title: label });
    node.style.left = pct(from);
    node.style.width = ((Math.max(to - from, 0)) / width * 100).toFixed(3) + "%";
    return node;
  };
  const rows = hops.map((h) => {
    const branch = h.envelope_id === jobId ? "" : " · " + (h.envelope_id.startsWith(jobId) ? h.envelope_id.slice(jobId.length + 1) || h.envelope_id : h.envelope_id);
    const label = h.actor + (branch ? branch : "") + (h.delivery_count > 1 ? " (delivery " + h.delivery_count + ")" : "");
    const description = h.actor + ": queue wait " + formatMs(h.queue_wait_ms) + ", handler " + formatMs(h.handler_ms) +
      ", publish " + formatMs(h.publish_ms) + ", started at +" + formatMs(h.start) + (h.outcome ? ", " + h.outcome : "");
    const track = el("div", { class: "track", role: "img", "aria-label": description },
      segment("wait", h.start - h.queue_wait_ms, h.start, "queue wait " + formatMs(h.queue_wait_ms)),
      segment(h.outcome === "error" || h.outcome === "failed" ? "hop failed" : "hop", h.start, h.end, "hop " + formatMs(h.end - h.start)),
      h.handler_start !== null ? segment("handler", h.handler_start, h.handler_start + h.handler_ms, "handler " + formatMs(h.handler_ms)) : null);
    return el("div", { class: "row hop-row", "data-actor": h.actor, "data-envelope": h.envelope_id },
      el("div", { class: "label", text: label, title: label }), track,
      el("div", { class: "times", text: "+" + formatMs(h.start) + " · " + formatMs(h.end - h.start) + (h.outcome ? " · " + h.outcome : "") }));
  });
  return el("div", { class: "timeline", id: "timeline" },
    el("div", { class: "legend", "aria-hidden": "true" },
      el("span", { class: "wait", text: "queue wait" }), el("span", { class: "handler", text: "handler" }),
      el("span", { class: "hop", text: "receive, publish, ack" })),
    rows);
}
