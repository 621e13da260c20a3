"""The gateway's trace and job-list endpoints: POST /v1/traces (OTLP/HTTP JSON receiver),
GET /envelopes/{id}/trace, GET /envelopes?status=&tool=&limit=&cursor=, and the job id named by
every tool call answer (Asya-Job-Id header, MCP _meta)."""
import base64
import json
import sqlite3
import time

from gateway_harness import ROUTES, Gateway, http, http_json
from otlp_spans import export_request, gateway_call, new_span_id, new_trace_id, pipeline_spans, span


def start_job(gateway, text="t"):
    status, answer, headers = http_json("POST", gateway.url + "/tools/call",
                                        {"name": "pipeline", "arguments": {"text": text}},
                                        gateway.client_headers())
    assert status == 200, answer
    job_id = answer["structuredContent"]["job_id"]
    assert headers["Asya-Job-Id"] == job_id
    assert answer["_meta"] == {"asya.sh/job_id": job_id}
    return job_id


def trace_of(gateway, job_id):
    """The trace the job's envelope started (GET /envelopes/{id} names it)."""
    job = http_json("GET", f"{gateway.url}/envelopes/{job_id}", headers=gateway.client_headers())[1]
    assert len(job["trace_id"]) == 32
    return job["trace_id"]


def post_spans(gateway, body, headers=None):
    return http_json("POST", gateway.url + "/v1/traces", body,
                     headers if headers is not None else gateway.internal_headers())


def test_spans_of_a_job_are_kept_and_answered_in_start_order(gateway):
    job_id = start_job(gateway)
    # The trace starts with the gateway's own call span, which it keeps itself.
    trace_id, spans = pipeline_spans(job_id, ["first", "second"], queue_wait_ms=7, handler_ms=30,
                                     call=gateway_call(gateway, job_id))
    assert trace_id == trace_of(gateway, job_id)
    bad = span(trace_id, "zz", None, "broken", 1, 2, {})
    stranger = span(new_trace_id(), new_span_id(), None, "other", 10, 20, {"asya.job_id": "no-such-job"})
    # Sent in reverse order, with two spans the gateway cannot keep.
    status, answer, _ = post_spans(gateway, export_request(list(reversed(spans)) + [bad, stranger]))
    assert status == 200
    assert answer["partialSuccess"]["rejectedSpans"] == "2"
    message = answer["partialSuccess"]["errorMessage"]
    assert 'spans[6]: spanId must be 16 hex digits, not all zero, got "zz"' in message
    assert 'asya.job_id "no-such-job"' in message

    # An exporter's retry stores nothing twice.
    assert post_spans(gateway, export_request(spans))[0:2] == (200, {})

    status, trace, _ = http_json("GET", f"{gateway.url}/envelopes/{job_id}/trace")
    assert status == 200
    assert trace["job_id"] == job_id and trace["trace_ids"] == [trace_id]
    got = trace["spans"]
    assert len(got) == len(spans) + 1 == 7
    assert got[0]["name"] == "call pipeline" and got[0]["resource"]["service.name"] == "asya-gateway"
    starts = [int(s["start_time_unix_nano"]) for s in got]
    assert starts == sorted(starts)
    assert got[0]["offset_ms"] == 0
    hops = [s for s in got if s["name"].startswith("process ")]
    assert [h["actor"] for h in hops] == ["first", "second"]
    assert all(h["queue_wait_ms"] == 7.0 and h["job_id"] == job_id and h["envelope_id"] == job_id for h in hops)
    assert hops[0]["kind"] == "consumer" and hops[0]["status"]["code"] == "ok"
    assert hops[0]["duration_ms"] == 32.0 and hops[0]["payload_bytes"] == 42 and hops[0]["outcome"] == "routed"
    assert hops[1]["parent_span_id"] == hops[0]["span_id"]
    assert hops[1]["offset_ms"] == 46.0  # from the call: 7 wait + 32 first hop + the second hop's 7 wait
    # The hop's children carry no Asya attributes: they are the job's by their trace, and its hop's
    # by their parent.
    children = [s for s in got if s["parent_span_id"] == hops[0]["span_id"] and s["name"] != "process second"]
    assert sorted(c["name"] for c in children) == ["publish asya-next", "runtime call"]
    assert all(c["job_id"] == job_id and "actor" not in c for c in children)
    assert all(s["hop_span_id"] == hops[0]["span_id"] for s in children + hops[:1])
    assert hops[1]["hop_span_id"] == hops[1]["span_id"]
    assert hops[0]["resource"] == {"service.name": "asya-sidecar"}

    # A branch's envelope id finds its job's trace too; an unknown id is 404.
    assert http_json("GET", f"{gateway.url}/envelopes/nope/trace")[0] == 404


