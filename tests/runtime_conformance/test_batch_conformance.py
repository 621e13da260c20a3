"""Runtime conformance of batch mode (PROTOCOL section 3, "Batches"): the Python runtime with
ASYA_HANDLER_BATCH=true and the C++ runtime's asya::serve_batch answer batch requests alike. Both
serve conformance_handlers.batch_mixed."""
import json
import struct

from conformance_client import envelope

BATCH = {"ASYA_HANDLER_BATCH": "true"}


def item(n, do, actors=("batch", "next"), **fields):
    return envelope({"n": n, "do": do}, actors=list(actors), id="item-%d" % n, **fields)


def assert_processing_error(answer, error_type, message):
    assert isinstance(answer, list) and len(answer) == 1, answer
    assert answer[0]["error"] == "processing_error", answer
    details = answer[0]["details"]
    assert details["type"] == error_type, details
    assert details["message"] == message, details
    assert isinstance(details["traceback"], str) and error_type in details["traceback"], details
    return details


def test_batch_runtime_declares_batch_support_in_its_ready_file(start_runtime):
    runtime = start_runtime("batch_mixed", env=BATCH)
    lines = [line.strip() for line in runtime.ready_path.read_text().splitlines()]
    assert "batch" in lines, lines
    assert "pipeline" in lines, lines  # PROTOCOL section 3, "Pipelined batches"


def test_plain_runtime_declares_no_batch_support(start_runtime):
    runtime = start_runtime("echo")
    lines = [line.strip() for line in runtime.ready_path.read_text().splitlines()]
    assert "batch" not in lines, lines
    assert "pipeline" not in lines, lines


def test_a_batch_runtime_serves_a_second_connection_while_the_first_stays_open(start_runtime):
    # What `pipeline` promises: a sidecar keeps two connections and alternates between them; a
    # request on either is answered while the other stays open (each opened before any request,
    # as a sidecar does).
    runtime = start_runtime("batch_mixed", env=BATCH)
    with runtime.connect() as first, runtime.connect() as second:
        for round_ in range(4):
            connection = (first, second)[round_ % 2]
            answers = connection.call_raw(json.dumps([item(round_, "echo")]).encode())
            assert [a[0]["payload"]["n"] for a in answers] == [round_]


def numbered(connection, n):
    """The call number the runtime's batch_numbered handler gave request `n` on `connection`."""
    answers = json.loads(connection.recv_frame())
    assert answers[0][0]["payload"]["n"] == n, answers
    return answers[0][0]["payload"]["call"]


def test_batches_run_in_the_order_they_began_to_arrive_whichever_is_read_whole_first(start_runtime):
    # PROTOCOL section 3, "Order": a sidecar writes the batch ahead on its second connection only
    # once the runtime read the first one whole; the runtime took the first one's place in its
    # call order before reading its last byte, so it runs first even when the second connection's
    # thread reads its batch whole before the first one's thread has all of its own.
    runtime = start_runtime("batch_numbered", env=BATCH)
    with runtime.connect() as first, runtime.connect() as second:
        for connection in (first, second):  # both served and idle, as between two busy periods
            connection.call_raw(json.dumps([item(0, "echo")]).encode())
        body = json.dumps([item(1, "echo")]).encode()
        frame = struct.pack(">I", len(body)) + body
        first.sock.sendall(frame[:-1])  # all but its last byte
        first.wait_read()
        second.send_frame(json.dumps([item(2, "echo")]).encode())  # whole
        second.wait_read()
        first.sock.sendall(frame[-1:])
        assert numbered(first, 1) < numbered(second, 2)


def test_a_connection_closed_in_the_middle_of_its_batch_does_not_hold_back_the_next(start_runtime):
    # Its place in the call order is given back: the batch that began after it is answered.
    runtime = start_runtime("batch_numbered", env=BATCH)
    with runtime.connect() as first, runtime.connect() as second:
        for connection in (first, second):
            connection.call_raw(json.dumps([item(0, "echo")]).encode())
        body = json.dumps([item(1, "echo")]).encode()
        first.sock.sendall((struct.pack(">I", len(body)) + body)[:-1])
        first.wait_read()
        second.send_frame(json.dumps([item(2, "echo")]).encode())
        first.close()  # the sidecar crashed (or closed it) in the middle of the request
        numbered(second, 2)
        # And the runtime goes on: a new connection is served.
        with runtime.connect() as third:
            answers = third.call_raw(json.dumps([item(3, "echo")]).encode())
            assert answers[0][0]["payload"]["n"] == 3


