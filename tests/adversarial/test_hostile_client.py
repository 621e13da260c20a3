"""The gateway driven as a hostile client would (issue 11, "Keep it found"): cross-site requests,
tokens on every endpoint, descriptor exhaustion under a low `ulimit -n`, slow headers, malformed
HTTP, oversized headers, Host rebinding and the connection cap. Every case once took the gateway
down or let a web page act; docs/gateway.md, Security, names each fix."""
import json
import socket
import time

import pytest

from hostile_http import (ROUTES, FakeActor, Gateway, close_all, cpu_seconds, gateway_binary,  # noqa: F401
                          http, http_json, open_idle_connections, queue_tool, raw_exchange, status_of,
                          wait_until, with_ulimit)

EVIL = "http://evil.example"


@pytest.fixture
def start_gateway(gateway_binary, tmp_path):
    started = []

    def start(extra_env=None, binary=None, directory=None):
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        gw = Gateway(binary or gateway_binary, workdir, ROUTES, extra_env).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def post_endpoints(job_id):
    return ["/tools/call", "/mcp", "/envelopes", f"/envelopes/{job_id}/progress", f"/envelopes/{job_id}/final"]


def test_cross_site_posts_are_refused_on_every_endpoint_and_change_nothing(start_gateway, queue_tool):
    gw = start_gateway()
    actor = FakeActor(queue_tool, gw)
    status, answer, _ = http_json("POST", gw.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "x"}})
    assert status == 200, answer
    job_id = json.loads(answer["content"][0]["text"])["job_id"]
    envelope = actor.receive("first")
    before = http_json("GET", f"{gw.url}/envelopes/{job_id}")[1]

    forged = json.dumps({"status": "succeeded", "result": {"forged": True}, "id": job_id,
                         "parent_id": job_id, "name": "echo", "arguments": {"text": "x"},
                         "current_actor_idx": 0, "jsonrpc": "2.0", "method": "ping"})
    for path in post_endpoints(job_id):
        # What a web page can send without a CORS preflight: text/plain (or a form) from its origin.
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            status, _, body = http("POST", gw.url + path, forged, {"Content-Type": content_type, "Origin": EVIL})
            assert status == 403, (path, content_type, body)
            assert b"Origin" in body and b"ASYA_GATEWAY_ALLOWED_ORIGINS" in body
        # Without an Origin (a non-browser client, or a browser that hides it): still not JSON.
        status, _, body = http("POST", gw.url + path, forged, {"Content-Type": "text/plain"})
        assert status == 415 and b"Content-Type: application/json" in body, (path, body)
        # JSON from a foreign origin (a preflight the gateway never grants): refused too.
        status, _, body = http("POST", gw.url + path, forged, {"Content-Type": "application/json", "Origin": EVIL})
        assert status == 403, (path, body)
    # Reads from a foreign origin are refused as well.
    assert http("GET", f"{gw.url}/envelopes/{job_id}", headers={"Origin": EVIL})[0] == 403

    status, job, _ = http_json("GET", f"{gw.url}/envelopes/{job_id}")
    assert status == 200 and job == before and "result" not in job, job
    # The real report still counts.
    actors = envelope["route"]["actors"]
    status, _, _ = actor.final(job_id, "succeeded", {"real": True})
    assert status == 200
    status, job, _ = http_json("GET", f"{gw.url}/envelopes/{job_id}")
    assert job["status"] == "succeeded" and job["result"] == {"real": True}, (actors, job)


