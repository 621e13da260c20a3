"""REST, SSE and sidecar endpoints of a real asya-gateway (SQLite job store, SQLite transport);
the actors are played by the test through the asya-queue tool."""
import json
import re
import subprocess
import threading

from gateway_harness import Gateway, ROUTES, http, http_json, wait_until
from sse import SseStream


def call_in_background(gateway, name, arguments):
    box = {}

    def run():
        box["answer"] = http_json("POST", gateway.url + "/tools/call", {"name": name, "arguments": arguments},
                                  gateway.client_headers(), timeout=120)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_tools_are_listed_with_json_schema(gateway):
    status, tools, _ = http_json("GET", gateway.url + "/tools")
    assert status == 200
    echo = next(t for t in tools if t["name"] == "echo")
    assert echo["description"] == "Echo the arguments"
    schema = echo["inputSchema"]
    assert schema["required"] == ["text"]
    assert schema["properties"]["count"] == {"type": "integer", "default": 2}
    assert schema["properties"]["mode"]["enum"] == ["fast", "slow"]


def test_tool_call_publishes_an_envelope_and_returns_the_result(gateway, actor):
    thread, box = call_in_background(gateway, "echo", {"text": "hello"})
    envelope = actor.receive("echo")
    job_id = envelope["id"]
    assert envelope["route"] == {"actors": ["echo"], "current": 0,
                                 "metadata": {"job_id": job_id, "tool": "echo"}}
    assert envelope["payload"] == {"text": "hello", "count": 2, "mode": "fast"}
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", envelope["headers"]["traceparent"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", envelope["deadline"])
    assert actor.progress(job_id, ["echo"], 0, "processing")[1] == {"status": "ok", "progress_percent": 50,
                                                                    "job_status": "running"}
    assert actor.final(job_id, "succeeded", {"text": "HELLO"})[0] == 200
    thread.join(60)
    status, result, _ = box["answer"]
    assert status == 200
    assert result["isError"] is False
    assert result["structuredContent"] == {"text": "HELLO"}
    assert result["content"][0]["type"] == "text"

    status, job, _ = http_json("GET", f"{gateway.url}/envelopes/{job_id}")
    assert status == 200
    assert job["status"] == "succeeded"
    assert job["progress_percent"] == 100
    assert job["result"] == {"text": "HELLO"}
    assert job["total_actors"] == 1 and job["current_actor_name"] == "echo"
    assert http_json("GET", f"{gateway.url}/envelopes/{job_id}/active")[0:2] == (410, {"active": False})


def test_stream_after_completion_replays_history_and_closes_and_resumes(gateway, actor):
    status, answer, _ = http_json("POST", gateway.url + "/tools/call",
                                  {"name": "pipeline", "arguments": {"text": "x"}})
    assert status == 200
    info = answer["structuredContent"]
    job_id = info["job_id"]
    assert info["stream_url"] == f"/envelopes/{job_id}/stream"
    assert http_json("GET", f"{gateway.url}/envelopes/{job_id}/active")[0:2] == (200, {"active": True})
    envelope = actor.receive("first")
    actor.run_pipeline(envelope)

    stream = SseStream(gateway.url + info["stream_url"])
    events = list(stream.events())
    assert stream.status == 200
    ids = [int(e[0]) for e in events]
    assert ids == list(range(1, len(events) + 1))
    assert all(e[1] == "update" for e in events)
    percents = [e[2]["progress_percent"] for e in events]
    assert percents == sorted(percents)
    assert events[-1][2]["status"] == "succeeded"
    assert events[-1][2]["result"] == {"echo": {"text": "x"}}
    assert 100 not in percents[:-1]
    assert events[1][2]["envelope_state"] == "received" and events[1][2]["actor"] == "first"

    resumed = list(SseStream(gateway.url + info["stream_url"], {"Last-Event-ID": str(ids[-3])}).events())
    assert [int(e[0]) for e in resumed] == ids[-2:]


