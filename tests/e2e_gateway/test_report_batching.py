"""Batched reports end to end (PROTOCOL §7 POST /envelopes/reports): real sidecars whose
reporters coalesce the final reports that queued while the gateway was busy, a real gateway that
applies them, and jobs that still end with the right status, result and progress history. Runs
with and without the gateway's tokens (the stack fixture)."""
import os
import re
import signal

from gateway_harness import http, http_json, wait_until
from sse import SseStream

CALLS = 10


def reports_total(stack, kind):
    text = http("GET", stack.url + "/metrics", headers=stack.headers)[2].decode()
    match = re.search(r'^asya_gateway_sidecar_reports_total\{kind="%s"\} (\S+)$' % kind, text, re.M)
    return float(match.group(1)) if match else 0.0


def events_of(stack, job_id):
    stream = SseStream("%s/envelopes/%s/stream" % (stack.url, job_id), headers=stack.headers, timeout=30)
    try:
        return [data for _, event, data in stream.events() if event == "update"]
    finally:
        stream.close()


def test_final_reports_queued_while_the_gateway_is_stopped_arrive_in_a_batch(stack):
    happy_end = next(a for a in stack.cluster.actors if a.name == "happy-end").sidecar.popen
    gateway = stack.gateway.process
    batches_before = reports_total(stack, "batch")
    # The happy-end sidecar holds still while the calls go through both actors, so their final
    # reports are all made at once afterwards.
    happy_end.send_signal(signal.SIGSTOP)
    try:
        job_ids = []
        for value in range(CALLS):
            status, answer, _ = http_json("POST", stack.url + "/tools/call",
                                          {"name": "pipeline", "arguments": {"value": value}},
                                          headers=stack.headers, timeout=60)
            assert status == 200, answer
            job_ids.append(answer["structuredContent"]["job_id"])
        wait_until(lambda: stack.cluster.queues.stats("asya-happy-end")["ready"] == CALLS, 60,
                   "every envelope to wait at happy-end")
        # The gateway stops answering (for less than a report's 2 s timeout); happy-end stores the
        # results and queues their final reports behind the one it is sending.
        os.kill(gateway.pid, signal.SIGSTOP)
        try:
            happy_end.send_signal(signal.SIGCONT)
            wait_until(lambda: all((stack.results / ("%s.json" % j)).exists() for j in job_ids), 30,
                       "happy-end to store every result")
        finally:
            os.kill(gateway.pid, signal.SIGCONT)
    finally:
        happy_end.send_signal(signal.SIGCONT)

    def job(job_id):
        return http_json("GET", "%s/envelopes/%s" % (stack.url, job_id), headers=stack.headers)[1]
    for value, job_id in enumerate(job_ids):
        wait_until(lambda: job(job_id)["status"] == "succeeded", 30, "job %s to succeed" % job_id)
        body = job(job_id)
        assert body["result"] == {"value": value * 2 + 5}
        assert body["progress_percent"] == 100
        events = events_of(stack, job_id)
        percents = [e["progress_percent"] for e in events]
        assert percents == sorted(percents), events  # never backwards
        assert events[-1]["status"] == "succeeded" and percents[-1] == 100
        # The last actor's "completed" report arrived before the final status (the first actor's
        # may be overtaken by the second's check, which carries its "processing" report, and is
        # then ignored as behind: reports of different sidecars race, PROTOCOL §7).
        completed = [e["actor"] for e in events if e["envelope_state"] == "completed"]
        assert completed in (["doubler", "incrementer"], ["incrementer"]), events
    # At least one request carried several final reports (the ones queued during the stop).
    assert reports_total(stack, "batch") > batches_before
