"""Two queue entries of one publish (docs/protocol.md §10 "Outputs waiting in a queue"), with real
sidecars, real Python runtimes and a real store (a directory on SQLite, moto's S3 on SQS).

A publisher that sent a message again after a lost confirm or a timeout whose first attempt
succeeded, or a broker that delivers a message again after it was consumed (an SQS standard
queue's rare duplicate, a RabbitMQ redelivery after a lost ack), leaves two queue entries of one
publish: the same bytes, so the same hold token. Once one entry was consumed (its token released)
and its lineage ended (its envelope id released), nothing can keep the object for the other entry
short of keeping every object for ASYA_PAYLOAD_ORPHAN_AGE, since the two entries cannot be told
apart. So after the grace period the sweep deletes the object while the second entry still waits.

Its work was done by the first entry, though. Before, the second entry's reader sent it to
error-end as payload_unavailable: a false failure (an error result stored, or reported for a
fan-out child whose join had long finished). A released token whose object is gone now tells the
reader that a copy of this very message was consumed: it acknowledges the entry without calling
the handler and counts it (asya_actor_consumed_copies_dropped_total)."""
import pytest

from sidecar_harness import wait_for
from test_inflight_duplicates import counter, letters
from test_payload import HAPPY, MB, result, start
from test_queued_outputs import calls, short_lifetimes, sweeps_past_the_grace

SIZE = 1 * MB


def test_a_second_entry_of_a_consumed_publish_whose_object_was_swept_is_acknowledged_as_a_copy(
        cluster, request):
    store = short_lifetimes(cluster, request)
    start(cluster, "happy-end", runtime=False)
    error_end = start(cluster, "error-end", runtime=False)
    start(cluster, "make", "make_big_string")
    cluster.queues.send("asya-make", {"id": "TWICE", "route": {"actors": ["make", "pass"], "current": 0},
                                      "payload": {"bytes": SIZE}})
    wait_for(lambda: cluster.queues.stats("asya-pass")["ready"] == 1, 60, "the output in asya-pass")
    (obj,) = store.objects()
    # The first entry goes on as `pass` would forward it (happy-end consumes it: the token and the
    # envelope id are released); the second entry of the same publish, byte for byte, waits.
    (entry,) = cluster.queues.recv("asya-pass", 1)
    cluster.queues.send(HAPPY, entry["body"])
    assert result(cluster, "TWICE")["payload"] == letters(SIZE)
    cluster.queues.send("asya-pass", entry["body"])
    sweeps_past_the_grace(cluster, store, "CANARY", rounds=2)
    # The shared token's release and the id's no longer cover the object.
    wait_for(lambda: obj not in store.objects(), 60, "the object to be swept under the second entry")
    passer = start(cluster, "pass", "passthrough")
    wait_for(lambda: counter(passer, "asya_actor_consumed_copies_dropped_total") == 1, 60,
             "the second entry to be acknowledged as a copy of a consumed message")
    wait_for(lambda: cluster.queues.empty("asya-pass"), 60, "the second entry to be acknowledged")
    assert calls(cluster, "pass") == 0, "the handler was called for a copy of a consumed message"
    assert counter(passer, "asya_actor_messages_failed_total") == 0
    assert counter(error_end, "asya_actor_messages_processed_total") == 0, "a false failure"
    assert result(cluster, "TWICE")["payload"] == letters(SIZE)
    # Nothing is kept for it: the hold its receipt wrote names a deleted object and goes with the
    # others once done; no object is left.
    assert store.objects() == []


def test_an_entry_whose_object_is_gone_but_whose_token_was_never_released_still_fails(
        cluster, request):
    """The rule needs the token's release: a message none of whose copies was consumed (its object
    lost some other way: removed by hand, a store restored from an old backup) still goes to
    error-end as payload_unavailable, never silently."""
    if cluster.transport != "sqlite":
        pytest.skip("the reader's rule, the same on every transport: once on sqlite")
    store = short_lifetimes(cluster, request)
    start(cluster, "happy-end", runtime=False)
    start(cluster, "error-end", runtime=False)
    start(cluster, "make", "make_big_string")
    cluster.queues.send("asya-make", {"id": "LOST", "route": {"actors": ["make", "pass"], "current": 0},
                                      "payload": {"bytes": SIZE}})
    wait_for(lambda: cluster.queues.stats("asya-pass")["ready"] == 1, 60, "the output in asya-pass")
    (obj,) = store.objects()
    (store.dir / obj).unlink()
    passer = start(cluster, "pass", "passthrough")
    failed = result(cluster, "LOST")
    assert failed["payload"]["error"] == "payload_unavailable", str(failed)[:500]
    assert counter(passer, "asya_actor_consumed_copies_dropped_total") == 0
    assert calls(cluster, "pass") == 0
