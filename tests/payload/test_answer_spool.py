"""A large answer received straight into the output's body file (src/sidecar/spooled_answer.hpp,
src/transport/sqlite/body_spool.hpp): with the SQLite transport and no payload store, a sidecar
whose request is large receives the runtime's answer into a `.spooled.body` file, and the output's
head and tail are written around the payload there. These tests run the real sidecar and Python
runtime: the output arrives byte for byte, from the spooled file (no second copy); a fan-out of
large outputs arrives intact; and a sidecar killed after the answer was spooled (before anything was
sent) or after the finished file was durable (before its row) published nothing, and the
redelivered input gives exactly one intact output."""
import json
import pathlib
import signal

import pytest

from sidecar_harness import body_files, named_body_files, wait_for

HERE = pathlib.Path(__file__).resolve().parent
MB = 1024 * 1024
HAPPY = "asya-happy-end"


def envelope(envelope_id, data, actor="pass"):
    return {"id": envelope_id, "route": {"actors": [actor], "current": 0},
            "headers": {"h": "v"}, "payload": {"tag": "spool", "data": data}}


def actor_with(cluster, name, handler, env=None):
    cluster.env["PYTHONPATH"] = str(HERE)
    return cluster.actor(name, env=dict(env or {}, ASYA_HANDLER="payload_handlers." + handler))


def letters(size, first="a"):
    return "".join(chr(ord(first) + i % 26) for i in range(size))


def sqlite_only(cluster):
    if cluster.transport != "sqlite":
        pytest.skip("only the sqlite transport spools answers into body files")


def test_a_spooled_answer_is_the_outputs_body_file_and_arrives_intact(cluster):
    sqlite_only(cluster)
    data = letters(9 * MB)
    actor_with(cluster, "pass", "passthrough")
    cluster.queues.send("asya-pass", envelope("SPOOL1", data))
    wait_for(lambda: cluster.queues.stats(HAPPY)["ready"] == 1 and cluster.queues.empty("asya-pass")
             and len(body_files(cluster)) == 1, 120, "the output, and the input acked")
    # Queued: the output's body is a spooled file (spaces, then the envelope), the only file.
    files = body_files(cluster)
    assert [p.name for p in files] == sorted(named_body_files(cluster)), files
    (spooled,) = files
    assert spooled.name.endswith(".spooled.body")
    raw = spooled.read_bytes()
    assert raw.startswith(b" ") and raw.lstrip(b" ").startswith(b"{")
    (got,) = cluster.queues.collect(HAPPY, 1, timeout=120)
    assert got["body"] == raw.lstrip(b" ").decode(), "the body is not the file without its spaces"
    out = got["json"]
    assert out["id"] == "SPOOL1" and out["route"] == {"actors": ["pass"], "current": 1}
    assert out["headers"] == {"h": "v"}
    assert out["payload"] == {"tag": "spool", "data": data}
    wait_for(lambda: body_files(cluster) == [], 30, "the acks to remove every body file")


def test_a_fanout_of_large_outputs_from_a_spooled_answer_arrives_intact(cluster):
    """Three large children come from one spooled answer: one file cannot be three bodies, so they
    are written as usual (the spool keeps their bytes readable until then)."""
    sqlite_only(cluster)
    actor_with(cluster, "fan", "fanout_big")
    big_input = {"id": "SPOOLFAN", "route": {"actors": ["fan"], "current": 0},
                 "payload": {"bytes": 3 * MB, "pad": "p" * (2 * MB)}}
    cluster.queues.send("asya-fan", big_input)
    got = cluster.queues.collect(HAPPY, 3, timeout=180)
    datas = sorted(m["json"]["payload"]["data"] for m in got)
    assert datas == sorted(["s" * 3 * MB, "s" * 3 * MB, "o" * 3 * MB])
    wait_for(lambda: body_files(cluster) == [], 30, "the acks to remove every body file")


@pytest.mark.parametrize("point", ["sidecar.answer_spooled", "sqlite.body_written"])
def test_a_crash_after_the_answer_was_spooled_publishes_nothing_and_loses_nothing(cluster, point):
    """Killed once the answer is in its spooled file (before the output is finished or sent), or
    once the finished file is durable (before its row): nothing is visible, the file is an orphan
    no row names (swept after 15 minutes), and the redelivered input gives exactly one output."""
    sqlite_only(cluster)
    data = letters(6 * MB, "A")
    actor = actor_with(cluster, "pass", "passthrough",
                       {"ASYA_FAILPOINTS": point, "ASYA_VISIBILITY_TIMEOUT": "2s"})
    cluster.queues.send("asya-pass", envelope("SPOOL2", data))
    wait_for(lambda: not actor.sidecar.alive(), 120, "the sidecar to crash at " + point)
    assert actor.sidecar.popen.returncode == -signal.SIGKILL, actor.logs()
    assert "failpoint %s reached" % point in actor.sidecar.text(), actor.logs()
    assert cluster.queues.stats(HAPPY)["ready"] == 0, "published before its row was committed"
    named = named_body_files(cluster)
    orphans = [p for p in body_files(cluster) if p.name not in named]
    assert len(orphans) == 1 and orphans[0].name.endswith(".spooled.body"), (orphans, named)
    if point == "sqlite.body_written":  # finished: the whole envelope, durable, never published
        orphan = json.loads(orphans[0].read_bytes())
        assert orphan["id"] == "SPOOL2" and orphan["payload"]["data"] == data

    actor.env.pop("ASYA_FAILPOINTS")
    actor.start_sidecar()  # the input comes back once its lease expired
    (got,) = cluster.queues.collect(HAPPY, 1, timeout=120)
    assert got["json"]["id"] == "SPOOL2" and got["json"]["payload"]["data"] == data
    wait_for(lambda: cluster.queues.empty("asya-pass"), 60, "the input to be acked")
    assert cluster.queues.stats(HAPPY)["ready"] == 0, "more than one output"
    assert [p.name for p in body_files(cluster)] == [orphans[0].name], \
        "only the crashed hop's orphan should be left (swept after its age)"