def test_fan_out_spans_are_placed_by_their_trace_and_envelope_id(gateway):
    job_id = start_job(gateway)
    _, spans = pipeline_spans(job_id, ["first", "second"], trace_id=trace_of(gateway, job_id), fan_out=(0, 3))
    for s in spans:  # as a sidecar that knows only the envelope id would send them
        s["attributes"] = [a for a in s["attributes"] if a["key"] != "asya.job_id"]
    # The branches "<job>-1", "<job>-2" were never announced: their spans are the job's by its trace.
    assert post_spans(gateway, export_request(spans))[0:2] == (200, {})
    trace = http_json("GET", f"{gateway.url}/envelopes/{job_id}/trace")[1]
    hops = [s for s in trace["spans"] if s["name"] == "process second"]
    assert sorted(h["envelope_id"] for h in hops) == [job_id, f"{job_id}-1", f"{job_id}-2"]
    assert all(h["job_id"] == job_id and h["hop_span_id"] == h["span_id"] for h in hops)
    # A span of another trace with no Asya attributes belongs to no job.
    orphan = span(new_trace_id(), new_span_id(), None, "lost", 1, 2, {})
    status, answer, _ = post_spans(gateway, export_request([orphan]))
    assert status == 200 and answer["partialSuccess"]["rejectedSpans"] == "1"


