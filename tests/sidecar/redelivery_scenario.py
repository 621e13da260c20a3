"""Duplicate handler calls after a broker fault, measured end to end.

`run()` starts a RabbitMQ node of its own (tests/services/rabbitmq.py), a two-actor pipeline
(`first` -> `second`, real sidecars and Python runtimes, handler `enrich_counted`, which records
every call), sends `messages` envelopes to `asya-first`, and once the pipeline is busy (a quarter
of them at `asya-happy-end`) hits the broker with `fault`:

- "stop": a graceful stop (`rabbitmqctl stop`), then a start on the same data;
- "kill": SIGKILL of the node (a crash), then a start on the same data (crash recovery).

It then waits until every message reached happy-end and the broker holds nothing for either actor
(ready and unacked both 0, asked with rabbitmqctl: nothing more will run), and returns what
happened: duplicate handler calls per actor, the sidecars' `asya_actor_redeliveries_total`, lost
ids (must be none), and the raw metrics text of each sidecar.

The queues are declared first and the messages sent no sooner than QUEUE_AGE_BEFORE_FAULT seconds
later: RabbitMQ 3.10 can lose the Raft metadata of a quorum queue created a moment before the node
is SIGKILLed, and that queue then never elects a leader again ("leader not known" in the broker
log; every publish to it is nacked, every consume times out). That is a broker defect on brand-new
queues, not the in-flight duplicates measured here.

Used by tests/sidecar/test_rabbitmq_duplicates.py (a few hundred messages, one fault) and by
bench/redelivery/rabbitmq_duplicates.py (2,000 messages, each queue type and fault: the table in
docs/transports.md).
"""
import collections
import json
import pathlib
import re
import shutil
import sys
import tempfile
import time

from sidecar_harness import Cluster, rabbitmq_service, wait_for

HAPPY = "asya-happy-end"
ACTORS = ("first", "second")
QUEUE_AGE_BEFORE_FAULT = 10.0  # seconds (see above)


def _drain(cluster, arrived, max_messages=200, wait="1s"):
    """One `asya-queue recv --ack` on happy-end, tolerant of a broker that is down."""
    proc = cluster.queues._run("recv", HAPPY, "--max", str(max_messages), "--wait", wait, "--ack",
                               check=False)
    for line in proc.stdout.decode().splitlines():
        if line.strip():
            envelope = json.loads(json.loads(line)["body"])
            arrived[envelope["id"]] += 1
    return proc.returncode


def _broker_counts(broker, queue):
    """(ready, unacked) of `queue` as the broker knows them (all consumers), or None."""
    proc = broker.ctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready",
                      "messages_unacknowledged", timeout=60, check=False)
    if proc.returncode != 0:
        return None
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    return None


def redeliveries(metrics_text, queue):
    """The value of asya_actor_redeliveries_total{queue=...} in a sidecar's metrics text."""
    m = re.search(r'^asya_actor_redeliveries_total\{queue="%s",transport="rabbitmq"\} (\S+)$'
                  % re.escape(queue), metrics_text, re.M)
    return int(float(m.group(1))) if m else None


