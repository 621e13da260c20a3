"""The socket protocol's framing (docs/protocol.md section 3: a 4-byte big-endian length, then the
body) for the test-only runtimes that speak it by hand (tests/sidecar/oneshot_runtime.py,
rogue_batch_runtime.py, tests/adversarial/rogue_runtime.py, tests/local/handlers/dir_name_runtime.py,
tests/payload/fd_runtime.py).
Python standard library only; those scripts run as their own processes and put tests/ on sys.path."""
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
