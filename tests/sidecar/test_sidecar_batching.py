"""Dynamic batching in the sidecar (issue 14; docs/protocol.md §3 "Batches"): real sidecar and
Python runtime processes on each transport. Messages are queued before the sidecar starts, so
they are ready at once and gathered into batches."""
import datetime
import json
import pathlib
import signal
import subprocess
import sys

import pytest
from sidecar_harness import running_cluster, wait_for
from test_sidecar import ERROR, HAPPY, envelope, metric_samples, only

HERE = pathlib.Path(__file__).resolve().parent

BATCH_ENV = {"ASYA_BATCH_MAX_SIZE": "16", "ASYA_BATCH_MAX_WAIT": "50ms", "ASYA_HANDLER_BATCH": "true"}


def recorded_batches(cluster):
    batches = []
    for name in cluster.markers_named("batch-"):
        batches.append(json.loads((cluster.markers / name).read_text()))
    return batches


def test_a_batch_actor_settles_each_item_and_its_metrics_pass_promtool(cluster):
    cluster.queues.send_many("asya-echo", [envelope("m%d" % i, ["echo"], payload={"i": i, "fail": i % 10 == 4})
                                           for i in range(40)])
    actor = cluster.actor("echo", "batch_echo", env=BATCH_ENV)
    happy = cluster.queues.collect(HAPPY, 36, timeout=60)
    errors = cluster.queues.collect(ERROR, 4, timeout=60)
    assert sorted(m["json"]["id"] for m in happy) == sorted("m%d" % i for i in range(40) if i % 10 != 4)
    for m in errors:
        error = m["json"]["payload"]
        assert error["error"] == "processing_error"
        assert error["details"]["type"] == "ValueError"
        assert error["details"]["message"] == "item %d failed" % error["original_payload"]["i"]
    sizes = [len(b["ids"]) for b in recorded_batches(cluster)]
    assert sum(sizes) == 40 and max(sizes) > 1 and max(sizes) <= 16, sizes

    text = wait_for(lambda: (lambda t: t if "asya_actor_batch_items_total{queue=\"asya-echo\"} 40" in t
                             else None)(actor.metrics()), 10, "the batch metrics")
    samples = metric_samples(text)
    assert samples["asya_actor_batch_size"]
    count = [v for labels, v in samples["asya_actor_batch_size"] if labels == {"queue": "asya-echo"}]
    assert len(sizes) in count, (sizes, count)  # one observation per runtime call
    assert "# TYPE asya_actor_batch_wait_seconds histogram" in text.splitlines()
    assert 'asya_actor_messages_processed_total{queue="asya-echo",status="success"} 36' in text.splitlines()
    assert 'asya_actor_messages_processed_total{queue="asya-echo",status="error"} 4' in text.splitlines()
    promtool = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr


def test_concurrency_two_keeps_two_batches_in_flight_on_two_connections(cluster):
    cluster.queues.send_many("asya-echo", [envelope("m%d" % i, ["echo"], payload={"i": i, "sleep": 1.0})
                                           for i in range(20)])
    cluster.actor("echo", "batch_echo", env=dict(
        BATCH_ENV, ASYA_BATCH_MAX_SIZE="5", ASYA_CONCURRENCY="2", ASYA_HANDLER_THREAD_SAFE="true"))
    cluster.queues.collect(HAPPY, 20, timeout=90)
    batches = recorded_batches(cluster)
    assert sum(len(b["ids"]) for b in batches) == 20
    overlapping = [(a, b) for a in batches for b in batches
                   if a is not b and a["start"] < b["end"] and b["start"] < a["end"]]
    assert overlapping, batches
    # The runtime serves each connection on its own thread: two batches at once, two connections.
    assert any(a["thread"] != b["thread"] for a, b in overlapping), overlapping


def test_a_runtime_without_batch_support_stops_the_sidecar_with_exit_2(cluster):
    env = dict(BATCH_ENV)
    env.pop("ASYA_HANDLER_BATCH")  # the runtime serves a plain handler and declares nothing
    cluster.queues.send("asya-echo", envelope("kept", ["echo"], payload={"i": 0}))
    actor = cluster.actor("echo", "echo", env=env, start_sidecar=False)
    sidecar = actor.start_sidecar(wait_ready=False)
    assert sidecar.popen.wait(60) == 2
    lines = [json.loads(line) for line in sidecar.text().splitlines() if "does not accept batches" in line]
    assert lines, sidecar.text()
    assert lines[0]["level"] == "error"
    assert "ASYA_BATCH_MAX_SIZE=16" in lines[0]["msg"] and actor.socket in lines[0]["msg"]
    # Nothing was taken: the message is still there for a runtime that can take it.
    assert cluster.queues.collect("asya-echo", 1)[0]["json"]["id"] == "kept"


