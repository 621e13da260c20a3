"""The settle window on RabbitMQ (src/sidecar/settle_window.hpp, docs/performance.md).

A plain actor on RabbitMQ hands each decided message to settling threads and takes its next one
while the publish waits for its confirm. These tests check the durability contract under faults:
a SIGKILL while many settles are pending loses nothing, and a publish the broker refuses
(basic.nack from a full queue with overflow=reject-publish) never acks its input: the input is
delivered again and retried, or error-ended by ASYA_MAX_DELIVERIES. (A broker restart at
concurrency 8 with prefetch 64 is test_rabbitmq_restart.py.)
"""
import collections
import json
import pathlib
import signal
import sys
import time
import urllib.parse

import pytest

from sidecar_harness import rabbitmq_service, running_cluster, wait_for

pytestmark = pytest.mark.skipif(not rabbitmq_service.available(),
                                reason="rabbitmq-server is not installed (run scripts/setup)")

HAPPY = "asya-happy-end"
ERROR = "asya-error-end"


@pytest.fixture
def rabbit(request, build_path, rabbitmq_broker):
    """A cluster on a fresh vhost of the session broker; yields (cluster, broker, vhost name)."""
    url = rabbitmq_broker.new_vhost()
    vhost = urllib.parse.unquote(url.rsplit("/", 1)[1])
    env = {"ASYA_RABBITMQ_URL": url}
    # A quorum queue applies overflow=reject-publish only once it is over its limit (it may take
    # one more message); a classic queue refuses exactly at it, which the tests count on.
    env.update(getattr(request, "param", {}))
    with running_cluster(request, build_path, "rabbitmq", env, prefix="asya-sw-") as cluster:
        yield cluster, rabbitmq_broker, vhost


def envelope(id_, actors, payload):
    return {"id": id_, "route": {"actors": actors, "current": 0}, "payload": payload}


