"""Payload objects the sidecar may not read (docs/protocol.md §10, "Readers"), with a real sidecar,
a real Python runtime, SQLite and a file store.

An object whose own permissions deny the sidecar's user (here mode 000) is a property of that
object that no redelivery changes: the envelope goes to error-end at once as payload_unavailable,
naming the file's mode and owner and the sidecar's user; the handler is never called. A store
directory the sidecar cannot enter is the whole store misconfigured: a store error, the input is
nacked and delivered again, and once the directory is fixed the message goes through, nothing lost.

The tests run as root, whom permissions do not stop (CAP_DAC_OVERRIDE): the sidecar under test is
started by setpriv without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (still uid 0, the owner of every
file the test made, so only the mode bits deny it), as a sidecar running as another user is."""
import json
import os
import subprocess

import pytest

from sidecar_harness import Process, wait_for
from test_payload import reference_to, result, start, use_store

WITHOUT_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def sidecar_without_permission_override(cluster, name, handler):
    """Starts actor `name` whose sidecar is not exempt from file permissions."""
    prefix = []
    if os.geteuid() == 0:
        probe = subprocess.run(WITHOUT_OVERRIDE + ["true"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip("cannot start a process without CAP_DAC_OVERRIDE here (setpriv: %s): as "
                        "root, no file permission would deny the sidecar" % probe.stderr.strip())
        prefix = WITHOUT_OVERRIDE
    actor = start(cluster, name, handler, start_sidecar=False)
    actor.sidecar = Process(prefix + [str(cluster.sidecar_bin)], actor.env, str(actor.dir / "sidecar.log"))
    actor.wait_ready()
    return actor


def stored(store, text):
    data = json.dumps({"data": text, "tag": "locked"}).encode()
    ref = reference_to(store, data)
    store.write("objects/" + ref["asya-payload-ref"]["sha256"], data)
    return data, ref


def failures(actor, reason):
    for line in actor.metrics().splitlines():
        if line.startswith("asya_actor_messages_failed_total{") and 'reason="%s"' % reason in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_an_object_the_sidecar_may_not_read_goes_to_error_end_at_once(cluster, request):
    if cluster.transport != "sqlite":
        pytest.skip("the file store's permissions; once on sqlite")
    store = use_store(cluster, request)
    data, ref = stored(store, "x" * 300000)
    sha = ref["asya-payload-ref"]["sha256"]
    os.chmod(store.dir / "objects" / sha, 0)
    reader = sidecar_without_permission_override(cluster, "pass-one", "passthrough")
    start(cluster, "error-end", runtime=False)
    cluster.queues.send("asya-pass-one", {"id": "LOCKED", "route": {"actors": ["pass-one"], "current": 0},
                                          "payload": ref})
    got = result(cluster, "LOCKED", timeout=60)["payload"]
    assert got["error"] == "payload_unavailable", got
    message = got["details"]["message"]
    assert sha in message and "may not be read" in message and "mode 0000" in message, message
    assert "Permission denied" in message, message
    # The error end (not restricted here) resolved the original payload: nothing was lost.
    assert got["original_payload"] == json.loads(data)
    assert cluster.markers_named("called-pass-one") == [], "the handler was called"
    assert failures(reader, "payload_unavailable") == 1
    assert failures(reader, "payload_store_error") == 0, "it was retried as a store error"


def test_a_store_directory_the_sidecar_cannot_enter_is_retried_until_it_is_fixed(cluster, request):
    if cluster.transport != "sqlite":
        pytest.skip("the file store's permissions; once on sqlite")
    store = use_store(cluster, request, ASYA_MAX_DELIVERIES="1000")
    data, ref = stored(store, "y" * 300000)
    objects = store.dir / "objects"
    os.chmod(objects, 0)
    try:
        reader = sidecar_without_permission_override(cluster, "pass-one", "passthrough")
        start(cluster, "happy-end", runtime=False)
        cluster.queues.send("asya-pass-one", {"id": "CLOSED", "route": {"actors": ["pass-one"], "current": 0},
                                              "payload": ref})
        wait_for(lambda: failures(reader, "payload_store_error") >= 2, 60, "the input to be retried")
        assert "cannot enter the store's directories" in reader.sidecar.text()
        assert not (cluster.results / "CLOSED.json").exists()
    finally:
        os.chmod(objects, 0o755)
    got = result(cluster, "CLOSED", timeout=60)
    assert got["payload"] == json.loads(data)
    assert failures(reader, "payload_unavailable") == 0
