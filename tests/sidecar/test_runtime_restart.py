"""A runtime restarting under a running sidecar (docs/protocol.md §5 "Runtime unavailable"): a
request that provably never reached a live runtime (no socket, connection refused, the connection
found closed or reset with the request unread) waits for the runtime, up to
ASYA_RUNTIME_READY_TIMEOUT, with the message's lease extended; it costs no delivery. A request the
runtime read whole is a counted delivery, so a message that kills its runtime every time still
stops at ASYA_MAX_DELIVERIES, with one handler call per delivery.

On SQLite and on RabbitMQ (quorum queues, as in test_rabbitmq_restart.py). Real processes; every
wait is for a condition, with a deadline."""
import collections
import json
import pathlib
import signal
import sys
import urllib.error
import urllib.request

import pytest
from sidecar_harness import rabbitmq_service, running_cluster, transport_env, wait_for
from test_join import join_env
from test_sidecar import ERROR, HAPPY, envelope

HERE = pathlib.Path(__file__).resolve().parent
TRANSPORTS = ["sqlite"] + (["rabbitmq"] if rabbitmq_service.available() else [])
# The sidecar's warn line when a request waits for the runtime (sidecar/runner_runtime.cpp).
WAITING = "runtime unavailable before the request reached it"


@pytest.fixture(params=TRANSPORTS)
def cluster(request, build_path):
    env = transport_env(request, request.param)
    if request.param == "rabbitmq":
        env["ASYA_RABBITMQ_QUEUE_TYPE"] = "quorum"
    with running_cluster(request, build_path, request.param, env, prefix="asya-rr-") as c:
        yield c


def calls(cluster, prefix="call-"):
    """Handler calls per message, from the markers named <prefix><i>-..."""
    counted = collections.Counter()
    for name in cluster.markers_named(prefix):
        counted[name[len(prefix):].split("-")[0]] += 1
    return counted


def nothing_on(cluster, queue):
    return cluster.queues.recv(queue, 100, wait=0.5) == []


