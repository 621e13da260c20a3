#!/usr/bin/env python3
"""The floor under python_runtime_rps: a Python server that accepts, reads one frame, answers a
fixed frame and closes, with no JSON at all. Whatever a Python runtime does per request on one
connection per request costs at least this much. ASYA_SOCKET_PATH=... python3 socket_floor.py"""
import os
import socket
import struct

PATH = os.environ["ASYA_SOCKET_PATH"]
ANSWER = b'[{"payload": {}, "route": {"actors": ["echo"], "current": 1}}]'
FRAME = struct.pack(">I", len(ANSWER)) + ANSWER


def main():
    try:
        os.unlink(PATH)
    except OSError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(PATH)
    listener.listen(64)
    with open(os.path.join(os.path.dirname(PATH), "runtime-ready"), "w") as ready:
        ready.write("ready")
    while True:
        conn, _ = listener.accept()
        (length,) = struct.unpack(">I", conn.recv(4, socket.MSG_WAITALL))
        remaining = length
        while remaining:
            chunk = conn.recv(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        conn.sendall(FRAME)
        conn.close()


if __name__ == "__main__":
    main()
