"""The file store's verified mark (docs/protocol.md §10 "Verified objects") with real sidecars, real
Python runtimes and SQLite: the writer marks the object it stored, so the next hop does not hash
it; an object changed in the store after it was marked (same size, even with its modification
time restored) is hashed again and goes to error-end as payload_unavailable, never to the
handler."""
import os
import time

import pytest

from sidecar_harness import wait_for
from test_payload import result, start, use_store

MARK = "user.asya.verified"


def marked_object(cluster, store, tag):
    """`make` writes a 1 MB output (a reference); it waits in asya-pass-one, not consumed yet.
    Returns the object's path and sha256."""
    start(cluster, "make", "make_big")
    cluster.queues.send("asya-make", {"id": "V-" + tag, "route": {"actors": ["make", "pass-one"],
                                                                   "current": 0},
                                      "payload": {"bytes": 1024 * 1024, "tag": tag}})
    wait_for(lambda: cluster.queues.stats("asya-pass-one")["ready"] == 1, 60,
             "the output in asya-pass-one")
    (key,) = store.objects()
    path = store.dir / key
    return path, key.split("/", 1)[1]


def tamper_in_place(path):
    """One byte changed, same size, same file (inode)."""
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(b"Q" if byte != b"Q" else b"R")


@pytest.mark.parametrize("damage", ["rewritten", "rewritten-mtime-restored"])
def test_an_object_changed_after_its_writer_marked_it_goes_to_error_end(cluster, request, damage):
    if cluster.transport != "sqlite":
        pytest.skip("the mark is the file store's; once on sqlite")
    store = use_store(cluster, request)
    path, sha = marked_object(cluster, store, "t")
    # The writer (make's sidecar) marked the object with its digest, size and file state.
    mark = os.getxattr(path, MARK).decode()
    assert "sha256=%s" % sha in mark and "size=%d" % path.stat().st_size in mark, mark
    before = path.stat()
    if damage == "rewritten-mtime-restored":
        # A change that restores the modification time is caught by the change time, once the
        # mark is older than its settle time (100 ms, kMarkSettle): a precondition, waited for.
        wait_for(lambda: time.time_ns() - path.stat().st_ctime_ns > 300_000_000, 10,
                 "the mark to settle")
    tamper_in_place(path)
    if damage == "rewritten-mtime-restored":
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_size == before.st_size
    start(cluster, "pass-one", "passthrough")
    start(cluster, "error-end", runtime=False)
    got = result(cluster, "V-t")
    assert got["payload"]["error"] == "payload_unavailable", got["payload"]
    assert sha in got["payload"]["details"]["message"]
    assert "does not match its reference" in got["payload"]["details"]["message"]
    assert cluster.markers_named("called-pass-one") == [], "the handler was called"


def test_an_untouched_marked_object_passes_and_the_reader_leaves_its_mark(cluster, request):
    if cluster.transport != "sqlite":
        pytest.skip("the mark is the file store's; once on sqlite")
    store = use_store(cluster, request)
    path, sha = marked_object(cluster, store, "ok")
    mark = os.getxattr(path, MARK)
    ctime = path.stat().st_ctime_ns
    start(cluster, "pass-one", "passthrough")
    start(cluster, "happy-end", runtime=False)
    got = result(cluster, "V-ok")  # pass-one's output; the end actor resolved its reference
    assert len(got["payload"]["data"]) == 1024 * 1024
    # The reader trusted the mark: it did not mark the file again (which would move its change
    # time), and the mark is the writer's.
    assert os.getxattr(path, MARK) == mark
    assert path.stat().st_ctime_ns == ctime
    assert cluster.markers_named("called-pass-one-ok") == ["called-pass-one-ok"]
