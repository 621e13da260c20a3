"""A large output written from its parts (src/sidecar/body_parts.hpp): with the SQLite transport
and no payload store, a sidecar writes an output's body file from the envelope's head, the payload
where the runtime's answer holds it and the closing brace, instead of building the envelope in
memory first. These tests run the real sidecar and Python runtime: the output arrives intact, and
a sidecar killed after the body file was written and before its row was committed published
nothing; the redelivered input is processed once more and its output arrives once."""
import json
import pathlib
import signal

import pytest

from sidecar_harness import body_files, named_body_files, wait_for

HERE = pathlib.Path(__file__).resolve().parent
MB = 1024 * 1024
HAPPY = "asya-happy-end"


def envelope(envelope_id, data):
    return {"id": envelope_id, "route": {"actors": ["pass"], "current": 0},
            "headers": {"h": "v"}, "payload": {"tag": "parts", "data": data}}


def pass_actor(cluster, env=None):
    cluster.env["PYTHONPATH"] = str(HERE)
    return cluster.actor("pass", env=dict(env or {}, ASYA_HANDLER="payload_handlers.passthrough"))


def test_a_large_output_written_from_parts_arrives_intact(cluster):
    if cluster.transport != "sqlite":
        pytest.skip("only the sqlite transport writes bodies from parts")
    data = "".join(chr(ord("a") + i % 26) for i in range(12 * MB))
    pass_actor(cluster)
    cluster.queues.send("asya-pass", envelope("PARTS1", data))
    (got,) = cluster.queues.collect(HAPPY, 1, timeout=120)
    out = got["json"]
    assert out["id"] == "PARTS1"
    assert out["route"] == {"actors": ["pass"], "current": 1}
    assert out["headers"] == {"h": "v"}
    assert out["payload"] == {"tag": "parts", "data": data}
    # The body is one JSON document ending right after the payload: nothing before or after it.
    assert got["body"].endswith('"}}') and got["body"].count('"payload":') == 1
    wait_for(lambda: body_files(cluster) == [], 30, "the acks to remove every body file")


def test_a_crash_after_the_body_file_and_before_its_row_publishes_nothing(cluster):
    """The sidecar dies once the output's body file is durable and named, before the row that
    publishes it is committed (failpoint sqlite.body_written): no output is visible, the file is
    an orphan no row names (the transport's sweep removes such files after 15 minutes), and the
    redelivered input gives exactly one output."""
    if cluster.transport != "sqlite":
        pytest.skip("only the sqlite transport writes bodies from parts")
    data = "".join(chr(ord("A") + i % 26) for i in range(6 * MB))
    actor = pass_actor(cluster, {"ASYA_FAILPOINTS": "sqlite.body_written",
                                 "ASYA_VISIBILITY_TIMEOUT": "2s"})
    cluster.queues.send("asya-pass", envelope("PARTS2", data))
    wait_for(lambda: not actor.sidecar.alive(), 120, "the sidecar to crash at sqlite.body_written")
    assert actor.sidecar.popen.returncode == -signal.SIGKILL, actor.logs()
    assert "failpoint sqlite.body_written reached" in actor.sidecar.text(), actor.logs()
    assert cluster.queues.stats(HAPPY)["ready"] == 0, "published before its row was committed"
    named = named_body_files(cluster)
    orphans = [p for p in body_files(cluster) if p.name not in named]
    assert len(orphans) == 1, (orphans, named)
    orphan = json.loads(orphans[0].read_bytes())  # complete and durable, just never published
    assert orphan["id"] == "PARTS2" and orphan["payload"]["data"] == data

    actor.env.pop("ASYA_FAILPOINTS")
    actor.start_sidecar()  # the input comes back once its lease expired
    (got,) = cluster.queues.collect(HAPPY, 1, timeout=120)
    assert got["json"]["id"] == "PARTS2" and got["json"]["payload"]["data"] == data
    wait_for(lambda: cluster.queues.empty("asya-pass"), 60, "the input to be acked")
    assert cluster.queues.stats(HAPPY)["ready"] == 0, "more than one output"
    assert [p.name for p in body_files(cluster)] == [orphans[0].name], \
        "only the crashed send's orphan should be left (swept after its age)"
