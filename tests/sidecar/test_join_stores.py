"""Many groups joined by several replicas of a join actor sharing one store: 1,000 groups of 20
by 3 replicas on PostgreSQL 15 (a real server started here) and by 2 on SQLite. The transport is
SQLite; the transports' own join runs are in test_join.py, the store contract suite against
PostgreSQL in test_join_postgres.py."""
import collections
import json
import os
import shutil
import sys
import tempfile

import pytest

from sidecar_harness import REPO, Cluster, wait_for
from test_sidecar import envelope, HAPPY, ERROR

sys.path.insert(0, str(REPO / "tests"))
from services import postgres  # noqa: E402


@pytest.fixture(scope="module")
def postgres_url():
    if not postgres.available():
        pytest.fail(f"PostgreSQL 15 not installed at {postgres.PG_BIN} (./scripts/setup installs it)")
    with postgres.server() as url:
        yield url


@pytest.fixture
def sqlite_cluster(request, build_path):
    tmp = tempfile.mkdtemp(prefix="asya-js-", dir="/tmp")  # short: Unix socket paths are limited
    c = Cluster("sqlite", build_path, tmp)
    yield c
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        sys.stderr.write(c.logs())
    c.stop()
    shutil.rmtree(tmp, ignore_errors=True)


GROUPS, BRANCHES = 1000, 20


@pytest.mark.parametrize("store,replicas", [("postgresql", 3), ("sqlite", 2)])
def test_a_thousand_groups_of_twenty_are_each_emitted_once_by_several_join_replicas(
        sqlite_cluster, request, store, replicas):
    cluster = sqlite_cluster
    if store == "postgresql":
        store_url = postgres.fresh_database(request.getfixturevalue("postgres_url"))
    else:
        store_url = "sqlite://%s/joins.db" % cluster.tmp
    env = {"ASYA_JOIN": "true", "ASYA_JOIN_STORE": store_url, "ASYA_JOIN_TIMEOUT": "10m",
           "ASYA_CONCURRENCY": "4"}
    # split fans every group out straight to the join: 20,000 branches stored and 1,000 joins.
    cluster.actor("split", "split", env={"ASYA_CONCURRENCY": "4"})
    joins = [cluster.actor("combine", "combine", env=env) for _ in range(replicas)]
    bodies = pathlib_write(cluster.tmp, "groups.jsonl", [
        json.dumps(envelope("g%d" % g, ["split", "combine"], payload={"n": BRANCHES}), separators=(",", ":"))
        for g in range(GROUPS)])
    cluster.queues._run("send", "asya-split", "@" + bodies, "--lines")

    got = cluster.queues.collect(HAPPY, GROUPS, timeout=900)
    # Whatever else arrives now is a second emission of some group.
    wait_for(lambda: all(cluster.queues.empty(q) for q in ("asya-split", "asya-combine")), 60,
             "the queues to be drained")
    got += cluster.queues.recv(HAPPY, 1000, wait=2.0)
    ids = collections.Counter(m["json"]["id"] for m in got)
    assert sorted(ids) == sorted("g%d" % g for g in range(GROUPS))
    assert [i for i, n in ids.items() if n != 1] == []
    for m in got:
        assert [p["i"] for p in m["json"]["payload"]["parts"]] == list(range(BRANCHES))
    assert cluster.queues.recv(ERROR, wait=0.3) == []
    # Every replica published some of the groups (they share one store), and together exactly
    # one publication per group (each logs "join: group <id> of 20 branches joined").
    published = [j.sidecar.text().count("of %d branches joined" % BRANCHES) for j in joins]
    assert all(n > 0 for n in published), published
    assert sum(published) == GROUPS, published
    assert len(cluster.markers_named("combine-")) == GROUPS
    if store == "postgresql":
        left = postgres.psql(store_url, "SELECT count(*) FILTER (WHERE state <> 2), "
                             "(SELECT count(*) FROM asya_join_branches) FROM asya_join_groups").strip()
        assert left == "0|0", left  # every group published, no branch left behind


def pathlib_write(directory, name, lines):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