def test_a_check_carrying_a_progress_report_answers_at_once_and_applies_the_report(gateway, actor):
    """PROTOCOL §7: a sidecar's cancellation check carries its "processing" report; the gateway
    answers from a read, says it took the report, and applies it in the background."""
    _, answer, _ = http_json("POST", gateway.url + "/tools/call",
                             {"name": "pipeline", "arguments": {"text": "c"}})
    job_id = answer["structuredContent"]["job_id"]
    envelope = actor.receive("first")
    actors = envelope["route"]["actors"]
    report = {"actors": actors, "current_actor_idx": 1, "status": "processing",
              "message": "processing in second"}
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{job_id}/check",
                                  {"progress": report}, gateway.internal_headers())
    assert status == 200 and answer["cancelled"] is False and answer["progress"] == "accepted", answer

    def job():
        return http_json("GET", f"{gateway.url}/envelopes/{job_id}")[1]
    wait_until(lambda: job()["progress_percent"] == 75, 30, "the carried report to be applied")
    assert job()["current_actor_name"] == "second" and job()["message"] == "processing in second"
    # A plain check takes nothing and says so by leaving "progress" out.
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{job_id}/check", {},
                                  gateway.internal_headers())
    assert status == 200 and "progress" not in answer and answer["cancelled"] is False
    # An id no job knows: not cancelled, and the report is taken (there is nothing to apply it to).
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/no-such-envelope/check",
                                  {"progress": report}, gateway.internal_headers())
    assert status == 200 and answer == {"cancelled": False, "progress": "accepted"}
    # A wrong report is refused, naming what is wrong, and nothing is applied.
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{job_id}/check",
                                  {"progress": dict(report, status="done")}, gateway.internal_headers())
    assert status == 400 and '"status" must be' in answer["error"] and "done" in answer["error"]
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{job_id}/check",
                                  {"progress": 3}, gateway.internal_headers())
    assert status == 400 and '"progress" must be a progress report' in answer["error"]
    assert job()["progress_percent"] == 75
    actor.final(job_id, "succeeded", {"done": True})
    wait_until(lambda: job()["status"] == "succeeded", 30, "the job to end")


def test_a_check_carrying_earlier_reports_takes_them_and_applies_them_in_order(gateway, actor):
    """PROTOCOL §7: a check may carry earlier progress reports of the same sidecar ("reports",
    the batched form's items); the gateway answers from a read, says "reports": "accepted", and
    applies them in order, then the check's own report. A wrong one takes none of them and the
    check still answers."""
    jobs = []
    for text in ("r1", "r2"):
        _, answer, _ = http_json("POST", gateway.url + "/tools/call",
                                 {"name": "pipeline", "arguments": {"text": text}})
        jobs.append(answer["structuredContent"]["job_id"])
        actor.receive("first")
    first, second = jobs

    def job(job_id):
        return http_json("GET", f"{gateway.url}/envelopes/{job_id}")[1]
    actors = job(first)["route"]["actors"]

    def progress(status, message, idx=0):
        return {"actors": actors, "current_actor_idx": idx, "status": status, "message": message}
    carried = [{"id": first, "kind": "progress", "report": progress("processing", "p1")},
               {"id": first, "kind": "progress", "report": dict(progress("completed", "c1"), duration_ms=3)}]
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{second}/check",
                                  {"progress": progress("processing", "p2"), "reports": carried},
                                  gateway.internal_headers())
    assert status == 200 and answer["cancelled"] is False, answer
    assert answer["progress"] == "accepted" and answer["reports"] == "accepted", answer
    # In order: "completed" of the first actor after its "processing" (50 %, not 25 %).
    wait_until(lambda: job(first)["progress_percent"] == 50, 30, "the carried reports to be applied")
    assert job(first)["message"] == "c1"
    wait_until(lambda: job(second)["progress_percent"] == 25, 30, "the check's own report")
    # A wrong carried report: none of them is taken (the sidecar sends them on their own), the
    # check still answers and takes its own report.
    bad = [{"id": second, "kind": "progress", "report": progress("completed", "c2")},
           {"id": second, "kind": "progress", "report": dict(progress("completed", "x"), status="done")}]
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{first}/check",
                                  {"reports": bad}, gateway.internal_headers())
    assert status == 200 and answer["cancelled"] is False and "reports" not in answer, answer
    assert answer["reports_error"].startswith("report 1: ") and "done" in answer["reports_error"]
    for wrong in ([], 3, [1]):
        status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{first}/check",
                                      {"reports": wrong}, gateway.internal_headers())
        assert status == 200 and "reports" not in answer and answer["reports_error"], (wrong, answer)
    # Reports carried by the check of a cancelled job are still taken; the check says cancelled.
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{first}/cancel", {},
                                  gateway.client_headers())
    assert status == 200, answer
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{first}/check",
                                  {"reports": bad[:1]}, gateway.internal_headers())
    assert status == 200 and answer["cancelled"] is True and answer["reports"] == "accepted", answer
    wait_until(lambda: job(second)["progress_percent"] == 50, 30, "the report carried by it")
    assert job(second)["message"] == "c2"
    actor.final(second, "succeeded", {"done": True})
    wait_until(lambda: job(second)["status"] == "succeeded", 30, "the job to end")


