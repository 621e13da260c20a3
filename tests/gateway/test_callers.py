"""Callers (docs/gateway.md, Authentication): with several client tokens in ASYA_GATEWAY_TOKEN each
token is one caller, every job a client starts (REST, MCP, A2A) records its caller, and every client
endpoint serves only the caller's own jobs: another caller's job is answered exactly like an unknown
id. Sidecar endpoints keep working with the internal token. With one token (or none) every caller
sees every job, as before."""
import json

import pytest

from gateway_harness import ROUTES, FakeActor, Gateway, http, http_json
from otlp_spans import export_request, pipeline_spans
from sse import SseStream
from test_mcp import rpc

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}
SIDECAR = {"Authorization": "Bearer sidecar-token"}
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def tenants(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES,
                 {"ASYA_GATEWAY_TOKEN": "alice-token, bob-token",
                  "ASYA_GATEWAY_INTERNAL_TOKEN": "sidecar-token"}).start()
    yield gw
    gw.stop()


def start_rest(gw, headers, text="x"):
    status, answer, response_headers = http_json("POST", gw.url + "/tools/call",
                                                 {"name": "pipeline", "arguments": {"text": text}}, headers)
    assert status == 200, answer
    return response_headers["Asya-Job-Id"]


def mcp_session(gw, headers):
    status, response_headers, body = rpc(gw, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                                         "clientInfo": {"name": "t", "version": "1"}}},
                                         extra=dict(MCP_ACCEPT, **headers))
    assert status == 200, body
    return response_headers["Mcp-Session-Id"]


def mcp_call(gw, session, headers, method, params):
    status, _, body = rpc(gw, {"jsonrpc": "2.0", "id": 2, "method": method, "params": params}, session,
                          dict(MCP_ACCEPT, **headers))
    assert status == 200, body
    return json.loads(body)


def listed(gw, headers, query=""):
    status, page, _ = http_json("GET", gw.url + "/envelopes" + query, headers=headers)
    assert status == 200, page
    return [job["id"] for job in page["jobs"]], page["next_cursor"]


def unknown_answer(gw, headers, method, path, job_id):
    """What the gateway answers for an id no job has, with `job_id` put where that id is named."""
    unknown = "0" * 8 + job_id[8:]
    status, _, body = http(method, gw.url + path.format(id=unknown), {} if method == "POST" else None, headers)
    return status, body.replace(unknown.encode(), job_id.encode())


def test_each_caller_lists_only_the_jobs_it_started_by_rest_mcp_or_a2a(tenants):
    # Newest first, also for jobs started in one millisecond (in the order they were created).
    alice_rest = start_rest(tenants, ALICE, "rest")
    session = mcp_session(tenants, ALICE)
    answer = mcp_call(tenants, session, ALICE, "tools/call", {"name": "pipeline", "arguments": {"text": "mcp"}})
    alice_mcp = answer["result"]["structuredContent"]["job_id"]
    message = {"kind": "message", "messageId": "m-1", "role": "user",
               "parts": [{"kind": "data", "data": {"text": "a2a"}}], "metadata": {"skill": "pipeline"}}
    status, answer, _ = http_json("POST", tenants.url + "/a2a", {"jsonrpc": "2.0", "id": 1, "method": "message/send",
                                                                 "params": {"message": message}}, ALICE)
    assert status == 200, answer
    alice_a2a = answer["result"]["id"]
    bob_rest = start_rest(tenants, BOB, "bob")

    assert listed(tenants, ALICE) == ([alice_a2a, alice_mcp, alice_rest], None)
    assert listed(tenants, BOB) == ([bob_rest], None)
    # Pages and filters stay within the caller's jobs.
    first, cursor = listed(tenants, ALICE, "?limit=2")
    assert first == [alice_a2a, alice_mcp] and cursor
    assert listed(tenants, ALICE, "?limit=2&cursor=" + cursor) == ([alice_rest], None)
    assert listed(tenants, BOB, "?tool=pipeline&status=pending") == ([bob_rest], None)
    assert listed(tenants, BOB, "?tool=echo") == ([], None)