def probe(actor, path):
    """(status, body) of GET `path` on the sidecar's metrics port."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (actor.metrics_port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def lease_extensions(actor, queue):
    """asya_actor_lease_extensions_total{result="ok"} of `queue` (0 before the first)."""
    sample = 'asya_actor_lease_extensions_total{queue="%s",result="ok"} ' % queue
    for line in actor.metrics().splitlines():
        if line.startswith(sample):
            return float(line[len(sample):])
    return 0.0


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_messages_queued_while_the_runtime_restarts_are_each_handled_once(cluster, mode):
    """ASYA_MAX_DELIVERIES=1: a delivery counted without a handler call would send the message to
    error-end. Three workers each hold a message while the runtime is down, longer than a lease
    (SQLite: ASYA_VISIBILITY_TIMEOUT=1s, extended meanwhile, so no worker gets another's message)."""
    env = {"ASYA_MAX_DELIVERIES": "1", "ASYA_CONCURRENCY": "3", "ASYA_HANDLER_THREAD_SAFE": "true",
           "ASYA_VISIBILITY_TIMEOUT": "1s"}
    handler = "count_call"
    if mode == "batch":
        env.update({"ASYA_BATCH_MAX_SIZE": "2", "ASYA_BATCH_MAX_WAIT": "20ms", "ASYA_HANDLER_BATCH": "true"})
        handler = "batch_echo"
    actor = cluster.actor("work", handler, env=env)
    actor.runtime.stop()  # SIGKILL: the socket file and the ready file stay behind
    ids = ["m%d" % i for i in range(8)]
    cluster.queues.send_many("asya-work", [envelope(i, ["work"], payload={"i": i}) for i in ids])

    wait_for(lambda: actor.sidecar.text().count(WAITING) >= 3, 60,
             "three workers waiting for the runtime (%r in the sidecar log)" % WAITING)
    if cluster.transport == "sqlite":
        # Held past a third of the visibility timeout: the leases were extended, not left to expire.
        wait_for(lambda: lease_extensions(actor, "asya-work") >= 3,
                 30, "the waiting messages' leases to be extended")
    assert actor.sidecar.alive()
    actor.start_runtime()

    happy = cluster.queues.collect(HAPPY, len(ids), timeout=90)
    assert sorted(m["json"]["id"] for m in happy) == sorted(ids)
    assert nothing_on(cluster, ERROR)
    if mode == "batch":
        handled = collections.Counter()
        for name in cluster.markers_named("batch-"):
            handled.update(json.loads((cluster.markers / name).read_text())["ids"])
    else:
        handled = calls(cluster)
    assert handled == collections.Counter({i: 1 for i in ids}), handled
    assert "ready again: the request was sent again after waiting" in actor.sidecar.text()
    assert actor.sidecar.alive()


def test_a_poison_message_gets_a_handler_call_for_each_of_its_deliveries(cluster):
    """The runtime dies on the poison message and lingers with its listening socket open until the
    sidecar's wait for it has connected: that connection, and the request written into it, are
    then reset, and connects are refused until the next runtime listens (the race of the failed
    run of test_quorum_queues_route_and_stop_a_poison_message). Each round: the poison message
    has exactly ASYA_MAX_DELIVERIES handler calls before error-end, and a message queued behind
    it exactly one."""
    actor = cluster.actor("killer", supervise=True, env={"ASYA_MAX_DELIVERIES": "3"},
                          runtime_cmd=[sys.executable, str(HERE / "lingering_runtime.py")])
    for round_ in range(3):
        poison, behind = "p%d" % round_, "n%d" % round_
        cluster.queues.send("asya-killer", envelope(poison, ["killer"], payload={"poison": True}))
        cluster.queues.send("asya-killer", envelope(behind, ["killer"], payload={"i": round_}))
        err = cluster.queues.collect(ERROR, 1, timeout=90)[0]["json"]
        assert err["id"] == poison and err["payload"]["error"] == "max_deliveries_exceeded", err
        out = cluster.queues.collect(HAPPY, 1, timeout=90)[0]["json"]
        assert out["id"] == behind
        assert calls(cluster, "died-")[poison] == 3, cluster.markers_named("died-")
        assert calls(cluster)[behind] == 1, cluster.markers_named("call-")
    # The race was met: a request waited for the next runtime instead of failing its delivery.
    assert WAITING in actor.sidecar.text()
    assert actor.sidecar.alive()


def test_a_runtime_that_never_comes_back_stops_the_sidecar_after_the_ready_timeout(cluster):
    """The waiting message is returned to the queue (runtime_unavailable, a counted delivery),
    the sidecar exits with code 4 once ASYA_RUNTIME_READY_TIMEOUT has passed, and a new pair
    handles the message once."""
    actor = cluster.actor("work", "count_call", env={"ASYA_RUNTIME_READY_TIMEOUT": "2s"})
    actor.runtime.stop()
    cluster.queues.send("asya-work", envelope("m1", ["work"], payload={"i": "m1"}))
    assert actor.sidecar.wait(timeout=60) == 4
    log = actor.sidecar.text()
    assert WAITING in log
    assert "runtime not ready again within ASYA_RUNTIME_READY_TIMEOUT=2s" in log, log[-3000:]
    assert nothing_on(cluster, ERROR) and nothing_on(cluster, HAPPY)
    assert calls(cluster) == collections.Counter()

    actor.start_runtime()
    actor.start_sidecar()
    out = cluster.queues.collect(HAPPY, 1, timeout=60)[0]["json"]
    assert out["id"] == "m1"
    assert calls(cluster) == collections.Counter({"m1": 1})


def test_sigterm_ends_a_wait_for_the_runtime_and_keeps_the_message(cluster):
    actor = cluster.actor("work", "count_call")  # ASYA_RUNTIME_READY_TIMEOUT=30s
    actor.runtime.stop()
    cluster.queues.send("asya-work", envelope("m1", ["work"], payload={"i": "m1"}))
    wait_for(lambda: WAITING in actor.sidecar.text(), 60, "the sidecar waiting for the runtime")
    actor.sidecar.signal(signal.SIGTERM)
    assert actor.sidecar.wait(timeout=20) == 0
    assert nothing_on(cluster, ERROR)

    actor.start_runtime()
    actor.start_sidecar()
    out = cluster.queues.collect(HAPPY, 1, timeout=60)[0]["json"]
    assert out["id"] == "m1"
    assert calls(cluster) == collections.Counter({"m1": 1})


def test_readyz_is_not_ready_while_a_request_waits_for_the_runtime_and_healthz_stays_ok(cluster):
    """Kubernetes takes a pod that is not ready out of service but restarts a container only when
    its liveness probe (/healthz) fails: a sidecar waiting for its runtime to come back must drop
    readiness, with the reason, and stay live."""
    actor = cluster.actor("work", "count_call")
    assert probe(actor, "/readyz") == (200, "ready\n")
    actor.runtime.stop()
    cluster.queues.send("asya-work", envelope("m1", ["work"], payload={"i": "m1"}))
    wait_for(lambda: WAITING in actor.sidecar.text(), 60, "the sidecar waiting for the runtime")
    # The wait is announced (the log line) after it is counted, and lasts until the runtime is back.
    status, body = probe(actor, "/readyz")
    assert status == 503, body
    assert body.startswith("not ready: runtime unavailable ("), body
    assert "a request waits for it to be ready again, up to ASYA_RUNTIME_READY_TIMEOUT=30s" in body, body
    assert probe(actor, "/healthz") == (200, "ok\n")

    actor.start_runtime()
    out = cluster.queues.collect(HAPPY, 1, timeout=60)[0]["json"]
    assert out["id"] == "m1"
    wait_for(lambda: probe(actor, "/readyz") == (200, "ready\n"), 30, "/readyz ready again")
    assert calls(cluster) == collections.Counter({"m1": 1})
    assert actor.sidecar.alive()


def test_a_join_that_gave_up_waiting_for_its_runtime_stops_without_waiting_again(cluster):
    """A join group's call waits for the runtime like any call; when the runtime is not ready
    within ASYA_RUNTIME_READY_TIMEOUT the sidecar exits 4 at once (the group is released and
    claimed again later), not after a second wait of the worker."""
    cluster.actor("split", "split")
    cluster.actor("score", "score")
    combine = cluster.actor("combine", "combine", env=join_env(cluster, ASYA_RUNTIME_READY_TIMEOUT="2s"))
    combine.runtime.stop()
    cluster.queues.send("asya-split", envelope("J", ["split", "score", "combine"], payload={"n": 2}))
    assert combine.sidecar.wait(timeout=60) == 4
    log = combine.sidecar.text()
    assert WAITING in log
    assert ("runtime not ready again within ASYA_RUNTIME_READY_TIMEOUT=2s after a request could not reach "
            "it: the group was released") in log, log[-3000:]
    # The worker's own wait for the runtime (at start or after a failure) never began.
    assert "runtime not ready within ASYA_RUNTIME_READY_TIMEOUT" not in log, log[-3000:]
    assert nothing_on(cluster, ERROR)

    combine.start_runtime()
    combine.start_sidecar()
    out = cluster.queues.collect(HAPPY, 1, timeout=60)[0]["json"]
    assert out["id"] == "J"
    assert out["payload"] == {"parts": [{"i": 0, "score": 0}, {"i": 1, "score": 1}]}
    assert len(cluster.markers_named("combine-")) == 1


def test_a_message_that_kills_the_runtime_while_it_is_read_counts_its_deliveries_promptly(cluster):
    """The runtime dies having read only the start of the message (dying_reader_runtime.py), every
    time, and is restarted. The first loss of a delivery may be a runtime that was going away
    anyway, so the request waits for the next runtime; that runtime losing it again ends the
    delivery (a counted one) at once instead of after ASYA_RUNTIME_READY_TIMEOUT: two runtime
    deaths per delivery, error-end after ASYA_MAX_DELIVERIES, and the message behind it handled
    once."""
    actor = cluster.actor("reader", supervise=True,
                          env={"ASYA_MAX_DELIVERIES": "2", "ASYA_RUNTIME_READY_TIMEOUT": "120s"},
                          runtime_cmd=[sys.executable, str(HERE / "dying_reader_runtime.py")])
    # Larger than the 64 bytes the runtime reads: the rest stays unread in its socket.
    cluster.queues.send("asya-reader", envelope("die-reading-1", ["reader"], payload={"pad": "x" * 65536}))
    cluster.queues.send("asya-reader", envelope("n1", ["reader"], payload={"i": 1}))
    err = cluster.queues.collect(ERROR, 1, timeout=90)[0]["json"]
    assert err["id"] == "die-reading-1" and err["payload"]["error"] == "max_deliveries_exceeded", err
    out = cluster.queues.collect(HAPPY, 1, timeout=60)[0]["json"]
    assert out["id"] == "n1"
    assert len(cluster.markers_named("died-reading-")) == 2 * 2, cluster.markers_named("died-reading-")
    assert calls(cluster)["n1"] == 1
    log = actor.sidecar.text()
    assert "lost this request again, unread" in log
    assert "runtime not ready" not in log
    assert actor.sidecar.alive()