def test_a_batch_held_past_the_visibility_timeout_keeps_every_lease(cluster):
    # Five messages in one batch whose handler takes 6 s, three times ASYA_VISIBILITY_TIMEOUT: the
    # lease keeper extends the lease of every item of the batch, so none is delivered again.
    for i in range(5):
        cluster.queues.send("asya-echo", envelope("m%d" % i, ["echo"], payload={"i": i, "sleep": 6}))
    actor = cluster.actor("echo", "batch_echo", env=dict(BATCH_ENV, ASYA_VISIBILITY_TIMEOUT="2s"))
    happy = cluster.queues.collect(HAPPY, 5, timeout=60)
    assert sorted(m["json"]["id"] for m in happy) == ["m%d" % i for i in range(5)]
    batches = recorded_batches(cluster)
    assert sorted(i for b in batches for i in b["ids"]) == list(range(5)), batches  # each item once
    text = actor.metrics()
    assert 'asya_actor_redeliveries_total{queue="asya-echo",transport="%s"} 0' % cluster.transport \
        in text.splitlines()
    extended = [v for labels, v in metric_samples(text)["asya_actor_lease_extensions_total"]
                if labels.get("result") == "ok"]
    assert extended and extended[0] >= 5, extended  # at least one extension per item


def test_the_next_batch_is_leased_while_the_runtime_works_and_keeps_its_lease(cluster):
    # Ten messages, maxSize 5: the first batch is full, so the next one is leased while the
    # handler works on the first (sidecar/batch_ahead.hpp), for 8 s, four times
    # ASYA_VISIBILITY_TIMEOUT. The lease keeper extends the batch leased ahead too: no item is
    # delivered again.
    for i in range(10):
        cluster.queues.send("asya-echo", envelope("m%d" % i, ["echo"], payload={"i": i, "sleep": 8 if i < 5 else 0}))
    actor = cluster.actor("echo", "batch_echo", env=dict(
        BATCH_ENV, ASYA_BATCH_MAX_SIZE="5", ASYA_VISIBILITY_TIMEOUT="2s"))
    if cluster.transport == "sqlite":  # in order, exact counts: both batches leased, none ready
        wait_for(lambda: (lambda s: s if s["in_flight"] == 10 and s["ready"] == 0 else None)(
            cluster.queues.stats("asya-echo")), 7, "the second batch to be leased during the first")
    happy = cluster.queues.collect(HAPPY, 10, timeout=90)
    assert sorted(m["json"]["id"] for m in happy) == sorted("m%d" % i for i in range(10))
    batches = recorded_batches(cluster)
    assert sorted(i for b in batches for i in b["ids"]) == list(range(10)), batches  # each item once
    if cluster.transport == "sqlite":
        # Leased in queue order, five and five, and run in the order sent (protocol §3 "Order").
        assert [b["ids"] for b in sorted(batches, key=lambda b: b["start"])] == \
            [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], batches
    processed = 'asya_actor_messages_processed_total{queue="asya-echo",status="success"} 10'
    text = wait_for(lambda: (lambda t: t if processed in t.splitlines() else None)(actor.metrics()), 10,
                    "every item counted as processed")
    assert 'asya_actor_redeliveries_total{queue="asya-echo",transport="%s"} 0' % cluster.transport \
        in text.splitlines()


def test_sigterm_returns_a_batch_leased_ahead_and_loses_nothing(cluster):
    # A backlog of full batches: each one's successor is leased while the handler works. Stopped
    # in the middle, the sidecar finishes the batch in the runtime and hands back the one leased
    # ahead: every message is at happy-end once or ready in its queue again, none held or lost.
    actor = cluster.actor("echo", "batch_echo", start_sidecar=False, env=dict(
        BATCH_ENV, ASYA_BATCH_MAX_SIZE="8", ASYA_VISIBILITY_TIMEOUT="5s"))
    ids = ["L%03d" % i for i in range(160)]
    cluster.queues.send_many("asya-echo", [envelope(id_, ["echo"], payload={"id": id_, "sleep": 0.1}) for id_ in ids])
    actor.start_sidecar()
    wait_for(lambda: cluster.queues.stats(HAPPY)["ready"] >= 16, 60, "the first results")
    actor.sidecar.signal(signal.SIGTERM)
    assert actor.sidecar.wait(30) == 0
    done = [m["json"]["id"] for m in cluster.queues.collect(HAPPY, cluster.queues.stats(HAPPY)["ready"])]
    assert len(done) < len(ids), "the backlog was finished before the stop: nothing was tested"
    if cluster.transport != "sqs":  # SQS: a receive cut by the shutdown may hold some until expiry
        stats = cluster.queues.stats("asya-echo")
        assert stats["in_flight"] == 0, stats  # nothing left leased by the stopped sidecar
    left = [m["json"]["id"] for m in cluster.queues.collect("asya-echo", len(ids) - len(done), timeout=60)]
    assert len(done) == len(set(done)), "a message reached happy-end twice"
    assert sorted(done + left) == ids


