"""Durable fan-in joins (PROTOCOL §4a): real sidecars and runtimes on every transport of the
`cluster` fixture; the join store is SQLite in the test's directory."""
import collections
import json
import signal
import time

import pytest

from sidecar_harness import wait_for
from test_sidecar import envelope, only, HAPPY, ERROR


def join_env(cluster, **extra):
    env = {"ASYA_JOIN": "true", "ASYA_JOIN_STORE": "sqlite://%s/joins.db" % cluster.tmp,
           "ASYA_JOIN_TIMEOUT": "60s"}
    env.update(extra)
    return env


def test_fan_out_of_ten_is_joined_into_one_result_in_index_order(cluster):
    cluster.actor("split", "split")
    cluster.actor("score", "score")
    cluster.actor("combine", "combine", env=join_env(cluster))
    cluster.queues.send("asya-split", envelope("J", ["split", "score", "combine"], payload={"n": 10},
                                               headers={"trace": "t"}, custom=1))
    out = only(cluster.queues.collect(HAPPY, 1, timeout=60))
    assert out["id"] == "J"
    assert "parent_id" not in out
    assert out["payload"] == {"parts": [{"i": i, "score": i * i} for i in range(10)]}
    assert out["headers"] == {"trace": "t"}  # the group's frame is gone again
    assert out["route"] == {"actors": ["split", "score", "combine"], "current": 3}
    assert out["custom"] == 1
    assert cluster.queues.recv(HAPPY, wait=0.5) == []
    assert len(cluster.markers_named("combine-")) == 1


def test_a_join_sidecar_declares_no_payload_unchanged(cluster):
    # Its request's payload is the group's branches, which it never holds whole, so its runtime is
    # never told it may answer "payload_unchanged" (protocol §3); a plain actor's sidecar is.
    join = cluster.actor("combine", "combine", env=join_env(cluster))
    plain = cluster.actor("score", "score")
    assert (join.dir / "sidecar-features").read_text() == "%d\n" % join.sidecar.popen.pid
    assert (plain.dir / "sidecar-features").read_text() == "%d\npayload-unchanged\n" % plain.sidecar.popen.pid


def test_a_fan_out_of_one_is_joined_as_a_group_of_one(cluster):
    cluster.actor("split", "split")
    cluster.actor("score", "score")
    cluster.actor("combine", "combine", env=join_env(cluster))
    cluster.queues.send("asya-split", envelope("one", ["split", "score", "combine"], payload={"n": 1}))
    out = only(cluster.queues.collect(HAPPY, 1, timeout=60))
    assert out["id"] == "one"
    assert out["payload"] == {"parts": [{"i": 0, "score": 0}]}


def test_a_failing_branch_completes_its_slot_with_the_error(cluster):
    cluster.actor("split", "split")
    cluster.actor("score", "score")
    cluster.actor("combine", "combine", env=join_env(cluster))
    cluster.queues.send("asya-split", envelope("F", ["split", "score", "combine"], payload={"n": 4, "fail": [2]}))
    out = only(cluster.queues.collect(HAPPY, 1, timeout=60))
    parts = out["payload"]["parts"]
    assert [p.get("score") for p in parts] == [0, 1, None, 9]
    assert parts[2]["error"] == "processing_error"
    assert parts[2]["actor"] == "score"
    assert "branch 2 asked to fail" in parts[2]["details"]["message"]
    assert parts[2]["original_payload"]["i"] == 2
    assert cluster.queues.recv(ERROR, wait=0.3) == []


def test_a_message_without_group_data_goes_to_error_end_with_a_clear_error(cluster):
    cluster.actor("combine", "combine", env=join_env(cluster))
    cluster.queues.send("asya-combine", envelope("lonely", ["combine"], payload={"x": 1}))
    out = only(cluster.queues.collect(ERROR, 1))
    assert out["id"] == "lonely"
    assert out["payload"]["error"] == "join_group_missing"
    assert "no fan-out group data" in out["payload"]["details"]["message"]
    assert out["payload"]["original_payload"] == {"x": 1}
    assert cluster.markers_named("combine-") == []


