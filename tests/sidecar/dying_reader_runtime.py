"""A runtime that dies while it reads a particular request, as one killed for the memory a large
request asks for (docs/protocol.md §5 "Runtime unavailable"). Payload mode, one connection at a
time.

- A request whose first 64 body bytes contain "die-reading" (the envelope's id comes first): marker
  died-reading-<ns>, then the process exits with status 17 at once, the rest of the request unread
  in its socket, leaving the socket file and the ready file behind, as a killed process does.
- Any other request is answered: marker call-<id>-<ns>, payload echoed, route.current + 1.

Environment: ASYA_SOCKET_PATH, TEST_MARKER_DIR."""
import json
import os
import pathlib
import struct
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from runtime_framing import frame, listen_as_runtime, mark, read_exact  # noqa: E402

PREFIX_BYTES = 64


def main():
    server = listen_as_runtime(os.environ["ASYA_SOCKET_PATH"])
    while True:
        conn, _ = server.accept()
        with conn:
            while True:
                header = read_exact(conn, 4)
                if header is None:
                    break
                size = struct.unpack(">I", header)[0]
                prefix = read_exact(conn, min(size, PREFIX_BYTES))
                if prefix is None:
                    break
                if b"die-reading" in prefix:
                    mark("died-reading-%d" % time.time_ns())
                    os._exit(17)
                rest = read_exact(conn, size - len(prefix))
                if rest is None:
                    break
                envelope = json.loads(prefix + rest)
                mark("call-%s-%d" % (envelope["id"], time.time_ns()))
                route = dict(envelope["route"])
                route["current"] = route.get("current", 0) + 1
                conn.sendall(frame(json.dumps([{"payload": envelope["payload"], "route": route}]).encode()))


if __name__ == "__main__":
    main()
