"""asya_runtime.testing: calls a handler exactly as the runtime does, for users' unit tests. Both
modes, fan-out, abort, errors; and the same answer as the runtime process on a socket."""
import json
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

RUNTIME_DIR = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RUNTIME_DIR))

import asya_runtime  # noqa: E402
from asya_runtime.testing import HandlerError, call_envelope, call_payload, payloads  # noqa: E402


def classify(payload):
    return {"text": payload["text"], "label": "positive" if "good" in payload["text"] else "negative"}


def split(payload):
    return [{"part": part} for part in payload["text"].split()]


def drop(payload):
    return None


def needs_text(payload):
    return payload["text"]


def router(envelope):
    route = envelope["route"]
    current = route.get("current", 0)
    if envelope["payload"].get("needs_review"):
        route["actors"] = route["actors"][: current + 1] + ["human-review"]
    route["current"] = current + 1
    return envelope


def rewrites_past(envelope):
    envelope["route"]["actors"] = ["someone-else"] + envelope["route"]["actors"][1:]
    envelope["route"]["current"] += 1
    return envelope


def test_testing_is_a_submodule_of_the_single_file_runtime():
    import asya_runtime.testing as testing

    assert testing is asya_runtime.testing
    assert sys.modules["asya_runtime.testing"] is testing
    assert testing.call_payload is asya_runtime.call_payload
    assert sorted(testing.__all__) == ["HandlerError", "call_batch", "call_envelope", "call_payload", "payloads"]


def test_payload_mode_one_output_moves_the_route_on():
    outputs = call_payload(classify, {"text": "good film"}, route=["classify", "store"])
    assert outputs == [
        {"payload": {"text": "good film", "label": "positive"}, "route": {"actors": ["classify", "store"], "current": 1}}
    ]


def test_payload_mode_default_route_and_headers():
    outputs = call_payload(classify, {"text": "meh"}, headers={"trace": "t1"})
    assert outputs == [{"payload": {"text": "meh", "label": "negative"},
                        "route": {"actors": ["handler"], "current": 1}, "headers": {"trace": "t1"}}]


def test_payload_mode_list_fans_out_and_none_or_empty_list_aborts():
    outputs = call_payload(split, {"text": "a b c"})
    assert payloads(outputs) == [{"part": "a"}, {"part": "b"}, {"part": "c"}]
    assert all(o["route"] == {"actors": ["handler"], "current": 1} for o in outputs)
    assert call_payload(drop, {"x": 1}) == []
    assert call_payload(lambda payload: [], {"x": 1}) == []


def test_handler_gets_a_json_copy_of_the_payload():
    seen = []

    def mutate(payload):
        seen.append(payload)
        payload["added"] = True
        return payload

    original = {"n": 1, "tuple": (1, 2)}
    assert payloads(call_payload(mutate, original)) == [{"n": 1, "tuple": [1, 2], "added": True}]
    assert original == {"n": 1, "tuple": (1, 2)}
    assert seen[0]["tuple"] == [1, 2]  # as decoded from JSON, like the runtime's input


def test_async_handler_is_run_to_completion():
    async def double(payload):
        return payload * 2

    assert payloads(call_payload(double, 21)) == [42]


def test_raising_handler_raises_handler_error_with_the_error_details():
    with pytest.raises(HandlerError) as caught:
        call_payload(needs_text, {"other": 1})
    error = caught.value
    assert error.code == "processing_error"
    assert error.error_type == "KeyError"
    assert error.message == "'text'"
    assert "in needs_text" in error.traceback and 'payload["text"]' in error.traceback
    assert error.element == {"error": "processing_error",
                             "details": {"message": "'text'", "type": "KeyError", "traceback": error.traceback}}
    assert str(error).startswith("processing_error: KeyError: 'text'\n")


def test_raise_on_error_false_returns_the_error_element_the_sidecar_gets():
    (element,) = call_payload(needs_text, {"other": 1}, raise_on_error=False)
    assert element["error"] == "processing_error"
    assert element["details"]["type"] == "KeyError"


def test_result_that_is_not_json_is_a_processing_error():
    with pytest.raises(HandlerError) as caught:
        call_payload(lambda payload: {"when": object()}, {})
    assert caught.value.code == "processing_error"
    assert "cannot be encoded as JSON" in caught.value.message


def test_envelope_mode_handler_changes_the_route_future():
    envelope = {"id": "e1", "route": {"actors": ["router", "store"], "current": 0},
                "headers": {"h": 1}, "payload": {"needs_review": True}}
    outputs = call_envelope(router, envelope)
    assert outputs == [{"id": "e1", "route": {"actors": ["router", "human-review"], "current": 1},
                        "headers": {"h": 1}, "payload": {"needs_review": True}}]
    assert envelope["route"]["actors"] == ["router", "store"]  # the caller's envelope is untouched


def test_envelope_mode_fan_out_and_abort():
    def two(envelope):
        envelope["route"]["current"] += 1
        return [dict(envelope, payload=1), dict(envelope, payload=2)]

    envelope = {"route": {"actors": ["a", "b"], "current": 0}, "payload": 0}
    assert payloads(call_envelope(two, envelope)) == [1, 2]
    assert call_envelope(lambda envelope: None, envelope) == []


def test_envelope_mode_route_past_change_is_rejected_unless_validation_is_off():
    envelope = {"route": {"actors": ["a", "b"], "current": 0}, "payload": 0}
    with pytest.raises(HandlerError) as caught:
        call_envelope(rewrites_past, envelope)
    assert caught.value.code == "processing_error"
    assert caught.value.error_type == "InvalidHandlerResult"
    assert "changes the route's past" in caught.value.message
    outputs = call_envelope(rewrites_past, envelope, enable_validation=False)
    assert outputs[0]["route"]["actors"] == ["someone-else", "b"]


