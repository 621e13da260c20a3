"""Runtime conformance: the Python and the C++ runtime answer the socket protocol alike.

PROTOCOL section 3 is the contract; the behaviours come from the published design's runtime tests
(shared/research/published-behaviours.md 11.A). Every test taking `start_runtime` runs against both
runtimes (parametrized in conftest.py); python-only tests cover the Python handler-loading rules.
"""
import json
import os
import signal
import socket
import string
import struct
import tempfile
import threading
import time

import pytest

from conformance_client import envelope

TEN_MIB = 10 * 1024 * 1024


def assert_error(response, code):
    assert isinstance(response, list) and len(response) == 1, response
    element = response[0]
    assert element.get("error") == code, element
    details = element.get("details")
    assert isinstance(details, dict), element
    assert isinstance(details.get("message"), str) and details["message"], element
    return details


# ------------------------------------------------------------------------------------------
# Payload mode results.


def test_single_result_has_payload_and_route_with_current_plus_one(start_runtime):
    runtime = start_runtime("echo")
    response = runtime.call(envelope({"message": "hello"}, actors=["echo", "next"], id="test-001"))
    assert response == [{"payload": {"echoed": "hello"}, "route": {"actors": ["echo", "next"], "current": 1}}]


@pytest.mark.parametrize("payload", ["just a string", 42, 3.5, True, {}], ids=["string", "int", "float", "bool", "empty"])
def test_scalar_and_empty_payloads_give_one_output(start_runtime, payload):
    runtime = start_runtime("echo")
    response = runtime.call(envelope(payload))
    assert len(response) == 1 and "error" not in response[0], response
    assert response[0]["payload"] == payload


def test_fanout_of_three_increments_route_on_each(start_runtime):
    runtime = start_runtime("fanout")
    response = runtime.call(envelope({"count": 3, "tag": "t"}, actors=["fan", "sink"]))
    assert len(response) == 3, response
    for index, output in enumerate(response):
        assert output["payload"] == {"count": 3, "tag": "t", "index": index, "message": "Fan-out message %d" % index}
        assert output["route"] == {"actors": ["fan", "sink"], "current": 1}
        assert "headers" not in output


@pytest.mark.parametrize("handler", ["abort_none", "abort_empty"])
def test_abort_gives_empty_array(start_runtime, handler):
    runtime = start_runtime(handler)
    assert runtime.call(envelope({"x": 1})) == []


def test_handler_exception_gives_processing_error(start_runtime):
    runtime = start_runtime("fail")
    details = assert_error(runtime.call(envelope({"should_fail": True})), "processing_error")
    assert "ValueError" in details["type"], details
    assert "Intentional test failure" in details["message"], details
    assert isinstance(details.get("traceback"), str), details


