"""Duplicates of one envelope processed at once (docs/protocol.md §10 "Lifetime"), with real
sidecars, real Python runtimes and a real store (a directory on SQLite, moto's S3 on SQS).

At-least-once delivery can hand one envelope to two replicas at once (a lease that expired, a
RabbitMQ redelivery after a dropped connection, a crash after publish and before ack upstream).
Holds are keyed by envelope id, so both copies share one hold: when the first copy ends, its
release covers that hold, and once the grace period passed the sweep could delete the object
while the second copy is still in flight (its pass-through then forwards a reference to nothing).
A sidecar rewrites the hold of every input it is processing (ASYA_PAYLOAD_GRACE / 4, at most 1 min)
so the hold stays newer than any release while any copy is in flight; a crashed copy stops
renewing and its object is deleted once the copy delivered again ended too.

The payload is a JSON string, which the Python runtime answers "payload_unchanged": the second copy
forwards its input's reference without writing anything, so an object deleted under it reaches
the end actor as a reference to nothing (before the fix: the duplicate's result replaced the real
payload with that reference)."""
import json
import os
import signal
import subprocess

import pytest

from sidecar_harness import wait_for
from test_payload import HAPPY, MB, reference_to, result, start, use_store

# Short lifetimes so that the sweep (every 200 ms) would delete an object seconds after its
# envelope ended. S3 (moto) listings give whole seconds: a longer grace there.
LIFETIMES = {"sqlite": "1s", "sqs": "3s"}
SIZE = 1 * MB
TAG = "s%d" % SIZE  # first_passes_the_others_wait's markers for a string of SIZE letters


def store_with_short_lifetimes(cluster, request):
    if cluster.transport not in LIFETIMES:
        pytest.skip("the lifetime rule is the store's: a directory (sqlite) and S3 (sqs)")
    return use_store(cluster, request, ASYA_PAYLOAD_GRACE=LIFETIMES[cluster.transport],
                     ASYA_PAYLOAD_ORPHAN_AGE="1h", ASYA_PAYLOAD_SWEEP_INTERVAL="200ms")


