"""A join sidecar's memory does not grow with its group (PROTOCOL §4a, issue 13): the branch list
is streamed from the join store to the runtime one branch at a time, so the sidecar that joins
10,000 branches of 2 kB (a 20 MB join input) peaks at about what it peaks at for 1,000 (2 MB).
Peak = VmHWM from /proc of the sidecar process, read after its group was published. The
100,000-branch figure is bench/run's join_rss_100k row (docs/performance.md)."""
import json
import os
import tempfile

import pytest

from test_sidecar import HAPPY

BRANCH_CHARS = 2000


def send_group(cluster, actor, width):
    """Queues one group of `width` branches straight into `actor`'s queue, as a split's fan-out
    leaves them (asya-queue send --lines: one process for the whole group)."""
    filler = "x" * BRANCH_CHARS
    fd, path = tempfile.mkstemp(dir=cluster.tmp, suffix=".jsonl")
    with os.fdopen(fd, "w") as f:
        for i in range(width):
            f.write(json.dumps({
                "id": "%s-%d" % (actor, i), "route": {"actors": ["split", actor], "current": 1},
                "headers": {"asya-fanout": [{"group": actor + "@0", "index": i, "count": width}]},
                "payload": filler}, separators=(",", ":")) + "\n")
    cluster.queues._run("send", "asya-" + actor, "@" + path, "--lines")


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


@pytest.mark.parametrize("cluster", ["sqlite"], indirect=True)
def test_the_join_sidecars_peak_memory_does_not_grow_with_its_group(cluster):
    peaks = {}
    for width in (1_000, 10_000):
        name = "join-%d" % width
        actor = cluster.actor(name, "count_parts", env={
            "ASYA_JOIN": "true", "ASYA_JOIN_STORE": "sqlite://%s/joins.db" % cluster.tmp,
            "ASYA_JOIN_TIMEOUT": "10m", "ASYA_RUNTIME_TIMEOUT": "120s"})
        send_group(cluster, name, width)
        out = cluster.queues.collect(HAPPY, 1, timeout=300)[0]["json"]
        assert out["id"] == name
        assert out["payload"] == {"n": width, "chars": width * BRANCH_CHARS, "last": "xxxxxxxx"}
        assert actor.sidecar.alive()
        peaks[width] = peak_rss_kb(actor.sidecar.popen.pid)
        actor.stop()
    grown_mb = (peaks[10_000] - peaks[1_000]) / 1024.0
    input_grown_mb = 9_000 * BRANCH_CHARS / 1e6
    # Holding the input whole would add at least its 18 MB (a string built by doubling: up to
    # about 30 MB); streaming adds nothing that depends on the group.
    assert grown_mb < 6, "peak %s kB: grew by %.1f MB while the join input grew by %.0f MB" % (
        peaks, grown_mb, input_grown_mb)