def test_another_callers_job_is_answered_like_an_unknown_id(tenants, queue_tool):
    actor = FakeActor(queue_tool, tenants)
    job = start_rest(tenants, ALICE, "secret payload")
    envelope = actor.receive("first")
    assert envelope["id"] == job
    # A fan-out branch announced by a sidecar belongs to its job's owner.
    status, _, _ = http_json("POST", tenants.url + "/envelopes",
                             {"id": job + "-1", "parent_id": job, "actors": ["first", "second"], "current": 0},
                             SIDECAR)
    assert status == 201

    for method, path in (("GET", "/envelopes/{id}"), ("GET", "/envelopes/{id}/stream"),
                         ("GET", "/envelopes/{id}/trace"), ("GET", "/envelopes/{id}/active"),
                         ("POST", "/envelopes/{id}/cancel")):
        for job_id in (job, job + "-1"):
            status, _, body = http(method, tenants.url + path.format(id=job_id), {} if method == "POST" else None, BOB)
            assert (status, body) == unknown_answer(tenants, BOB, method, path, job_id), (method, path, job_id)
            assert status == 404 and json.loads(body) == {"error": f'no job or envelope with id "{job_id}"'}
    assert b"secret payload" not in http("GET", tenants.url + f"/envelopes/{job}", headers=BOB)[2]

    # Bob's cancel changed nothing: the job is Alice's and still runs.
    status, mine, _ = http_json("GET", tenants.url + f"/envelopes/{job}", headers=ALICE)
    assert status == 200 and mine["status"] == "running" and mine["payload"] == {"text": "secret payload"}
    status, branch, _ = http_json("GET", tenants.url + f"/envelopes/{job}-1", headers=ALICE)
    assert status == 200 and branch["id"] == job
    assert http_json("GET", tenants.url + f"/envelopes/{job}/active", headers=ALICE)[0:2] == (200, {"active": True})

    # The sidecar endpoints work with the internal token, whoever owns the job.
    assert actor.progress(job, ["first", "second"], 0, "received")[0] == 200
    assert http_json("POST", tenants.url + f"/envelopes/{job}/check", {}, SIDECAR)[0:2] == \
        (200, {"job_status": "running", "cancelled": False})
    trace_id = http_json("GET", tenants.url + f"/envelopes/{job}", headers=ALICE)[1]["trace_id"]
    _, spans = pipeline_spans(job, ["first", "second"], trace_id=trace_id)
    assert http_json("POST", tenants.url + "/v1/traces", export_request(spans), SIDECAR)[0:2] == (200, {})
    assert actor.final(job + "-1", "succeeded", {"branch": 1})[0] == 200
    assert actor.final(job, "succeeded", {"branch": 0})[0] == 200

    status, mine, _ = http_json("GET", tenants.url + f"/envelopes/{job}", headers=ALICE)
    assert status == 200 and mine["status"] == "succeeded" and mine["result"] == [{"branch": 0}, {"branch": 1}]
    status, trace, _ = http_json("GET", tenants.url + f"/envelopes/{job}/trace", headers=ALICE)
    assert status == 200 and trace["job_id"] == job and len(trace["spans"]) >= len(spans)
    stream = SseStream(tenants.url + f"/envelopes/{job}/stream", headers=ALICE)
    events = list(stream.events())
    assert stream.status == 200 and events[-1][2]["status"] == "succeeded"
    assert http("GET", tenants.url + f"/envelopes/{job}/trace", headers=BOB)[0] == 404

    # Alice cancels her own job; Bob cannot even learn that it ended.
    other = start_rest(tenants, ALICE, "to cancel")
    assert http_json("POST", tenants.url + f"/envelopes/{other}/cancel", {}, ALICE)[0:2] == \
        (200, {"id": other, "status": "cancelled"})
    assert http_json("POST", tenants.url + f"/envelopes/{other}/cancel", {}, BOB)[0] == 404
    assert http_json("POST", tenants.url + f"/envelopes/{other}/cancel", {}, ALICE)[0] == 409


