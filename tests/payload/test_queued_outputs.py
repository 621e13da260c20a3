"""Outputs that wait in a queue for longer than ASYA_PAYLOAD_GRACE (docs/protocol.md §10
"Lifetime", "Outputs waiting in a queue"), with real sidecars, real Python runtimes and a real store
(a directory on SQLite, moto's S3 on SQS).

Holds keyed by envelope id are ended by the release of that id, which the end actor writes when
the envelope's result is stored. At-least-once delivery can process one envelope twice (a crash
between publish and ack, a lease that expired): both copies publish an output referring to the
same content-addressed object, under the same id. When the first copy's lineage ends, its release
covers every hold of the id; the second copy's output, waiting in the queue of an actor that is
stopped or slow, was then protected by nothing once the grace period passed, and the sweep deleted
the object it refers to: its reader sent it to error-end as payload_unavailable instead of calling
the handler (and, the stored result read back meanwhile, error-end stored the dangling reference).

Every published reference now carries a hold token of its own ("hold", 32 hex digits), held before
the publish and released only by the sidecar that consumed (acked) that message: a queued output
keeps its object however long it waits (up to ASYA_PAYLOAD_ORPHAN_AGE), and nothing is kept once
every copy was consumed."""
import signal

import pytest

from sidecar_harness import wait_for
from test_inflight_duplicates import LIFETIMES, letters
from test_payload import HAPPY, MB, crashed_at, restart_without_failpoints, result, start, use_store

SIZE = 1 * MB


def short_lifetimes(cluster, request, orphan_age="1h"):
    if cluster.transport not in LIFETIMES:
        pytest.skip("the lifetime rule is the store's: a directory (sqlite) and S3 (sqs)")
    cluster.env["ASYA_VISIBILITY_TIMEOUT"] = "2s"
    return use_store(cluster, request, ASYA_PAYLOAD_GRACE=LIFETIMES[cluster.transport],
                     ASYA_PAYLOAD_ORPHAN_AGE=orphan_age, ASYA_PAYLOAD_SWEEP_INTERVAL="200ms")


def sweeps_past_the_grace(cluster, store, name, rounds=3):
    """Ends `rounds` canary envelopes one after the other (route make -> happy-end, each its own
    object) and waits until the sweep deleted each canary's object: every time, a sweep ran past a
    release newer than anything before it plus the grace period. Several grace periods pass so."""
    for i in range(rounds):
        canary_id = "%s-%d" % (name, i)
        before = set(store.objects())
        cluster.queues.send("asya-make", {"id": canary_id, "route": {"actors": ["make"], "current": 0},
                                          "payload": {"bytes": SIZE + 1 + i}})
        assert result(cluster, canary_id)["payload"] == letters(SIZE + 1 + i)
        canary = set(store.objects()) - before
        assert len(canary) == 1, canary
        wait_for(lambda: not canary & set(store.objects()), 60, "the canary's object to be swept")


def calls(cluster, actor):
    marker = cluster.markers / ("called-%s-x" % actor)
    return marker.read_text().count("call") if marker.exists() else 0


def first_copy_ended_second_queued(cluster, store, envelope_id):
    """`make` dies after publishing envelope_id's output and before acking its input
    (sidecar.before_ack), is started again and processes the input delivered again: two copies of
    the output wait in asya-pass, referring to one object. The first copy then goes on as `pass`
    would forward it (the test moves it to happy-end, so that the second stays queued: `pass` is
    not running) and its lineage ends: result stored, id released. Returns the object."""
    maker = start(cluster, "make", "make_big_string", env={"ASYA_FAILPOINTS": "sidecar.before_ack"})
    cluster.queues.send("asya-make", {"id": envelope_id, "route": {"actors": ["make", "pass"], "current": 0},
                                      "payload": {"bytes": SIZE}})
    crashed_at(maker, "sidecar.before_ack")
    restart_without_failpoints(maker)
    wait_for(lambda: cluster.queues.stats("asya-pass")["ready"] == 2, 60, "the second copy's output")
    wait_for(lambda: cluster.queues.empty("asya-make"), 60, "the input to be acked")
    (obj,) = store.objects()
    (first,) = cluster.queues.recv("asya-pass", 1)
    cluster.queues.send(HAPPY, first["body"])
    assert result(cluster, envelope_id)["payload"] == letters(SIZE)
    # Removed so that the second copy's result is seen (and so that error-end cannot fall back on
    # it: section 6 "Duplicates").
    (cluster.results / ("%s.json" % envelope_id)).unlink()
    return obj


