"""A lease on SQLite under faults (src/transport/sqlite/sqlite_transport.cpp, lease_bodies.cpp).

A receive selects the ready rows, updates each to the new lease and reads the small bodies inside
one write transaction (docs/transports.md). A SIGKILL inside it, every statement run and the
bodies read, before its COMMIT, must leave the messages exactly as they were: ready, not leased,
and received once each by the next sidecar.
"""
from test_sqlite_shared_settle import HAPPY, actor_killed_at, arrivals_until_all, sqlite_cluster  # noqa: F401


def test_sigkill_inside_a_lease_transaction_loses_and_duplicates_nothing(sqlite_cluster):
    cluster = sqlite_cluster
    ids = ["l%03d" % i for i in range(60)]
    actor = actor_killed_at(cluster, "sqlite.lease_uncommitted", ids)
    # The lease never committed: nothing is leased, nothing went through.
    in_queue = cluster.queues.stats("asya-fast")
    assert in_queue["ready"] == len(ids) and in_queue["in_flight"] == 0, in_queue
    assert cluster.queues.stats(HAPPY)["ready"] == 0

    actor.env.pop("ASYA_FAILPOINTS")
    actor.start_sidecar()
    arrived = arrivals_until_all(cluster, ids)
    assert set(arrived) == set(ids), "lost: %s" % sorted(set(ids) - set(arrived))[:20]
    duplicates = {i: n for i, n in arrived.items() if n > 1}
    assert not duplicates, "arrived more than once: %s" % sorted(duplicates)[:20]
