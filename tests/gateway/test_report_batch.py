"""POST /envelopes/reports (PROTOCOL §7): the batched form of the sidecars' progress and final
reports, on a real asya-gateway (SQLite job store; PostgreSQL in the last test)."""
import json

from gateway_harness import Gateway, ROUTES, http, http_json, wait_until


def start_job(gateway):
    _, answer, _ = http_json("POST", gateway.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "b"}},
                             gateway.client_headers())
    return answer["structuredContent"]["job_id"]


def progress(job_id, index, status):
    return {"id": job_id, "kind": "progress",
            "report": {"actors": ["first", "second"], "current_actor_idx": index, "status": status,
                       "message": "%s by %d" % (status, index)}}


def final(job_id, status="succeeded", **fields):
    return {"id": job_id, "kind": "final", "report": dict({"id": job_id, "status": status}, **fields)}


def batch(gateway, items, headers=None):
    return http_json("POST", gateway.url + "/envelopes/reports", items,
                     gateway.internal_headers() if headers is None else headers)


def job(gateway, job_id):
    return http_json("GET", f"{gateway.url}/envelopes/{job_id}", headers=gateway.client_headers())[1]


def sidecar_reports_total(gateway, kind):
    text = http("GET", gateway.url + "/metrics")[2].decode()
    for line in text.splitlines():
        if line.startswith('asya_gateway_sidecar_reports_total{kind="%s"}' % kind):
            return float(line.split()[-1])
    return 0.0


def test_a_batch_is_applied_in_order_and_answered_per_report(gateway):
    a, b = start_job(gateway), start_job(gateway)
    items = [
        progress(a, 0, "processing"),
        progress(a, 0, "completed"),
        progress(b, 1, "processing"),
        # Behind b's position (actor 1 already): ignored, as alone.
        progress(b, 0, "completed"),
        final(a, result="RAW"),
        # After a's final status in the same batch: changes nothing.
        progress(a, 1, "processing"),
    ]
    # The result as a sidecar sends it, numbers spelled their own way (not through Python's json).
    text = json.dumps(items).replace('"RAW"', '{"n":8.10,"big":12345678901234567890}')
    status, body, _ = batch(gateway, text)
    assert status == 200, body
    results = body["results"]
    assert [r["status"] for r in results] == [200] * 6
    assert results[0]["answer"] == {"status": "ok", "progress_percent": 25, "job_status": "running"}
    assert results[1]["answer"] == {"status": "ok", "progress_percent": 50, "job_status": "running"}
    assert results[2]["answer"] == {"status": "ok", "progress_percent": 75, "job_status": "running"}
    assert results[3]["answer"]["ignored"] is True and results[3]["answer"]["progress_percent"] == 75
    assert results[4]["answer"] == {"status": "ok"}
    assert results[5]["answer"]["ignored"] is True and results[5]["answer"]["job_status"] == "succeeded"
    assert job(gateway, a)["status"] == "succeeded" and job(gateway, a)["progress_percent"] == 100
    # The result arrives whole (a 20-digit integer keeps its digits).
    assert job(gateway, a)["result"] == {"n": 8.1, "big": 12345678901234567890}
    assert job(gateway, b)["progress_percent"] == 75 and job(gateway, b)["current_actor_idx"] == 1
    # The stream's history shows the batch's changes in order, and the job's end.
    _, _, data = http("GET", f"{gateway.url}/envelopes/{a}/stream", headers=gateway.client_headers(), timeout=10)
    events = [json.loads(line[5:]) for line in data.decode().splitlines() if line.startswith("data:")]
    assert [(e["envelope_state"], e["progress_percent"]) for e in events] == [
        ("pending", 0), ("processing", 25), ("completed", 50), ("succeeded", 100)]
    assert sidecar_reports_total(gateway, "batch") == 1


