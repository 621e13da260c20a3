"""Hold records of an object that never dies (docs/protocol.md §10 "Lifetime"), with real sidecars,
real Python runtimes and a real store (a directory on SQLite, moto's S3 on SQS).

Objects are content-addressed: every envelope with the same large payload (a document every job
sends, a default image) shares one object, and while any of them is under way the object lives.
Each message that referred to it leaves two hold records (its envelope id's and its hold token's),
done once its lineage ended and the grace period passed. The sweep removed done records only with
their object, so under an object that some envelope always referred to they piled up for ever:
files (or S3 keys) without bound, listed by every sweep. A done record no longer changes anything
about its object, so the sweep removes it whether or not the object lives (after a last look, so a
record written again since, e.g. by a late copy's receipt, stays)."""
from sidecar_harness import wait_for
from test_inflight_duplicates import letters
from test_payload import MB, result, start
from test_queued_outputs import short_lifetimes

SIZE = 1 * MB


def test_done_holds_of_an_object_still_held_are_removed_and_it_goes_with_its_last_holder(
        cluster, request):
    store = short_lifetimes(cluster, request)
    start(cluster, "happy-end", runtime=False)
    start(cluster, "make", "make_big_string")
    # KEEP's output waits in asya-pass (`pass` is not running): it holds the object meanwhile.
    cluster.queues.send("asya-make", {"id": "KEEP", "route": {"actors": ["make", "pass"], "current": 0},
                                      "payload": {"bytes": SIZE}})
    wait_for(lambda: cluster.queues.stats("asya-pass")["ready"] == 1, 60, "KEEP's output in asya-pass")
    (obj,) = store.objects()
    keep_holds = store.keys("holds/")
    assert len(keep_holds) == 2, keep_holds  # KEEP's id and its output's hold token
    # Envelopes with the same payload come and end: the same object, two hold records each.
    for i in range(4):
        envelope_id = "PASSING-%d" % i
        cluster.queues.send("asya-make", {"id": envelope_id, "route": {"actors": ["make"], "current": 0},
                                          "payload": {"bytes": SIZE}})
        assert result(cluster, envelope_id)["payload"] == letters(SIZE)
    assert store.objects() == [obj]
    # Their records are done a grace period after their releases, and removed while the object
    # lives on for KEEP.
    wait_for(lambda: store.keys("holds/") == keep_holds, 60,
             "the done holds to be removed while KEEP still holds the object")
    assert store.objects() == [obj]
    # KEEP ends too: the object and every record go.
    start(cluster, "pass", "passthrough")
    assert result(cluster, "KEEP")["payload"] == letters(SIZE)
    wait_for(lambda: store.objects() == [], 60, "the object to be deleted after its last holder")
    wait_for(lambda: store.keys("holds/") == [], 60, "every hold to be removed")
