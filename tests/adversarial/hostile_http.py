"""Helpers of the hostile-client suite (test_hostile_client.py): the gateway harness of
tests/gateway (imported, not copied), raw sockets for what no HTTP library sends, and the CPU
time of a process from /proc."""
import os
import pathlib
import socket
import sys

GATEWAY_SUITE = pathlib.Path(__file__).resolve().parent.parent / "gateway"
if str(GATEWAY_SUITE) not in sys.path:
    sys.path.insert(0, str(GATEWAY_SUITE))

from gateway_harness import (ROUTES, FakeActor, Gateway, gateway_binary, http, http_json,  # noqa: E402,F401
                             queue_tool, wait_until)


def raw_exchange(port, data, timeout=30.0):
    """Sends `data` on a new connection and returns everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything; read what it sent
        received = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return received


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response ("HTTP/1.1 400 Bad Request..." -> 400)."""
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


def cpu_seconds(pid) -> float:
    """User + system CPU time the process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def with_ulimit(binary, descriptors, directory):
    """A script that runs `binary` after `ulimit -n <descriptors>` (exec: same PID), for
    Gateway(binary=...)."""
    script = pathlib.Path(directory) / "gateway-with-ulimit.sh"
    script.write_text(f"#!/bin/sh\nulimit -n {descriptors} || exit 97\nexec {binary}\n")
    script.chmod(0o755)
    return script


def open_idle_connections(port, count):
    """Opens `count` connections that send nothing; they are queued by the kernel even when the
    server cannot accept them."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        sockets.append(s)
    return sockets


def close_all(sockets):
    for s in sockets:
        s.close()
