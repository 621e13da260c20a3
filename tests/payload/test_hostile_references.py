"""Hostile payload references and hostile object files (docs/protocol.md §10) with a real sidecar,
a real Python runtime and SQLite: every reference a malicious envelope can carry (a path out of
the store, an encoded one, a NUL, a very long url, another store, a size that is not the object's)
and every object file that is not a regular file (a FIFO, a directory, a symlink out of the store)
ends on error-end with payload_unavailable naming the reference; the handler is never called,
nothing hangs, nothing else is lost."""
import hashlib
import json
import os
import pathlib

import pytest

from test_payload import reference_to, result, start, use_store, without_hold

MB = 1024 * 1024


def sqlite_only(cluster):
    if cluster.transport != "sqlite":
        pytest.skip("the checks are the sidecar's; once on sqlite")


def send(cluster, envelope_id, payload):
    cluster.queues.send("asya-pass-one", {"id": envelope_id, "route": {"actors": ["pass-one"], "current": 0},
                                          "payload": payload})


def ref(url, size, sha):
    return {"asya-payload-ref": {"url": url, "size": size, "sha256": sha}}


def test_malicious_references_end_on_error_end_naming_the_reference(cluster, request):
    sqlite_only(cluster)
    store = use_store(cluster, request)
    data = json.dumps({"data": "x" * 300000}).encode()
    sha = hashlib.sha256(data).hexdigest()
    store.write("objects/" + sha, data)
    outside = pathlib.Path(cluster.tmp) / "secret"
    outside.write_bytes(data)
    base = store.url
    cases = {
        "traversal": ref("%s/objects/../../secret" % base, len(data), sha),
        "traversal-in-key": ref("%s/../payloads/objects/%s" % (base, sha), len(data), sha),
        "encoded": ref("%s/objects%%2F..%%2F..%%2Fsecret" % base, len(data), sha),
        "absolute": ref("file://%s" % outside, len(data), sha),
        "nul": ref("%s/objects/%s\u0000x" % (base, sha), len(data), sha),
        "long": ref("%s/objects/%s" % (base, "a" * 3000), len(data), sha),
        "other-store": ref("file:///elsewhere/objects/%s" % sha, len(data), sha),
        "bigger": ref("%s/objects/%s" % (base, sha), len(data) + 1, sha),
        "smaller": ref("%s/objects/%s" % (base, sha), len(data) - 1, sha),
        "huge": ref("%s/objects/%s" % (base, sha), 2 ** 63, sha),
        "max": ref("%s/objects/%s" % (base, sha), 2 ** 64 - 1, sha),
        "zero": ref("%s/objects/%s" % (base, sha), 0, sha),
        "negative": ref("%s/objects/%s" % (base, sha), -5, sha),
        "float": ref("%s/objects/%s" % (base, sha), 1.5, sha),
        "upper-sha": ref("%s/objects/%s" % (base, sha.upper()), len(data), sha.upper()),
    }
    start(cluster, "pass-one", "passthrough")
    start(cluster, "error-end", runtime=False)
    start(cluster, "happy-end", runtime=False)
    for name, payload in cases.items():
        send(cluster, "R-" + name, payload)
    send(cluster, "R-good", reference_to(store, data))  # behind them all: still served
    for name, payload in cases.items():
        got = result(cluster, "R-" + name, timeout=60)
        assert got["payload"]["error"] == "payload_unavailable", (name, got["payload"])
        assert got["payload"]["original_payload"] == payload, name
        assert "payload reference" in got["payload"]["details"]["message"] or \
            sha in got["payload"]["details"]["message"], (name, got["payload"]["details"])
    assert len(result(cluster, "R-good")["payload"]["data"]) == 300000
    assert cluster.markers_named("called-pass-one") == ["called-pass-one-x"]  # R-good only
    assert "secret" not in json.dumps([p.name for p in store.dir.rglob("*")])


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink-out"])
def test_an_object_that_is_not_a_regular_file_ends_on_error_end_without_hanging(cluster, request, kind):
    sqlite_only(cluster)
    store = use_store(cluster, request)
    data = json.dumps({"data": "z" * 300000, "kind": kind}).encode()
    sha = hashlib.sha256(data).hexdigest()
    path = store.dir / "objects" / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink-out":
        outside = pathlib.Path(cluster.tmp) / "outside"
        outside.write_bytes(data.replace(b"z", b"w"))
        path.symlink_to(outside)
    start(cluster, "pass-one", "passthrough")
    start(cluster, "error-end", runtime=False)
    send(cluster, "O-" + kind, reference_to(store, data))
    got = result(cluster, "O-" + kind, timeout=60)
    assert got["payload"]["error"] == "payload_unavailable", got["payload"]
    assert sha in got["payload"]["details"]["message"]
    assert cluster.markers_named("called-pass-one") == [], "the handler was called"


def test_an_unchanged_answer_whose_input_object_vanished_meanwhile_ends_on_the_next_hops_error_end(
        cluster, request):
    """docs/protocol.md §3: a payload_unchanged answer to a reference forwards that reference with
    nothing read or written; when its object was removed while the handler ran, the next reader
    finds it missing and the envelope ends on error-end as payload_unavailable, never lost
    silently and never a handler call with a reference."""
    sqlite_only(cluster)
    store = use_store(cluster, request)
    data = json.dumps("v" * 300000).encode()  # a string: answered unchanged by the Python runtime
    ref = reference_to(store, data)
    store.write("objects/" + ref["asya-payload-ref"]["sha256"], data)
    vanish = start(cluster, "vanish", "vanish_then_pass", env={"ASYA_LOG_LEVEL": "debug"})
    start(cluster, "pass-one", "passthrough")
    start(cluster, "error-end", runtime=False)
    cluster.queues.send("asya-vanish", {"id": "GONE", "route": {"actors": ["vanish", "pass-one"], "current": 0},
                                        "payload": ref})
    got = result(cluster, "GONE", timeout=60)
    assert got["payload"]["error"] == "payload_unavailable", got["payload"]
    assert got["payload"]["actor"] == "pass-one"
    # vanish forwarded the object under its output's own hold token.
    assert without_hold(got["payload"]["original_payload"]) == ref
    assert ref["asya-payload-ref"]["sha256"] in got["payload"]["details"]["message"]
    assert store.objects() == [], "the unchanged answer wrote the payload again"
    assert cluster.markers_named("called-pass-one") == []
    assert cluster.markers_named("saw-reference-") == []
    lines = [json.loads(line) for line in vanish.runtime.text().splitlines() if line.startswith("{")]
    assert [line["outputs"] for line in lines if line["msg"] == "answered payload_unchanged"] == [1], lines
