"""A runtime that goes away slowly, to force the race of a sidecar reconnecting to a dying runtime
(docs/protocol.md §5 "Runtime unavailable"). Payload mode, one connection at a time.

- A request whose payload has "poison": true is read whole (the handler runs: marker
  died-<id>-<ns>), then the connection is closed without an answer. The process keeps its listening
  socket open, not accepting, until a new connection is waiting in it (the sidecar's wait for the
  runtime, which connects at once because the ready file and the listening socket are still there;
  up to 10 s), lets the sidecar write into that connection for 0.3 s, and exits with status 17,
  leaving the socket file and the ready file behind, as a killed process does. The connection
  waiting in the listening socket is then reset, and a connect is refused until the next runtime
  listens.
- Any other request is answered: marker call-<id>-<ns>, payload echoed, route.current + 1.

Environment: ASYA_SOCKET_PATH, TEST_MARKER_DIR."""
import json
import os
import pathlib
import select
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from runtime_framing import frame, listen_as_runtime, mark, read_frame  # noqa: E402


def main():
    server = listen_as_runtime(os.environ["ASYA_SOCKET_PATH"])
    while True:
        conn, _ = server.accept()
        with conn:
            while True:
                body = read_frame(conn)
                if body is None:
                    break
                envelope = json.loads(body)
                if envelope["payload"].get("poison"):
                    mark("died-%s-%d" % (envelope["id"], time.time_ns()))
                    conn.close()
                    select.select([server], [], [], 10.0)
                    time.sleep(0.3)
                    os._exit(17)
                mark("call-%s-%d" % (envelope["id"], time.time_ns()))
                route = dict(envelope["route"])
                route["current"] = route.get("current", 0) + 1
                conn.sendall(frame(json.dumps([{"payload": envelope["payload"], "route": route}]).encode()))


if __name__ == "__main__":
    main()
