"""A tool call answered 200 is durable: its job is stored and its envelope queued before the
answer (docs/gateway.md "Job stores": group commit), so a SIGKILL of the gateway while many
callers are being answered loses neither, on SQLite and on PostgreSQL; and concurrent callers each
get a job of their own."""
import json
import signal
import subprocess
import threading

import pytest

from gateway_harness import ROUTES, Gateway, http_json, wait_until


def queued_envelope_ids(queue_tool, env, queue):
    """Ids of every envelope waiting on `queue` (received and acked)."""
    ids = []
    while True:
        result = subprocess.run([str(queue_tool), "recv", queue, "--max", "500", "--wait", "1s", "--ack"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        if not lines:
            return ids
        ids += [json.loads(json.loads(line)["body"])["id"] for line in lines]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_calls_answered_before_a_sigkill_keep_their_job_and_envelope(gateway_binary, queue_tool, tmp_path,
                                                                     request, store):
    extra = {"ASYA_DATABASE_URL": request.getfixturevalue("postgres_url")} if store == "postgres" else {}
    gateway = Gateway(gateway_binary, tmp_path, ROUTES, extra).start()
    answered = []
    refused = []
    lock = threading.Lock()

    def caller():
        while True:
            try:
                status, answer, _ = http_json("POST", gateway.url + "/tools/call",
                                              {"name": "pipeline", "arguments": {"text": "t"}}, timeout=30)
            except OSError:
                return  # the gateway is gone: this call was never answered
            with lock:
                if status == 200 and not answer.get("isError"):
                    answered.append(answer["structuredContent"]["job_id"])
                else:
                    refused.append((status, answer))

    callers = [threading.Thread(target=caller, daemon=True) for _ in range(8)]
    for thread in callers:
        thread.start()
    wait_until(lambda: len(answered) >= 300, timeout=120, what="300 answered calls")
    gateway.process.send_signal(signal.SIGKILL)  # while the 8 callers are in the middle of calls
    gateway.process.wait()
    for thread in callers:
        thread.join(timeout=60)
    assert not refused, refused[:3]
    ids = list(answered)
    assert len(set(ids)) == len(ids), "two calls were given the same job id"

    # Every answered call's job is in the store (a new gateway on the same store reads it) and its
    # envelope is on the first actor's queue.
    again = Gateway(gateway_binary, tmp_path, ROUTES, extra).start()
    try:
        for job_id in ids:
            status, job, _ = http_json("GET", f"{again.url}/envelopes/{job_id}")
            assert status == 200, (job_id, job)
            assert job["id"] == job_id and job["status"] == "pending"
        queued = queued_envelope_ids(queue_tool, again.env, "asya-first")
        missing = set(ids) - set(queued)
        assert not missing, f"{len(missing)} of {len(ids)} answered calls have no envelope queued"
        assert len(set(queued)) == len(queued), "an envelope was queued twice"
    finally:
        again.stop()


SHORT_ROUTES = """
tools:
  - name: short
    description: An async tool whose jobs time out quickly
    parameters:
      text: {type: string, required: true}
    route: [first]
    async: true
    timeout: 3
"""


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_sigkill_between_a_calls_job_and_its_envelope_leaves_no_job_pending_for_ever(
        gateway_binary, queue_tool, tmp_path, request, store):
    """A call records its job, then publishes its envelope. A gateway killed between the two
    leaves jobs whose envelopes were never queued and whose callers got no answer (docs/gateway.md
    "Job stores"); each still ends: the sweeper of the next gateway fails it with "timed out" at
    its deadline. So after the kill every answered call's envelope is queued, and every job, with
    or without its envelope, is finished by its deadline."""
    extra = {"ASYA_DATABASE_URL": request.getfixturevalue("postgres_url")} if store == "postgres" else {}
    gateway = Gateway(gateway_binary, tmp_path, SHORT_ROUTES, extra).start()
    answered = []
    lock = threading.Lock()

    def caller():
        while True:
            try:
                status, answer, _ = http_json("POST", gateway.url + "/tools/call",
                                              {"name": "short", "arguments": {"text": "t"}}, timeout=30)
            except OSError:
                return
            if status == 200 and not answer.get("isError"):
                with lock:
                    answered.append(answer["structuredContent"]["job_id"])

    callers = [threading.Thread(target=caller, daemon=True) for _ in range(8)]
    for thread in callers:
        thread.start()
    wait_until(lambda: len(answered) >= 100, timeout=120, what="100 answered calls")
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait()
    for thread in callers:
        thread.join(timeout=60)

    again = Gateway(gateway_binary, tmp_path, SHORT_ROUTES, extra).start()
    try:
        queued = set(queued_envelope_ids(queue_tool, again.env, "asya-first"))
        assert set(answered) <= queued, "an answered call has no envelope queued"

        def all_jobs():
            jobs, cursor = [], None
            while True:
                # This test's tool only: on PostgreSQL the database is shared with other tests.
                path = "/envelopes?tool=short&limit=500" + (f"&cursor={cursor}" if cursor else "")
                status, page, _ = http_json("GET", again.url + path)
                assert status == 200, page
                jobs += page["jobs"]
                cursor = page.get("next_cursor")
                if not cursor:
                    return jobs
        jobs = all_jobs()
        assert len(jobs) >= len(answered)
        # Every job ends, with or without its envelope: none stays pending past its deadline.
        wait_until(lambda: all(j["status"] != "pending" for j in all_jobs()), timeout=60,
                   what="every job past its deadline to be finished by the sweeper")
        for job in all_jobs():
            assert job["status"] == "failed" and "timed out" in job.get("error", ""), job
    finally:
        again.stop()
