"""Unit tests of asya_runtime's pure parts: configuration, handler loading, request checks, response
building and encoding. No sockets here; the socket protocol is covered by
tests/runtime_conformance (against this runtime and the C++ one)."""
import json
import pathlib
import sys
import textwrap

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import asya_runtime as rt  # noqa: E402


# ------------------------------------------------------------------------------------------
# Configuration.


def test_config_defaults():
    config = rt.load_config({"ASYA_HANDLER": "m.f"})
    assert config.handler == "m.f"
    assert config.mode == "payload"
    assert config.socket_path == "/var/run/asya/asya-runtime.sock"
    assert config.ready_path == "/var/run/asya/runtime-ready"
    assert config.socket_chmod == 0o666
    assert config.enable_validation is True
    assert config.max_message_bytes == 256 * 1024 * 1024
    assert config.handler_thread_safe is False


def test_config_socket_dir_and_name():
    config = rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_DIR": "/tmp/x"})
    assert config.socket_path == "/tmp/x/asya-runtime.sock"
    config = rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_DIR": "/tmp/x", "ASYA_SOCKET_NAME": "a.sock"})
    assert config.socket_path == "/tmp/x/a.sock"
    config = rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_DIR": "/tmp/x", "ASYA_SOCKET_PATH": "/tmp/y.sock"})
    assert config.socket_path == "/tmp/y.sock"


@pytest.mark.parametrize(
    "text,expected",
    [("1048576", 1 << 20), ("64KiB", 64 << 10), ("256MiB", 256 << 20), ("1GiB", 1 << 30), ("10MB", 10 ** 7),
     ("1mib", 1 << 20), ("5", 5)],
)
def test_parse_bytes_accepts_sizes(text, expected):
    assert rt.parse_bytes("ASYA_MAX_MESSAGE_BYTES", text) == expected


@pytest.mark.parametrize("text", ["ten", "MiB", "1.5MiB", "-1", "1 PiB", "１"])
def test_parse_bytes_rejects_with_variable_and_value(text):
    with pytest.raises(rt.ConfigError) as error:
        rt.parse_bytes("ASYA_MAX_MESSAGE_BYTES", text)
    assert "ASYA_MAX_MESSAGE_BYTES" in str(error.value) and text in str(error.value)


