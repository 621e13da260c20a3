"""A runtime that behaves like the published asya_runtime.py: one request per connection, then it
closes the connection. Echo handler in payload mode. Used to check that the sidecar reconnects
transparently. Environment: ASYA_SOCKET_PATH."""
import json
import os
import socket
import struct


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


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
            header = read_exact(conn, 4)
            if header is None:
                continue
            body = read_exact(conn, struct.unpack(">I", header)[0])
            envelope = json.loads(body)
            route = dict(envelope["route"])
            route["current"] = route.get("current", 0) + 1
            payload = envelope["payload"]
            payload["served_by"] = "oneshot"
            out = json.dumps([{"payload": payload, "route": route}]).encode()
            conn.sendall(struct.pack(">I", len(out)) + out)


if __name__ == "__main__":
    main()
