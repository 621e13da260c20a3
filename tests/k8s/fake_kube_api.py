"""A small in-process stand-in for the Kubernetes API server, for testing asya-operator.

It follows the documented contract of the parts the operator uses, nothing more:

- GET of a collection returns a List whose metadata.resourceVersion is the store's current
  version; GET of one object returns it or a 404 Status.
- GET ...?watch=true&resourceVersion=V streams, with chunked transfer encoding, one JSON event
  per line ({"type": ADDED|MODIFIED|DELETED|ERROR, "object": ...}) for every change after V, and
  holds the connection open until timeoutSeconds passes or the test closes the streams. A V older
  than the compacted version gets an ERROR event with a 410 Status (as a real server does when
  its watch cache no longer holds V). Events are kept for AsyncActors only (what the operator
  watches).
- PATCH with Content-Type application/apply-patch+yaml is server-side apply: fieldManager is
  required (400 without it), the object is created (201) or replaced by the applied
  configuration (200); the manager is recorded in metadata.managedFields.
- PATCH with application/merge-patch+json merges per RFC 7386; a metadata.resourceVersion in the
  patch that does not match gives 409 Conflict. On the status subresource only .status is taken;
  on the main resource .status is ignored. metadata.generation grows when .spec changes.
- DELETE of an object with finalizers sets metadata.deletionTimestamp (MODIFIED); an object
  whose deletionTimestamp is set is removed when its last finalizer goes (DELETED). Removing an
  object garbage-collects, in the background, the objects whose ownerReferences name its uid.
- With a token configured, requests without "Authorization: Bearer <token>" get 401.

Every request is recorded in `requests` (method, path, query, content type, parsed body).
"""

from __future__ import annotations

