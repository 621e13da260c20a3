"""A real asya-sidecar (SQLite transport) against rogue runtimes on its Unix socket (issue 11,
PROTOCOL §3 and the failure table of §5). Every test says where each message ended (happy-end with
its own answer, or error-end with the right code and its own original payload), that nothing is
lost or duplicated, how often the handler read a request, and which warning the sidecar logged.

The runtimes are tests/adversarial/rogue_runtime.py (one script, ROGUE_MODE picks the misdeed);
the processes and queues come from tests/sidecar/sidecar_harness.py.
"""
import json
import pathlib
import shutil
import sys
import tempfile

import pytest

from sidecar_harness import Cluster, wait_for

HERE = pathlib.Path(__file__).resolve().parent
ROGUE = HERE / "rogue_runtime.py"
QUEUE = "asya-rogue"
HAPPY = "asya-happy-end"
ERROR = "asya-error-end"


@pytest.fixture
def cluster(build_path):
    tmp = tempfile.mkdtemp(prefix="asya-rr-", dir="/tmp")  # short: Unix socket paths are limited
    c = Cluster("sqlite", build_path, tmp)
    yield c
    c.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def message(i):
    return {"id": "m%d" % i, "route": {"actors": ["rogue"], "current": 0}, "payload": {"n": i}}


def run(cluster, mode, count, env=None):
    """Queues m1..m<count>, then starts the rogue runtime and a sidecar on them."""
    cluster.queues.ensure(QUEUE)
    cluster.queues.send_many(QUEUE, [message(i) for i in range(1, count + 1)])
    full_env = {"ROGUE_MODE": mode, "ASYA_RUNTIME_TIMEOUT": "20s"}
    full_env.update(env or {})
    return cluster.actor("rogue", env=full_env, runtime_cmd=[sys.executable, str(ROGUE)])


def ends(cluster, actor, happy, error, timeout=60):
    """Waits for `happy` + `error` messages at the ends; checks nothing else arrives and the input
    queue is drained. Returns {id: (end, envelope)}; an id at two ends fails."""
    try:
        got = [("happy", m["json"]) for m in (cluster.queues.collect(HAPPY, happy, timeout) if happy else [])]
        got += [("error", m["json"]) for m in (cluster.queues.collect(ERROR, error, timeout) if error else [])]
        wait_for(lambda: cluster.queues.empty(QUEUE), 30, "%s to be drained" % QUEUE)
        assert cluster.queues.recv(HAPPY, wait=0.3) == [], "more happy-end messages than expected"
        assert cluster.queues.recv(ERROR, wait=0.3) == [], "more error-end messages than expected"
    except BaseException:
        sys.stderr.write(actor.logs())
        raise
    out = {}
    for end, env in got:
        assert env["id"] not in out, "%s reached an end twice: %s" % (env["id"], got)
        out[env["id"]] = (end, env)
    return out


def assert_own_answer(outcome, i):
    """m<i> reached happy-end carrying the answer to m<i> (not another message's)."""
    end, env = outcome
    assert end == "happy", env
    assert env["payload"] == {"answered": "m%d" % i, "echo": {"n": i}}, env


def assert_error(outcome, i, code, *reason_parts):
    end, env = outcome
    assert end == "error", env
    payload = env["payload"]
    assert payload["error"] == code, payload
    assert payload["original_payload"] == {"n": i}, payload
    for part in reason_parts:
        assert part in payload["details"]["message"], payload["details"]["message"]


def reads(cluster):
    """The ids of the requests the runtime read completely, in order."""
    path = cluster.markers / "reads"
    return path.read_text().split() if path.exists() else []


def warnings(actor):
    """The messages the sidecar logged at warn."""
    out = []
    for line in actor.sidecar.text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("warn", "warning"):
            out.append(entry.get("msg") or entry.get("message") or "")
    return out


def assert_warned(actor, *parts):
    found = [w for w in warnings(actor) if all(p in w for p in parts)]
    assert found, "no warn line with %s; warn lines: %s" % (parts, warnings(actor))


