"""The socket protocol's framing (docs/protocol.md section 3: a 4-byte big-endian length, then the
body) for the test-only runtimes that speak it by hand (tests/sidecar/oneshot_runtime.py,
rogue_batch_runtime.py, slow_reader_runtime.py, lingering_runtime.py,
dying_reader_runtime.py, tests/adversarial/rogue_runtime.py, tests/local/handlers/dir_name_runtime.py,
tests/payload/fd_runtime.py).
Also what those runtimes share: listening as a runtime does, and test markers.
Python standard library only; those scripts run as their own processes and put tests/ on sys.path."""
import os
import socket
import struct


def read_exact(conn, n):
    """`n` bytes from `conn`, or None when the peer closed first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(conn):
    """The next frame's body (bytes), or None at EOF (also in the middle of a frame)."""
    header = read_exact(conn, 4)
    if header is None:
        return None
    return read_exact(conn, struct.unpack(">I", header)[0])


def frame(body):
    """`body` (bytes) with its length in front."""
    return struct.pack(">I", len(body)) + body


def listen_as_runtime(path, ready_text=""):
    """Listens on the runtime socket `path` as a runtime does: a socket file or ready file left
    behind is removed, and the ready file (`runtime-ready` next to the socket, holding
    `ready_text`) is written once the socket listens. Returns the listening socket."""
    ready = os.path.join(os.path.dirname(path), "runtime-ready")
    for stale in (ready, path):
        if os.path.exists(stale):
            os.unlink(stale)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    with open(ready, "w") as f:
        f.write(ready_text)
    return server


def mark(name):
    """Creates the marker file `name` in TEST_MARKER_DIR at once (written aside, then renamed)."""
    directory = os.environ["TEST_MARKER_DIR"]
    temporary = os.path.join(directory, name + ".%d.tmp" % os.getpid())
    open(temporary, "w").close()
    os.rename(temporary, os.path.join(directory, name))