# Pipelined batches (docs/protocol.md §3 "Pipelined batches"): with a runtime that declares
# `pipeline`, a worker sends its next full batch on a second connection while the runtime works
# on the current one. SQLite only: its queue order makes the batches exact.

@pytest.fixture
def sqlite_cluster(request, build_path):
    with running_cluster(request, build_path, "sqlite") as c:
        yield c


def sidecar_log_has(actor, text):
    return text in actor.sidecar.text()


def test_a_runtime_killed_with_a_batch_queued_behind_the_running_one_loses_and_repeats_nothing(sqlite_cluster):
    cluster = sqlite_cluster
    ids = ["k%d" % i for i in range(8)]
    # maxSize 4: the first batch (2 s in the handler) is full, so the second is sent ahead on the
    # second connection and waits behind it in the runtime.
    cluster.queues.send_many("asya-echo", [envelope(id_, ["echo"], payload={"i": i, "sleep": 2})
                                           for i, id_ in enumerate(ids)])
    actor = cluster.actor("echo", "batch_echo", supervise=True, env=dict(
        BATCH_ENV, ASYA_BATCH_MAX_SIZE="4", ASYA_LOG_LEVEL="debug"))
    wait_for(lambda: sidecar_log_has(actor, "sent ahead on the second connection"), 30,
             "the second batch to be sent ahead")
    assert not cluster.markers_named("batch-"), "the first batch finished before the kill"
    actor.runtime.popen.kill()  # the supervisor starts a new runtime
    happy = cluster.queues.collect(HAPPY, 8, timeout=90)
    assert sorted(m["json"]["id"] for m in happy) == sorted(ids)
    # Every item was handled to the end exactly once (the killed runtime finished none), and
    # nothing more arrives: none answered twice.
    wait_for(lambda: (lambda s: s if s["ready"] == 0 and s["in_flight"] == 0 else None)(
        cluster.queues.stats("asya-echo")), 30, "every item settled")
    handled = sorted(i for b in recorded_batches(cluster) for i in b["ids"])
    assert handled == list(range(8)), recorded_batches(cluster)
    assert cluster.queues.stats(HAPPY)["ready"] == 0
    assert cluster.queues.stats(ERROR)["ready"] == 0
    text = actor.metrics()
    redelivered = [v for labels, v in metric_samples(text)["asya_actor_redeliveries_total"]]
    # The running batch's four went back to the queue (runtime_unavailable, a counted delivery);
    # the one queued behind it too, unless the runtime had not read it yet (then it was written
    # again on a new connection, PROTOCOL §3): either way retried, never lost.
    assert redelivered and redelivered[0] >= 4, text
    assert "runtime_unavailable" in actor.sidecar.text()


def test_an_answer_for_the_other_batch_in_flight_is_rejected_and_the_items_retried(sqlite_cluster):
    cluster = sqlite_cluster
    ids = ["w%d" % i for i in range(6)]
    # maxSize 4: a full batch of four, then two sent ahead; the rogue answers each connection with
    # the other batch's answers.
    cluster.queues.send_many("asya-echo", [envelope(id_, ["echo"], payload={"i": i}) for i, id_ in enumerate(ids)])
    actor = cluster.actor("echo", env=dict(BATCH_ENV, ASYA_BATCH_MAX_SIZE="4", ASYA_RETRY_MAX_ATTEMPTS="3"),
                          runtime_cmd=[sys.executable, str(HERE / "rogue_batch_runtime.py")])
    happy = cluster.queues.collect(HAPPY, 6, timeout=60)
    assert sorted(m["json"]["id"] for m in happy) == sorted(ids)
    for m in happy:  # never another envelope's answer
        assert m["json"]["payload"] == {"answered": m["json"]["id"]}, m["json"]
    reads = (cluster.markers / "reads").read_text().split()
    assert sorted(reads) == sorted(ids + ids), reads  # each read twice: the swapped answers were not used
    log = actor.sidecar.text()
    assert "batch response has 2 answers for a request of 4 envelopes" in log, log[-3000:]
    assert "batch response has 4 answers for a request of 2 envelopes" in log, log[-3000:]
    assert cluster.queues.stats(ERROR)["ready"] == 0


