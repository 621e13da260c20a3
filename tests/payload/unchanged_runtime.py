"""A rogue runtime for test_payload_unchanged.py: it answers every envelope with
"payload_unchanged": true (docs/protocol.md §3) whether or not its sidecar declared that it takes
that answer, so the tests see what a sidecar does with it in every case. Each answer is
TEST_UNCHANGED_COUNT (default 1) result elements continuing the route (2 or more: a fan-out). With
TEST_BATCH=1 it declares `batch` and answers batch requests element by element. It records, per
request, whether the sidecar-features file declared `payload-unchanged`, one line
("declared"/"not declared") appended to $TEST_MARKER_DIR/features-<actor>.

Environment: ASYA_SOCKET_PATH, ASYA_ACTOR_NAME, TEST_MARKER_DIR, TEST_UNCHANGED_COUNT, TEST_BATCH.
"""
import json
import os
import pathlib
import socket
import sys
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from runtime_framing import frame, read_frame  # noqa: E402

COUNT = int(os.environ.get("TEST_UNCHANGED_COUNT", "1"))
BATCH = os.environ.get("TEST_BATCH") == "1"
PATH = os.environ["ASYA_SOCKET_PATH"]
FEATURES = os.path.join(os.path.dirname(PATH), "sidecar-features")
MARKER = os.path.join(os.environ["TEST_MARKER_DIR"], "features-" + os.environ["ASYA_ACTOR_NAME"])


def answer_for(envelope):
    route = dict(envelope["route"])
    route["current"] = route.get("current", 0) + 1
    return [{"payload_unchanged": True, "route": route} for _ in range(COUNT)]


def declared():
    try:
        with open(FEATURES) as features:
            return "payload-unchanged" in features.read().split("\n")[1:]
    except OSError:
        return False


def serve(conn):
    while True:
        body = read_frame(conn)
        if body is None:
            return
        with open(MARKER, "a") as marker:
            marker.write("declared\n" if declared() else "not declared\n")
        request = json.loads(body)
        answer = [answer_for(e) for e in request] if isinstance(request, list) else answer_for(request)
        conn.sendall(frame(json.dumps(answer, separators=(",", ":")).encode()))


def main():
    if os.path.exists(PATH):
        os.unlink(PATH)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(PATH)
    server.listen(16)
    with open(os.path.join(os.path.dirname(PATH), "runtime-ready"), "w") as ready:
        ready.write("%d\n%s" % (os.getpid(), "batch\n" if BATCH else ""))
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
