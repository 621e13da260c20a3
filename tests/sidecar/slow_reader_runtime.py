"""A batch runtime for test_sidecar_batching.py that is slow to read (PROTOCOL §3 "Pipelined
batches", "Order"): it declares `batch` and `pipeline` and serves each connection on its own
thread, but when a request starts to arrive it leaves it unread for HOLD_SECONDS, watching the
other connections meanwhile. A request that arrives on another connection while one is still
unread was written before the runtime had read the one before it: each such case is appended to
$TEST_MARKER_DIR/early. Requests are then read and answered correctly, each envelope E with
[{"payload": {"answered": E.id}, "route": E.route with current + 1}]; the ids of each request
read are appended as one line to $TEST_MARKER_DIR/reads, in the order read.

Environment: ASYA_SOCKET_PATH, TEST_MARKER_DIR.
"""
import json
import os
import pathlib
import select
import socket
import sys
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from runtime_framing import frame, listen_as_runtime, read_frame  # noqa: E402

HOLD_SECONDS = 0.5
MARKERS = os.environ["TEST_MARKER_DIR"]
lock = threading.Lock()
connections = []


def answers_for(batch):
    out = []
    for envelope in batch:
        route = dict(envelope["route"])
        route["current"] = route.get("current", 0) + 1
        out.append([{"payload": {"answered": envelope["id"]}, "route": route}])
    return json.dumps(out, separators=(",", ":")).encode()


def record(name, line):
    with lock, open(os.path.join(MARKERS, name), "a") as f:
        f.write(line + "\n")


def serve(conn):
    while True:
        select.select([conn], [], [])  # a request starts to arrive (or the peer closed)
        with lock:
            others = [c for c in connections if c is not conn]
        if others:
            # Unread for a while: does the sidecar write on another connection meanwhile?
            readable, _, _ = select.select(others, [], [], HOLD_SECONDS)
            for other in readable:
                try:
                    if other.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                        record("early", "fd %d had a request while fd %d's was unread"
                               % (other.fileno(), conn.fileno()))
                except (BlockingIOError, OSError):
                    pass
        body = read_frame(conn)
        if body is None:
            with lock:
                connections.remove(conn)
            conn.close()
            return
        batch = json.loads(body)
        batch = batch if isinstance(batch, list) else [batch]
        record("reads", " ".join(e["id"] for e in batch))
        conn.sendall(frame(answers_for(batch)))


def main():
    server = listen_as_runtime(os.environ["ASYA_SOCKET_PATH"], "%d\nbatch\npipeline\n" % os.getpid())
    while True:
        conn, _ = server.accept()
        with lock:
            connections.append(conn)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