def test_the_receiver_refuses_what_it_cannot_read(gateway):
    status, body, _ = http_json("POST", gateway.url + "/v1/traces", b"\x0a\x00",
                                {"Content-Type": "application/x-protobuf"})
    assert status == 415 and "application/json" in body["error"]
    status, body, _ = http_json("POST", gateway.url + "/v1/traces", b"{}",
                                {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 415 and "uncompressed JSON" in body["error"]
    status, body, _ = post_spans(gateway, b"{not json")
    assert status == 400 and body["error"].startswith("body is not valid JSON")
    status, body, _ = post_spans(gateway, {"resourceSpans": {"x": 1}})
    assert (status, body["error"]) == (400, 'resourceSpans must be an array, got {"x":1}')
    assert http_json("GET", gateway.url + "/v1/traces")[0] == 405


def test_a_span_larger_than_the_limit_is_refused_and_the_rest_of_its_export_kept(gateway_binary, tmp_path):
    # One job could keep 1000 spans of up to 16 MiB each, and GET .../trace built its answer from
    # all of them in memory (30 spans of 15 MB took the gateway to 2.9 GB).
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TRACE_MAX_SPAN_BYTES": "20000"}).start()
    try:
        job_id = start_job(gw)
        now = time.time_ns()
        trace_id = trace_of(gw, job_id)
        small, big = new_span_id(), new_span_id()
        spans = [span(trace_id, small, None, "small", now, now + 1000, {"asya.job_id": job_id}),
                 span(trace_id, big, None, "big", now, now + 1000, {"asya.job_id": job_id, "blob": "x" * 30000})]
        status, body, _ = post_spans(gw, export_request(spans))
        assert status == 200 and body["partialSuccess"]["rejectedSpans"] == "1", body
        message = body["partialSuccess"]["errorMessage"]
        assert message.startswith("span " + big + ": ") and "ASYA_GATEWAY_TRACE_MAX_SPAN_BYTES=20000" in message
        kept = http_json("GET", f"{gw.url}/envelopes/{job_id}/trace")[1]["spans"]
        assert small in [s["span_id"] for s in kept] and big not in [s["span_id"] for s in kept]
        # Below the limit: kept.
        status, body, _ = post_spans(gw, export_request([dict(spans[1], attributes=spans[1]["attributes"][:1])]))
        assert (status, body) == (200, {}), body
    finally:
        gw.stop()


def test_one_export_is_one_row_per_job_and_rows_of_older_gateways_are_answered_with_it(gateway):
    """Schema 9 stores the spans one export brings for one job as one row (gateway_span_groups);
    the one-row-per-span table of older gateways (gateway_spans) is still answered, deduplicated
    against and counted."""
    first, second = start_job(gateway), start_job(gateway)
    _, spans_a = pipeline_spans(first, ["a1", "a2"], call=gateway_call(gateway, first))
    _, spans_b = pipeline_spans(second, ["b1"], call=gateway_call(gateway, second))
    assert post_spans(gateway, export_request(spans_a[:1]))[0:2] == (200, {})
    before = http_json("GET", f"{gateway.url}/envelopes/{first}/trace")[1]
    # That span's row, rewritten as a gateway before schema 9 stored it: the answer is the same.
    db = sqlite3.connect(gateway.workdir / "gateway.db", timeout=30)
    with db:
        index, documents = db.execute(
            "SELECT span_index, documents FROM gateway_span_groups WHERE job_id = ? AND "
            "first_span LIKE ?", (first, "% " + spans_a[0]["spanId"])).fetchone()
        trace_id, span_id, start_ns, _ = index.split()
        db.execute("DELETE FROM gateway_span_groups WHERE job_id = ? AND first_span = ?",
                   (first, trace_id + " " + span_id))
        db.execute("INSERT INTO gateway_spans(trace_id, span_id, job_id, start_ns, received_ms, document) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (trace_id, span_id, first, int(start_ns), int(time.time() * 1000), documents[1:-1]))
    assert http_json("GET", f"{gateway.url}/envelopes/{first}/trace")[1] == before

    # One export with both jobs' spans interleaved (the old row's span again), a malformed span
    # and a span of no job of this gateway.
    bad = span(spans_a[0]["traceId"], new_span_id(), None, "late", 5, 1, {})
    stranger = span(new_trace_id(), new_span_id(), None, "other", 10, 20, {"asya.job_id": "no-such-job"})
    mixed = spans_a[:3] + spans_b[:2] + spans_a[3:] + spans_b[2:]
    status, answer, _ = post_spans(gateway, export_request(mixed + [bad, stranger]))
    assert status == 200
    assert answer["partialSuccess"]["rejectedSpans"] == "2"
    message = answer["partialSuccess"]["errorMessage"]
    assert "endTimeUnixNano must be nanoseconds since the epoch, not before the start" in message
    assert 'asya.job_id "no-such-job"' in message
    rows = db.execute("SELECT job_id, span_index FROM gateway_span_groups WHERE job_id IN (?, ?)",
                      (first, second)).fetchall()
    db.close()
    for job, posted in ((first, spans_a[1:]), (second, spans_b)):
        holding = [index for owner, index in rows if owner == job and posted[0]["spanId"] in index]
        assert len(holding) == 1 and all(s["spanId"] in holding[0] for s in posted)
    trace = http_json("GET", f"{gateway.url}/envelopes/{first}/trace")[1]
    assert [s["span_id"] for s in trace["spans"]].count(spans_a[0]["spanId"]) == 1
    assert len(trace["spans"]) == len(spans_a) + 1
    old_id = spans_a[0]["spanId"]
    assert [s for s in trace["spans"] if s["span_id"] == old_id] == \
        [s for s in before["spans"] if s["span_id"] == old_id]
    assert len(http_json("GET", f"{gateway.url}/envelopes/{second}/trace")[1]["spans"]) == len(spans_b) + 1


def test_trace_endpoints_need_their_tokens(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES,
                 {"ASYA_GATEWAY_TOKEN": "client-secret", "ASYA_GATEWAY_INTERNAL_TOKEN": "sidecar-secret"}).start()
    try:
        job_id = start_job(gw)
        _, spans = pipeline_spans(job_id, ["first"], trace_id=trace_of(gw, job_id))
        body = export_request(spans)
        # Spans come from sidecars: the client token is not enough.
        status, answer, _ = post_spans(gw, body, {"Authorization": "Bearer client-secret"})
        assert status == 401 and "ASYA_GATEWAY_INTERNAL_TOKEN" in answer["error"]
        assert post_spans(gw, body)[0:2] == (200, {})
        status, answer, _ = http_json("GET", f"{gw.url}/envelopes/{job_id}/trace")
        assert status == 401 and "ASYA_GATEWAY_TOKEN" in answer["error"]
        assert http_json("GET", f"{gw.url}/envelopes/{job_id}/trace", headers=gw.client_headers())[0] == 200
        assert http_json("GET", f"{gw.url}/envelopes", headers={"Authorization": "Bearer sidecar-secret"})[0] == 401
    finally:
        gw.stop()


def test_recent_jobs_are_listed_newest_first_in_pages(gateway, actor):
    # Newest first, also for jobs created in one millisecond (in the order they were created: on
    # an idle machine three calls take under a millisecond).
    ids = [start_job(gateway, str(i)) for i in range(3)]
    actor.final(ids[1], "succeeded", {"ok": True})
    status, page, _ = http_json("GET", gateway.url + "/envelopes?limit=2")
    assert status == 200
    assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]]
    assert page["jobs"][1]["status"] == "succeeded" and page["jobs"][1]["tool"] == "pipeline"
    assert page["jobs"][1]["duration_ms"] >= 0 and "duration_ms" not in page["jobs"][0]
    assert page["next_cursor"]
    status, rest, _ = http_json("GET", gateway.url + "/envelopes?limit=2&cursor=" + page["next_cursor"])
    assert [j["id"] for j in rest["jobs"]] == [ids[0]] and rest["next_cursor"] is None
    # A cursor as the version before gave it, "<created_ms>:<job id>" without the job's place in
    # its millisecond, continues after that job too.
    plain = base64.urlsafe_b64decode(page["next_cursor"] + "=" * (-len(page["next_cursor"]) % 4)).decode()
    created_ms, rest_of_it = plain.split(".", 1)
    assert rest_of_it.split(":", 1)[1] == ids[1], plain
    old = base64.urlsafe_b64encode(("%s:%s" % (created_ms, ids[1])).encode()).decode().rstrip("=")
    status, rest, _ = http_json("GET", gateway.url + "/envelopes?limit=2&cursor=" + old)
    assert status == 200 and [j["id"] for j in rest["jobs"]] == [ids[0]], rest
    assert [j["id"] for j in http_json("GET", gateway.url + "/envelopes?status=succeeded")[1]["jobs"]] == [ids[1]]
    assert http_json("GET", gateway.url + "/envelopes?tool=echo")[1] == {"jobs": [], "next_cursor": None}
    assert [j["id"] for j in http_json("GET", gateway.url + "/envelopes?status=pending&tool=pipeline")[1]["jobs"]] \
        == [ids[2], ids[0]]


def test_bad_list_parameters_get_precise_errors(gateway):
    cases = {
        "status=done": 'status must be pending, running, succeeded, failed or cancelled, got "done"',
        "limit=0": 'limit must be an integer from 1 to 500, got "0"',
        "limit=ten": 'limit must be an integer from 1 to 500, got "ten"',
        "cursor=%%%": 'query parameter "cursor=%%%" has a broken percent-escape',
        "cursor=bm9wZQ": 'cursor "bm9wZQ" is not one this gateway gave out (use next_cursor of a previous answer '
                         'as it is)',
        "sort=asc": 'unknown query parameter "sort" (GET /envelopes accepts status, tool, limit, cursor)',
        "tool=": 'tool must name a tool, got ""',
    }
    for query, error in cases.items():
        status, body, _ = http_json("GET", gateway.url + "/envelopes?" + query)
        assert (status, body["error"]) == (400, error), query


def test_a_synchronous_call_names_its_job_in_a_header(gateway, actor):
    import threading
    box = {}
    thread = threading.Thread(target=lambda: box.update(answer=http_json(
        "POST", gateway.url + "/tools/call", {"name": "echo", "arguments": {"text": "h"}}, timeout=60)))
    thread.start()
    envelope = actor.receive("echo")
    actor.run_pipeline(envelope)
    thread.join(60)
    status, result, headers = box["answer"]
    assert status == 200 and result["isError"] is False
    assert headers["Asya-Job-Id"] == envelope["id"]
    assert result["_meta"] == {"asya.sh/job_id": envelope["id"]}