def test_a_second_copys_output_queued_past_the_grace_after_the_first_copy_ended_arrives_whole(
        cluster, request):
    store = short_lifetimes(cluster, request)
    start(cluster, "happy-end", runtime=False)
    start(cluster, "error-end", runtime=False)
    obj = first_copy_ended_second_queued(cluster, store, "QUEUED")
    sweeps_past_the_grace(cluster, store, "CANARY")
    assert obj in store.objects(), "deleted under the output waiting in asya-pass"
    start(cluster, "pass", "passthrough")  # the downstream actor is back
    second = result(cluster, "QUEUED")
    assert second["payload"] == letters(SIZE), str(second["payload"])[:300]
    assert calls(cluster, "pass") == 1, "the handler was not called with the second copy"
    assert cluster.markers_named("saw-reference-") == []
    # Both copies consumed and the lineage ended again: nothing is kept.
    wait_for(lambda: store.objects() == [], 60, "the object to be deleted once both copies ended")
    wait_for(lambda: store.keys("holds/") == [], 60, "every hold to be released and removed")


def test_a_single_output_queued_for_several_grace_periods_arrives_whole(cluster, request):
    """No duplicate: the output's hold (its id's, and its own token's) has no release until its
    lineage ends, so it waits as long as ASYA_PAYLOAD_ORPHAN_AGE allows."""
    store = short_lifetimes(cluster, request)
    start(cluster, "happy-end", runtime=False)
    start(cluster, "make", "make_big_string")
    cluster.queues.send("asya-make", {"id": "ALONE", "route": {"actors": ["make", "pass"], "current": 0},
                                      "payload": {"bytes": SIZE}})
    wait_for(lambda: cluster.queues.stats("asya-pass")["ready"] == 1, 60, "the output in asya-pass")
    (obj,) = store.objects()
    sweeps_past_the_grace(cluster, store, "CANARY")
    assert obj in store.objects(), "deleted under the output waiting in asya-pass"
    start(cluster, "pass", "passthrough")
    assert result(cluster, "ALONE")["payload"] == letters(SIZE)
    assert cluster.markers_named("saw-reference-") == []
    wait_for(lambda: store.objects() == [], 60, "the object to be deleted after the end")


def test_a_consumer_killed_before_its_token_release_leaves_the_object_to_the_orphan_age(
        cluster, request):
    """SIGKILL of a holder: `pass` acks the second copy's output and dies before writing the
    release of that output's hold token (failpoint payload.token_release). The token's hold is
    then never released: the object outlives the grace period (safe), and the orphan age deletes
    it (nothing is kept forever)."""
    if cluster.transport != "sqlite":
        pytest.skip("the lifetime rule is the store's; once on sqlite")
    store = short_lifetimes(cluster, request, orphan_age="30s")
    start(cluster, "happy-end", runtime=False)
    start(cluster, "error-end", runtime=False)
    first_copy_ended_second_queued(cluster, store, "KILLED")
    killed = start(cluster, "pass", "passthrough", env={"ASYA_FAILPOINTS": "payload.token_release"},
                   start_sidecar=False)
    # Not waited ready: the queued copy may take it to the failpoint before /readyz is asked.
    killed.start_sidecar(wait_ready=False)
    crashed_at(killed, "payload.token_release")
    assert result(cluster, "KILLED")["payload"] == letters(SIZE)
    wait_for(lambda: store.objects() == [], 120, "the object to be deleted after the orphan age")


def test_a_consumer_killed_while_it_processes_a_queued_copy_gets_it_again_whole(cluster, request):
    """SIGKILL of a holder in flight: `pass` dies (SIGKILL, sidecar and runtime) while its runtime
    works on the second copy's output, long after the first copy's release; nothing was acked or
    released, the message is delivered again after its lease, arrives whole and ends."""
    if cluster.transport != "sqlite":
        pytest.skip("the lifetime rule is the store's; once on sqlite")
    store = short_lifetimes(cluster, request)
    start(cluster, "happy-end", runtime=False)
    start(cluster, "error-end", runtime=False)
    obj = first_copy_ended_second_queued(cluster, store, "INFLIGHT")
    sweeps_past_the_grace(cluster, store, "CANARY", rounds=1)
    # first_passes_the_others_wait: the first call of a payload of SIZE letters answers, the later
    # ones wait for a gate; marking it passed already makes this call wait.
    (cluster.markers / ("first-s%d" % SIZE)).touch()
    waiting = start(cluster, "pass", "first_passes_the_others_wait")
    wait_for(lambda: cluster.markers_named("waiting-s%d-" % SIZE), 60, "the copy to be in flight")
    sweeps_past_the_grace(cluster, store, "CANARY-LATER", rounds=1)
    waiting.sidecar.signal(signal.SIGKILL)
    waiting.runtime.signal(signal.SIGKILL)
    assert obj in store.objects(), "deleted under the copy in flight"
    start(cluster, "pass", "passthrough")
    assert result(cluster, "INFLIGHT")["payload"] == letters(SIZE)
    assert cluster.markers_named("saw-reference-") == []
    wait_for(lambda: store.objects() == [], 60, "the object to be deleted after the end")
