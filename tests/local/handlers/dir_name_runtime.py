"""A test-only minimal runtime shaped like the published reference runtime: it finds its socket
ONLY through ASYA_SOCKET_DIR and ASYA_SOCKET_NAME (it never reads ASYA_SOCKET_PATH), writes
`runtime-ready` into ASYA_SOCKET_DIR once it listens, and serves the socket protocol
(docs/protocol.md section 3) with an echo handler that adds {"runtime": "dir-name"} to the payload.
Python standard library only.

Like the published runtime, it falls back to /var/run/asya/asya-runtime.sock when the variables
are missing, so a supervisor that gives only ASYA_SOCKET_PATH makes it listen where no sidecar
looks (the defect this test guards against)."""
import json
import os
import pathlib
import socket
import sys
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from runtime_framing import frame, read_frame  # noqa: E402

DIR = os.environ.get("ASYA_SOCKET_DIR", "/var/run/asya")
NAME = os.environ.get("ASYA_SOCKET_NAME", "asya-runtime.sock")


def answer(envelope):
    payload = envelope.get("payload")
    if isinstance(payload, dict):
        payload = dict(payload, runtime="dir-name")
    route = dict(envelope["route"])
    route["current"] = route.get("current", 0) + 1
    return [{"payload": payload, "route": route, "headers": envelope.get("headers") or {}}]


def serve(conn):
    with conn:
        while True:
            body = read_frame(conn)
            if body is None:
                return
            out = json.dumps(answer(json.loads(body))).encode()
            conn.sendall(frame(out))


def main():
    os.makedirs(DIR, exist_ok=True)
    path = os.path.join(DIR, NAME)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    with open(os.path.join(DIR, "runtime-ready"), "w"):
        pass
    print(f"dir-name runtime listening on {path}", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
