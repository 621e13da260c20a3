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


def test_a_body_file_truncated_or_replaced_under_a_queued_message_loses_nothing_else(cluster):
    """Body files of queued messages damaged in place: a truncated one is delivered as it now is (no
    longer an envelope: error-end, docs/protocol.md §4), one replaced by a directory is dropped
    with an error in the log; the queue's other messages go through, nothing hangs."""
    if cluster.transport != "sqlite":
        pytest.skip("body files are a feature of the sqlite transport")
    data = "x" * (2 * 1024 * 1024)
    seen = []
    for envelope_id in ("BT-cut", "BT-dir"):
        cluster.queues.send("asya-echo", '{"id":"%s","route":{"actors":["echo"],"current":0},'
                                         '"payload":"%s"}' % (envelope_id, data))
        (name,) = set(body_files(cluster)) - set(seen)
        seen = body_files(cluster)
        path = pathlib.Path(cluster.env["ASYA_SQLITE_PATH"] + ".bodies") / name
        if envelope_id == "BT-cut":
            with open(path, "r+b") as f:
                f.truncate(1000)
        else:
            path.unlink()
            path.mkdir()
    cluster.queues.send("asya-echo", '{"id":"BT-ok","route":{"actors":["echo"],"current":0},'
                                     '"payload":"fine"}')
    cluster.actor("echo", "echo")
    assert cluster.queues.collect(HAPPY, 1, timeout=60)[0]["json"]["id"] == "BT-ok"
    (error,) = cluster.queues.collect("asya-error-end", 1, timeout=60)
    assert error["json"]["payload"]["error"] == "msg_parsing_error"
    assert error["json"]["payload"]["raw"].startswith('{"id":"BT-cut"')
    assert cluster.queues.stats("asya-echo")["ready"] == 0
