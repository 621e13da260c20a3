"""Ports for the services tests start (RabbitMQ, PostgreSQL, moto), standard library only."""
import pathlib
import random
import socket


def _ephemeral_low():
    try:
        return int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port nothing is bound to, below the kernel's ephemeral range. A port from bind(0) lies
    inside that range, so while the broker boots (seconds on a loaded machine) any outgoing
    connection of another test could take it as its local port, and the service then fails with
    eaddrinuse (seen in a full run); ports below the range are never handed out that way."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range (%d) after 200 tries" % low)