@pytest.mark.parametrize("level", ["info", "debug"])
def test_handler_exception_is_logged_with_id_and_type_message_only_at_debug(start_runtime, level):
    """A failing handler shows up in the runtime's own log (JSON lines on stderr): a warn line
    "handler raised" with the envelope id and the exception type; the exception message, which
    often quotes the input, only at debug."""
    runtime = start_runtime("fail", env={"ASYA_LOG_LEVEL": level})
    assert_error(runtime.call(envelope({"x": 1}, id="logged-1")), "processing_error")

    def raised_lines():
        records = [json.loads(line) for line in runtime.stderr().splitlines()
                   if line.startswith("{")]
        return [r for r in records if r.get("msg", "").startswith("handler raised")], records
    deadline = time.monotonic() + 10
    while not raised_lines()[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    raised, records = raised_lines()
    assert raised, records
    assert raised[0]["level"] == "warn" and raised[0]["id"] == "logged-1", raised
    assert "ValueError" in json.dumps(raised[0]), raised
    quoted = [r for r in records if "Intentional test failure" in json.dumps(r)]
    assert bool(quoted) == (level == "debug"), records
    assert all(r["level"] == "debug" for r in quoted), quoted


def test_runtime_keeps_serving_after_handler_exception(start_runtime):
    runtime = start_runtime("fail")
    with runtime.connect() as connection:
        for _ in range(3):
            assert_error(connection.call(envelope({})), "processing_error")


def test_sleep_handler_answers_after_sleeping(start_runtime):
    runtime = start_runtime("sleep")
    started = time.monotonic()
    response = runtime.call(envelope({"sleep_seconds": 0.1}))
    assert time.monotonic() - started >= 0.1
    assert response == [{"payload": {"sleep_seconds": 0.1}, "route": {"actors": ["echo"], "current": 1}}]


# ------------------------------------------------------------------------------------------
# Request validation: msg_parsing_error.

INVALID_BODIES = {
    "invalid_json": b'{"id": "x", "route": ',
    "invalid_utf8": b'{"id":"x","route":{"actors":["a"],"current":0},"payload":"\xff\xfe"}',
    "empty_body": b"",
    "not_an_object": b'[{"payload": 1}]',
}


@pytest.mark.parametrize("case", sorted(INVALID_BODIES))
def test_unparseable_request_gives_msg_parsing_error(start_runtime, case):
    runtime = start_runtime("echo")
    with runtime.connect() as connection:
        assert_error(connection.call_raw(INVALID_BODIES[case]), "msg_parsing_error")
        # The connection stays usable after a bad request.
        assert connection.call(envelope({"message": "after"}))[0]["payload"] == {"echoed": "after"}


def _without(mapping, key):
    copy = dict(mapping)
    del copy[key]
    return copy


_GOOD = {"id": "e-1", "route": {"actors": ["a", "b"], "current": 0}, "payload": {"message": "m"}}

INVALID_ENVELOPES = {
    "missing_payload": (_without(_GOOD, "payload"), "payload"),
    "missing_route": (_without(_GOOD, "route"), "route"),
    "route_not_object": (dict(_GOOD, route=["a", "b"]), "route"),
    "actors_missing": (dict(_GOOD, route={"current": 0}), "actors"),
    "actors_not_list": (dict(_GOOD, route={"actors": "a", "current": 0}), "actors"),
    "actors_empty": (dict(_GOOD, route={"actors": [], "current": 0}), "actors"),
    "current_string": (dict(_GOOD, route={"actors": ["a", "b"], "current": "0"}), "current"),
    "current_float": (dict(_GOOD, route={"actors": ["a", "b"], "current": 0.5}), "current"),
    "current_negative": (dict(_GOOD, route={"actors": ["a", "b"], "current": -1}), "current"),
    "current_beyond_len": (dict(_GOOD, route={"actors": ["a", "b"], "current": 3}), "current"),
    "headers_not_object": (dict(_GOOD, headers=["h"]), "headers"),
    "id_not_string": (dict(_GOOD, id=17), "id"),
}


@pytest.mark.parametrize("case", sorted(INVALID_ENVELOPES))
def test_invalid_envelope_gives_msg_parsing_error_naming_the_field(start_runtime, case):
    body, field = INVALID_ENVELOPES[case]
    runtime = start_runtime("echo")
    details = assert_error(runtime.call(body), "msg_parsing_error")
    assert field in details["message"].lower(), details


def test_missing_current_is_treated_as_zero(start_runtime):
    runtime = start_runtime("echo")
    response = runtime.call({"id": "c", "route": {"actors": ["a", "b"]}, "payload": {"message": "m"}})
    assert response == [{"payload": {"echoed": "m"}, "route": {"actors": ["a", "b"], "current": 1}}]


def test_current_equal_to_len_is_accepted(start_runtime):
    runtime = start_runtime("echo")
    response = runtime.call(envelope({"message": "m"}, actors=["a"], current=1))
    assert response[0]["payload"] == {"echoed": "m"}
    assert response[0]["route"]["current"] == 2


# ------------------------------------------------------------------------------------------
# Headers and route metadata.

HEADERS = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "priority": "high",
           "nested": {"a": [1, 2]}}


def test_headers_preserved_on_single_output(start_runtime):
    runtime = start_runtime("echo")
    response = runtime.call(envelope({"message": "m"}, headers=HEADERS))
    assert response[0]["headers"] == HEADERS


def test_headers_preserved_on_every_fanout_output(start_runtime):
    runtime = start_runtime("fanout")
    response = runtime.call(envelope({"count": 4}, headers=HEADERS))
    assert len(response) == 4
    assert all(output["headers"] == HEADERS for output in response), response


@pytest.mark.parametrize("handler,payload", [("echo", {"message": "m"}), ("fanout", {"count": 2})])
def test_no_headers_key_when_input_had_none(start_runtime, handler, payload):
    runtime = start_runtime(handler)
    response = runtime.call(envelope(payload))
    assert response and all("headers" not in output for output in response), response