import copy
import datetime
import http.server
import json
import ssl
import threading
import time
import urllib.parse
import uuid


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeKubeAPI:
    def __init__(self, token: str | None = "test-token", tls: tuple[str, str] | None = None):
        """tls: (certificate file, key file) to serve HTTPS instead of HTTP."""
        self.token = token
        self.lock = threading.Condition()
        self.rv = 100
        self.compacted = 0  # watches from a version older than this get 410
        self.objects: dict[tuple, dict] = {}  # (group_version, plural, ns, name) -> object
        self.events: list[tuple[int, str, dict]] = []  # AsyncActor events (rv, type, object)
        self.requests: list[dict] = []
        self.watch_epoch = 0  # close_watches() bumps it: open streams end
        self.watches_suspended = False
        self.active_watches = 0
        self.stopping = False
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                api._handle(self, "GET")

            def do_PATCH(self):
                api._handle(self, "PATCH")

            def do_DELETE(self):
                api._handle(self, "DELETE")

            def do_POST(self):
                api._handle(self, "POST")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # ---- test helpers -------------------------------------------------------------------------

    def stop(self):
        with self.lock:
            self.stopping = True
            self.watches_suspended = False
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def create_actor(self, namespace: str, name: str, spec: dict) -> dict:
        obj = {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor",
               "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        with self.lock:
            return copy.deepcopy(self._create(("asya.sh/v1alpha1", "asyncactors", namespace, name), obj))

    def update_actor_spec(self, namespace: str, name: str, spec: dict) -> dict:
        with self.lock:
            key = ("asya.sh/v1alpha1", "asyncactors", namespace, name)
            obj = copy.deepcopy(self.objects[key])
            obj["spec"] = spec
            return copy.deepcopy(self._update(key, obj))

    def delete_actor(self, namespace: str, name: str):
        with self.lock:
            self._delete(("asya.sh/v1alpha1", "asyncactors", namespace, name))

    def get(self, group_version: str, plural: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            obj = self.objects.get((group_version, plural, namespace, name))
            return copy.deepcopy(obj)

    def close_watches(self):
        """Ends every open watch stream (as a server does at timeoutSeconds or on restart)."""
        with self.lock:
            self.watch_epoch += 1
            self.lock.notify_all()

    def suspend_watches(self):
        """Ends open streams; new watch requests wait until resume_watches()."""
        with self.lock:
            self.watches_suspended = True
            self.watch_epoch += 1
            self.lock.notify_all()

    def resume_watches(self):
        with self.lock:
            self.watches_suspended = False
            self.lock.notify_all()

    def compact(self):
        """Forgets every event up to now: a watch from an older version gets 410 Gone."""
        with self.lock:
            self.compacted = self.rv
            self.events = [e for e in self.events if e[0] > self.compacted]

    def requests_matching(self, method=None, path_contains=None, query_has=None) -> list[dict]:
        with self.lock:
            out = []
            for r in self.requests:
                if method and r["method"] != method:
                    continue
                if path_contains and path_contains not in r["path"]:
                    continue
                if query_has and query_has not in r["query"]:
                    continue
                out.append(r)
            return out

    def wait_for(self, predicate, timeout=20.0, what="condition"):
        """Waits until predicate() is truthy (checked on every change), returns its value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self.lock.wait(min(remaining, 0.2))

    # ---- store ----------------------------------------------------------------------------------

    def _bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _emit(self, key, kind: str, obj: dict):
        if key[1] == "asyncactors":
            self.events.append((int(obj["metadata"]["resourceVersion"]), kind, copy.deepcopy(obj)))
        self.lock.notify_all()

    def _create(self, key, obj: dict) -> dict:
        meta = obj.setdefault("metadata", {})
        meta["name"], meta["namespace"] = key[3], key[2]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta["resourceVersion"] = self._bump()
        if key[1] == "asyncactors":
            obj.pop("status", None)  # status is written through the subresource only
        self.objects[key] = obj
        self._emit(key, "ADDED", obj)
        return obj

    def _update(self, key, obj: dict) -> dict:
        old = self.objects[key]
        meta = obj["metadata"]
        for field in ("uid", "creationTimestamp"):
            meta[field] = old["metadata"][field]
        meta["generation"] = old["metadata"].get("generation", 1) + (
            1 if obj.get("spec") != old.get("spec") else 0)
        meta["resourceVersion"] = self._bump()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(key)
            return obj
        self.objects[key] = obj
        self._emit(key, "MODIFIED", obj)
        return obj

    def _delete(self, key) -> dict | None:
        obj = self.objects.get(key)
        if obj is None:
            return None
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                obj = copy.deepcopy(obj)
                obj["metadata"]["deletionTimestamp"] = _now()
                obj["metadata"]["resourceVersion"] = self._bump()
                self.objects[key] = obj
                self._emit(key, "MODIFIED", obj)
            return obj
        self._remove(key)
        return obj

    def _remove(self, key):
        obj = self.objects.pop(key)
        obj["metadata"]["resourceVersion"] = self._bump()
        self._emit(key, "DELETED", obj)
        # Garbage collection of dependents.
        uid = obj["metadata"]["uid"]
        for other_key, other in list(self.objects.items()):
            refs = other["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs) and other_key in self.objects:
                self._delete(other_key)

    # ---- HTTP -----------------------------------------------------------------------------------

    @staticmethod
    def _parse_path(path: str):
        """-> (group_version, plural, namespace or None, name or None, subresource or None)."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"]:
            gv, rest = parts[1], parts[2:]
        elif parts[:1] == ["apis"]:
            gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        ns = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        if not rest:
            return None
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return gv, plural, ns, name, sub

    def _send_json(self, handler, code: int, body: dict):
        data = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler, method: str):
        url = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type", "")
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._send_json(handler, 400, _status(400, "BadRequest", "body is not JSON"))
                return
        with self.lock:
            self.requests.append({"method": method, "path": url.path, "query": query,
                                  "content_type": content_type, "body": body})
            self.lock.notify_all()
        if self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
            self._send_json(handler, 401, _status(401, "Unauthorized", "Unauthorized"))
            return
        parsed = self._parse_path(url.path)
        if parsed is None:
            self._send_json(handler, 404, _status(404, "NotFound", f"unknown path {url.path}"))
            return
        gv, plural, ns, name, sub = parsed
        if method == "GET" and name is None and query.get("watch") in ("true", "1"):
            self._watch(handler, gv, plural, ns, query)
            return
        with self.lock:
            code, out = self._dispatch(method, gv, plural, ns, name, sub, query, content_type, body)
        self._send_json(handler, code, out)

    def _dispatch(self, method, gv, plural, ns, name, sub, query, content_type, body):
        key = (gv, plural, ns, name)
        if method == "GET" and name is None:
            items = [copy.deepcopy(o) for k, o in sorted(self.objects.items())
                     if k[0] == gv and k[1] == plural and (ns is None or k[2] == ns)]
            return 200, {"kind": "List", "apiVersion": gv,
                         "metadata": {"resourceVersion": str(self.rv)}, "items": items}
        if name is None or ns is None:
            return 405, _status(405, "MethodNotAllowed", "not supported by the fake")
        existing = self.objects.get(key)
        if method == "GET":
            if existing is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            return 200, copy.deepcopy(existing)
        if method == "POST":
            return 405, _status(405, "MethodNotAllowed", "create with apply")
        if method == "DELETE":
            gone = self._delete(key)
            if gone is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            return 200, copy.deepcopy(gone)
        # PATCH
        if body is None:
            return 400, _status(400, "BadRequest", "empty patch")
        if content_type.startswith("application/apply-patch"):
            if sub:
                return 405, _status(405, "MethodNotAllowed", "apply to a subresource")
            manager = query.get("fieldManager")
            if not manager:
                return 400, _status(400, "BadRequest",
                                    "PATCH, fieldManager is required for apply requests")
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if meta.get("name") != name or (meta.get("namespace") not in (None, ns)):
                return 400, _status(400, "BadRequest", "name/namespace of body and URL differ")
            meta["managedFields"] = [{"manager": manager, "operation": "Apply",
                                      "apiVersion": obj.get("apiVersion")}]
            if existing is None:
                return 201, copy.deepcopy(self._create(key, obj))
            if "status" in existing:
                obj["status"] = existing["status"]
            return 200, copy.deepcopy(self._update(key, obj))
        if content_type.startswith("application/merge-patch+json"):
            if existing is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != existing["metadata"]["resourceVersion"]:
                return 409, _status(409, "Conflict",
                                    "the object has been modified; please apply your changes to "
                                    "the latest version and try again")
            if sub == "status":
                obj = merge_patch(existing, {"status": body.get("status")})
            else:
                patch = {k: v for k, v in body.items() if k != "status"}
                obj = merge_patch(existing, patch)
            return 200, copy.deepcopy(self._update(key, obj))
        return 415, _status(415, "UnsupportedMediaType", f"content type {content_type}")

    def _watch(self, handler, gv, plural, ns, query):
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.watches_suspended and not self.stopping:
                self.lock.wait(0.2)
            epoch = self.watch_epoch
            self.active_watches += 1
            self.lock.notify_all()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(data: bytes):
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        try:
            with self.lock:
                expired = since < self.compacted
            if expired:
                chunk(json.dumps({"type": "ERROR", "object": _status(
                    410, "Expired", f"too old resource version: {since} ({self.compacted})")}
                ).encode() + b"\n")
            else:
                position = since
                while True:
                    with self.lock:
                        while True:
                            pending = [e for e in self.events if e[0] > position and
                                       (ns is None or e[2]["metadata"]["namespace"] == ns)]
                            if (pending or self.watch_epoch != epoch or self.stopping or
                                    time.monotonic() >= deadline):
                                break
                            self.lock.wait(0.2)
                        if not pending:
                            break
                    for rv, kind, obj in pending:
                        chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                        position = rv
            chunk(b"")  # end of the chunked body
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self.lock:
                self.active_watches -= 1
                self.lock.notify_all()
