"""Joins on the PostgreSQL join store (ASYA_JOIN_STORE=postgresql://..., PROTOCOL §4a): the store
contract suite against a real PostgreSQL 15, and three join replicas sharing it."""
import collections
import json
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "gateway"))
from services import postgres as postgres_service  # noqa: E402

from test_sidecar import envelope, HAPPY, ERROR  # noqa: E402


def test_join_store_suite_against_postgres(build_path, postgres_url):  # noqa: F811
    binary = build_path / "src" / "sidecar" / "sidecar_test"
    # A database of its own: the session's server is shared with the gateway's store suites.
    env = {"ASYA_TEST_DATABASE_URL": postgres_service.fresh_database(postgres_url), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(binary), "--gtest_filter=*JoinStoreTest*postgresql*"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    listed = subprocess.run([str(binary), "--gtest_list_tests", "--gtest_filter=*JoinStoreTest*postgresql*"],
                            capture_output=True, text=True, timeout=60).stdout
    count = sum(1 for line in listed.splitlines() if line.startswith("  "))
    assert count >= 5, listed
    assert f"[  PASSED  ] {count} tests." in result.stdout, result.stdout[-3000:]
    assert "SKIPPED" not in result.stdout


@pytest.mark.parametrize("cluster", ["sqlite"], indirect=True)
def test_three_join_replicas_on_postgres_emit_every_group_once_in_order(cluster, postgres_url):  # noqa: F811
    groups, width = 1000, 20
    # A database of its own: the session's database holds what earlier tests left (the contract
    # suite above leaves decided groups of its join actor "j").
    store = postgres_service.fresh_database(postgres_url, "joins_")
    cluster.actor("split", "split")
    cluster.actor("score", "score", env={"ASYA_CONCURRENCY": "2", "ASYA_HANDLER_THREAD_SAFE": "true"})
    env = {"ASYA_JOIN": "true", "ASYA_JOIN_STORE": store, "ASYA_JOIN_TIMEOUT": "5m"}
    for _ in range(3):
        cluster.actor("combine", "combine", env=env)
    # A decided, unclaimed group of another join actor on the same store (nested joins share one;
    # so did the contract suite's leftovers in the session database): the replicas of "combine"
    # must never publish it. Before claims were filtered by actor, a replica published such a
    # leftover once, and happy-end had one extra message.
    postgres_service.psql(store, """
        INSERT INTO asya_join_groups(group_id, count, stored, head, state, reason, actor, decided_ms)
        VALUES ('foreign@0', 1, 1, '{"id":"foreign","route":{"actors":["combine"],"current":0}', 1, 0,
                'other-join', 0);
        INSERT INTO asya_join_branches(group_id, idx, failed, payload) VALUES ('foreign@0', 0, false, '1');
    """)
    prefix = "pg-%s-" % pathlib.Path(cluster.tmp).name[-6:]
    cluster.queues.send_many("asya-split", [envelope("%s%d" % (prefix, g), ["split", "score", "combine"],
                                                     payload={"n": width}) for g in range(groups)])
    got = cluster.queues.collect(HAPPY, groups, timeout=900)
    got += [dict(m, json=json.loads(m["body"])) for m in cluster.queues.recv(HAPPY, wait=1.0)]
    ids = collections.Counter(m["json"]["id"] for m in got)
    assert sorted(ids) == sorted("%s%d" % (prefix, g) for g in range(groups))
    assert set(ids.values()) == {1}, [i for i, n in ids.items() if n > 1]
    for m in got:
        assert [p["i"] for p in m["json"]["payload"]["parts"]] == list(range(width))
    # Every replica took part (the groups were decided across the three).
    joined = [a for a in cluster.actors if a.name == "combine" and "joined" in a.sidecar.text()]
    assert len(joined) >= 2, "only %d of 3 replicas joined a group" % len(joined)
    assert cluster.queues.recv(ERROR, wait=0.3) == []
    assert postgres_service.psql(store, "SELECT state, attempts FROM asya_join_groups "
                                        "WHERE group_id = 'foreign@0'").strip() == "1|0"
