"""The cancellation feed GET /envelopes/cancellations (PROTOCOL §7), a sidecar endpoint of the real
gateway: the jobs cancelled after a position, a request held until one is, positions that survive a
restart, clear 400s for bad parameters, and several replicas on one PostgreSQL store that all see
every cancel."""
import threading
import urllib.parse

import pytest

from gateway_harness import ROUTES, Gateway, http_json
from test_postgres_replicas import SLOW_POLL, fresh_database


def start_job(gw):
    status, answer, _ = http_json("POST", gw.url + "/tools/call",
                                  {"name": "pipeline", "arguments": {"text": "c"}}, gw.client_headers())
    assert status == 200, answer
    return answer["structuredContent"]["job_id"]


def cancel(gw, job_id):
    status, answer, _ = http_json("POST", f"{gw.url}/envelopes/{job_id}/cancel", {}, gw.client_headers())
    assert status == 200 and answer["status"] == "cancelled", answer


def feed(gw, after=-1, wait_ms=0, headers=None, timeout=90):
    query = urllib.parse.urlencode({"after": after, "wait_ms": wait_ms})
    return http_json("GET", f"{gw.url}/envelopes/cancellations?{query}",
                     headers=gw.internal_headers() if headers is None else headers, timeout=timeout)


def held(gw, after, wait_ms=60000):
    """A feed request held in a thread; `.join()` returns its (status, answer)."""
    box = {}
    thread = threading.Thread(target=lambda: box.update(r=feed(gw, after, wait_ms)))
    thread.start()

    class Held:
        def join(self):
            thread.join(120)
            assert not thread.is_alive()
            return box["r"][0], box["r"][1]
    return Held()


def test_the_feed_lists_cancelled_jobs_after_a_position_and_holds_until_one(gateway):
    a, b, kept = start_job(gateway), start_job(gateway), start_job(gateway)
    status, empty, _ = feed(gateway)
    assert status == 200 and empty == {"next_after": 0, "cancelled": []}, empty
    cancel(gateway, a)
    status, first, _ = feed(gateway)
    assert status == 200 and first["cancelled"] == [a] and first["next_after"] > 0, first
    # Nothing new: an immediate answer at the same position.
    status, same, _ = feed(gateway, first["next_after"])
    assert same == {"next_after": first["next_after"], "cancelled": []}, same
    # A held request (a minute at most) is answered by the next cancel, with that job only.
    waiting = held(gateway, first["next_after"])
    cancel(gateway, b)
    status, woken = waiting.join()
    assert status == 200 and woken["cancelled"] == [b], woken
    assert woken["next_after"] > first["next_after"]
    # A position this store never had (the sidecar followed another database): from the start.
    status, reset, _ = feed(gateway, 10**9)
    assert reset["reset"] is True and reset["cancelled"] == [a, b], reset
    assert kept not in reset["cancelled"]


def test_positions_survive_a_gateway_restart(gateway):
    a = start_job(gateway)
    cancel(gateway, a)
    _, seen, _ = feed(gateway)
    gateway.stop()
    gateway.start()
    b = start_job(gateway)
    cancel(gateway, b)
    _, after_restart, _ = feed(gateway, seen["next_after"])
    assert after_restart["cancelled"] == [b] and "reset" not in after_restart, after_restart


@pytest.mark.parametrize("query, why", [
    ("after=soon", "after must be -1"),
    ("after=-2", "after must be -1"),
    ("wait_ms=61000", "wait_ms must be an integer from 0 to 60000"),
    ("wait_ms=-1", "wait_ms must be an integer from 0 to 60000"),
    ("since=3", "unknown query parameter \"since\""),
])
def test_bad_parameters_get_a_400_that_says_what_is_wrong(gateway, query, why):
    status, answer, _ = http_json("GET", f"{gateway.url}/envelopes/cancellations?{query}",
                                  headers=gateway.internal_headers())
    assert status == 400 and why in answer["error"], answer


def test_the_feed_needs_the_internal_token(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_INTERNAL_TOKEN": "inside",
                                                     "ASYA_GATEWAY_TOKEN": "outside"}).start()
    try:
        status, answer, _ = feed(gw, headers=gw.client_headers())
        assert status == 401 and "ASYA_GATEWAY_INTERNAL_TOKEN" in answer["error"], answer
        status, answer, _ = feed(gw)
        assert status == 200 and answer["cancelled"] == [], answer
    finally:
        gw.stop()


def test_every_replica_on_one_postgres_store_sees_every_cancel(gateway_binary, tmp_path, postgres_url):
    _, url = fresh_database(postgres_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # A 60 s poll interval: a held request on A answered for a cancel made on B is the
    # notification's doing (the request itself would be held a minute).
    a = Gateway(gateway_binary, tmp_path / "a", ROUTES, dict(SLOW_POLL, ASYA_DATABASE_URL=url)).start()
    b = Gateway(gateway_binary, tmp_path / "b", ROUTES, dict(SLOW_POLL, ASYA_DATABASE_URL=url)).start()
    try:
        jobs = [start_job(a) for _ in range(3)]
        cancel(b, jobs[0])
        _, on_a, _ = feed(a)
        _, on_b, _ = feed(b)
        assert on_a == on_b and on_a["cancelled"] == [jobs[0]], (on_a, on_b)
        waiting = held(a, on_a["next_after"], wait_ms=60000)
        cancel(b, jobs[1])
        status, woken = waiting.join()
        assert status == 200 and woken["cancelled"] == [jobs[1]], woken
        # Both replicas cancelling: one order, shared by both.
        cancel(a, jobs[2])
        _, all_a, _ = feed(a)
        _, all_b, _ = feed(b)
        assert all_a["cancelled"] == all_b["cancelled"] == jobs, (all_a, all_b)
    finally:
        a.stop()
        b.stop()
