"""A rogue runtime for test_payload_fd.py: it declares `payload-fd` in its ready file (its pid on the
first line, as the C++ runtime does), records what each request brought (the descriptors that came
with the frame, the "payload_fd" marker, and the payload's bytes read through the descriptor) in
$TEST_MARKER_DIR/fd-<actor>.json, closes the descriptors and answers garbage (bytes that are not
a JSON array), so the tests see what a sidecar does with a runtime that took the descriptor and
broke the protocol.

Environment: ASYA_SOCKET_PATH, ASYA_ACTOR_NAME, TEST_MARKER_DIR.
"""
import json
import os
import pathlib
import socket
import struct
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from runtime_framing import frame, read_exact  # noqa: E402

PATH = os.environ["ASYA_SOCKET_PATH"]
MARKER = os.path.join(os.environ["TEST_MARKER_DIR"], "fd-" + os.environ["ASYA_ACTOR_NAME"] + ".json")


def serve(conn):
    while True:
        header, fds, _, _ = socket.recv_fds(conn, 4, 8)
        if not header:
            return
        header += read_exact(conn, 4 - len(header)) if len(header) < 4 else b""
        (size,) = struct.unpack(">I", header)
        request = json.loads(read_exact(conn, size))
        marker = request.get("payload_fd")
        seen = {"fds": len(fds), "marker": marker, "has_payload": "payload" in request}
        if fds and marker:
            seen["payload"] = os.pread(fds[0], marker["length"], marker["offset"]).decode()
        for fd in fds:
            os.close(fd)
        with open(MARKER + ".tmp", "w") as out:
            json.dump(seen, out)
        os.replace(MARKER + ".tmp", MARKER)
        conn.sendall(frame(b"not json"))


def main():
    if os.path.exists(PATH):
        os.unlink(PATH)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(PATH)
    server.listen(16)
    ready = os.path.join(os.path.dirname(PATH), "runtime-ready")
    with open(ready + ".tmp", "w") as out:
        out.write("%d\npayload-fd\n" % os.getpid())
    os.replace(ready + ".tmp", ready)
    while True:
        conn, _ = server.accept()
        serve(conn)
        conn.close()


if __name__ == "__main__":
    main()
