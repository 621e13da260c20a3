"""Branches waiting at a join keep their payload objects (docs/protocol.md §4a, §10 "Lifetime"),
with real sidecars, real Python runtimes and a real store (a directory on SQLite, moto's S3 on
SQS); the join store is SQLite in the test's directory.

A join acknowledges a branch once it is stored in the join store, where it may wait for its
siblings far longer than any queue wait. Its object is held by the branch's id, and nothing
released that id, but the hold kept the time it was written: once it was older than
ASYA_PAYLOAD_ORPHAN_AGE, the sweep deleted the object, and the joined result got
payload_unavailable in that branch's slot (a lost message). Now the join writes the hold again
when it stores the branch and rewrites the holds of every branch waiting in its join store (from
the store, so a restarted join sidecar goes on) until the group ended, then releases them, also
when the group timed out.

Pipeline: fan (three branches of 300 KB each, over the 256 KiB threshold, each its own object)
-> work (a pass-through that holds the branch tagged "slow" until the test opens its gate) ->
combine (the join). Branches 0 and 1 wait in the join store while "slow" is in flight."""
import hashlib
import signal
import sqlite3

import pytest

from sidecar_harness import moto_service, wait_for
from test_payload import result, start, use_store

# Short lifetimes: the sweep (every 200 ms) deletes an object whose only hold is older than the
# orphan age seconds after that. S3 (moto) listings give whole seconds: longer ones there.
LIFETIMES = {"sqlite": ("1s", "4s"), "sqs": ("3s", "8s")}
SIZE = 300 * 1000
LETTERS = {"b0": "p", "b1": "q", "slow": "r"}


def lifetimes(cluster):
    if cluster.transport not in LIFETIMES:
        pytest.skip("the lifetime rule is the store's: a directory (sqlite) and S3 (sqs)")
    return LIFETIMES[cluster.transport]


def join_env(cluster, **extra):
    env = {"ASYA_JOIN": "true", "ASYA_JOIN_STORE": "sqlite://%s/joins.db" % cluster.tmp,
           "ASYA_JOIN_TIMEOUT": "5m"}
    env.update(extra)
    return env


def stored_branches(cluster):
    db = sqlite3.connect("file:%s/joins.db?mode=ro" % cluster.tmp, uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM join_branches").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        db.close()


def pipeline(cluster, envelope_id, join_extra=None, wait_stored=True):
    """Starts fan -> work -> combine and the end actors, sends `envelope_id` and waits until
    "slow" is in flight at work and (with `wait_stored`) branches 0 and 1 wait in the join store.
    Returns the join replica."""
    start(cluster, "fan", "fanout_three_distinct")
    start(cluster, "work", "pass_after_gate")
    combine = start(cluster, "combine", "join_digests", env=join_env(cluster, **(join_extra or {})))
    start(cluster, "happy-end", runtime=False)
    start(cluster, "error-end", runtime=False)
    cluster.queues.send("asya-fan", {"id": envelope_id, "route": {"actors": ["fan", "work", "combine"],
                                                                  "current": 0},
                                     "payload": {"bytes": SIZE}})
    if wait_stored:
        wait_for(lambda: stored_branches(cluster) == 2, 60, "branches 0 and 1 in the join store")
    wait_for(lambda: cluster.markers_named("waiting-slow"), 60, "the slow branch in flight")
    return combine


def sweep_past_the_orphan_age(store):
    """Writes an object that no hold names and waits until the sweep deleted it: a sweep then ran
    more than the orphan age after every hold written before this call."""
    data = b'{"canary":"' + b"c" * 1000 + b'"}'
    key = "objects/" + hashlib.sha256(data).hexdigest()
    store.write(key, data)
    wait_for(lambda: key not in store.objects(), 120, "the orphan canary to be swept")


def assert_whole(got):
    assert got["kinds"] == ["ok", "ok", "ok"], got
    assert got["tags"] == ["b0", "b1", "slow"]
    assert got["lengths"] == [SIZE] * 3
    assert got["sha256"] == [hashlib.sha256((LETTERS[t] * SIZE).encode()).hexdigest()
                             for t in ("b0", "b1", "slow")]


def test_branches_waiting_at_a_join_past_the_orphan_age_are_joined_whole(cluster, request):
    grace, orphan_age = lifetimes(cluster)
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE=grace, ASYA_PAYLOAD_ORPHAN_AGE=orphan_age,
                      ASYA_PAYLOAD_SWEEP_INTERVAL="200ms")
    pipeline(cluster, "WAIT")
    assert len(store.objects()) == 3, store.objects()
    sweep_past_the_orphan_age(store)
    (cluster.markers / "gate-slow").touch()
    assert_whole(result(cluster, "WAIT")["payload"])
    assert cluster.markers_named("saw-reference-") == []