def test_tokens_on_every_endpoint(start_gateway, queue_tool):
    gw = start_gateway({"ASYA_GATEWAY_TOKEN": "client-secret", "ASYA_GATEWAY_INTERNAL_TOKEN": "sidecar-secret"})
    client = {"Authorization": "Bearer client-secret"}
    internal = {"Authorization": "Bearer sidecar-secret"}
    status, answer, _ = http_json("POST", gw.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "x"}},
                                  client)
    assert status == 200, answer
    job_id = json.loads(answer["content"][0]["text"])["job_id"]
    FakeActor(queue_tool, gw).receive("first")

    mcp_init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    # (method, path, body, which token it needs: None, "client" or "internal")
    endpoints = [
        ("GET", "/healthz", None, None),
        ("GET", "/readyz", None, None),
        ("GET", "/metrics", None, None),
        ("GET", "/tools", None, "client"),
        ("POST", "/tools/call", {"name": "echo", "arguments": {"text": "x"}, "async": True}, "client"),
        ("POST", "/mcp", mcp_init, "client"),
        ("GET", f"/envelopes/{job_id}", None, "client"),
        ("GET", f"/envelopes/{job_id}/active", None, "client"),
        ("POST", "/envelopes", {"id": job_id + "-1", "parent_id": job_id, "actors": ["first"]}, "internal"),
        ("POST", f"/envelopes/{job_id}/progress",
         {"status": "processing", "current_actor_idx": 0, "actors": ["first", "second"]}, "internal"),
        ("POST", f"/envelopes/{job_id}-1/final", {"status": "succeeded", "result": 1}, "internal"),
    ]
    mcp_headers = {"Accept": "application/json, text/event-stream"}
    for method, path, body, needs in endpoints:
        extra = mcp_headers if path == "/mcp" else {}
        def call(headers):
            return http(method, gw.url + path, body, dict(extra, **headers))[0]
        if needs is None:
            assert call({}) == 200, path
            continue
        right = client if needs == "client" else internal
        wrong = internal if needs == "client" else client
        assert call({}) == 401, path
        assert call(wrong) == 401, path
        assert call({"Authorization": "Bearer nope"}) == 401, path
        assert call({"Authorization": right["Authorization"].replace("Bearer", "Basic")}) == 401, path
        for scheme in ("Bearer", "bearer", "BEARER"):
            token = right["Authorization"].split(" ", 1)[1]
            assert call({"Authorization": f"{scheme} {token}"}) in (200, 201), (path, scheme)
    # The SSE stream (it stays open while the job runs, so only the refusals are checked here).
    stream = f"{gw.url}/envelopes/{job_id}/stream"
    assert http("GET", stream)[0] == 401
    assert http("GET", stream, headers=internal)[0] == 401
    # The 401 says which token is missing.
    status, answer, headers = http_json("GET", gw.url + "/tools")
    assert status == 401 and "ASYA_GATEWAY_TOKEN" in answer["error"] and headers["WWW-Authenticate"] == "Bearer"
    status, answer, _ = http_json("POST", f"{gw.url}/envelopes/{job_id}/final", {"status": "failed"}, client)
    assert status == 401 and "ASYA_GATEWAY_INTERNAL_TOKEN" in answer["error"]


def test_descriptor_exhaustion_costs_little_cpu_and_log_and_the_gateway_recovers(start_gateway, gateway_binary,
                                                                                 tmp_path):
    # 48 descriptors: enough to start, far fewer than the connections below. Idle connections are
    # kept (header timeout 120 s) so the descriptors stay used while we measure.
    binary = with_ulimit(gateway_binary, 48, tmp_path)
    gw = start_gateway({"ASYA_GATEWAY_HEADER_TIMEOUT": "120s", "ASYA_GATEWAY_MAX_CONNECTIONS": "100000"}, binary)
    connections = open_idle_connections(gw.port, 120)
    try:
        wait_until(lambda: "accept failed" in gw.log.read_text(), 30, "accept to fail for lack of descriptors")
        log_size_before = gw.log.stat().st_size
        cpu_before = cpu_seconds(gw.process.pid)
        window = 10.0
        time.sleep(window)  # the measurement window itself: CPU and log growth over 10 s
        cpu_used = cpu_seconds(gw.process.pid) - cpu_before
        log_growth = gw.log.stat().st_size - log_size_before
        # Before the fix: 8.7 CPU-seconds and hundreds of MB of log in 10 s.
        assert cpu_used < 1.0, f"{cpu_used:.2f} CPU-seconds in {window} s while descriptors are exhausted"
        assert log_growth < 8192, f"log grew {log_growth} bytes in {window} s"
        assert gw.process.poll() is None
        text = gw.log.read_text()
        assert "Too many open files" in text and "retrying in" in text
    finally:
        close_all(connections)
    wait_until(lambda: http("GET", gw.url + "/healthz", timeout=5)[0] == 200, 60,
               "/healthz after the connections closed")


