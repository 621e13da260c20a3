"""A rogue batch runtime for test_sidecar_batching.py's pipelined-batch tests: it declares `batch`
and `pipeline` (PROTOCOL §3 "Pipelined batches"), serves each connection on its own thread, and
answers the first two batch requests it holds at once (one per connection: the sidecar sent the
second ahead while the first was "running") each with the OTHER request's answers: a correct
answer, for the wrong batch. Later requests are answered correctly.

The correct answer to an envelope E is [{"payload": {"answered": E.id}, "route": E.route with
current + 1}], so a test can tell which envelope an answer was made for. Every request read is
appended, one envelope id per line, to $TEST_MARKER_DIR/reads.

Environment: ASYA_SOCKET_PATH, TEST_MARKER_DIR.
"""
import json
import os
import pathlib
import sys
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from runtime_framing import frame, listen_as_runtime, read_frame  # noqa: E402

MARKERS = os.environ["TEST_MARKER_DIR"]
lock = threading.Condition()
held = []  # (connection, answers) of the first two requests, until both are here
swapped = False


def answers_for(batch):
    out = []
    for envelope in batch:
        route = dict(envelope["route"])
        route["current"] = route.get("current", 0) + 1
        out.append([{"payload": {"answered": envelope["id"]}, "route": route}])
    return json.dumps(out, separators=(",", ":")).encode()


def send(conn, body):
    conn.sendall(frame(body))


def serve(conn):
    global swapped
    while True:
        body = read_frame(conn)
        if body is None:
            return
        batch = json.loads(body)
        batch = batch if isinstance(batch, list) else [batch]
        with open(os.path.join(MARKERS, "reads"), "a") as f:
            f.write("".join(e["id"] + "\n" for e in batch))
        answer = answers_for(batch)
        with lock:
            if swapped:
                send(conn, answer)
                continue
            held.append((conn, answer))
            if len(held) < 2:
                lock.wait_for(lambda: swapped, timeout=120)
                continue
            (first, first_answer), (second, second_answer) = held
            send(first, second_answer)
            send(second, first_answer)
            swapped = True
            lock.notify_all()


def main():
    server = listen_as_runtime(os.environ["ASYA_SOCKET_PATH"], "%d\nbatch\npipeline\n" % os.getpid())
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
