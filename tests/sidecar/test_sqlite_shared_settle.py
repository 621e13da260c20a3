"""Settling a group leased ahead in one shared SQLite transaction (src/sidecar/runner_defer.cpp,
Transport::send_then_ack_many; docs/performance.md).

A plain actor on SQLite with a fast handler leases several messages per receive; their outputs and
acks are committed together after the group's last one is decided. These tests check the
durability contract under faults: a SIGKILL inside that shared transaction (every statement run,
before its COMMIT) loses and duplicates nothing, and neither do repeated SIGKILLs at arbitrary
moments of a backlog at concurrency 8.
"""
import collections
import json
import pathlib
import signal
import time

import pytest

from sidecar_harness import running_cluster, wait_for

HAPPY = "asya-happy-end"


@pytest.fixture
def sqlite_cluster(request, build_path):
    with running_cluster(request, build_path, "sqlite", prefix="asya-ss-") as cluster:
        yield cluster


def queue_backlog(cluster, queue, ids):
    lines = [json.dumps({"id": i, "route": {"actors": ["fast"], "current": 0}, "payload": {"id": i}},
                        separators=(",", ":")) for i in ids]
    batch = pathlib.Path(cluster.tmp) / "backlog.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    cluster.queues._run("send", queue, "@" + str(batch), "--lines")


def arrivals_until_all(cluster, ids, timeout=300):
    """Every envelope on happy-end until each id arrived once and the input queue is empty: id ->
    times it arrived."""
    arrived = collections.Counter()
    deadline = time.monotonic() + timeout
    while len(arrived) < len(ids) and time.monotonic() < deadline:
        for m in cluster.queues.recv(HAPPY, 500, wait=1.0):
            envelope = json.loads(m["body"])
            assert envelope["payload"] == {"id": envelope["id"]}, envelope
            arrived[envelope["id"]] += 1
    wait_for(lambda: cluster.queues.empty("asya-fast"), 60, "asya-fast to be empty")
    for m in cluster.queues.recv(HAPPY, 500, wait=0.5):  # late duplicates would show here
        arrived[json.loads(m["body"])["id"]] += 1
    return arrived


def actor_killed_at(cluster, failpoint, ids):
    """Echo actor "fast" given a backlog of `ids`: its sidecar (ASYA_FAILPOINTS=`failpoint`) kills
    itself at the fail point; returns the actor, its sidecar stopped, the variable still set."""
    actor = cluster.actor("fast", "echo", start_sidecar=False, env={"ASYA_FAILPOINTS": failpoint})
    queue_backlog(cluster, "asya-fast", ids)
    actor.start_sidecar(wait_ready=False)
    assert actor.sidecar.wait(120) == -signal.SIGKILL, actor.logs()
    assert "failpoint %s reached" % failpoint in actor.sidecar.text()
    return actor


def test_sigkill_inside_a_shared_settle_transaction_loses_and_duplicates_nothing(sqlite_cluster):
    """The sidecar kills itself (failpoint sqlite.shared_settle_uncommitted) inside the write
    transaction that holds the outputs and acks of several messages, after every statement ran and
    before its COMMIT. None of that group is committed: its inputs are released when the next
    sidecar opens the file and go through again, so every id reaches happy-end exactly once."""
    cluster = sqlite_cluster
    ids = ["s%03d" % i for i in range(400)]
    actor = actor_killed_at(cluster, "sqlite.shared_settle_uncommitted", ids)
    before = cluster.queues.stats(HAPPY)
    in_queue = cluster.queues.stats("asya-fast")
    # Each message is either through (settled before the group) or still in its queue.
    assert before["ready"] + in_queue["ready"] + in_queue["in_flight"] == len(ids), (before, in_queue)
    assert before["ready"] < len(ids)

    actor.env.pop("ASYA_FAILPOINTS")
    actor.start_sidecar()
    arrived = arrivals_until_all(cluster, ids)
    assert set(arrived) == set(ids), "lost: %s" % sorted(set(ids) - set(arrived))[:20]
    duplicates = {i: n for i, n in arrived.items() if n > 1}
    assert not duplicates, "arrived more than once: %s" % sorted(duplicates)[:20]