def test_mcp_resources_and_stream_resumption_refuse_another_callers_job(tenants):
    job = start_rest(tenants, ALICE)
    alice_session, bob_session = mcp_session(tenants, ALICE), mcp_session(tenants, BOB)
    read = mcp_call(tenants, alice_session, ALICE, "resources/read", {"uri": "asya://jobs/" + job})
    assert json.loads(read["result"]["contents"][0]["text"])["id"] == job
    hidden = mcp_call(tenants, bob_session, BOB, "resources/read", {"uri": "asya://jobs/" + job})
    assert hidden["error"]["code"] == -32002 and f'no job with id "{job}"' in hidden["error"]["message"]

    def resume(session, headers):
        return http("GET", tenants.url + "/mcp", headers=dict(headers, **{
            "Accept": "text/event-stream", "Mcp-Session-Id": session, "Last-Event-ID": f"{job}/r/31"}))

    status, _, body = resume(bob_session, BOB)
    assert status == 404 and f'names job "{job}", which does not exist' in json.loads(body)["error"]["message"]
    # Alice resumes after the result event: the stream ends at once, empty.
    assert resume(alice_session, ALICE)[0:3:2] == (200, b"")


def test_with_one_token_every_job_is_served_as_before(gateway_binary, tmp_path):
    """One client token (or none): no isolation. Jobs started before tokens were set (owner "")
    stay visible; with two tokens they belong to no caller."""
    plain = Gateway(gateway_binary, tmp_path, ROUTES).start()
    try:
        old = start_rest(plain, {})
    finally:
        plain.stop()

    single = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TOKEN": "only-token"}).start()
    only = {"Authorization": "Bearer only-token"}
    try:
        new = start_rest(single, only)
        assert listed(single, only) == ([new, old], None)
        for job in (old, new):
            assert http_json("GET", single.url + f"/envelopes/{job}", headers=only)[0] == 200
            assert http_json("GET", single.url + f"/envelopes/{job}/active", headers=only)[0] == 200
            assert http_json("GET", single.url + f"/envelopes/{job}/trace", headers=only)[0] == 200
        assert http_json("POST", single.url + f"/envelopes/{old}/cancel", {}, only)[0] == 200
    finally:
        single.stop()

    pair = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TOKEN": "only-token,second-token"}).start()
    second = {"Authorization": "Bearer second-token"}
    try:
        assert listed(pair, only) == ([new], None)
        assert listed(pair, second) == ([], None)
        assert http("GET", pair.url + f"/envelopes/{new}", headers=only)[0] == 200
        for headers in (only, second):
            assert http("GET", pair.url + f"/envelopes/{old}", headers=headers)[0] == 404
        assert http("GET", pair.url + f"/envelopes/{new}", headers=second)[0] == 404
    finally:
        pair.stop()


def test_an_mcp_session_belongs_to_the_caller_that_opened_it(tenants):
    """With several client tokens, another caller's requests with a session id it learned are answered
    as for an unknown session: no calls, no stream resumption, no cancellation, no ending it."""
    alice_session = mcp_session(tenants, ALICE)
    assert mcp_call(tenants, alice_session, ALICE, "tools/list", {})["result"]["tools"]

    status, _, body = rpc(tenants, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, alice_session,
                          dict(MCP_ACCEPT, **BOB))
    assert status == 404 and "Session not found" in json.loads(body)["error"]["message"], body
    status, _, _ = rpc(tenants, {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                 "params": {"requestId": 2}}, alice_session, dict(MCP_ACCEPT, **BOB))
    assert status == 404
    status, _, body = http("GET", tenants.url + "/mcp", headers=dict(BOB, **{
        "Accept": "text/event-stream", "Mcp-Session-Id": alice_session}))
    assert status == 404 and b"Session not found" in body, body
    status, _, body = http("DELETE", tenants.url + "/mcp", headers=dict(BOB, **{"Mcp-Session-Id": alice_session}))
    assert status == 404 and b"Session not found" in body, body
    # A session id without the caller's part (or with another caller's) is refused the same way.
    bob_session = mcp_session(tenants, BOB)
    for forged in (alice_session.split(".")[0], alice_session.split(".")[0] + "." + bob_session.split(".")[1]):
        status, _, _ = rpc(tenants, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, forged,
                           dict(MCP_ACCEPT, **BOB))
        assert status == 404, forged

    # Alice's session is untouched by all of that, and Bob's own session works.
    assert mcp_call(tenants, alice_session, ALICE, "tools/list", {})["result"]["tools"]
    assert mcp_call(tenants, bob_session, BOB, "tools/list", {})["result"]["tools"]
    status, _, _ = http("DELETE", tenants.url + "/mcp", headers=dict(ALICE, **{"Mcp-Session-Id": alice_session}))
    assert status == 200