def test_one_bad_report_in_a_batch_loses_none_of_the_others(gateway):
    a, b = start_job(gateway), start_job(gateway)
    status, body, _ = batch(gateway, [
        progress(a, 0, "processing"),
        "not an object",
        {"kind": "progress", "report": {}},
        {"id": a, "kind": "joined", "report": {}},
        {"id": a, "kind": "progress", "report": [1]},
        dict(progress(b, 0, "processing"), report={"current_actor_idx": 0, "status": "bogus"}),
        progress("nobody-knows-this-id", 0, "processing"),
        final(b, "failed", error="boom"),
        final(b, "succeeded"),
        final(a, result=1),
    ])
    assert status == 200, body
    results = body["results"]
    assert [r["status"] for r in results] == [200, 400, 400, 400, 400, 400, 404, 200, 409, 200]
    errors = [r["answer"].get("error", "") for r in results]
    assert errors[1] == 'report 1: must be an object {"id", "kind", "report"}, got a string'
    assert errors[2] == 'report 2: "id" must be a non-empty string (the envelope id), got nothing'
    assert errors[3] == 'report 3: "kind" must be "progress" or "final", got "joined"'
    assert errors[4] == 'report 4: "report" must be the report (an object), got [1]'
    assert errors[5].startswith('report 5: "status" must be "received", "processing" or "completed", got "bogus"')
    assert errors[6] == 'no job knows envelope "nobody-knows-this-id"'
    assert "already final with a different status" in errors[8]
    assert job(gateway, a)["status"] == "succeeded"
    assert job(gateway, b)["status"] == "failed" and job(gateway, b)["error"] == "boom"


def test_a_malformed_array_is_a_precise_400_and_nothing_is_applied(gateway):
    a = start_job(gateway)
    cases = [
        (b"[{\"id\": ", "the body is not valid JSON"),
        ({"id": a, "kind": "progress"}, "the body must be a JSON array, got an object"),
        ([], "the array of reports is empty"),
        ([progress(a, 0, "processing")] * 257, "at most 256 reports per request, got 257"),
    ]
    for body, expected in cases:
        status, answer, _ = batch(gateway, body)
        assert status == 400 and answer["error"].startswith(expected), (expected, answer)
        assert '"kind": "progress" | "final"' in answer["error"] or "at most" in answer["error"]
    assert job(gateway, a)["status"] == "pending"
    # GET /envelopes/reports is still the envelope of that name (none here), not the endpoint.
    assert http_json("GET", gateway.url + "/envelopes/reports")[0] == 404


def test_the_batch_endpoint_takes_the_sidecars_token_only(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES,
                 {"ASYA_GATEWAY_TOKEN": "client-secret", "ASYA_GATEWAY_INTERNAL_TOKEN": "sidecar-secret"}).start()
    try:
        a = start_job(gw)
        for headers in ({}, {"Authorization": "Bearer client-secret"}, {"Authorization": "Bearer wrong"}):
            status, body, _ = batch(gw, [progress(a, 0, "processing")], headers)
            assert status == 401 and "ASYA_GATEWAY_INTERNAL_TOKEN" in body["error"], body
        assert job(gw, a)["status"] == "pending"
        status, body, _ = batch(gw, [progress(a, 0, "processing")])
        assert status == 200 and body["results"][0]["status"] == 200
        assert job(gw, a)["status"] == "running"
    finally:
        gw.stop()


def test_postgres_job_store_applies_a_batch_the_same_way(gateway_binary, tmp_path, postgres_url):
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_DATABASE_URL": postgres_url}).start()
    try:
        a = start_job(gw)
        status, body, _ = batch(gw, [progress(a, 0, "completed"), "bad", final(a, result=[1]),
                                     progress(a, 1, "processing")])
        assert status == 200 and [r["status"] for r in body["results"]] == [200, 400, 200, 200]
        assert body["results"][3]["answer"]["ignored"] is True
        wait_until(lambda: job(gw, a)["status"] == "succeeded", 10, "the job to succeed")
        assert job(gw, a)["result"] == [1]
    finally:
        gw.stop()
