"""A sidecar's reports to the gateway (PROTOCOL §7) on every transport, against the recording
gateway of sidecar_harness: reports that queue up while the gateway is slow arrive in one batched
request, in order; the check after a long call carries its "completed" report."""
import threading
import time

from sidecar_harness import wait_for
from test_sidecar import envelope


def test_final_reports_queued_while_the_gateway_is_slow_arrive_batched_in_order(cluster, gateway):
    release = threading.Event()
    first = threading.Event()

    def slow_first_report(path, body):
        # The first final report waits for the gateway; those made meanwhile queue behind it.
        if path.endswith("/final") and not first.is_set():
            first.set()
            release.wait(30)
    gateway.on_post = slow_first_report
    env = {"ASYA_GATEWAY_URL": gateway.url}
    cluster.actor("happy-end", runtime=False, env=env)
    ids = ["F%d" % i for i in range(6)]
    cluster.queues.send("asya-happy-end", envelope(ids[0], ["a"], current=1, payload={"i": 0}, job=ids[0]))
    assert first.wait(30), "the first final report to reach the gateway"
    for i, id_ in enumerate(ids[1:], start=1):
        cluster.queues.send("asya-happy-end", envelope(id_, ["a"], current=1, payload={"i": i}, job=id_))
    wait_for(lambda: all((cluster.results / ("%s.json" % i)).exists() for i in ids), 30,
             "happy-end to store every result")
    release.set()

    def finals():
        return [path for path, _ in gateway.snapshot() if path.endswith("/final")]
    wait_for(lambda: len(set(finals())) == len(ids), 30, "every final report")
    # Queue order kept (the held first one may also arrive twice: its try timed out meanwhile on a
    # loaded machine and was repeated, which a final report allows).
    first_seen = list(dict.fromkeys(finals()))
    assert first_seen == ["/envelopes/%s/final" % i for i in ids]
    assert gateway.batches >= 1  # the five made while the first waited went together
    # Reports only: the sidecar also sends its spans to the gateway (POST /v1/traces) when its
    # export timer fires, which on a slow machine can be within the test.
    for path, body in gateway.snapshot():
        if not path.startswith("/envelopes/"):
            continue
        i = int(path.split("/")[2][1:])
        assert body["status"] == "succeeded" and body["result"] == {"i": i}, (path, body)


def test_the_check_after_a_long_call_carries_its_completed_report(cluster, gateway):
    gateway.accept_progress_in_checks = True
    env = {"ASYA_GATEWAY_URL": gateway.url}
    cluster.actor("work", "slow", env=env)
    cluster.queues.send("asya-work", envelope("L1", ["work"], payload={"tag": "l1", "sleep": 0.3}, job="L1"))
    wait_for(lambda: cluster.queues.stats("asya-happy-end")["ready"] == 1, 30, "the output")
    time.sleep(0.5)  # a separate report would have been posted by now
    mine = [(path.rsplit("/", 1)[1], body) for path, body in gateway.snapshot()
            if path.startswith("/envelopes/L1/")]
    # Two checks, no report of its own: the first carries "processing", the second "completed".
    assert [what for what, _ in mine] == ["check", "check"], mine
    assert mine[0][1]["progress"]["status"] == "processing"
    assert mine[1][1]["progress"]["status"] == "completed"
    assert isinstance(mine[1][1]["progress"]["duration_ms"], int)


def test_an_older_gateway_gets_the_completed_report_of_a_long_call_on_its_own(cluster, gateway):
    env = {"ASYA_GATEWAY_URL": gateway.url}  # checks answered without "progress": "accepted"
    cluster.actor("work", "slow", env=env)
    cluster.queues.send("asya-work", envelope("L2", ["work"], payload={"tag": "l2", "sleep": 0.3}, job="L2"))

    def progress():
        return [body["status"] for path, body in gateway.snapshot() if path == "/envelopes/L2/progress"]
    wait_for(lambda: progress() == ["processing", "completed"], 30, "both reports posted on their own")