def test_route_metadata_preserved(start_runtime):
    runtime = start_runtime("fanout")
    metadata = {"job_id": "job-7", "tags": ["a", "b"], "n": 3}
    body = {"id": "m", "route": {"actors": ["x", "y", "z"], "current": 1, "metadata": metadata}, "payload": {"count": 2}}
    response = runtime.call(body)
    for output in response:
        assert output["route"] == {"actors": ["x", "y", "z"], "current": 2, "metadata": metadata}


# ------------------------------------------------------------------------------------------
# Connections.


def test_two_hundred_requests_on_one_connection(start_runtime):
    runtime = start_runtime("echo")
    with runtime.connect() as connection:
        for index in range(200):
            response = connection.call(envelope({"message": "m-%d" % index}, id="id-%d" % index))
            assert response[0]["payload"] == {"echoed": "m-%d" % index}


def test_one_connection_per_request(start_runtime):
    runtime = start_runtime("echo")
    for index in range(50):
        with runtime.connect() as connection:
            assert connection.call(envelope({"message": index}))[0]["payload"] == {"echoed": index}


def test_second_connection_served_while_first_is_open_and_idle(start_runtime):
    runtime = start_runtime("echo")
    with runtime.connect() as first, runtime.connect() as second:
        assert second.call(envelope({"message": "second"}))[0]["payload"] == {"echoed": "second"}
        assert first.call(envelope({"message": "first"}))[0]["payload"] == {"echoed": "first"}
        assert second.call(envelope({"message": "again"}))[0]["payload"] == {"echoed": "again"}


def test_two_concurrent_connections(start_runtime):
    runtime = start_runtime("sleep")
    results = {}
    errors = []

    def client(name):
        try:
            with runtime.connect() as connection:
                for index in range(5):
                    payload = {"sleep_seconds": 0.02, "client": name, "i": index}
                    response = connection.call(envelope(payload))
                    assert response[0]["payload"] == payload
                results[name] = True
        except BaseException as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert results == {"a": True, "b": True}


def test_peer_closing_mid_frame_does_not_break_the_runtime(start_runtime):
    runtime = start_runtime("echo")
    with runtime.connect() as connection:
        connection.sock.sendall(struct.pack(">I", 100) + b'{"id":')
        connection.sock.shutdown(socket.SHUT_WR)
        frames = connection.wait_closed()
        # Either the runtime just closes, or it tries a connection_error response first.
        for frame in frames:
            assert_error(frame, "connection_error")
    assert runtime.call(envelope({"message": "still here"}))[0]["payload"] == {"echoed": "still here"}