def test_two_live_streams_on_one_job_both_end_with_the_final_event(gateway, actor):
    _, answer, _ = http_json("POST", gateway.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "y"}})
    job_id = answer["structuredContent"]["job_id"]
    results = [None, None]

    def follow(slot):
        results[slot] = list(SseStream(f"{gateway.url}/envelopes/{job_id}/stream").events())

    threads = [threading.Thread(target=follow, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    envelope = actor.receive("first")
    actor.progress(job_id, ["first", "second"], 0, "processing")
    actor.progress(job_id, ["first", "second"], 1, "processing")
    actor.final(job_id, "failed", error="processing_error: boom")
    for t in threads:
        t.join(30)
    for events in results:
        assert events, "stream produced no events"
        assert events[-1][2]["status"] == "failed"
        assert events[-1][2]["error"] == "processing_error: boom"
    assert envelope["id"] == job_id


def test_timeout_fails_the_job_and_the_call(gateway):
    status, result, _ = http_json("POST", gateway.url + "/tools/call", {"name": "quick", "arguments": {}})
    assert status == 200
    assert result["isError"] is True
    assert result["content"][0]["text"] == "timed out"
    job_id = result["structuredContent"]["job_id"]
    status, job, _ = http_json("GET", f"{gateway.url}/envelopes/{job_id}")
    assert job["status"] == "failed" and job["error"] == "timed out"


def test_final_never_changes_and_late_progress_is_ignored(gateway, actor):
    _, answer, _ = http_json("POST", gateway.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "z"}})
    job_id = answer["structuredContent"]["job_id"]
    assert actor.final(job_id, "succeeded", 5)[0] == 200
    assert actor.final(job_id, "succeeded", 5)[0] == 200  # a retried report is fine
    status, body, _ = actor.final(job_id, "failed", error="late")
    assert status == 409 and "never changes" in body["error"]
    status, body, _ = actor.progress(job_id, ["first", "second"], 1, "processing")
    assert status == 200 and body["ignored"] is True and body["progress_percent"] == 100
    assert http_json("GET", f"{gateway.url}/envelopes/{job_id}")[1]["status"] == "succeeded"


def test_fan_out_job_ends_when_every_branch_ended(gateway, actor):
    _, answer, _ = http_json("POST", gateway.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "f"}})
    job_id = answer["structuredContent"]["job_id"]
    branch = {"id": job_id + "-1", "parent_id": job_id, "actors": ["first", "second"], "current": 1}
    status, body, _ = http_json("POST", gateway.url + "/envelopes", branch)
    assert (status, body) == (201, {"id": job_id + "-1", "status": "created"})
    assert http_json("POST", gateway.url + "/envelopes", branch)[0] == 200
    assert http_json("POST", gateway.url + "/envelopes", dict(branch, parent_id="nope"))[0] == 404
    actor.final(job_id + "-1", "succeeded", "b1")
    assert http_json("GET", f"{gateway.url}/envelopes/{job_id}")[1]["status"] == "running"
    actor.final(job_id, "succeeded", "b0")
    job = http_json("GET", f"{gateway.url}/envelopes/{job_id}")[1]
    assert job["status"] == "succeeded"
    assert job["result"] == ["b0", "b1"]
    assert [b["id"] for b in job["branches"]] == [job_id, job_id + "-1"]