@pytest.mark.parametrize("mode, reason", [
    ("invalid_json", "response is not valid JSON"),
    ("trailing_junk", "5 bytes of trailing data after the JSON value at byte"),
    ("wrong_shape_object", "are not the start of a JSON array"),
    ("wrong_shape_missing_route", '"route" is missing'),
    ("wrong_shape_number", "response element 0"),
])
def test_bad_answers_end_at_error_end_with_the_reason(cluster, mode, reason):
    actor = run(cluster, mode, 3)
    out = ends(cluster, actor, happy=0, error=3)
    for i in (1, 2, 3):
        assert_error(out["m%d" % i], i, "runtime_protocol_error", reason)
    assert reads(cluster) == ["m1", "m2", "m3"]
    assert_warned(actor, "runtime_protocol_error", reason)
    assert actor.sidecar.alive()


def test_double_answer_never_gives_the_next_message_the_previous_answer(cluster):
    # Issue 11 item 1, the exact scenario: before, m2 was routed with m1's answer and m3 with m2's.
    actor = run(cluster, "double_answer_first", 3)
    out = ends(cluster, actor, happy=2, error=1)
    assert_error(out["m1"], 1, "runtime_protocol_error", "more byte(s) right after its answer")
    assert_own_answer(out["m2"], 2)
    assert_own_answer(out["m3"], 3)
    assert reads(cluster) == ["m1", "m2", "m3"]
    assert_warned(actor, "runtime call failed (runtime_protocol_error)", "right after its answer")


def test_late_second_answer_is_not_taken_for_the_next_requests(cluster):
    # The extra answer to m1 arrives while m2 is in flight (m2 not read yet): it is refused, m2 is
    # retried (ASYA_RETRY_MAX_ATTEMPTS=2) and gets its own answer.
    actor = run(cluster, "late_double_answer_first", 3, env={"ASYA_RETRY_MAX_ATTEMPTS": "2"})
    out = ends(cluster, actor, happy=3, error=0)
    for i in (1, 2, 3):
        assert_own_answer(out["m%d" % i], i)
    assert_warned(actor, "runtime_protocol_error", "before the runtime had read the whole request")
    # m2 was read twice (the refused attempt and the retry); m1 and m3 once.
    assert sorted(reads(cluster)) == ["m1", "m2", "m2", "m3"]


def test_bytes_arriving_between_messages_are_dropped_with_their_connection(cluster):
    # Bytes that come after the sidecar checked the connection, before the next request: the next
    # request goes on a new connection and gets its own answer; the bytes are logged.
    actor = run(cluster, "junk_later_first", 1)
    assert_own_answer(("happy", cluster.queues.collect(HAPPY, 1)[0]["json"]), 1)
    wait_for(lambda: (cluster.markers / "junk-written").exists(), 30, "the runtime to write its junk")
    cluster.queues.send(QUEUE, message(2))
    out = ends(cluster, actor, happy=1, error=0)
    assert_own_answer(out["m2"], 2)
    assert reads(cluster) == ["m1", "m2"]
    assert_warned(actor, "runtime_protocol_error on the connection kept from the previous message",
                  "4 more byte(s)", "6a 75 6e 6b")


def test_stray_bytes_before_a_frame_are_named_and_do_not_derail_the_next_messages(cluster):
    # Issue 11 items 1 and 3: before, the leftover bytes were read as a 4.6 MB frame, the next
    # message timed out and the sidecar exited 3.
    actor = run(cluster, "stray_before_first", 3)
    out = ends(cluster, actor, happy=2, error=1)
    assert_error(out["m1"], 1, "runtime_protocol_error", "frame is empty (header 00 00 00 00",
                 "stray bytes before a frame")
    assert "ASYA_MAX_MESSAGE_BYTES" not in out["m1"][1]["payload"]["details"]["message"]
    assert_own_answer(out["m2"], 2)
    assert_own_answer(out["m3"], 3)
    assert reads(cluster) == ["m1", "m2", "m3"]
    assert_warned(actor, "runtime_protocol_error", "stray bytes before a frame")
    assert actor.sidecar.alive()