def test_oversize_frame_closes_connection_and_runtime_keeps_serving(start_runtime):
    runtime = start_runtime("echo", env={"ASYA_MAX_MESSAGE_BYTES": "1MiB"})
    with runtime.connect() as connection:
        try:
            connection.sock.sendall(struct.pack(">I", 2 * 1024 * 1024) + b"x" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass  # already closed by the runtime: fine
        frames = connection.wait_closed()
        for frame in frames:
            assert frame and frame[0].get("error"), frame
    # A frame just under the limit is still served, on a new connection.
    text = "y" * (1024 * 1024 - 200)
    response = runtime.call(envelope({"message": text}))
    assert response[0]["payload"] == {"echoed": text}


# ------------------------------------------------------------------------------------------
# Payload contents: size, unicode, nesting.


def test_ten_mib_response_from_big_handler(start_runtime):
    runtime = start_runtime("big")
    response = runtime.call(envelope({"size_bytes": TEN_MIB}))
    assert len(response) == 1
    payload = response[0]["payload"]
    assert payload["size"] == TEN_MIB
    assert len(payload["data"]) == TEN_MIB
    assert payload["data"] == "X" * TEN_MIB


def test_ten_mib_request_echoed_intact(start_runtime):
    runtime = start_runtime("echo")
    alphabet = string.ascii_letters + string.digits + " .,;-_"
    text = (alphabet * (TEN_MIB // len(alphabet) + 1))[:TEN_MIB]
    with runtime.connect() as connection:
        response = connection.call(envelope({"message": text}))
        assert response[0]["payload"]["echoed"] == text
        # The connection serves a small request after the large one.
        assert connection.call(envelope({"message": "small"}))[0]["payload"] == {"echoed": "small"}


@pytest.mark.parametrize("ensure_ascii", [False, True], ids=["raw_utf8", "escaped"])
def test_unicode_round_trips(start_runtime, ensure_ascii):
    runtime = start_runtime("echo")
    message = "Hello 世界 🌍 مرحبا こんにちは Привет \u00e9\u0301 \"quoted\" back\\slash\ttab\nnewline"
    body = json.dumps(envelope({"message": message}), ensure_ascii=ensure_ascii).encode("utf-8")
    with runtime.connect() as connection:
        response = connection.call_raw(body)
    assert response[0]["payload"] == {"echoed": message}


def test_nested_data_round_trips(start_runtime):
    runtime = start_runtime("echo")
    structure = {"leaf": [1, -2.5, 1e-7, 12345678901234, None, True, False, "", "s"]}
    for depth in range(20):
        structure = {"level_%d" % depth: structure, "list": [depth, {"k": None}, [[]]]}
    message = {"nested": structure, "empty_object": {}, "empty_list": [], "null": None}
    response = runtime.call(envelope({"message": message}))
    assert response[0]["payload"] == {"echoed": message}


# ------------------------------------------------------------------------------------------
# Class handler state.


def test_counter_state_kept_across_calls_and_connections(start_runtime):
    runtime = start_runtime("Counter.process")
    with runtime.connect() as connection:
        for expected in (1, 2, 3):
            assert connection.call(envelope({}))[0]["payload"] == {"count": expected}
    with runtime.connect() as connection:
        assert connection.call(envelope({}))[0]["payload"] == {"count": 4}
    assert runtime.call(envelope({}))[0]["payload"] == {"count": 5}


# ------------------------------------------------------------------------------------------
# Envelope mode.

ENVELOPE_ACTORS = ["prep", "infer", "post"]


def envelope_request(edit, current=0, headers=True):
    body = {
        "id": "env-%s" % edit,
        "route": {"actors": list(ENVELOPE_ACTORS), "current": current, "metadata": {"job": "j"}},
        "payload": {"edit": edit, "value": 42},
    }
    if headers:
        body["headers"] = {"trace_id": "test-trace-123"}
    return body


ALLOWED_EDITS = {
    "next": [ENVELOPE_ACTORS],
    "append": [ENVELOPE_ACTORS + ["extra"]],
    "replace_future": [["prep", "infer", "other"]],
    "fanout": [ENVELOPE_ACTORS, ENVELOPE_ACTORS],
}


@pytest.mark.parametrize("edit", sorted(ALLOWED_EDITS))
def test_envelope_mode_allowed_edit(start_runtime, edit):
    runtime = start_runtime("envelope_edit", mode="envelope")
    request = envelope_request(edit, current=1)
    response = runtime.call(request)
    expected_actors = ALLOWED_EDITS[edit]
    assert len(response) == len(expected_actors), response
    for output, actors in zip(response, expected_actors):
        assert "error" not in output, output
        assert output["payload"] == request["payload"]
        assert output["route"]["actors"] == actors
        assert output["route"]["current"] == 2
        assert output["route"].get("metadata") == {"job": "j"}
        assert output["headers"] == {"trace_id": "test-trace-123"}


FORBIDDEN_EDITS = ["change_past", "change_current", "drop_payload", "bad_route", "beyond_end"]


@pytest.mark.parametrize("edit", FORBIDDEN_EDITS)
def test_envelope_mode_forbidden_edit_gives_processing_error(start_runtime, edit):
    runtime = start_runtime("envelope_edit", mode="envelope")
    assert_error(runtime.call(envelope_request(edit, current=1)), "processing_error")


def test_envelope_mode_without_validation_passes_output_through(start_runtime):
    runtime = start_runtime("envelope_edit", mode="envelope", env={"ASYA_ENABLE_VALIDATION": "false"})
    response = runtime.call(envelope_request("beyond_end", current=0, headers=False))
    assert len(response) == 1 and "error" not in response[0], response
    assert response[0]["route"]["current"] == len(ENVELOPE_ACTORS) + 1
    assert response[0]["payload"] == {"edit": "beyond_end", "value": 42}


# ------------------------------------------------------------------------------------------
# Lifecycle: ready file, signals, stale socket, start-up failures.


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ready_file_present_and_removed_with_socket_on_signal(start_runtime, signum):
    runtime = start_runtime("echo")
    assert runtime.ready_path.is_file()
    assert runtime.socket_path.exists()
    with runtime.connect() as connection:  # an idle open connection must not block shutdown
        assert connection.call(envelope({"message": "m"}))[0]["payload"] == {"echoed": "m"}
        runtime.signal(signum)
        assert runtime.wait_exit() == 0, runtime.stderr()
    assert not runtime.socket_path.exists()
    assert not runtime.ready_path.exists()


def test_stale_socket_file_is_replaced(start_runtime):
    socket_dir = tempfile.mkdtemp(prefix="asya-", dir="/tmp")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.path.join(socket_dir, "rt.sock"))
    stale.close()  # leaves the socket file behind with nobody listening
    runtime = start_runtime("echo", socket_dir=socket_dir)
    assert runtime.call(envelope({"message": "m"}))[0]["payload"] == {"echoed": "m"}


def _single_error_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, "expected one line on stderr, got:\n" + stderr
    return lines[0]


def test_unknown_handler_exits_1_with_one_clear_line(start_runtime):
    runtime = start_runtime("no_such_handler", ready=False)
    assert runtime.wait_exit() == 1
    line = _single_error_line(runtime.stderr())
    assert "no_such_handler" in line, line
    assert not runtime.ready_path.exists()


PYTHON_STARTUP_FAILURES = {
    "missing": (None, "ASYA_HANDLER"),
    "no_dot": ("conformance_handlers", "conformance_handlers"),
    "special_chars": ("conformance_handlers.echo;rm -rf /", "echo;rm"),
    "unknown_module": ("no_such_module_xyz.handler", "no_such_module_xyz"),
    "import_error": ("startup_import_error.process", "asya_conformance_missing_dependency"),
    "missing_attribute": ("conformance_handlers.nope", "nope"),
    "not_callable": ("startup_cases.NOT_CALLABLE", "NOT_CALLABLE"),
    "init_without_default": ("startup_cases.NeedsArgument.process", "model_path"),
    "init_raises": ("startup_cases.RaisingInit.process", "model file not found"),
    "missing_method": ("startup_cases.Fine.predict", "predict"),
    "method_not_callable": ("startup_cases.Fine.attribute", "attribute"),
    "class_without_method": ("startup_cases.Fine", "Fine"),
}


@pytest.mark.parametrize("case", sorted(PYTHON_STARTUP_FAILURES))
def test_python_startup_failure_exits_1_with_one_clear_line(python_runtime, case):
    handler, named = PYTHON_STARTUP_FAILURES[case]
    runtime = python_runtime(handler, ready=False)
    assert runtime.wait_exit() == 1
    line = _single_error_line(runtime.stderr())
    assert named in line, line
    assert not runtime.socket_path.exists()


def test_python_socket_path_that_is_a_directory_fails(python_runtime):
    socket_dir = tempfile.mkdtemp(prefix="asya-", dir="/tmp")
    os.mkdir(os.path.join(socket_dir, "rt.sock"))
    runtime = python_runtime("conformance_handlers.echo", ready=False, socket_dir=socket_dir)
    assert runtime.wait_exit() == 1
    assert "directory" in _single_error_line(runtime.stderr())


def test_python_socket_chmod_applied(python_runtime):
    runtime = python_runtime("conformance_handlers.echo", env={"ASYA_SOCKET_CHMOD": "0o600"})
    assert os.stat(runtime.socket_path).st_mode & 0o777 == 0o600


def test_python_connection_reused_across_many_connections_without_leaking_threads(python_runtime):
    runtime = python_runtime("conformance_handlers.echo")
    connections = [runtime.connect() for _ in range(20)]
    try:
        for index, connection in enumerate(connections):
            assert connection.call(envelope({"message": index}))[0]["payload"] == {"echoed": index}
    finally:
        for connection in connections:
            connection.close()
    task_dir = "/proc/%d/task" % runtime.process.pid
    deadline = time.monotonic() + 10
    while len(os.listdir(task_dir)) > 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(os.listdir(task_dir)) <= 8, "threads left after connections closed: %d" % len(os.listdir(task_dir))



def test_python_request_in_progress_finishes_after_sigterm(python_runtime):
    runtime = python_runtime("startup_cases.announce_then_sleep")
    payload = {"sleep_seconds": 0.5, "marker": str(runtime.dir / "started")}
    with runtime.connect() as connection:
        connection.send_frame(json.dumps(envelope(payload)).encode())
        deadline = time.monotonic() + 20
        while not (runtime.dir / "started").exists():
            assert time.monotonic() < deadline, "handler did not start"
            time.sleep(0.005)
        runtime.signal(signal.SIGTERM)
        frame = connection.recv_frame()
        assert frame is not None, "runtime exited without answering the request in progress"
        assert json.loads(frame)[0]["payload"] == payload
    assert runtime.wait_exit() == 0
    assert not runtime.socket_path.exists() and not runtime.ready_path.exists()
