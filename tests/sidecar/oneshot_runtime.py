"""A runtime that behaves like the published asya_runtime.py: one request per connection, then it
closes the connection. Echo handler in payload mode. Used to check that the sidecar reconnects
transparently. Environment: ASYA_SOCKET_PATH."""
import json
import os
import pathlib
import socket
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from runtime_framing import frame, read_frame  # noqa: E402


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
            body = read_frame(conn)
            if body is None:
                continue
            envelope = json.loads(body)
            route = dict(envelope["route"])
            route["current"] = route.get("current", 0) + 1
            payload = envelope["payload"]
            payload["served_by"] = "oneshot"
            out = json.dumps([{"payload": payload, "route": route}]).encode()
            conn.sendall(frame(out))


if __name__ == "__main__":
    main()