def letters(size):
    return ("abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]


def duplicated(cluster, envelope_id, copies=2):
    """Makes `envelope_id` (route make -> slow) with a payload of SIZE letters stored by reference
    and puts `copies` copies of the envelope make published into asya-slow."""
    cluster.queues.send("asya-make", {"id": envelope_id, "route": {"actors": ["make", "slow"], "current": 0},
                                      "payload": {"bytes": SIZE}})
    wait_for(lambda: cluster.queues.stats("asya-slow")["ready"] == 1, 60, "the envelope in asya-slow")
    body = cluster.queues.recv("asya-slow", 1)[0]["body"]
    assert "asya-payload-ref" in body
    for _ in range(copies):
        cluster.queues.send("asya-slow", body)


def sweep_past_the_release(cluster, store, canary_id):
    """Waits until the sweep deleted the object of a canary envelope that ended after the first
    copy did: a sweep then ran past the first copy's release plus the grace period. Returns the
    objects left."""
    before = set(store.objects())
    cluster.queues.send("asya-make", {"id": canary_id, "route": {"actors": ["make"], "current": 0},
                                      "payload": {"bytes": SIZE + 1}})
    assert result(cluster, canary_id)["payload"] == letters(SIZE + 1)
    canary = set(store.objects()) - before
    assert len(canary) == 1, canary
    wait_for(lambda: not canary & set(store.objects()), 60, "the canary's object to be swept")
    return store.objects()


def the_first_copy_ended(cluster, envelope_id):
    assert result(cluster, envelope_id)["payload"] == letters(SIZE)
    (cluster.results / ("%s.json" % envelope_id)).unlink()
    wait_for(lambda: cluster.markers_named("waiting-%s-" % TAG), 60, "the second copy to be in flight")


def test_a_duplicate_in_flight_keeps_its_object_after_the_first_copy_ended(cluster, request):
    store = store_with_short_lifetimes(cluster, request)
    start(cluster, "make", "make_big_string")
    start(cluster, "happy-end", runtime=False)
    duplicated(cluster, "TWIN")
    (obj,) = store.objects()
    # Two replicas of one actor, each taking one copy: one answers at once, one waits for the gate.
    start(cluster, "slow", "first_passes_the_others_wait")
    start(cluster, "slow", "first_passes_the_others_wait")
    the_first_copy_ended(cluster, "TWIN")
    assert sweep_past_the_release(cluster, store, "CANARY") == [obj], "deleted under the copy in flight"
    (cluster.markers / ("gate-" + TAG)).touch()
    second = result(cluster, "TWIN")
    assert second["payload"] == letters(SIZE), str(second["payload"])[:300]
    assert cluster.markers_named("saw-reference-") == []
    # Both copies ended: the object goes once the second release is past the grace period.
    wait_for(lambda: store.objects() == [], 60, "the object to be deleted after both copies ended")


def test_a_duplicate_whose_replica_crashed_in_flight_is_delivered_again_and_its_object_swept(
        cluster, request):
    """The replica holding the second copy is killed mid-processing, after the first copy's
    release: its hold is no longer renewed, the copy comes back after its lease, is processed from
    the same object, and the object is deleted once that copy ended (a crashed holder keeps
    nothing forever)."""
    store = store_with_short_lifetimes(cluster, request)
    cluster.env["ASYA_VISIBILITY_TIMEOUT"] = "2s"
    start(cluster, "make", "make_big_string")
    start(cluster, "happy-end", runtime=False)
    duplicated(cluster, "CRASHED")
    (obj,) = store.objects()
    replica = start(cluster, "slow", "first_passes_the_others_wait")  # takes both copies in turn
    the_first_copy_ended(cluster, "CRASHED")
    assert sweep_past_the_release(cluster, store, "CANARY2") == [obj], "deleted under the copy in flight"
    replica.sidecar.signal(signal.SIGKILL)
    replica.runtime.signal(signal.SIGKILL)
    (cluster.markers / ("gate-" + TAG)).touch()
    start(cluster, "slow", "first_passes_the_others_wait")  # takes the copy once its lease expired
    again = result(cluster, "CRASHED")
    assert again["payload"] == letters(SIZE), str(again["payload"])[:300]
    wait_for(lambda: store.objects() == [], 60, "the object to be deleted after the copy ended")
    assert cluster.markers_named("saw-reference-") == []


def counter(actor, name):
    """The sum of the metric `name` over its labels (0 when absent)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in actor.metrics().splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_a_late_duplicate_at_the_end_actor_whose_object_is_gone_keeps_the_stored_result(
        cluster, request, gateway):
    """docs/protocol.md §6 "Duplicates": a copy of a final envelope reaches happy-end after the
    first copy's result was stored and its object swept. The stored result (the real payload) is
    kept, not replaced by the dangling reference; the duplicate is acknowledged and counted, and
    its final report carries the stored result (the gateway keeps its first result anyway)."""
    if cluster.transport != "sqlite":
        pytest.skip("the end actor's rule, the same on every transport: once on sqlite")
    store = store_with_short_lifetimes(cluster, request)
    start(cluster, "make", "make_big_string")
    cluster.queues.send("asya-make", {"id": "LATE", "route": {"actors": ["make"], "current": 0,
                                                              "metadata": {"job_id": "LATE"}},
                                      "payload": {"bytes": SIZE}})
    wait_for(lambda: cluster.queues.stats(HAPPY)["ready"] == 1, 60, "the envelope in happy-end's queue")
    body = cluster.queues.recv(HAPPY, 1)[0]["body"]
    assert "asya-payload-ref" in body
    cluster.queues.send(HAPPY, body)
    end = start(cluster, "happy-end", runtime=False, env={"ASYA_GATEWAY_URL": gateway.url})
    assert result(cluster, "LATE")["payload"] == letters(SIZE)
    wait_for(lambda: store.objects() == [], 60, "the object to be swept once the envelope ended")
    cluster.queues.send(HAPPY, body)  # the late duplicate: its reference points to nothing now
    wait_for(lambda: counter(end, "asya_actor_messages_processed_total") == 2, 60,
             "the duplicate to be processed")
    wait_for(lambda: cluster.queues.empty(HAPPY), 60, "the duplicate to be acknowledged")
    kept = result(cluster, "LATE")
    assert kept["payload"] == letters(SIZE), str(kept["payload"])[:300]
    assert counter(end, "asya_actor_end_duplicates_kept_total") == 1
    assert counter(end, "asya_actor_messages_failed_total") == 0
    wait_for(lambda: len([p for p, _ in gateway.snapshot() if p.endswith("/final")]) == 2, 60,
             "both final reports")
    finals = [b for p, b in gateway.snapshot() if p.endswith("/final")]
    assert [f["status"] for f in finals] == ["succeeded", "succeeded"]
    assert [f["result"] == letters(SIZE) for f in finals] == [True, True], str(finals)[:300]


def test_a_late_duplicate_at_error_end_whose_original_payload_is_gone_keeps_the_stored_result(
        cluster, request):
    """The same rule at error-end, whose reference is the error's original_payload."""
    if cluster.transport != "sqlite":
        pytest.skip("the end actor's rule, the same on every transport: once on sqlite")
    store = use_store(cluster, request)
    data = json.dumps({"data": "x" * 300000, "tag": "late-error"}).encode()
    ref = reference_to(store, data)
    store.write("objects/" + ref["asya-payload-ref"]["sha256"], data)
    end = start(cluster, "error-end", runtime=False)
    failed = {"id": "ELATE", "route": {"actors": ["a"], "current": 0},
              "payload": {"error": "processing_error", "details": {"message": "boom"}, "actor": "a",
                          "original_payload": ref}}
    cluster.queues.send("asya-error-end", failed)
    assert result(cluster, "ELATE")["payload"]["original_payload"] == json.loads(data)
    for obj in store.objects():
        (store.dir / obj).unlink()
    cluster.queues.send("asya-error-end", failed)
    wait_for(lambda: counter(end, "asya_actor_messages_processed_total") == 2, 60,
             "the duplicate to be processed")
    wait_for(lambda: cluster.queues.empty("asya-error-end"), 60, "the duplicate to be acknowledged")
    assert result(cluster, "ELATE")["payload"]["original_payload"] == json.loads(data)
    assert counter(end, "asya_actor_end_duplicates_kept_total") == 1


def test_s3_payload_store_gtest_against_moto(build_path, moto_server):
    """The store contract on S3 too (src/payload/payload_store_test.cpp, Stores/*/1 skip without
    moto): among it, that writing a hold again moves its LastModified past an earlier release,
    which renewing a hold relies on."""
    binary = build_path / "src" / "payload" / "payload_test"
    if not binary.exists():
        pytest.fail("%s is missing: build it first (ninja payload_test)" % binary)
    env = dict(os.environ, ASYA_TEST_AWS_ENDPOINT=moto_server.endpoint)
    proc = subprocess.run([str(binary), "--gtest_filter=Stores/*"], env=env, capture_output=True,
                          text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-20000:]
    assert "SKIPPED" not in output.split("[  PASSED  ]")[-1], output[-5000:]
    assert "WritingAKeyAgainMovesItsListedTimeBeyondAnEarlierRecord/1" in output