def test_repeated_sigkills_at_concurrency_8_lose_and_duplicate_nothing(sqlite_cluster):
    """Eight workers, each settling its groups in shared transactions (shared further by group
    commit), killed three times while a backlog drains: an input's outputs and its ack commit
    together or not at all, so after a last sidecar finishes every id arrived exactly once."""
    cluster = sqlite_cluster
    ids = ["k%04d" % i for i in range(1500)]
    env = {"ASYA_CONCURRENCY": "8", "ASYA_HANDLER_THREAD_SAFE": "true"}
    actor = cluster.actor("fast", "echo", start_sidecar=False, env=env)
    queue_backlog(cluster, "asya-fast", ids)
    for kill in range(1, 4):
        target = len(ids) * kill // 5
        actor.start_sidecar(wait_ready=False)
        wait_for(lambda: cluster.queues.stats(HAPPY)["ready"] >= target or not actor.sidecar.alive(),
                 120, "%d outputs" % target)
        assert actor.sidecar.alive(), actor.logs()
        actor.sidecar.signal(signal.SIGKILL)
        actor.sidecar.wait(30)
    actor.start_sidecar()
    arrived = arrivals_until_all(cluster, ids)
    assert set(arrived) == set(ids), "lost: %s" % sorted(set(ids) - set(arrived))[:20]
    duplicates = {i: n for i, n in arrived.items() if n > 1}
    assert not duplicates, "arrived more than once: %s" % sorted(duplicates)[:20]


def test_a_held_output_waits_for_at_most_one_slow_call(sqlite_cluster):
    """Fast messages make the worker lease 8 at a time, and their decisions are held for the
    group's shared settle; the backlog then turns slow (0.5 s per call). The last fast message's
    group may hold slow ones after it: its output must not wait for all of them, only for the call
    during which it was held longer than the group's budget (ReceiveAhead::kBudget)."""
    cluster = sqlite_cluster
    fast = ["f%02d" % i for i in range(30)]
    slow = ["s%d" % i for i in range(1, 9)]
    lines = [json.dumps({"id": tag, "route": {"actors": ["fast"], "current": 0},
                         "payload": {"tag": tag, "sleep": 0 if tag in fast else 0.5}},
                        separators=(",", ":")) for tag in fast + slow]
    batch = pathlib.Path(cluster.tmp) / "backlog.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    cluster.queues._run("send", "asya-fast", "@" + str(batch), "--lines")
    cluster.actor("fast", "slow")
    seen = set()
    deadline = time.monotonic() + 120
    while fast[-1] not in seen and time.monotonic() < deadline:
        for m in cluster.queues.recv(HAPPY, 100, wait=0.05):
            seen.add(json.loads(m["body"])["id"])
    assert fast[-1] in seen, "the last fast message never arrived"
    # Its group held at most one slow call after it: the second slow call had not ended yet.
    assert not (cluster.markers / "end-s2").exists(), sorted(p.name for p in cluster.markers.iterdir())
    arrived = set()  # the slow ones, collected below as they arrive
    wait_for(lambda: arrived.update(json.loads(m["body"])["id"] for m in cluster.queues.recv(HAPPY, 100))
             or seen | arrived >= set(fast + slow), 60, "every message at happy-end")


def test_a_held_output_never_waits_for_a_call_in_progress(sqlite_cluster):
    """A fast backlog, then a message whose handler blocks until the test opens its gate: the last
    fast messages' group holds that message after them. Their decisions, held for the group's
    shared settle, must be settled once they have waited the group's budget, while the blocked
    call is still in progress (src/sidecar/runner_defer.cpp), not when it ends: a handler that
    waits for something downstream of a held output (the join of tests/payload/test_join_holds.py)
    would otherwise wait for ever. Every fast output arrives before the gate is opened."""
    cluster = sqlite_cluster
    fast = ["f%02d" % i for i in range(30)]
    gated = ["g%d" % i for i in range(1, 9)]  # g1 blocks; the rest only make the backlog longer
    (cluster.markers / "gate-open").touch()
    lines = [json.dumps({"id": tag, "route": {"actors": ["fast"], "current": 0},
                         "payload": {"tag": "open" if tag in fast else tag}},
                        separators=(",", ":")) for tag in fast + gated]
    batch = pathlib.Path(cluster.tmp) / "backlog.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    cluster.queues._run("send", "asya-fast", "@" + str(batch), "--lines")
    cluster.actor("fast", "gated")
    seen = set()

    def arrived(ids):
        seen.update(json.loads(m["body"])["id"] for m in cluster.queues.recv(HAPPY, 100, wait=0.05))
        return set(ids) <= seen

    wait_for(lambda: arrived(fast), 60, "every fast output at happy-end while g1's call is blocked")
    assert not seen & set(gated), seen
    # g1's call was in progress all along: its gate is not open yet.
    wait_for(lambda: cluster.markers_named("start-g1-"), 30, "g1's call to start")
    assert not cluster.markers_named("end-g1-")
    for tag in gated:
        (cluster.markers / ("gate-" + tag)).touch()
    wait_for(lambda: arrived(gated), 60, "every gated output at happy-end")
    assert seen == set(fast + gated)