def test_envelope_sent_to_a_payload_mode_handler():
    envelope = {"id": "e", "route": {"actors": ["c", "d"], "current": 0}, "payload": {"text": "good"}}
    assert call_envelope(classify, envelope, mode="payload") == [
        {"payload": {"text": "good", "label": "positive"}, "route": {"actors": ["c", "d"], "current": 1}}
    ]


def test_invalid_envelope_is_a_message_parsing_error():
    with pytest.raises(HandlerError) as caught:
        call_envelope(router, {"payload": 1})
    assert caught.value.code == "msg_parsing_error"
    assert caught.value.message == "envelope has no 'route' field"


def test_handler_named_by_asya_handler_string_is_loaded_like_the_runtime(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "uh_counter_model.py").write_text(textwrap.dedent(
        """
        class Counter:
            def __init__(self, start=10):
                self.count = start

            def process(self, payload):
                self.count += payload
                return self.count
        """))
    monkeypatch.chdir(tmp_path)
    assert payloads(call_payload("uh_counter_model.Counter.process", 5)) == [15]
    with pytest.raises(asya_runtime.HandlerLoadError) as caught:
        call_payload("uh_counter_model.Counter.missing", 5)
    assert "class uh_counter_model.Counter has no method 'missing'" in str(caught.value)


def test_payload_that_is_not_json_is_refused_before_the_handler_runs():
    with pytest.raises(TypeError) as caught:
        call_payload(classify, {"x": object()})
    assert "cannot be sent as JSON" in str(caught.value)


# ------------------------------------------------------------------------------------------
# Same answer as the runtime process.


def _runtime_answers(handler_dir, handler, mode, envelopes):
    """Starts asya_runtime.py with `handler` and sends each envelope; returns the decoded answers."""
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="asya-tst-", dir="/tmp"))
    socket_path = run_dir / "rt.sock"
    env = {"PATH": "/usr/bin:/bin", "ASYA_HANDLER": handler, "ASYA_HANDLER_MODE": mode,
           "ASYA_SOCKET_PATH": str(socket_path), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen([sys.executable, str(RUNTIME_DIR / "asya_runtime.py")], cwd=str(handler_dir),
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (run_dir / "runtime-ready").exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "runtime not ready within 30 s"
            time.sleep(0.02)
        answers = []
        for envelope in envelopes:
            body = json.dumps(envelope).encode()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(30)
                connection.connect(str(socket_path))
                connection.sendall(struct.pack(">I", len(body)) + body)
                (length,) = struct.unpack(">I", connection.recv(4, socket.MSG_WAITALL))
                answers.append(json.loads(connection.recv(length, socket.MSG_WAITALL)))
        return answers
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


HANDLERS = textwrap.dedent(
    """
    def words(payload):
        if "text" not in payload:
            raise KeyError("text")
        return [{"word": w} for w in payload["text"].split()] if payload.get("split") else payload

    def route(envelope):
        envelope["route"]["current"] += 1
        if envelope["payload"].get("past"):
            envelope["route"]["actors"][0] = "changed"
        return None if envelope["payload"].get("drop") else envelope
    """
)


@pytest.mark.parametrize("mode, handler_name, payloads_sent", [
    ("payload", "words", [{"text": "a b", "split": True}, {"text": "one"}, {"no": 1}]),
    ("envelope", "route", [{"x": 1}, {"drop": True}, {"past": True}]),
])
def test_outputs_equal_the_runtime_process_answers(tmp_path, monkeypatch, mode, handler_name, payloads_sent):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "uh_same_answers.py").write_text(HANDLERS)
    envelopes = [{"id": "e%d" % i, "route": {"actors": ["a", "b"], "current": 0}, "headers": {"h": "v"},
                  "payload": payload} for i, payload in enumerate(payloads_sent)]
    expected = _runtime_answers(tmp_path, "uh_same_answers." + handler_name, mode, envelopes)
    monkeypatch.chdir(tmp_path)
    got = [call_envelope("uh_same_answers." + handler_name, envelope, mode=mode, raise_on_error=False)
           for envelope in envelopes]
    assert len(got) == 3

    def without_traceback(answer):  # traceback text differs in file paths of the two processes
        return [dict(e, details=dict(e["details"], traceback=bool(e["details"]["traceback"])))
                if "error" in e else e for e in answer]

    assert [without_traceback(a) for a in got] == [without_traceback(a) for a in expected]
    assert any("error" in a[0] for a in expected if a)  # the cases include an error answer


def test_call_batch_answers_each_payload_by_its_own_slot():
    from asya_runtime.testing import call_batch

    def infer(batch):
        return [None if p == 0 else ValueError("bad %d" % p) if p == 1 else [p, p] if p == 2 else {"v": p}
                for p in batch]

    answers = call_batch(infer, [0, 1, 2, 3], route=["infer", "next"], headers={"h": "x"})
    assert answers[0] == []
    assert answers[1][0]["error"] == "processing_error"
    assert answers[1][0]["details"]["type"] == "ValueError"
    assert answers[1][0]["details"]["message"] == "bad 1"
    assert payloads(answers[2]) == [2, 2]
    assert answers[3] == [{"payload": {"v": 3}, "route": {"actors": ["infer", "next"], "current": 1},
                           "headers": {"h": "x"}}]


def test_call_batch_reports_a_result_of_the_wrong_length_for_every_item():
    from asya_runtime.testing import call_batch

    answers = call_batch(lambda batch: batch[:1], [1, 2, 3])
    assert len(answers) == 3
    for answer in answers:
        assert answer[0]["details"]["type"] == "InvalidHandlerResult"
        assert "returned 1 results for 3 inputs" in answer[0]["details"]["message"]