def test_client_errors_are_json_with_fitting_statuses(gateway):
    status, body, _ = http_json("GET", gateway.url + "/envelopes/does-not-exist")
    assert status == 404 and "does-not-exist" in body["error"]
    assert http_json("GET", gateway.url + "/envelopes/does-not-exist/stream")[0] == 404
    status, body, _ = http_json("POST", gateway.url + "/tools/call", b"{not json")
    assert status == 400 and body["error"].startswith("body is not valid JSON")
    status, body, _ = http_json("POST", gateway.url + "/tools/call", {"name": "nope"})
    assert status == 404 and "nope" in body["error"]
    status, body, _ = http_json("POST", gateway.url + "/tools/call", {"name": "echo", "arguments": {"count": 1}})
    assert status == 400 and body["error"] == 'missing required argument "text" (string)'
    status, body, _ = http_json("POST", gateway.url + "/tools/call",
                                {"name": "echo", "arguments": {"text": "a", "count": "many"}})
    assert status == 400 and body["error"] == 'invalid argument count: expected an integer, got "many"'
    status, body, headers = http_json("DELETE", gateway.url + "/tools")
    assert status == 405 and headers["Allow"] == "GET"
    status, body, _ = http_json("POST", gateway.url + "/envelopes/x/progress", {"status": "bogus"})
    assert status == 400 and "status" in body["error"]
    status, body, _ = http_json("POST", gateway.url + "/envelopes/x/progress",
                                {"status": "received", "current_actor_idx": 0})
    assert status == 404
    # A body over ASYA_GATEWAY_MAX_BODY_BYTES (16 MiB) is refused as soon as its length is known.
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.putrequest("POST", "/tools/call")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(17 << 20))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "ASYA_GATEWAY_MAX_BODY_BYTES" in json.loads(response.read())["error"]
    connection.close()


def test_tokens_protect_client_and_sidecar_endpoints(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES,
                 {"ASYA_GATEWAY_TOKEN": "client-secret", "ASYA_GATEWAY_INTERNAL_TOKEN": "sidecar-secret"}).start()
    try:
        status, body, _ = http_json("GET", gw.url + "/tools")
        assert status == 401 and "ASYA_GATEWAY_TOKEN" in body["error"]
        assert http_json("GET", gw.url + "/tools", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert http_json("GET", gw.url + "/tools", headers={"Authorization": "Bearer client-secret"})[0] == 200
        status, body, _ = http_json("POST", gw.url + "/envelopes/x/final", {"status": "succeeded"},
                                    {"Authorization": "Bearer client-secret"})
        assert status == 401 and "ASYA_GATEWAY_INTERNAL_TOKEN" in body["error"]
        assert http_json("POST", gw.url + "/envelopes/x/final", {"status": "succeeded"},
                         {"Authorization": "Bearer sidecar-secret"})[0] == 404
        assert http("GET", gw.url + "/healthz")[0] == 200
    finally:
        gw.stop()


def test_metrics_pass_promtool_and_readyz(gateway):
    http_json("POST", gateway.url + "/tools/call", {"name": "nope"})
    assert http_json("GET", gateway.url + "/readyz")[0] == 200
    status, headers, body = http("GET", gateway.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert 'asya_gateway_http_requests_total{code="404",method="POST"} 1' in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_restart_keeps_finished_jobs(gateway, actor):
    _, answer, _ = http_json("POST", gateway.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "r"}})
    job_id = answer["structuredContent"]["job_id"]
    actor.final(job_id, "succeeded", {"kept": True})
    assert gateway.stop() == 0
    gateway.start()
    job = http_json("GET", f"{gateway.url}/envelopes/{job_id}")[1]
    assert job["status"] == "succeeded" and job["result"] == {"kept": True}