def test_stray_bytes_after_a_frame(cluster):
    actor = run(cluster, "stray_after_first", 3)
    out = ends(cluster, actor, happy=2, error=1)
    assert_error(out["m1"], 1, "runtime_protocol_error", "2 more byte(s) right after its answer",
                 "00 00")
    assert_own_answer(out["m2"], 2)
    assert_own_answer(out["m3"], 3)
    assert_warned(actor, "runtime_protocol_error", "right after its answer")


def test_runtime_that_never_answers_times_out_and_the_sidecar_exits_3(cluster):
    actor = run(cluster, "never_answer", 1, env={"ASYA_RUNTIME_TIMEOUT": "1s"})
    out = ends(cluster, actor, happy=0, error=1)
    assert_error(out["m1"], 1, "runtime_timeout", "did not answer within 1000 ms")
    assert actor.sidecar.wait(30) == 3
    assert reads(cluster) == ["m1"]
    assert_warned(actor, "runtime call failed (runtime_timeout)")


def test_runtime_that_reads_then_closes_gets_each_delivery_once(cluster):
    # Issue 11 item 2: before, the sidecar sent the request again on a new connection (10 runtime
    # calls for 5 deliveries). Now: one read per delivery, the 6th delivery is poison.
    actor = run(cluster, "read_then_close", 1)
    out = ends(cluster, actor, happy=0, error=1)
    assert_error(out["m1"], 1, "max_deliveries_exceeded", "delivered 6 times")
    assert reads(cluster) == ["m1"] * 5
    assert_warned(actor, "runtime call failed (runtime_unavailable)",
                  "after reading the request, without answering")
    assert actor.sidecar.alive()


def test_runtime_that_closes_without_reading_never_runs_the_handler(cluster):
    actor = run(cluster, "close_without_reading", 1)
    out = ends(cluster, actor, happy=0, error=1)
    assert_error(out["m1"], 1, "max_deliveries_exceeded")
    assert reads(cluster) == []
    assert_warned(actor, "runtime call failed (runtime_unavailable)")


def test_runtime_closing_with_the_next_request_unread_handles_each_message_once(cluster):
    # An older runtime (one request per connection) that closes late, after the next request was
    # already written: that request was provably not read, so it is sent again, and each message
    # is handled exactly once.
    actor = run(cluster, "close_unread_after_answer", 5)
    out = ends(cluster, actor, happy=5, error=0)
    for i in range(1, 6):
        assert_own_answer(out["m%d" % i], i)
    assert reads(cluster) == ["m1", "m2", "m3", "m4", "m5"]


def test_oversize_answer_frame_is_message_too_large(cluster):
    actor = run(cluster, "oversize", 1, env={"ASYA_MAX_MESSAGE_BYTES": "1048576", "ROGUE_BYTES": "2097152"})
    out = ends(cluster, actor, happy=0, error=1)
    assert_error(out["m1"], 1, "message_too_large", "announces 2097152 bytes (2.1 MB)",
                 "exceeds ASYA_MAX_MESSAGE_BYTES=1048576", "raise ASYA_MAX_MESSAGE_BYTES")
    assert_warned(actor, "runtime call failed (message_too_large)")


def test_huge_valid_answer_is_routed(cluster):
    actor = run(cluster, "huge", 2, env={"ROGUE_BYTES": "8000000"})
    out = ends(cluster, actor, happy=2, error=0, timeout=120)
    for i in (1, 2):
        end, env = out["m%d" % i]
        assert end == "happy"
        assert env["payload"]["answered"] == "m%d" % i
        assert env["payload"]["echo"] == {"n": i}
        assert env["payload"]["big"] == "x" * 8000000
    assert reads(cluster) == ["m1", "m2"]