def test_timeout_with_error_names_the_missing_indexes(cluster):
    cluster.actor("split", "split")
    cluster.actor("drop", "drop_some")
    cluster.actor("combine", "combine", env=join_env(cluster, ASYA_JOIN_TIMEOUT="2s"))
    cluster.queues.send("asya-split", envelope("T", ["split", "drop", "combine"], payload={"n": 5, "drop": [1, 3]}))
    dropped = cluster.queues.collect(HAPPY, 2, timeout=60)  # the aborted branches end at happy-end
    assert sorted(m["json"]["payload"]["i"] for m in dropped) == [1, 3]
    out = only(cluster.queues.collect(ERROR, 1, timeout=60))
    assert out["id"] == "T"
    assert out["payload"]["error"] == "join_timeout"
    assert "3 of 5 branches" in out["payload"]["details"]["message"]
    assert "missing indexes: 1, 3" in out["payload"]["details"]["message"]
    assert cluster.markers_named("combine-") == []


def test_timeout_with_partial_hands_what_arrived_to_the_handler(cluster):
    cluster.actor("split", "split")
    cluster.actor("drop", "drop_some")
    cluster.actor("combine", "combine", env=join_env(cluster, ASYA_JOIN_TIMEOUT="2s", ASYA_JOIN_ON_TIMEOUT="partial"))
    cluster.queues.send("asya-split", envelope("P", ["split", "drop", "combine"], payload={"n": 4, "drop": [0]}))
    outs = cluster.queues.collect(HAPPY, 2, timeout=60)
    joined = [m["json"] for m in outs if m["json"]["id"] == "P" and "parts" in m["json"]["payload"]]
    assert len(joined) == 1
    parts = joined[0]["payload"]["parts"]
    assert parts[0] is None
    assert [p["i"] for p in parts[1:]] == [1, 2, 3]


def test_nested_split_split_join_join(cluster):
    cluster.actor("split", "split")
    cluster.actor("again", "split_again")
    cluster.actor("inner", "combine_inner", env=join_env(cluster))
    cluster.actor("outer", "combine", env=join_env(cluster))
    cluster.queues.send("asya-split", envelope("N", ["split", "again", "inner", "outer"], payload={"n": 3, "n2": 4}))
    out = only(cluster.queues.collect(HAPPY, 1, timeout=60))
    assert out["id"] == "N"
    assert out["payload"] == {"parts": [{"outer": i, "inner": [0, 1, 2, 3]} for i in range(3)]}
    assert "headers" not in out or "asya-fanout" not in out["headers"]
    assert cluster.queues.recv(HAPPY, wait=0.5) == []


def test_redelivered_fan_out_does_not_change_the_result(cluster):
    cluster.actor("split", "split")
    cluster.actor("score", "score")
    cluster.actor("combine", "combine", env=join_env(cluster))
    body = envelope("R", ["split", "score", "combine"], payload={"n": 5})
    cluster.queues.send("asya-split", body)
    out = only(cluster.queues.collect(HAPPY, 1, timeout=60))
    # The same fan-out again (as after a crash of split before its ack): every branch is a
    # duplicate of a published group and is dropped.
    cluster.queues.send("asya-split", body)
    wait_for(lambda: all(cluster.queues.empty(q) for q in ("asya-split", "asya-score", "asya-combine")), 30,
             "the repeated branches to be consumed")
    assert cluster.queues.recv(HAPPY, wait=1.0) == []
    assert out["payload"]["parts"][4] == {"i": 4, "score": 16}
    assert len(cluster.markers_named("combine-")) == 1