def test_connections_beyond_the_cap_get_503(start_gateway):
    gw = start_gateway({"ASYA_GATEWAY_MAX_CONNECTIONS": "4", "ASYA_GATEWAY_HEADER_TIMEOUT": "60s"})
    connections = open_idle_connections(gw.port, 4)
    try:
        # The gateway accepts the fifth at once and answers it 503 (wait until it counted the four).
        def refused():
            response = raw_exchange(gw.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                                    timeout=10)
            return response.startswith(b"HTTP/1.1 503 ") and response
        response = wait_until(refused, 30, "a 503 for the connection over the cap")
        assert b"ASYA_GATEWAY_MAX_CONNECTIONS" in response
    finally:
        close_all(connections)
    wait_until(lambda: http("GET", gw.url + "/healthz", timeout=5)[0] == 200, 30, "/healthz after closing")


def test_slow_headers_are_cut_off_after_the_header_timeout(start_gateway):
    gw = start_gateway({"ASYA_GATEWAY_HEADER_TIMEOUT": "3s"})
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    received = b""
    sent = 0
    with socket.create_connection(("127.0.0.1", gw.port), timeout=1) as s:
        started = time.monotonic()
        closed_at = None
        while closed_at is None and time.monotonic() - started < 60:
            try:
                s.sendall(request[sent:sent + 1])  # one byte per second: slowloris
                sent += 1
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            try:
                chunk = s.recv(65536)
                if not chunk:
                    closed_at = time.monotonic()
                received += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_at = time.monotonic()
    assert closed_at is not None, "the slow connection was never closed"
    assert sent < len(request)
    # Closed after about 3 s (one byte a second: well before the 120-byte request was complete).
    assert closed_at - started < 3 + 20, f"closed after {closed_at - started:.1f} s"
    assert status_of(received) == 408 and b"ASYA_GATEWAY_HEADER_TIMEOUT" in received, received


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
    b"GET /healthz HTTP/7.5\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /tools/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ten\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",  # TLS to a plain port
], ids=["header-without-colon", "bad-version", "bad-content-length", "bad-chunk", "tls-hello"])
def test_malformed_http_gets_400(start_gateway, request_bytes):
    gw = start_gateway()
    response = raw_exchange(gw.port, request_bytes)
    assert status_of(response) == 400, response
    body = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert body["error"].startswith("malformed HTTP request: "), body
    assert http("GET", gw.url + "/healthz")[0] == 200


def test_oversized_headers_get_431(start_gateway):
    gw = start_gateway()
    response = raw_exchange(gw.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n")
    assert status_of(response) == 431, response[:300]
    assert b"larger than 65536 bytes" in response


def test_host_rebinding_is_refused(start_gateway):
    gw = start_gateway()  # bound to 127.0.0.1: only addresses and localhost
    port = gw.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        status, _, body = http("GET", gw.url + "/tools", headers={"Host": host})
        assert status == 403 and b"ASYA_GATEWAY_ALLOWED_HOSTS" in body, (host, body)
        assert http("GET", gw.url + "/healthz", headers={"Host": host})[0] == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert http("GET", gw.url + "/tools", headers={"Host": host})[0] == 200, host

    listed = start_gateway({"ASYA_GATEWAY_ALLOWED_HOSTS": "gateway.internal, asya-gateway"})
    assert http("GET", listed.url + "/tools", headers={"Host": f"gateway.internal:{listed.port}"})[0] == 200
    assert http("GET", listed.url + "/tools", headers={"Host": "asya-gateway"})[0] == 200
    assert http("GET", listed.url + "/tools", headers={"Host": "evil.example"})[0] == 403


def test_the_default_cap_is_reached_before_descriptors_run_out(start_gateway, gateway_binary, tmp_path):
    # ulimit -n 100 and no ASYA_GATEWAY_MAX_CONNECTIONS: the cap is 100 - 64 = 36, so the 37th
    # idle connection is answered 503 while accept never fails.
    binary = with_ulimit(gateway_binary, 100, tmp_path)
    gw = start_gateway({"ASYA_GATEWAY_HEADER_TIMEOUT": "120s"}, binary)
    connections = open_idle_connections(gw.port, 36)
    try:
        def refused():
            response = raw_exchange(gw.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                                    timeout=10)
            return response.startswith(b"HTTP/1.1 503 ") and response
        assert b"too many open connections (36, ASYA_GATEWAY_MAX_CONNECTIONS)" in wait_until(refused, 30, "a 503")
        assert "accept failed" not in gw.log.read_text()
    finally:
        close_all(connections)
    wait_until(lambda: http("GET", gw.url + "/healthz", timeout=5)[0] == 200, 30, "/healthz after closing")
