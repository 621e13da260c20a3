"""Several gateways on one PostgreSQL job store: a replica learns of changes recorded by another
at once (LISTEN/NOTIFY), not only by polling; /readyz follows the database's reachability."""
import subprocess
import threading
import time
import uuid

from gateway_harness import PG_BIN, FakeActor, Gateway, ROUTES, http_json, wait_until
from sse import SseStream

# Long enough that only a notification can explain a prompt answer.
SLOW_POLL = {"ASYA_GATEWAY_POLL_INTERVAL": "60s"}


def psql(url, sql):
    result = subprocess.run([str(PG_BIN / "psql"), url, "-v", "ON_ERROR_STOP=1", "-c", sql],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def fresh_database(postgres_url):
    name = "gw_" + uuid.uuid4().hex[:12]
    psql(postgres_url, f"CREATE DATABASE {name}")
    return name, postgres_url.rsplit("/", 1)[0] + "/" + name


def test_a_replica_streams_changes_another_replica_recorded(gateway_binary, tmp_path, postgres_url, queue_tool):
    _, url = fresh_database(postgres_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Gateway(gateway_binary, tmp_path / "a", ROUTES, dict(SLOW_POLL, ASYA_DATABASE_URL=url)).start()
    b = Gateway(gateway_binary, tmp_path / "b", ROUTES, dict(SLOW_POLL, ASYA_DATABASE_URL=url)).start()
    try:
        # SSE on replica A, every sidecar report to replica B.
        _, answer, _ = http_json("POST", a.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "r"}})
        job_id = answer["structuredContent"]["job_id"]
        stream = SseStream(f"{a.url}/envelopes/{job_id}/stream", timeout=30)
        events = stream.events()
        assert next(events)[2]["status"] == "pending"
        reporter = FakeActor(queue_tool, b)
        started = time.monotonic()
        reporter.progress(job_id, ["first", "second"], 0, "processing")
        assert next(events)[2]["envelope_state"] == "processing"
        reporter.final(job_id, "succeeded", {"via": "b"})
        last = next(events)[2]
        took = time.monotonic() - started
        assert last["status"] == "succeeded" and last["result"] == {"via": "b"}
        # Half the 60 s poll interval: only a notification explains it, with room for a loaded
        # machine.
        assert took < 30, f"replica A saw B's changes after {took:.1f}s (polling, not notified)"
        assert list(events) == []  # closed after the final event
        stream.close()

        # A blocking tool call waiting on replica A ends when B records the final report.
        box = {}

        def call():
            box["answer"] = http_json("POST", a.url + "/tools/call", {"name": "echo", "arguments": {"text": "w"}},
                                      timeout=90)

        thread = threading.Thread(target=call)
        thread.start()
        envelope = FakeActor(queue_tool, a).receive("echo")
        started = time.monotonic()
        reporter.final(envelope["id"], "succeeded", {"echo": "w"})
        thread.join(30)
        took = time.monotonic() - started
        assert not thread.is_alive(), "the call on replica A did not end after B recorded the final report"
        status, result, _ = box["answer"]
        assert status == 200 and result["structuredContent"] == {"echo": "w"}
        assert took < 30, took
    finally:
        a.stop()
        b.stop()


def test_readyz_reports_an_unreachable_job_store_and_recovers(gateway_binary, tmp_path, postgres_url):
    name, url = fresh_database(postgres_url)
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_DATABASE_URL": url}).start()
    try:
        assert http_json("GET", gw.url + "/readyz")[0:2] == (200, {"status": "ready"})
        psql(postgres_url, f"DROP DATABASE {name} WITH (FORCE)")
        status, body, _ = http_json("GET", gw.url + "/readyz")
        assert status == 503 and body["error"].startswith("job store not reachable: "), body
        assert name in body["error"] and "***" not in body["error"]
        assert http_json("GET", gw.url + "/healthz")[0] == 200  # alive, only not ready
        psql(postgres_url, f"CREATE DATABASE {name}")
        wait_until(lambda: http_json("GET", gw.url + "/readyz")[0] == 200, 20, "/readyz 200 after the database is back")
    finally:
        gw.stop()
