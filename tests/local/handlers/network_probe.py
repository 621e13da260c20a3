"""Handler of the runtime network isolation test: tries a TCP connection to 127.0.0.1:<port> (the
test's listener in the host's network namespace) and reports whether it connected."""
import socket


def connect(payload):
    try:
        with socket.create_connection(("127.0.0.1", int(payload["port"])), timeout=5) as conn:
            conn.sendall(payload.get("token", "").encode())
        return {"connected": True}
    except OSError as error:
        return {"connected": False, "error": f"{type(error).__name__}: {error}"}
