"""RabbitMQ through real sidecars and Python runtimes (issue 5).

The broker is restarted while 1,000 messages flow through a two-actor pipeline (concurrency 2,
and concurrency 8 with prefetch 64): every message
reaches happy-end with both actors' enrichment, its id and its headers; duplicates are allowed
(at-least-once) and counted, none is lost, and the sidecars ride out the outage instead of
exiting. That test starts its own broker (the restart would disturb other tests sharing the
session broker) and stops and deletes it at the end, also when it fails.

Quorum queues (ASYA_RABBITMQ_QUEUE_TYPE=quorum) are run end to end on the session broker.
"""
import collections
import json
import pathlib
import shutil
import sys
import tempfile
import time

import pytest

from sidecar_harness import Cluster, rabbitmq_service, wait_for

pytestmark = pytest.mark.skipif(not rabbitmq_service.available(),
                                reason="rabbitmq-server is not installed (run scripts/setup)")

MESSAGES = 1000
HAPPY = "asya-happy-end"


def drain(cluster, arrived, bodies, max_messages=200, wait="1s"):
    """One `asya-queue recv --ack` on happy-end, tolerant of a broker that is down: the lines
    printed before a failure are real messages (each is printed before its ack; a failed ack
    brings it back later as a duplicate, which is counted)."""
    proc = cluster.queues._run("recv", HAPPY, "--max", str(max_messages), "--wait", wait, "--ack",
                               check=False)
    for line in proc.stdout.decode().splitlines():
        if line.strip():
            body = json.loads(line)["body"]
            envelope = json.loads(body)
            arrived[envelope["id"]] += 1
            bodies[envelope["id"]] = envelope
    return proc.returncode