def collect_groups(cluster, expected, timeout):
    """Receives from happy-end until every id in `expected` arrived, then whatever arrives within
    1 s more; returns every message, bodies parsed. A duplicate of a group (a join replica killed
    between sending a group's output and finishing it in the store; the next replica sends it again
    with the same id) does not count towards `expected`: counting messages instead stopped the
    SIGKILL test early, before the last group arrived, and it failed naming no missing group."""
    got, seen = [], set()
    deadline = time.monotonic() + timeout
    while not expected <= seen:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail("timed out after %ds: groups %s never reached happy-end (%d messages arrived)" %
                        (timeout, sorted(expected - seen), len(got)))
        for m in cluster.queues.recv(HAPPY, wait=min(left, 2.0)):
            m["json"] = json.loads(m["body"])
            got.append(m)
            seen.add(m["json"]["id"])
    got += [dict(m, json=json.loads(m["body"])) for m in cluster.queues.recv(HAPPY, wait=1.0)]
    return got


def _kill_and_restart(actor):
    """SIGKILL the sidecar and the runtime of `actor` (supervised: its runtime comes back by
    itself), then start a new sidecar."""
    actor.sidecar.signal(signal.SIGKILL)
    actor.runtime.signal(signal.SIGKILL)
    actor.sidecar.wait(10)
    actor.start_sidecar()


def test_two_join_replicas_and_sigkill_of_joins_and_branches_emit_every_group_once(cluster):
    cluster.actor("split", "split")
    score = cluster.actor("score", "score_slow", env={"ASYA_VISIBILITY_TIMEOUT": "2s"}, supervise=True)
    env = join_env(cluster, ASYA_RUNTIME_TIMEOUT="5s", ASYA_VISIBILITY_TIMEOUT="2s")
    a = cluster.actor("combine", "combine", env=env, supervise=True)
    b = cluster.actor("combine", "combine", env=env, supervise=True)
    groups = 60
    cluster.queues.send_many("asya-split", [envelope("g%d" % g, ["split", "score", "combine"], payload={"n": 10})
                                            for g in range(groups)])
    # Kill the join replicas and the branch actor, repeatedly, while groups are in progress.
    for round_, victim in enumerate([a, score, b, a]):
        wait_for(lambda: len(cluster.markers_named("combine-")) >= 5 * (round_ + 1) or
                 len(cluster.markers_named("combine-")) >= groups, 120, "more groups to be joined")
        _kill_and_restart(victim)
    expected = {"g%d" % g for g in range(groups)}
    got = collect_groups(cluster, expected, timeout=180)
    ids = collections.Counter(m["json"]["id"] for m in got)
    assert set(ids) == expected
    # Exactly once in effect: a replica killed between sending a group's output and finishing it
    # in the store leaves it to another replica, whose copy carries the same id and payload. Each
    # of the three kills of a join replica can cause at most one such copy.
    by_id = collections.defaultdict(set)
    for m in got:
        by_id[m["json"]["id"]].add(json.dumps(m["json"]["payload"], sort_keys=True))
    assert all(len(payloads) == 1 for payloads in by_id.values())
    assert sum(ids.values()) - groups <= 3, ids
    for m in got:
        assert [p["i"] for p in m["json"]["payload"]["parts"]] == list(range(10))
    assert cluster.queues.recv(ERROR, wait=0.3) == []


@pytest.mark.parametrize("cluster", ["sqlite"], indirect=True)
def test_two_join_replicas_on_sqlite_join_a_thousand_groups_of_twenty(cluster):
    groups, width = 1000, 20
    cluster.actor("split", "split")
    cluster.actor("score", "score", env={"ASYA_CONCURRENCY": "2", "ASYA_HANDLER_THREAD_SAFE": "true"})
    for _ in range(2):
        cluster.actor("combine", "combine", env=join_env(cluster, ASYA_JOIN_TIMEOUT="10m"))
    cluster.queues.send_many("asya-split", [envelope("k%d" % g, ["split", "score", "combine"], payload={"n": width})
                                            for g in range(groups)])
    got = cluster.queues.collect(HAPPY, groups, timeout=900)
    got += [dict(m, json=json.loads(m["body"])) for m in cluster.queues.recv(HAPPY, wait=1.0)]
    ids = collections.Counter(m["json"]["id"] for m in got)
    assert sorted(ids) == sorted("k%d" % g for g in range(groups))
    assert set(ids.values()) == {1}
    for m in got:
        assert [p["i"] for p in m["json"]["payload"]["parts"]] == list(range(width))
    assert all("joined" in a.sidecar.text() for a in cluster.actors if a.name == "combine")


