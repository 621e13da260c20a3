"""A rogue runtime for tests/adversarial/test_rogue_runtime.py: it speaks the socket protocol of
PROTOCOL §3 (payload mode, one connection at a time) and breaks it the way ROGUE_MODE says.

Its correct answer to an envelope E is [{"payload": {"answered": E.id, "echo": E.payload},
"route": E.route with current + 1}], so a test can tell which request an answer belongs to.

Every request read completely is recorded as one line "<id>" appended to $TEST_MARKER_DIR/reads
(written before answering), so a test counts handler runs exactly.

Environment: ASYA_SOCKET_PATH, TEST_MARKER_DIR, ROGUE_MODE, ROGUE_BYTES (the size of the "huge"
answer's payload string, and the size announced by "oversize").

Modes ("first" = only for the first request this process reads; later requests are answered
correctly, so a test sees whether the sidecar got back in step):
  echo                         always correct
  invalid_json                 a frame whose body is not valid JSON
  trailing_junk                a frame holding the correct answer followed by 5 bytes "junk!"
  wrong_shape_object           a frame holding a JSON object instead of an array
  wrong_shape_missing_route    [{"payload": ...}] (no route)
  wrong_shape_number           [42]
  double_answer_first          the correct answer twice, in one write
  late_double_answer_first     the correct answer; once the next request arrived, the same answer
                               again, then (after 0.5 s) the next request is read and answered
  junk_later_first             the correct answer; 1 s later the 4 bytes "junk", then the file
                               $TEST_MARKER_DIR/junk-written
  stray_before_first           two NUL bytes, then the correct answer, in one write
  stray_after_first            the correct answer, then two NUL bytes, in one write
  never_answer                 reads requests, never answers
  read_then_close              reads the request, closes the connection without answering
  close_without_reading        accepts, closes at once without reading anything
  close_unread_after_answer    answers; once the next request arrived, closes with it unread
  oversize                     a header announcing ROGUE_BYTES, then '[', then nothing more
  huge                         the correct answer with a payload string of ROGUE_BYTES bytes
"""
import json
import os
import pathlib
import select
import socket
import struct
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from runtime_framing import frame, read_frame  # noqa: E402

MODE = os.environ.get("ROGUE_MODE", "echo")
BYTES = int(os.environ.get("ROGUE_BYTES", "0"))
MARKERS = os.environ["TEST_MARKER_DIR"]
reads = 0


def read_request(conn):
    """The next request envelope (parsed), recorded in the reads file; None at EOF."""
    global reads
    body = read_frame(conn)
    if body is None:
        return None
    envelope = json.loads(body)
    reads += 1
    with open(os.path.join(MARKERS, "reads"), "a") as f:
        f.write(envelope.get("id", "?") + "\n")
    return envelope


def answer(envelope, payload_extra=None):
    route = dict(envelope["route"])
    route["current"] = route.get("current", 0) + 1
    payload = {"answered": envelope["id"], "echo": envelope.get("payload")}
    if payload_extra:
        payload.update(payload_extra)
    return json.dumps([{"payload": payload, "route": route}], separators=(",", ":")).encode()


def wait_readable(conn, timeout=30):
    select.select([conn], [], [], timeout)


def serve(conn):
    """Serves one connection; returns when it should be closed."""
    if MODE == "close_without_reading":
        return
    while True:
        envelope = read_request(conn)
        if envelope is None:
            return
        first = reads == 1
        good = answer(envelope)
        if MODE == "echo" or (MODE.endswith("_first") and not first):
            conn.sendall(frame(good))
        elif MODE == "invalid_json":
            conn.sendall(frame(b'[{"payload": {"answered": '))
        elif MODE == "trailing_junk":
            conn.sendall(frame(good + b"junk!"))
        elif MODE == "wrong_shape_object":
            conn.sendall(frame(json.dumps({"payload": envelope.get("payload")}).encode()))
        elif MODE == "wrong_shape_missing_route":
            conn.sendall(frame(json.dumps([{"payload": envelope.get("payload")}]).encode()))
        elif MODE == "wrong_shape_number":
            conn.sendall(frame(b"[42]"))
        elif MODE == "double_answer_first":
            conn.sendall(frame(good) + frame(good))
        elif MODE == "late_double_answer_first":
            conn.sendall(frame(good))
            wait_readable(conn)  # the sidecar sent the next request
            conn.sendall(frame(good))
            time.sleep(0.5)  # ... and would read the extra answer as that request's
        elif MODE == "junk_later_first":
            conn.sendall(frame(good))
            time.sleep(1.0)  # long after the sidecar checked the connection after this answer
            conn.sendall(b"junk")
            open(os.path.join(MARKERS, "junk-written"), "w").close()
        elif MODE == "stray_before_first":
            conn.sendall(b"\0\0" + frame(good))
        elif MODE == "stray_after_first":
            conn.sendall(frame(good) + b"\0\0")
        elif MODE == "never_answer":
            pass
        elif MODE == "read_then_close":
            return
        elif MODE == "close_unread_after_answer":
            conn.sendall(frame(good))
            wait_readable(conn)
            return
        elif MODE == "oversize":
            conn.sendall(struct.pack(">I", BYTES) + b"[")
        elif MODE == "huge":
            conn.sendall(frame(answer(envelope, {"big": "x" * BYTES})))
        else:
            raise SystemExit("unknown ROGUE_MODE %r" % MODE)


def main():
    path = os.environ["ASYA_SOCKET_PATH"]
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    open(os.path.join(os.path.dirname(path), "runtime-ready"), "w").close()
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                serve(conn)
            except (BrokenPipeError, ConnectionResetError):
                pass


if __name__ == "__main__":
    main()