def test_a_join_sidecar_killed_while_branches_wait_holds_them_again_once_restarted(cluster, request):
    """SIGKILL of the join's sidecar and runtime while branches 0 and 1 wait: a new sidecar (no
    memory of them but the join store) goes on holding their objects past the orphan age."""
    grace, orphan_age = lifetimes(cluster)
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE=grace, ASYA_PAYLOAD_ORPHAN_AGE=orphan_age,
                      ASYA_PAYLOAD_SWEEP_INTERVAL="200ms")
    combine = pipeline(cluster, "KILLED")
    combine.sidecar.signal(signal.SIGKILL)
    combine.runtime.signal(signal.SIGKILL)
    combine.sidecar.wait(10)
    combine.runtime.wait(10)
    combine.start_runtime()
    combine.start_sidecar()
    sweep_past_the_orphan_age(store)
    assert len(store.objects()) == 3, "deleted under branches waiting at a restarted join"
    (cluster.markers / "gate-slow").touch()
    assert_whole(result(cluster, "KILLED")["payload"])


def test_a_group_that_times_out_releases_its_branches_and_their_objects_are_swept(cluster, request):
    """The group ends at its timeout (error-end, join_timeout) with "slow" never arrived: the
    holds of its branches end with it (those that waited, and one that came after the timeout,
    on a slow machine), so their objects go after the grace period (with an orphan age of an
    hour, only a release lets them go); the object of "slow", still in flight, stays until
    "slow" reaches the join late and is dropped there."""
    grace, _ = lifetimes(cluster)
    store = use_store(cluster, request, ASYA_PAYLOAD_GRACE=grace, ASYA_PAYLOAD_ORPHAN_AGE="1h",
                      ASYA_PAYLOAD_SWEEP_INTERVAL="200ms")
    # The timeout runs from the first branch stored: the test does not race it.
    pipeline(cluster, "EXPIRED", join_extra={"ASYA_JOIN_TIMEOUT": "3s", "ASYA_JOIN_ON_TIMEOUT": "error"},
             wait_stored=False)
    failed = result(cluster, "EXPIRED")["payload"]
    assert failed["error"] == "join_timeout", failed
    wait_for(lambda: len(store.objects()) == 1, 60, "the branches' objects to be swept")
    (left,) = store.objects()
    assert b'"tag":"slow"' in read_object(store, left).replace(b" ", b""), "not the slow branch's object"
    assert stored_branches(cluster) == 0
    # "slow" arrives after its group ended: the join drops it and releases its hold, so its
    # object goes too.
    (cluster.markers / "gate-slow").touch()
    wait_for(lambda: store.objects() == [], 60, "the late branch's object to be swept")
    assert result(cluster, "EXPIRED")["payload"]["error"] == "join_timeout"


def read_object(store, key):
    if store.dir is not None:
        return (store.dir / key).read_bytes()
    _, body = moto_service.s3_request("GET", "%s/%s/run/%s" % (store.endpoint, store.bucket, key))
    return body