def run(build_path, messages, queue_type, fault, concurrency=2, prefetch=10, sleep=0.005,
        log=sys.stderr):
    if fault not in ("stop", "kill"):
        raise ValueError("fault must be stop or kill, not %r" % fault)
    broker = rabbitmq_service.Broker()
    tmp = tempfile.mkdtemp(prefix="asya-dup-", dir="/tmp")
    cluster = None
    try:
        broker.start()
        cluster = Cluster("rabbitmq", build_path, tmp, {
            "ASYA_RABBITMQ_URL": broker.url,
            "ASYA_RABBITMQ_QUEUE_TYPE": queue_type,
        })
        env = {"ASYA_CONCURRENCY": str(concurrency), "ASYA_HANDLER_THREAD_SAFE": "true",
               "ASYA_RABBITMQ_PREFETCH": str(prefetch),
               # A send waits across the outage (a restart takes seconds on a busy machine).
               "ASYA_RABBITMQ_CONFIRM_TIMEOUT": "3m"}
        for queue in ["asya-" + name for name in ACTORS] + [HAPPY]:
            cluster.queues.ensure(queue)
        declared = time.monotonic()
        actors = {name: cluster.actor(name, "enrich_counted", env=env) for name in ACTORS}
        batch = pathlib.Path(tmp) / "batch.jsonl"
        batch.write_text("".join(
            json.dumps({"id": "d%d" % i, "route": {"actors": list(ACTORS), "current": 0},
                        "payload": {"i": i, "sleep": sleep}}, separators=(",", ":")) + "\n"
            for i in range(messages)))
        # A deliberate wait, not a hope: the broker needs the queues to be this old (see above).
        time.sleep(max(0.0, QUEUE_AGE_BEFORE_FAULT - (time.monotonic() - declared)))
        cluster.queues._run("send", "asya-first", "@" + str(batch), "--lines")

        arrived = collections.Counter()
        wait_for(lambda: _drain(cluster, arrived, max_messages=50, wait="200ms") == 0
                 and len(arrived) >= messages // 4, 300,
                 "%d messages at happy-end before the fault" % (messages // 4))
        before = len(arrived)
        if before >= messages:
            raise AssertionError("the pipeline finished before the fault; nothing was measured")
        started = time.monotonic()
        if fault == "stop":
            broker.stop()
        else:
            broker.kill()
        broker.start()
        fault_seconds = time.monotonic() - started

        deadline = time.monotonic() + 600
        while len(arrived) < messages and time.monotonic() < deadline:
            _drain(cluster, arrived)
        lost = sorted(set("d%d" % i for i in range(messages)) - set(arrived),
                      key=lambda x: int(x[1:]))
        if not lost:
            # Nothing left for either actor, as the broker counts it (every consumer included):
            # every handler call that will ever happen has happened.
            for name in ACTORS:
                wait_for(lambda q="asya-" + name: _broker_counts(broker, q) == (0, 0), 300,
                         "asya-%s to hold no ready or unacked message" % name, interval=1)
            while _drain(cluster, arrived, wait="500ms") == 0 and _broker_counts(broker, HAPPY) != (0, 0):
                pass

        calls = {}
        for name in ACTORS:
            path = cluster.markers / ("calls-%s.log" % name)
            lines = path.read_text().split() if path.exists() else []
            calls[name] = collections.Counter(lines[1::2])
        metrics = {name: actors[name].metrics() for name in ACTORS}
        result = {
            "messages": messages,
            "queue_type": queue_type,
            "fault": fault,
            "concurrency": concurrency,
            "prefetch": prefetch,
            "at_happy_end_before_fault": before,
            "fault_seconds": round(fault_seconds, 1),
            "unique_at_happy_end": len(arrived),
            "lost": lost,
            "handler_calls": {n: sum(c.values()) for n, c in calls.items()},
            "duplicate_calls": {n: sum(v - 1 for v in c.values()) for n, c in calls.items()},
            "never_called": {n: messages - len(c) for n, c in calls.items()},
            "redeliveries": {n: redeliveries(metrics[n], "asya-" + n) for n in ACTORS},
            "happy_end_duplicates": sum(v - 1 for v in arrived.values()),
            "metrics": metrics,
        }
        result["duplicate_calls_total"] = sum(result["duplicate_calls"].values())
        if lost:
            queues = broker.ctl("list_queues", "name", "type", "messages_ready",
                                "messages_unacknowledged", "consumers", "state", check=False)
            log.write("--- lost %d message(s); the broker's queues:\n%s%s\n--- broker log:\n%s\n%s" % (
                len(lost), queues.stdout, queues.stderr, broker.server_output()[-4000:],
                cluster.logs()))
        log.write("%s/%s (prefetch %d): %d messages, %d at happy-end before the fault (%.1fs), duplicate handler "
                  "calls %s (total %d), redeliveries %s, lost %d\n" % (
                      queue_type, fault, prefetch, messages, before, fault_seconds, result["duplicate_calls"],
                      result["duplicate_calls_total"], result["redeliveries"], len(lost)))
        return result
    except BaseException:
        if cluster is not None:
            log.write(cluster.logs())
        raise
    finally:
        if cluster is not None:
            cluster.stop()
        broker.discard()
        shutil.rmtree(tmp, ignore_errors=True)
