#!/usr/bin/env python3
"""The baseline of the python_runtime_rps row: a minimal re-implementation of the published Asya
Python runtime's serving loop, written for this benchmark (the published runtime itself cannot be
installed here: no PyPI, no network).

What it keeps from the published loop, because that is what costs time:
  - one request per connection: accept, read one frame, answer, close;
  - frames read with recv() in chunks of at most ASYA_CHUNK_SIZE (64 KiB) joined at the end;
  - json.loads(bytes.decode("utf-8")) of the whole envelope, the same route checks;
  - the handler gets the payload; outputs become [{"payload": p, "route": route}];
  - json.dumps(...).encode("utf-8"), then sendall(length + data) (one concatenation);
  - the per-request diagnostic log calls, whose f-string messages (they include the payload in
    and the payload out) Python builds before the logger looks at its level; logging configured
    as published but at level WARNING, so nothing is written (the published default, INFO,
    writes the payloads to stderr; the bench compares against the faster, logging-off variant).
What it leaves out: handler loading by module path (the handler is imported the same way, once),
envelope-mode handlers, signal handling. The route's `current` is advanced (PROTOCOL §3) where
the published loop passed the route through unchanged; the cost is one small dict copy.

    ASYA_SOCKET_PATH=/tmp/x.sock ASYA_HANDLER=module.function python3 published_loop.py
"""
import importlib
import json
import logging
import os
import socket
import struct
import sys
import traceback

logging.basicConfig(level=getattr(logging, os.getenv("ASYA_LOG_LEVEL", "WARNING").upper(), logging.WARNING),
                    format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
logger = logging.getLogger("asya.runtime")

CHUNK_SIZE = int(os.getenv("ASYA_CHUNK_SIZE", 65536))
SOCKET_PATH = os.environ["ASYA_SOCKET_PATH"]


def recv_exact(conn, n):
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = conn.recv(min(remaining, CHUNK_SIZE))
        if not chunk:
            raise ConnectionError("Connection closed while reading")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def error_response(code, exc):
    return [{"error": code, "details": {"message": str(exc), "type": type(exc).__name__,
                                        "traceback": "".join(traceback.format_exception(exc))}}]


def validate(msg):
    if "payload" not in msg or "route" not in msg:
        raise ValueError("Missing required field 'payload' or 'route'")
    route = msg["route"]
    if not isinstance(route, dict) or not isinstance(route.get("actors"), list):
        raise ValueError("Field 'route.actors' must be a list")
    current = route.get("current", 0)
    if not isinstance(current, int) or not 0 <= current < len(route["actors"]):
        raise ValueError("Invalid route.current=%r" % (current,))
    if "headers" in msg and not isinstance(msg["headers"], dict):
        raise ValueError("Field 'headers' must be a dict")
    if "id" in msg and not isinstance(msg["id"], str):
        raise ValueError("Field 'id' must be a string")
    result = {"payload": msg["payload"], "route": route}
    for key in ("id", "parent_id", "headers"):
        if key in msg:
            result[key] = msg[key]
    return result


def handle(conn, func):
    try:
        (length,) = struct.unpack(">I", recv_exact(conn, 4))
        data = recv_exact(conn, length)
    except Exception as e:  # noqa: BLE001 - the published loop answers every failure
        return error_response("connection_error", e)
    try:
        msg = validate(json.loads(data.decode("utf-8")))
        logger.debug(f"Received message: {len(data)} bytes")
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        return error_response("msg_parsing_error", e)
    try:
        logger.info(f"[DIAG] handler call starts, envelope_id={msg.get('id', 'unknown')}")
        logger.info(f"[DIAG] handler input payload: {msg['payload']}")
        out = func(msg["payload"])
        logger.info(f"[DIAG] handler output: {out}")
        outs = [] if out is None else list(out) if isinstance(out, (list, tuple)) else [out]
        route = dict(msg["route"], current=msg["route"].get("current", 0) + 1)
        logger.info(f"[DIAG] handler done: returning {len(outs)} response(s)")
        return [{"payload": p, "route": route} for p in outs]
    except Exception as e:  # noqa: BLE001
        logger.exception("Fatal error on processing input message")
        return error_response("processing_error", e)


def main():
    module_name, function_name = os.environ["ASYA_HANDLER"].rsplit(".", 1)
    func = getattr(importlib.import_module(module_name), function_name)
    try:
        os.unlink(SOCKET_PATH)
    except OSError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(SOCKET_PATH)
    sock.listen(5)
    with open(os.path.join(os.path.dirname(SOCKET_PATH), "runtime-ready"), "w") as ready:
        ready.write("ready")
    while True:
        conn, _ = sock.accept()
        try:
            data = json.dumps(handle(conn, func)).encode("utf-8")
            conn.sendall(struct.pack(">I", len(data)) + data)
        except BrokenPipeError:
            logger.warning("Client disconnected")
        finally:
            conn.close()


if __name__ == "__main__":
    sys.exit(main())