@pytest.mark.parametrize("concurrency,prefetch,messages,sleep,quorum", [
    (2, None, MESSAGES, 0.01, False),
    (8, 64, MESSAGES, 0.01, False),
    # rabbitmq_hop_c8's set-up (quorum queues, a handler that takes ~1 ms): the settle window
    # has many batches started (outputs written, confirms outstanding) at the restart.
    (8, 64, 5000, 0.001, True),
], ids=["concurrency2", "concurrency8-prefetch64", "concurrency8-quorum-batches-in-flight"])
def test_broker_restart_mid_pipeline_loses_nothing(build_path, concurrency, prefetch, messages,
                                                   sleep, quorum):
    """With concurrency 8 the publishes of 8 workers share the publisher's confirm window when
    the connection drops: every unconfirmed one is published again after the reconnect, and no
    input whose outputs were not confirmed is acked (the settle window's batches started before
    the drop finish only once their outputs are confirmed on the new connection, or nack)."""
    with rabbitmq_service.broker() as broker:
        tmp = tempfile.mkdtemp(prefix="asya-rr-", dir="/tmp")
        common = {"ASYA_RABBITMQ_URL": broker.url}
        if quorum:
            common["ASYA_RABBITMQ_QUEUE_TYPE"] = "quorum"
        cluster = Cluster("rabbitmq", build_path, tmp, common)
        try:
            env = {"ASYA_CONCURRENCY": str(concurrency), "ASYA_HANDLER_THREAD_SAFE": "true",
                   # A send waits across the reconnect (the restart takes seconds on a busy machine).
                   "ASYA_RABBITMQ_CONFIRM_TIMEOUT": "2m"}
            if prefetch:
                env["ASYA_RABBITMQ_PREFETCH"] = str(prefetch)
            actors = [cluster.actor(name, "enrich_slow", env=env) for name in ("first", "second")]
            lines = [json.dumps({"id": "r%d" % i, "route": {"actors": ["first", "second"], "current": 0},
                                 "headers": {"trace": "t%d" % i},
                                 "payload": {"i": i, "sleep": sleep}}, separators=(",", ":"))
                     for i in range(messages)]
            batch = pathlib.Path(tmp) / "batch.jsonl"
            batch.write_text("\n".join(lines) + "\n")
            cluster.queues._run("send", "asya-first", "@" + str(batch), "--lines")

            arrived = collections.Counter()
            bodies = {}
            # Restart once the pipeline is busy: some messages done, most still on their way.
            wait_for(lambda: drain(cluster, arrived, bodies, max_messages=50, wait="200ms") == 0
                     and len(arrived) >= 100, 120, "100 messages at happy-end before the restart")
            before = len(arrived)
            assert before < messages, "the pipeline finished before the restart; nothing was tested"
            started = time.monotonic()
            broker.restart()
            restart_seconds = time.monotonic() - started

            deadline = time.monotonic() + 300
            while len(arrived) < messages and time.monotonic() < deadline:
                drain(cluster, arrived, bodies)
            duplicates = sum(n - 1 for n in arrived.values())
            sys.stderr.write("broker restart: %d/%d at happy-end before it (restart took %.1fs); "
                             "%d/%d unique after, %d duplicate(s)\n" %
                             (before, messages, restart_seconds, len(arrived), messages, duplicates))
            lost = sorted(set("r%d" % i for i in range(messages)) - set(arrived))
            assert not lost, "%d message(s) lost: %s" % (len(lost), lost[:20])
            assert len(arrived) == messages
            for i in range(messages):
                e = bodies["r%d" % i]
                assert e["payload"]["visited"] == ["first", "second"] and e["payload"]["i"] == i, e
                assert e["headers"] == {"trace": "t%d" % i}, e
                assert e["route"] == {"actors": ["first", "second"], "current": 2}, e
                assert "parent_id" not in e, e
            # The sidecars survived the outage and left nothing behind.
            for actor in actors:
                assert actor.sidecar.alive(), actor.logs()
                actor.wait_ready(timeout=60)
            for q in ("asya-first", "asya-second"):
                wait_for(lambda q=q: cluster.queues.empty(q), 60, "%s to be empty" % q)
            # Late duplicates still arriving are counted, never a new id.
            drain(cluster, arrived, bodies, wait="500ms")
            assert set(arrived) == set("r%d" % i for i in range(messages))
        except BaseException:
            sys.stderr.write(cluster.logs())
            raise
        finally:
            cluster.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def test_quorum_queues_route_and_stop_a_poison_message(build_path, rabbitmq_broker):
    """ASYA_RABBITMQ_QUEUE_TYPE=quorum end to end: a pipeline message reaches happy-end, and a
    message that kills the runtime on every delivery stops after ASYA_MAX_DELIVERIES (the count
    survives the requeues; quorum queues count them with x-delivery-count)."""
    tmp = tempfile.mkdtemp(prefix="asya-rq-", dir="/tmp")
    cluster = Cluster("rabbitmq", build_path, tmp, {"ASYA_RABBITMQ_URL": rabbitmq_broker.new_vhost(),
                                                    "ASYA_RABBITMQ_QUEUE_TYPE": "quorum"})
    try:
        cluster.actor("first", "enrich")
        cluster.actor("second", "enrich")
        killer = cluster.actor("killer", "die", supervise=True, env={"ASYA_MAX_DELIVERIES": "3"})
        cluster.queues.send("asya-first", {"id": "Q1", "route": {"actors": ["first", "second"], "current": 0},
                                           "headers": {"h": "v"}, "payload": {}})
        cluster.queues.send("asya-killer", {"id": "K1", "route": {"actors": ["killer"], "current": 0}, "payload": {}})
        out = cluster.queues.collect(HAPPY, 1)[0]["json"]
        assert out["id"] == "Q1" and out["payload"] == {"visited": ["first", "second"]}
        assert out["headers"] == {"h": "v"}
        err = cluster.queues.collect("asya-error-end", 1, timeout=60)[0]["json"]
        assert err["id"] == "K1" and err["payload"]["error"] == "max_deliveries_exceeded"
        assert 3 <= len(cluster.markers_named("died-")) <= 6
        assert 'asya_actor_poison_messages_total{queue="asya-killer"} 1' in killer.metrics()
    except BaseException:
        sys.stderr.write(cluster.logs())
        raise
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