def test_batch_answers_every_envelope_in_order_each_by_its_own_slot(start_runtime):
    runtime = start_runtime("batch_mixed", env=BATCH)
    request = [
        item(0, "echo", headers={"h": "0"}),
        item(1, "abort"),
        item(2, "fail"),
        item(3, "fanout", headers={"h": "3"}),
        item(4, "echo", actors=("a", "batch", "c"), current=1),
    ]
    with runtime.connect() as connection:
        answers = connection.call_raw(json.dumps(request).encode())
    assert isinstance(answers, list) and len(answers) == 5, answers
    assert answers[0] == [
        {"payload": {"n": 0}, "route": {"actors": ["batch", "next"], "current": 1}, "headers": {"h": "0"}}
    ]
    assert answers[1] == []
    assert_processing_error(answers[2], "ValueError", "item 2 failed")
    assert answers[3] == [
        {"payload": {"n": 3, "i": 0}, "route": {"actors": ["batch", "next"], "current": 1}, "headers": {"h": "3"}},
        {"payload": {"n": 3, "i": 1}, "route": {"actors": ["batch", "next"], "current": 1}, "headers": {"h": "3"}},
    ]
    assert answers[4] == [{"payload": {"n": 4}, "route": {"actors": ["a", "batch", "c"], "current": 2}}]


def test_a_handler_that_raises_fails_every_item(start_runtime):
    runtime = start_runtime("batch_mixed", env=BATCH)
    request = [item(0, "echo"), item(1, "raise"), item(2, "echo")]
    with runtime.connect() as connection:
        answers = connection.call_raw(json.dumps(request).encode())
    assert len(answers) == 3, answers
    for answer in answers:
        assert_processing_error(answer, "ValueError", "batch failed")


def test_a_result_of_the_wrong_length_fails_every_item_naming_both_lengths(start_runtime):
    runtime = start_runtime("batch_mixed", env=BATCH)
    request = [item(0, "echo"), item(1, "short"), item(2, "echo"), item(3, "echo")]
    with runtime.connect() as connection:
        answers = connection.call_raw(json.dumps(request).encode())
    assert len(answers) == 4, answers
    for answer in answers:
        assert answer[0]["error"] == "processing_error", answer
        assert answer[0]["details"]["type"] == "InvalidHandlerResult", answer
        assert "returned 3 results for 4 inputs" in answer[0]["details"]["message"], answer


def test_an_invalid_envelope_in_a_batch_fails_only_that_item(start_runtime):
    runtime = start_runtime("batch_mixed", env=BATCH)
    broken = item(1, "echo")
    del broken["route"]
    request = [item(0, "echo"), broken, item(2, "echo")]
    with runtime.connect() as connection:
        answers = connection.call_raw(json.dumps(request).encode())
    assert len(answers) == 3, answers
    assert answers[0][0]["payload"] == {"n": 0}
    assert answers[1][0]["error"] == "msg_parsing_error", answers[1]
    assert "batch element 1" in answers[1][0]["details"]["message"]
    assert "route" in answers[1][0]["details"]["message"]
    assert answers[2][0]["payload"] == {"n": 2}


def test_a_single_envelope_is_a_batch_of_one(start_runtime):
    runtime = start_runtime("batch_mixed", env=BATCH)
    answer = runtime.call(item(7, "echo"))
    assert answer == [{"payload": {"n": 7}, "route": {"actors": ["batch", "next"], "current": 1}}]
    assert_processing_error(runtime.call(item(8, "fail")), "ValueError", "item 8 failed")


def test_many_batches_on_one_connection(start_runtime):
    runtime = start_runtime("batch_mixed", env=BATCH)
    with runtime.connect() as connection:
        for round_ in range(50):
            request = [item(round_ * 10 + k, "echo") for k in range(10)]
            answers = connection.call_raw(json.dumps(request).encode())
            assert [a[0]["payload"]["n"] for a in answers] == [round_ * 10 + k for k in range(10)]


def test_python_envelope_mode_batch_answers_each_envelope_alone(python_runtime):
    runtime = python_runtime("conformance_handlers.batch_envelopes", mode="envelope", env=BATCH)
    request = [item(0, "next", headers={"h": "0"}), item(1, "abort"), item(2, "past"), item(3, "fail")]
    with runtime.connect() as connection:
        answers = connection.call_raw(json.dumps(request).encode())
    assert len(answers) == 4, answers
    assert len(answers[0]) == 1
    assert answers[0][0]["route"] == {"actors": ["batch", "next"], "current": 1}
    assert answers[0][0]["headers"] == {"h": "0"}
    assert answers[0][0]["payload"] == {"n": 0, "do": "next"}
    assert answers[1] == []
    assert answers[2][0]["error"] == "processing_error"
    assert answers[2][0]["details"]["type"] == "InvalidHandlerResult"
    assert "changes the route's past" in answers[2][0]["details"]["message"]
    assert_processing_error(answers[3], "KeyError", "'missing'")