def test_invalid_routes_yaml_is_reported_with_file_line_and_field(gateway_binary, tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text("tools:\n  - name: a\n    route: [x]\n    retries: 3\n")
    result = subprocess.run([str(gateway_binary)], env={"ASYA_CONFIG_PATH": str(routes), "PATH": "/usr/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{routes}:4: tools[a].retries: unknown key" in result.stderr


def test_postgres_job_store_serves_the_same_api(gateway_binary, tmp_path, postgres_url, queue_tool):
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_DATABASE_URL": postgres_url}).start()
    try:
        _, answer, _ = http_json("POST", gw.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "p"}})
        job_id = answer["structuredContent"]["job_id"]
        from gateway_harness import FakeActor
        FakeActor(queue_tool, gw).run_pipeline(FakeActor(queue_tool, gw).receive("first"))
        events = list(SseStream(f"{gw.url}/envelopes/{job_id}/stream").events())
        assert events[-1][2]["status"] == "succeeded"
        gw.stop()
        gw.start()
        assert http_json("GET", f"{gw.url}/envelopes/{job_id}")[1]["result"] == {"echo": {"text": "p"}}
    finally:
        gw.stop()


def read_sse_until(response, predicate, what):
    """Reads raw SSE lines from an http.client response until predicate(line) holds (the socket
    timeout bounds each read); returns every line read."""
    lines = []
    while True:
        line = response.readline()
        assert line, f"the stream ended before {what}: {lines}"
        lines.append(line.decode().rstrip("\r\n"))
        if predicate(lines[-1]):
            return lines


def test_sse_sends_keepalive_comments_and_rejects_a_bad_last_event_id(gateway_binary, tmp_path, queue_tool):
    import http.client
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_KEEPALIVE": "300ms"}).start()
    try:
        _, answer, _ = http_json("POST", gw.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "k"}})
        job_id = answer["structuredContent"]["job_id"]
        status, body, _ = http_json("GET", f"{gw.url}/envelopes/{job_id}/stream", headers={"Last-Event-ID": "abc"})
        assert status == 400 and body["error"] == 'Last-Event-ID must be an event id (a number), got "abc"'

        connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        connection.request("GET", f"/envelopes/{job_id}/stream")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
        lines = read_sse_until(response, lambda line: line == ": keepalive", "a keepalive comment")
        assert "id: 1" in lines  # history (the job's creation) came first
        lines = read_sse_until(response, lambda line: line == ": keepalive", "a second keepalive comment")
        assert not any(line.startswith("id:") for line in lines)  # nothing happened meanwhile
        from gateway_harness import FakeActor
        actor = FakeActor(queue_tool, gw)
        actor.final(job_id, "succeeded", {"done": 1})
        lines = read_sse_until(response, lambda line: '"status":"succeeded"' in line, "the final event")
        assert response.read().strip() == b""  # the server ends the stream after the final event
        connection.close()
    finally:
        gw.stop()


def test_a_join_count_in_a_progress_report_is_checked(gateway):
    # PROTOCOL §7: branches_joined and branches_total come together, 0 <= joined <= total >= 1.
    for counts, shown in (({"branches_joined": 3}, "3 of nothing"),
                          ({"branches_joined": 5, "branches_total": 4}, "5 of 4"),
                          ({"branches_joined": 0, "branches_total": 0}, "0 of 0"),
                          ({"branches_joined": "2", "branches_total": 4}, '"2" of 4')):
        status, body, _ = http_json("POST", gateway.url + "/envelopes/x/progress",
                                    dict({"status": "received", "current_actor_idx": 0}, **counts))
        assert status == 400, (counts, body)
        assert body["error"] == ('"branches_joined" and "branches_total" go together, as integers '
                                 'with 0 <= branches_joined <= branches_total and branches_total '
                                 '>= 1, got ' + shown)
    status, _, _ = http_json("POST", gateway.url + "/envelopes/x/progress",
                             {"status": "received", "current_actor_idx": 0, "branches_joined": 2,
                              "branches_total": 4})
    assert status == 404  # well formed: only the id is unknown