@pytest.mark.parametrize(
    "env,message",
    [
        ({}, "ASYA_HANDLER is not set"),
        ({"ASYA_HANDLER": "m.f", "ASYA_HANDLER_MODE": "message"}, 'ASYA_HANDLER_MODE="message"'),
        ({"ASYA_HANDLER": "m.f", "ASYA_ENABLE_VALIDATION": "maybe"}, 'ASYA_ENABLE_VALIDATION="maybe"'),
        ({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_CHMOD": "rw-rw-rw-"}, 'ASYA_SOCKET_CHMOD="rw-rw-rw-"'),
        ({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_CHMOD": "999"}, 'ASYA_SOCKET_CHMOD="999"'),
        ({"ASYA_HANDLER": "m.f", "ASYA_LOG_LEVEL": "loud"}, 'ASYA_LOG_LEVEL="loud"'),
        ({"ASYA_HANDLER": "m.f", "ASYA_MAX_MESSAGE_BYTES": "0"}, "ASYA_MAX_MESSAGE_BYTES"),
        ({"ASYA_HANDLER": "m.f", "ASYA_MAX_MESSAGE_BYTES": "8GiB"}, "ASYA_MAX_MESSAGE_BYTES"),
        ({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_PATH": "/tmp/" + "x" * 120}, "107 bytes"),
    ],
)
def test_config_errors_name_variable_and_value(env, message):
    with pytest.raises(rt.ConfigError) as error:
        rt.load_config(env)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_config_chmod_forms_and_empty_skips():
    assert rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_CHMOD": "0o660"}).socket_chmod == 0o660
    assert rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_CHMOD": "600"}).socket_chmod == 0o600
    assert rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_SOCKET_CHMOD": ""}).socket_chmod is None


def test_config_booleans_and_level():
    config = rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_ENABLE_VALIDATION": "FALSE", "ASYA_HANDLER_THREAD_SAFE": "yes",
                             "ASYA_LOG_LEVEL": "WARNING", "ASYA_HANDLER_MODE": "envelope"})
    assert config.enable_validation is False
    assert config.handler_thread_safe is True
    assert config.log_level == "warning"
    assert config.mode == "envelope"


# ------------------------------------------------------------------------------------------
# Handler loading.


@pytest.fixture
def handler_modules(tmp_path, monkeypatch):
    """Writes modules into a temp dir on sys.path; forgets them from sys.modules afterwards."""
    written = []

    def write(name, source):
        path = tmp_path.joinpath(*name.split("."))
        if "." in name:
            for depth in range(1, len(name.split("."))):
                package = tmp_path.joinpath(*name.split(".")[:depth])
                package.mkdir(exist_ok=True)
                (package / "__init__.py").touch()
        path.with_suffix(".py").write_text(textwrap.dedent(source))
        written.append(name.split(".")[0])

    monkeypatch.syspath_prepend(str(tmp_path))
    yield write
    for name in list(sys.modules):
        if name.split(".")[0] in written:
            del sys.modules[name]


HANDLERS_SOURCE = """
    instances = []

    def process(payload):
        return {"got": payload}

    NOT_CALLABLE = 3

    class Model:
        label = "not callable"

        def __init__(self, threshold=0.5, *args, **kwargs):
            instances.append(self)
            self.threshold = threshold

        def process(self, payload):
            return {"threshold": self.threshold, "payload": payload}

        @staticmethod
        def static(payload):
            return "static"

    class NeedsPath:
        def __init__(self, model_path):
            pass

        def process(self, payload):
            return payload

    class Broken:
        def __init__(self):
            raise RuntimeError("weights missing")

        def process(self, payload):
            return payload
"""


def test_load_function_handler(handler_modules):
    handler_modules("uh_funcs", HANDLERS_SOURCE)
    handler = rt.load_handler("uh_funcs.process")
    assert handler({"a": 1}) == {"got": {"a": 1}}


def test_load_class_handler_instantiates_once(handler_modules):
    handler_modules("uh_class", HANDLERS_SOURCE)
    handler = rt.load_handler("uh_class.Model.process")
    assert handler(1) == {"threshold": 0.5, "payload": 1}
    assert handler(2) == {"threshold": 0.5, "payload": 2}
    assert len(sys.modules["uh_class"].instances) == 1
    assert rt.load_handler("uh_class.Model.static")(0) == "static"


def test_load_handler_from_package_module(handler_modules):
    handler_modules("uh_pkg.sub.mod", HANDLERS_SOURCE)
    assert rt.load_handler("uh_pkg.sub.mod.process")(5) == {"got": 5}
    assert rt.load_handler("uh_pkg.sub.mod.Model.process")(5)["payload"] == 5


@pytest.mark.parametrize(
    "path,fragment",
    [
        ("uh_errors", "not a handler path"),
        ("uh_errors.process;rm", "not a handler path"),
        ("uh_errors..process", "not a handler path"),
        ("../etc.passwd", "not a handler path"),
        ("uh_no_such_module.process", "no module named 'uh_no_such_module'"),
        ("uh_errors.missing", "has no attribute 'missing'"),
        ("uh_errors.NOT_CALLABLE", "is not callable (it is a int)"),
        ("uh_errors.Model", "names a class"),
        ("uh_errors.Model.predict", "has no method 'predict'"),
        ("uh_errors.Model.label", "Model.label is not callable"),
        ("uh_errors.Model.process.extra", "'process.extra' follows class"),
        ("uh_errors.process.inner", "is a function, not a class"),
        ("uh_errors.NeedsPath.process", "parameter 'model_path' has no default value"),
        ("uh_errors.Broken.process", "Broken() raised RuntimeError: weights missing"),
    ],
)
def test_load_handler_errors_are_one_clear_line(handler_modules, path, fragment):
    handler_modules("uh_errors", HANDLERS_SOURCE)
    with pytest.raises(rt.HandlerLoadError) as error:
        rt.load_handler(path)
    message = str(error.value)
    assert fragment in message
    assert path.split(";")[0] in message
    assert "\n" not in message


def test_load_handler_names_failing_import_inside_module(handler_modules):
    handler_modules("uh_importfail", "import uh_dependency_that_is_missing\n\ndef process(p):\n    return p\n")
    with pytest.raises(rt.HandlerLoadError) as error:
        rt.load_handler("uh_importfail.process")
    message = str(error.value)
    assert "importing module 'uh_importfail' failed" in message
    assert "uh_dependency_that_is_missing" in message


def test_load_handler_names_exception_raised_at_import(handler_modules):
    handler_modules("uh_raises", "raise KeyError('config key')\n")
    with pytest.raises(rt.HandlerLoadError) as error:
        rt.load_handler("uh_raises.process")
    assert "KeyError" in str(error.value) and "config key" in str(error.value)


def test_load_handler_module_only(handler_modules):
    handler_modules("uh_pkg2.mod", HANDLERS_SOURCE)
    with pytest.raises(rt.HandlerLoadError) as error:
        rt.load_handler("uh_pkg2.mod")
    assert "names a module" in str(error.value)


# ------------------------------------------------------------------------------------------
# Request parsing and validation.


def body(value):
    return json.dumps(value).encode("utf-8")


GOOD = {"id": "e", "route": {"actors": ["a", "b"], "current": 0}, "payload": {"k": "v"}}


def test_parse_request_returns_envelope():
    assert rt.parse_request(body(GOOD)) == GOOD
    assert rt.parse_request(memoryview(bytearray(body(GOOD)))) == GOOD


@pytest.mark.parametrize(
    "raw,fragment",
    [
        (b"", "empty request"),
        (b"\xff{}", "not valid UTF-8"),
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (body({"route": GOOD["route"]}), "'payload'"),
        (body({"payload": 1}), "'route'"),
        (body(dict(GOOD, route=[])), "'route' must be an object, got array"),
        (body(dict(GOOD, route={})), "'route.actors' is missing"),
        (body(dict(GOOD, route={"actors": {}})), "'route.actors' must be an array, got object"),
        (body(dict(GOOD, route={"actors": []})), "'route.actors' must not be empty"),
        (body(dict(GOOD, route={"actors": ["a", 1]})), "'route.actors[1]' must be a string"),
        (body(dict(GOOD, route={"actors": ["a"], "current": "0"})), "'route.current' must be an integer, got string"),
        (body(dict(GOOD, route={"actors": ["a"], "current": True})), "'route.current' must be an integer, got boolean"),
        (body(dict(GOOD, route={"actors": ["a"], "current": 1.0})), "'route.current' must be an integer, got number"),
        (body(dict(GOOD, route={"actors": ["a"], "current": -1})), "'route.current' is -1, out of range"),
        (body(dict(GOOD, route={"actors": ["a"], "current": 2})), "'route.current' is 2, out of range"),
        (body(dict(GOOD, route={"actors": ["a"], "metadata": []})), "'route.metadata' must be an object"),
        (body(dict(GOOD, headers="h")), "'headers' must be an object, got string"),
        (body(dict(GOOD, id=5)), "'id' must be a string, got number"),
    ],
)
def test_parse_request_errors_name_the_field(raw, fragment):
    with pytest.raises(rt.InvalidRequest) as error:
        rt.parse_request(raw)
    assert fragment in str(error.value)


def test_missing_current_defaults_to_zero():
    envelope = rt.parse_request(body({"route": {"actors": ["a"]}, "payload": 1}))
    assert rt.build_payload_outputs(envelope, 2) == [{"payload": 2, "route": {"actors": ["a"], "current": 1}}]


# ------------------------------------------------------------------------------------------
# Payload-mode outputs.


def test_payload_outputs_single_fanout_and_abort():
    envelope = {"route": {"actors": ["a", "b"], "current": 0, "metadata": {"m": 1}}, "payload": None}
    route = {"actors": ["a", "b"], "current": 1, "metadata": {"m": 1}}
    assert rt.build_payload_outputs(envelope, {"x": 1}) == [{"payload": {"x": 1}, "route": route}]
    assert rt.build_payload_outputs(envelope, "text") == [{"payload": "text", "route": route}]
    assert rt.build_payload_outputs(envelope, [1, 2]) == [{"payload": 1, "route": route}, {"payload": 2, "route": route}]
    assert rt.build_payload_outputs(envelope, None) == []
    assert rt.build_payload_outputs(envelope, []) == []
    # A list of one is a fan-out of one: marked, so a join later on gets a group of one.
    assert rt.build_payload_outputs(envelope, [7]) == [{"payload": 7, "route": route, "fanout": True}]
    assert envelope["route"]["current"] == 0  # the input route is not modified


def test_payload_outputs_carry_headers_only_when_input_had_them():
    with_headers = {"route": {"actors": ["a"], "current": 0}, "headers": {"h": "v"}, "payload": 0}
    assert all(out["headers"] == {"h": "v"} for out in rt.build_payload_outputs(with_headers, [1, 2, 3]))
    without = {"route": {"actors": ["a"], "current": 0}, "payload": 0}
    assert all("headers" not in out for out in rt.build_payload_outputs(without, [1, 2]))


# ------------------------------------------------------------------------------------------
# Envelope-mode output checks.

ACTORS = ["a", "b", "c"]


def out(actors, current, **extra):
    result = {"payload": 1, "route": {"actors": actors, "current": current}}
    result.update(extra)
    return result


@pytest.mark.parametrize(
    "result",
    [
        out(ACTORS, 2),
        out(ACTORS + ["d"], 2),
        out(["a", "b", "x", "y"], 2),
        out(["a", "b"], 2),
        [out(ACTORS, 2), out(ACTORS, 2)],
        out(ACTORS, 3),
        {"payload": 1, "route": {"actors": ACTORS}},  # current defaults to 0 (<= len)
    ],
)
def test_envelope_outputs_allowed(result):
    outputs = rt.check_envelope_outputs(list(ACTORS), 1, result)
    assert outputs == (result if isinstance(result, list) else [result])


@pytest.mark.parametrize(
    "result,fragment",
    [
        (out(["z", "b", "c"], 2), "changes the route's past"),
        (out(["a", "z", "c"], 2), "changes the route's past"),
        (out(["a"], 1), "changes the route's past"),
        ({"route": {"actors": ACTORS, "current": 2}}, "has no 'payload'"),
        ({"payload": 1}, "'route' must be an object, got nothing"),
        ({"payload": 1, "route": "nope"}, "'route' must be an object, got string"),
        ({"payload": 1, "route": {"current": 2}}, "'route.actors' must be an array"),
        (out(ACTORS, 4), "'route.current' is 4, must be between 0 and 3"),
        (out(ACTORS, -1), "'route.current' is -1"),
        (out(ACTORS, "2"), "'route.current' must be an integer"),
        (out(ACTORS, 2, headers=[]), "'headers' must be an object"),
        ([out(ACTORS, 2), out(["z"], 1)], "output 1 changes the route's past"),
        ([out(ACTORS, 2), 5], "output 1 of the envelope-mode handler is a int"),
        (42, "must return an envelope (dict), a list of envelopes or None, got int"),
    ],
)
def test_envelope_outputs_forbidden(result, fragment):
    with pytest.raises(rt.InvalidHandlerResult) as error:
        rt.check_envelope_outputs(list(ACTORS), 1, result)
    assert fragment in str(error.value)


def test_envelope_outputs_without_validation_pass_through():
    result = out(ACTORS, 99)
    del result["payload"]
    assert rt.check_envelope_outputs(list(ACTORS), 1, result, validate=False) == [result]
    assert rt.check_envelope_outputs(list(ACTORS), 1, None) == []
    with pytest.raises(rt.InvalidHandlerResult):
        rt.check_envelope_outputs(list(ACTORS), 1, "text", validate=False)


# ------------------------------------------------------------------------------------------
# Runtime.respond / handle: whole request -> response, no socket.


def request(payload, **fields):
    value = {"id": "r", "route": {"actors": ["a", "b"], "current": 0}, "payload": payload}
    value.update(fields)
    return body(value)


def failing_handler(payload):
    raise ValueError("Intentional test failure")


def test_handler_exception_becomes_processing_error_with_traceback():
    response = rt.handle_request(request({}), failing_handler)
    assert len(response) == 1
    assert response[0]["error"] == "processing_error"
    details = response[0]["details"]
    assert details["message"] == "Intentional test failure"
    assert details["type"] == "ValueError"
    assert "failing_handler" in details["traceback"]


def test_custom_exception_type_is_qualified_by_module():
    class ModelError(Exception):
        pass

    ModelError.__module__ = "mymodels"
    ModelError.__qualname__ = "ModelError"

    def handler(payload):
        raise ModelError("bad input")

    assert rt.handle_request(request({}), handler)[0]["details"]["type"] == "mymodels.ModelError"


def test_invalid_request_becomes_msg_parsing_error():
    response = rt.handle_request(b"{nope", lambda p: p)
    assert response[0]["error"] == "msg_parsing_error"
    assert "not valid JSON" in response[0]["details"]["message"]
    assert set(response[0]["details"]) == {"message", "type", "traceback"}


@pytest.mark.parametrize(
    "result,fragment",
    [({1, 2}, "Object of type set is not JSON serializable"), (float("nan"), "Out of range float"),
     ({"x": float("inf")}, "Out of range float")],
)
def test_unencodable_result_becomes_processing_error(result, fragment):
    response = rt.handle_request(request({}), lambda payload: result)
    assert response[0]["error"] == "processing_error"
    assert fragment in response[0]["details"]["message"]


def test_cyclic_result_becomes_processing_error():
    cycle = []
    cycle.append(cycle)
    response = rt.handle_request(request({}), lambda payload: {"c": cycle})
    assert response[0]["error"] == "processing_error"


def test_async_handler_is_awaited():
    async def handler(payload):
        return {"async": payload}

    runtime = rt.Runtime(handler)
    for value in (1, 2):
        assert json.loads(runtime.handle(request(value)))[0]["payload"] == {"async": value}


def test_envelope_mode_checks_against_route_before_handler_mutated_it():
    def handler(envelope):
        envelope["route"]["actors"][0] = "hacked"  # mutates the input in place
        envelope["route"]["current"] += 1
        return envelope

    response = rt.handle_request(request({}), handler, mode="envelope")
    assert response[0]["error"] == "processing_error"
    assert "changes the route's past" in response[0]["details"]["message"]


def test_envelope_mode_handler_gets_known_fields_only():
    seen = []

    def handler(envelope):
        seen.append(sorted(envelope))
        envelope["route"]["current"] += 1
        return envelope

    raw = request({"v": 1}, headers={"trace_id": "t"}, parent_id="p", deadline="2030-01-01T00:00:00Z", extra=1)
    response = rt.handle_request(raw, handler, mode="envelope")
    assert seen == [["deadline", "headers", "id", "parent_id", "payload", "route"]]
    assert response[0]["headers"] == {"trace_id": "t"}
    assert response[0]["route"]["current"] == 1


# ------------------------------------------------------------------------------------------
# Encoding.


@pytest.mark.parametrize(
    "value",
    [
        "x" * 10000,
        "x" * 10000 + '"',
        "x" * 10000 + "\\",
        "x" * 10000 + "\n",
        "x" * 10000 + "\x01",
        "世界🌍" * 3000,
        {"k" * 5000: ["v" * 5000, 1, None, True, 2.5]},
        "\u2028" * 5000,
    ],
)
def test_encode_response_matches_json_dumps(value):
    response = [{"payload": value}]
    encoded = rt.encode_response(response)
    assert json.loads(encoded.decode("utf-8")) == response
    assert encoded == json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_encode_response_escapes_lone_surrogates():
    value = "x" * 5000 + "\ud83c"
    encoded = rt.encode_response([{"payload": value}])
    encoded.decode("utf-8")  # valid UTF-8
    assert json.loads(encoded) == [{"payload": value}]


# ------------------------------------------------------------------------------------------
# The handler thread of a batch runtime with several connections: calls run in ticket order.


def _handler_thread_recording():
    import threading

    ran = []
    thread = rt._HandlerThread(lambda argument: ran.append(argument) or argument)
    return thread, ran, threading


def test_a_call_waits_for_the_request_whose_ticket_was_taken_before_it():
    # Ticket 0 is taken when the first request was read whole; its connection's thread is still
    # decoding when the second request's call comes: the second waits for the first to run.
    thread, ran, threading = _handler_thread_recording()
    first, second = thread.take_ticket(), thread.take_ticket()
    results = {}
    later = threading.Thread(target=lambda: results.setdefault("second", thread.call("second", second)))
    later.start()
    later.join(0.3)
    assert later.is_alive() and ran == [], "the later ticket ran before the earlier one was called"
    assert thread.call("first", first) == "first"
    later.join(5)
    assert ran == ["first", "second"] and results == {"second": "second"}


def test_a_ticket_given_back_without_a_call_lets_the_next_one_run():
    # An invalid request (or one whose handler ran on its own thread) gives its ticket back.
    thread, ran, threading = _handler_thread_recording()
    unused, used = thread.take_ticket(), thread.take_ticket()
    later = threading.Thread(target=thread.call, args=("used", used))
    later.start()
    later.join(0.2)
    assert ran == []
    thread.release(unused)
    later.join(5)
    assert not later.is_alive() and ran == ["used"]
    thread.release(used)  # after its call: nothing to give back, no effect
    assert thread.call("untaken") == "untaken" and ran == ["used", "untaken"]