def test_an_item_whose_deadline_may_pass_while_waiting_in_the_runtime_is_not_sent_ahead(sqlite_cluster):
    cluster = sqlite_cluster
    # Three full batches of four, 2 s each in the handler. The third would be sent ahead while the
    # second runs; its item "d" has a deadline that passes before the second is answered, so it is
    # held back, checked when the runtime can begin it, and never reaches the handler.
    messages = [envelope("b%d" % i, ["echo"], payload={"i": i, "sleep": 2}) for i in range(8)]
    actor = cluster.actor("echo", "batch_echo", start_sidecar=False, env=dict(
        BATCH_ENV, ASYA_BATCH_MAX_SIZE="4", ASYA_LOG_LEVEL="debug"))
    wait_for(lambda: (actor.dir / "runtime-ready").exists(), 30, "the runtime to be ready")
    deadline = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
    third = [envelope("b%d" % i, ["echo"], payload={"i": i}) for i in range(8, 12)]
    third[1] = envelope("d", ["echo"], payload={"i": 99},
                        deadline=deadline.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    cluster.queues.send_many("asya-echo", messages + third)
    actor.start_sidecar()
    happy = cluster.queues.collect(HAPPY, 11, timeout=90)
    assert sorted(m["json"]["id"] for m in happy) == sorted("b%d" % i for i in range(12) if i != 9)
    expired = only(cluster.queues.collect(ERROR, 1, timeout=30))
    assert expired["id"] == "d" and expired["payload"]["error"] == "deadline_exceeded", expired
    handled = [i for b in recorded_batches(cluster) for i in b["ids"]]
    assert 99 not in handled, handled  # the handler never got it
    assert sorted(handled) == [i for i in range(12) if i != 9], handled


def test_batches_sent_ahead_run_back_to_back_on_one_handler_thread(sqlite_cluster):
    # Three full batches: each next one is sent ahead on the other connection; the Python runtime
    # runs every call on its handler thread (two connections open), so the model stays on one
    # thread instead of a thread woken per connection, and in queue order (protocol §3 "Order").
    cluster = sqlite_cluster
    cluster.queues.send_many("asya-echo", [envelope("t%d" % i, ["echo"], payload={"i": i, "sleep": 0.3})
                                           for i in range(12)])
    actor = cluster.actor("echo", "batch_echo", env=dict(BATCH_ENV, ASYA_BATCH_MAX_SIZE="4", ASYA_LOG_LEVEL="debug"))
    cluster.queues.collect(HAPPY, 12, timeout=60)
    assert "sent ahead on the second connection" in actor.sidecar.text()
    batches = sorted(recorded_batches(cluster), key=lambda b: b["start"])
    assert [b["ids"] for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], batches
    assert all(earlier["end"] <= later["start"] for earlier, later in zip(batches, batches[1:])), batches
    assert len({b["thread"] for b in batches[1:]}) == 1, batches


def test_a_batch_is_sent_ahead_only_once_the_runtime_has_read_the_one_before_whole(sqlite_cluster):
    # Protocol §3 "Order": the runtime takes a batch's place in its call order before it reads the
    # batch's last byte, so the sidecar writes the next one only after that. This runtime leaves
    # each request unread for a while and records any request that arrives on the other
    # connection meanwhile; the batches are still sent ahead (once read), and read in queue order.
    cluster = sqlite_cluster
    ids = ["r%02d" % i for i in range(12)]
    cluster.queues.send_many("asya-echo", [envelope(id_, ["echo"], payload={"i": i}) for i, id_ in enumerate(ids)])
    actor = cluster.actor("echo", env=dict(BATCH_ENV, ASYA_BATCH_MAX_SIZE="4", ASYA_LOG_LEVEL="debug"),
                          runtime_cmd=[sys.executable, str(HERE / "slow_reader_runtime.py")])
    happy = cluster.queues.collect(HAPPY, 12, timeout=60)
    assert sorted(m["json"]["id"] for m in happy) == ids
    for m in happy:
        assert m["json"]["payload"] == {"answered": m["json"]["id"]}, m["json"]
    early = cluster.markers / "early"
    assert not early.exists(), early.read_text()
    assert "sent ahead on the second connection" in actor.sidecar.text()
    reads = (cluster.markers / "reads").read_text().split("\n")[:-1]
    assert [line.split() for line in reads] == [ids[0:4], ids[4:8], ids[8:12]], reads
