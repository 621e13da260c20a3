"""The SQLite transport's body files (ASYA_SQLITE_FILE_BODY_BYTES, default 1 MiB) end to end: a
large envelope goes through an actor byte-identical, its bodies live in `<db>.bodies/` while
queued, and nothing is left there once the output was received and acked."""
import json
import pathlib

import pytest

HAPPY = "asya-happy-end"


def body_files(cluster):
    directory = pathlib.Path(cluster.env["ASYA_SQLITE_PATH"] + ".bodies")
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_a_large_envelope_uses_body_files_and_leaves_none_behind(cluster):
    if cluster.transport != "sqlite":
        pytest.skip("body files are a feature of the sqlite transport")
    data = "".join(chr(ord("a") + i % 26) for i in range(3 * 1024 * 1024))
    body = '{"id":"BF1","route":{"actors":["echo"],"current":0},"payload":"%s"}' % data
    cluster.queues.send("asya-echo", body)  # no actor yet: the message waits in its queue
    queued = body_files(cluster)
    assert len(queued) == 1 and queued[0].endswith(".body"), queued
    cluster.actor("echo", "echo")
    got = cluster.queues.collect(HAPPY, 1, timeout=60)
    assert got[0]["json"]["payload"] == data
    assert json.loads(body)["payload"] == got[0]["json"]["payload"]
    assert body_files(cluster) == [], "the acks left body files behind"