def _branch(group, index, count, payload):
    return envelope("%s-%d" % (group, index), ["combine"], payload=payload,
                    headers={"asya-fanout": [{"group": group + "@0", "index": index, "count": count}]})


def test_a_branch_delivered_more_than_max_deliveries_times_is_still_joined(cluster):
    # Redelivered after kills of join replicas or lost leases: the join does not call its runtime
    # for a branch, so the poison rule must not send the branch to error-end, which left its group
    # incomplete until join_timeout. The count is raised by receiving without acking.
    cluster.queues.send("asya-combine", _branch("P", 0, 2, {"i": 0}))
    # max_messages=1: recv returns as soon as it holds the branch (with the default 100 it waited
    # the whole 5 s for more, three times per transport).
    for _ in range(3):
        assert len(cluster.queues.recv("asya-combine", max_messages=1, wait=5.0, ack=False)) == 1
    cluster.queues.send("asya-combine", _branch("P", 1, 2, {"i": 1}))
    cluster.actor("combine", "combine", env=join_env(cluster, ASYA_MAX_DELIVERIES="2"))
    out = only(cluster.queues.collect(HAPPY, 1, timeout=60))
    assert out["id"] == "P"
    assert out["payload"] == {"parts": [{"i": 0}, {"i": 1}]}
    assert cluster.queues.recv(ERROR, wait=0.5) == []


@pytest.mark.parametrize("cluster", ["sqlite"], indirect=True)
def test_a_join_handler_that_always_raises_is_retried_per_retry_max_attempts_then_fails_once(cluster):
    cluster.actor("split", "split")
    cluster.actor("score", "score")
    cluster.actor("combine", "combine_raises", env=join_env(
        cluster, ASYA_RETRY_ON_PROCESSING_ERROR="true", ASYA_RETRY_MAX_ATTEMPTS="3"))
    cluster.queues.send("asya-split", envelope("R3", ["split", "score", "combine"], payload={"n": 3}))
    out = only(cluster.queues.collect(ERROR, 1, timeout=90))
    assert out["id"] == "R3"
    assert out["payload"]["error"] == "processing_error"
    assert "combine_raises refuses 3 parts" in out["payload"]["details"]["message"]
    assert out["headers"]["asya-attempt"] == 3
    # Before: claimed and called again every second without end.
    wait_for(lambda: "attempt 2 failed" in cluster.actors[-1].sidecar.text(), 10, "the retries to be logged")
    assert len(cluster.markers_named("combine-raises-")) == 3
    assert cluster.queues.recv(ERROR, wait=2.0) == []
    assert cluster.queues.recv(HAPPY, wait=0.1) == []
    assert len(cluster.markers_named("combine-raises-")) == 3


@pytest.mark.parametrize("cluster", ["sqlite"], indirect=True)
def test_a_group_whose_runtime_dies_every_time_goes_to_error_end_after_max_deliveries(cluster):
    cluster.actor("split", "split")
    cluster.actor("score", "score")
    cluster.actor("combine", "combine_dies", env=join_env(cluster, ASYA_MAX_DELIVERIES="2"), supervise=True)
    cluster.queues.send("asya-split", envelope("D", ["split", "score", "combine"], payload={"n": 2}))
    out = only(cluster.queues.collect(ERROR, 1, timeout=120))
    assert out["id"] == "D"
    assert out["payload"]["error"] == "max_deliveries_exceeded"
    message = out["payload"]["details"]["message"]
    assert ("join group D@0 of 2 branches was claimed 3 times without being published, more than "
            "ASYA_MAX_DELIVERIES=2; last error: runtime call failed (runtime_unavailable)") in message, message
    assert len(cluster.markers_named("combine-dies-")) == 2  # the third claim does not call it
    assert cluster.queues.recv(HAPPY, wait=0.3) == []