def metric(actor, name, labels):
    for line in actor.metrics().splitlines():
        if line.startswith(name + "{") and all('%s="%s"' % kv in line for kv in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigkill_with_many_settles_pending_at_concurrency_8_loses_nothing(rabbit):
    """The sidecar kills itself (failpoint sidecar.settles_pending) at the moment a worker hands
    over a message while more than 16 others are settling, i.e. with publishes waiting for
    confirms and inputs not acked. A new sidecar then finishes the queue: every id reaches
    happy-end, at least once (duplicates are the at-least-once redeliveries), none is lost."""
    cluster, _, _ = rabbit
    count = 1500
    env = {"ASYA_CONCURRENCY": "8", "ASYA_RABBITMQ_PREFETCH": "64", "ASYA_HANDLER_THREAD_SAFE": "true"}
    actor = cluster.actor("fast", "enrich", start_sidecar=False,
                          env=dict(env, ASYA_FAILPOINTS="sidecar.settles_pending"))
    lines = [json.dumps(envelope("k%d" % i, ["fast"], {"i": i}), separators=(",", ":")) for i in range(count)]
    batch = pathlib.Path(cluster.tmp) / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    cluster.queues._run("send", "asya-fast", "@" + str(batch), "--lines")

    actor.start_sidecar(wait_ready=False)
    assert actor.sidecar.wait(120) == -signal.SIGKILL, actor.logs()
    assert "failpoint sidecar.settles_pending reached" in actor.logs()

    actor.env.pop("ASYA_FAILPOINTS")
    actor.start_sidecar()
    arrived = collections.Counter()
    deadline = time.monotonic() + 300
    while len(arrived) < count and time.monotonic() < deadline:
        for m in cluster.queues.recv(HAPPY, 500, wait=1.0):
            e = json.loads(m["body"])
            assert e["payload"]["visited"] == ["fast"], e
            arrived[e["id"]] += 1
    lost = sorted(set("k%d" % i for i in range(count)) - set(arrived))
    assert not lost, "%d message(s) lost: %s" % (len(lost), lost[:20])
    wait_for(lambda: cluster.queues.empty("asya-fast"), 60, "asya-fast to be empty")
    for m in cluster.queues.recv(HAPPY, 500, wait=0.5):  # late duplicates: never a new id
        arrived[json.loads(m["body"])["id"]] += 1
    assert set(arrived) == set("k%d" % i for i in range(count))
    duplicates = sum(n - 1 for n in arrived.values())
    sys.stderr.write("sigkill with settles pending: %d unique, %d duplicate(s)\n" % (len(arrived), duplicates))
    # Only what was in flight at the kill can come twice: at most the prefetch.
    assert duplicates <= 64, duplicates


def fill_with_reject_publish(cluster, broker, vhost, queue, length):
    """Makes `queue` hold at most `length` messages and refuse more (basic.nack), then fills it."""
    broker.ctl("set_policy", "-p", vhost, "full-" + queue, "^%s$" % queue,
               json.dumps({"max-length": length, "overflow": "reject-publish"}), "--apply-to", "queues")
    cluster.queues.ensure(queue)
    for i in range(length):
        cluster.queues.send(queue, envelope("filler%d" % i, ["next"], {}))
    wait_for(lambda: cluster.queues.stats(queue)["ready"] == length, 30, "%s to be full" % queue)


CLASSIC = pytest.mark.parametrize("rabbit", [{"ASYA_RABBITMQ_QUEUE_TYPE": "classic"}], indirect=True,
                                  ids=["classic"])


@CLASSIC
def test_a_publish_refused_by_a_full_queue_leaves_the_input_unacked_and_it_is_retried(rabbit):
    cluster, broker, vhost = rabbit
    fill_with_reject_publish(cluster, broker, vhost, "asya-next", 2)
    actor = cluster.actor("first", "enrich", env={
        "ASYA_CONCURRENCY": "8", "ASYA_RABBITMQ_PREFETCH": "64", "ASYA_HANDLER_THREAD_SAFE": "true",
        "ASYA_MAX_DELIVERIES": "1000", "ASYA_RETRY_BACKOFF": "100ms", "ASYA_RETRY_BACKOFF_MAX": "300ms"})
    cluster.queues.send("asya-first", envelope("R1", ["first", "next"], {}))
    # The broker nacks the output: the sidecar counts a failed send and returns the input.
    wait_for(lambda: metric(actor, "asya_actor_messages_failed_total", {"reason": "send_failed"}) >= 2, 60,
             "two refused publishes of R1's output")
    assert cluster.queues.stats("asya-next")["ready"] == 2
    assert cluster.queues.recv(ERROR, wait=0) == []
    assert "refused the message" in actor.logs()
    # Room again: the retried input gets its output through, once the fillers are gone.
    fillers = [m["json"]["id"] for m in cluster.queues.collect("asya-next", 2)]
    assert fillers == ["filler0", "filler1"]
    out = cluster.queues.collect("asya-next", 1, timeout=60)[0]["json"]
    assert out["id"] == "R1" and out["payload"] == {"visited": ["first"]}, out
    wait_for(lambda: cluster.queues.empty("asya-first"), 30, "asya-first to be empty")
    assert cluster.queues.recv(ERROR, wait=0) == []


@CLASSIC
def test_publishes_refused_by_a_full_queue_end_at_error_end_after_max_deliveries(rabbit):
    """Several messages at once through the window: none is acked while its output is refused;
    each is delivered again until ASYA_MAX_DELIVERIES sends it to error-end (whose queue has
    room), and the full queue holds only its fillers."""
    cluster, broker, vhost = rabbit
    fill_with_reject_publish(cluster, broker, vhost, "asya-next", 1)
    actor = cluster.actor("first", "enrich", env={
        "ASYA_CONCURRENCY": "8", "ASYA_RABBITMQ_PREFETCH": "64", "ASYA_HANDLER_THREAD_SAFE": "true",
        "ASYA_MAX_DELIVERIES": "3", "ASYA_RETRY_BACKOFF": "50ms", "ASYA_RETRY_BACKOFF_MAX": "100ms"})
    ids = ["M%d" % i for i in range(20)]
    for id_ in ids:
        cluster.queues.send("asya-first", envelope(id_, ["first", "next"], {}))
    errors = cluster.queues.collect(ERROR, len(ids), timeout=120)
    assert sorted(m["json"]["id"] for m in errors) == sorted(ids)
    for m in errors:
        assert m["json"]["payload"]["error"] == "max_deliveries_exceeded", m["json"]
    assert metric(actor, "asya_actor_messages_failed_total", {"reason": "send_failed"}) >= 3 * len(ids)
    assert [json.loads(m["body"])["id"] for m in cluster.queues.recv("asya-next", wait=0.5)] == ["filler0"]
    wait_for(lambda: cluster.queues.empty("asya-first"), 30, "asya-first to be empty")
