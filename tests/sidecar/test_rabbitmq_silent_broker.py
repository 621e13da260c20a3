"""A RabbitMQ broker that goes silent: its Erlang VM is frozen with SIGSTOP (as a frozen host or
a network partition would look: the TCP connections stay open, nothing arrives, nothing is
refused). Only the AMQP heartbeat (ASYA_RABBITMQ_HEARTBEAT) can tell.

Through a real sidecar and Python runtime on a broker of its own (freezing the session broker
would stall every other test): one message is processed normally; a second is held in the
handler while the broker is frozen, a third waits behind it. The sidecar must name the lost
heartbeat within a generous deadline, stay up (not ready, as documented), drop the held message's
outputs instead of publishing them on a connection that is gone (it is delivered again), and
after SIGCONT process the held and the waiting message and the ones sent afterwards: nothing lost,
duplicates counted (at-least-once). One broker start; the test takes about 15 s.
The broker is always resumed and stopped, also when the test fails.
"""
import collections
import json
import os
import pathlib
import shutil
import signal
import sys
import tempfile

import pytest

from sidecar_harness import Cluster, rabbitmq_service, wait_for

pytestmark = pytest.mark.skipif(not rabbitmq_service.available(),
                                reason="rabbitmq-server is not installed (run scripts/setup)")

HAPPY = "asya-happy-end"
AFTER = 5  # messages sent after the broker resumed


def beam_pid(broker):
    """The broker's Erlang VM, the process that holds its sockets (RABBITMQ_PID_FILE holds its
    pid: the Debian start script execs beam.smp)."""
    pid = int((broker.dir / "rabbitmq.pid").read_text().split()[0])
    comm = pathlib.Path("/proc/%d/comm" % pid).read_text().strip()
    assert comm == "beam.smp", "rabbitmq.pid names %d (%s), not the Erlang VM" % (pid, comm)
    return pid


def envelope(tag):
    return {"id": tag, "route": {"actors": ["first"], "current": 0}, "payload": {"tag": tag}}


def drain(cluster, arrived):
    proc = cluster.queues._run("recv", HAPPY, "--max", "50", "--wait", "500ms", "--ack", check=False)
    for line in proc.stdout.decode().splitlines():
        if line.strip():
            body = json.loads(json.loads(line)["body"])
            assert body["payload"]["visited"] == ["first"], body
            arrived[body["id"]] += 1


def delivery_lost(actor):
    """asya_actor_messages_failed_total{reason="delivery_lost"}, summed over its other labels."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in actor.metrics().splitlines()
               if line.startswith("asya_actor_messages_failed_total{")
               and 'reason="delivery_lost"' in line)


def test_frozen_broker_is_noticed_by_heartbeat_and_nothing_is_lost(build_path):
    with rabbitmq_service.broker() as broker:
        tmp = tempfile.mkdtemp(prefix="asya-sb-", dir="/tmp")
        cluster = Cluster("rabbitmq", build_path, tmp, {"ASYA_RABBITMQ_URL": broker.url})
        markers = pathlib.Path(cluster.markers)
        frozen = False
        try:
            pid = beam_pid(broker)
            actor = cluster.actor("first", "gated", env={
                "ASYA_RABBITMQ_HEARTBEAT": "2s",
                # A send waits across the outage rather than failing it.
                "ASYA_RABBITMQ_CONFIRM_TIMEOUT": "2m"})
            arrived = collections.Counter()
            (markers / "gate-ok").touch()
            cluster.queues.send("asya-first", envelope("ok"))
            wait_for(lambda: drain(cluster, arrived) or arrived["ok"], 60, "the first message at happy-end")

            # The held message: in the handler when the broker freezes; the queued one waits behind
            # it (prefetched by the sidecar, or still in the queue).
            (markers / "gate-queued").touch()
            cluster.queues.send("asya-first", envelope("held"))
            cluster.queues.send("asya-first", envelope("queued"))
            wait_for(lambda: cluster.markers_named("start-held-"), 60, "the held message's handler to start")
            os.kill(pid, signal.SIGSTOP)
            frozen = True

            def lost(role):
                return [line for line in actor.sidecar.text().splitlines()
                        if "rabbitmq %s: connection lost" % role in line]
            # Two missed heartbeats (4 s) are the bound; the deadline is generous for a loaded machine.
            for role in ("consumer", "publisher"):
                wait_for(lambda: lost(role), 60, "the sidecar to log that the %s lost the broker" % role)
                assert "no heartbeat from the broker for 4 s" in lost(role)[0], lost(role)[0]
            assert actor.sidecar.alive(), actor.logs()

            # The handler finishes during the freeze: its delivery belongs to the lost connection,
            # so its output is dropped (the broker delivers the message again), not published.
            (markers / "gate-held").touch()
            wait_for(lambda: delivery_lost(actor) >= 1, 60,
                     "the held message's outputs to be dropped as delivery_lost")
            # The worker's next receive() fails while the consumer cannot reconnect.
            wait_for(lambda: not actor.readyz(), 60, "/readyz to turn 503 while the broker is frozen")
            assert actor.sidecar.alive(), actor.logs()

            os.kill(pid, signal.SIGCONT)
            frozen = False
            actor.wait_ready(timeout=120)
            tags = ["after%d" % i for i in range(AFTER)]
            for tag in tags:
                (markers / ("gate-" + tag)).touch()
                cluster.queues.send("asya-first", envelope(tag))
            expected = {"ok", "held", "queued", *tags}
            wait_for(lambda: drain(cluster, arrived) or expected <= set(arrived), 120,
                     "every message at happy-end after the broker resumed")
            assert set(arrived) == expected, arrived
            duplicates = sum(n - 1 for n in arrived.values())
            sys.stderr.write("frozen broker: %d/%d unique at happy-end, %d duplicate(s); %s\n" %
                             (len(arrived), len(expected), duplicates, lost("consumer")[0]))
            assert actor.sidecar.alive(), actor.logs()
            wait_for(lambda: cluster.queues.empty("asya-first"), 60, "asya-first to be empty")
        except BaseException:
            sys.stderr.write(cluster.logs())
            raise
        finally:
            if frozen:
                os.kill(pid, signal.SIGCONT)  # or stopping the broker would wait on a frozen node
            cluster.stop()
            shutil.rmtree(tmp, ignore_errors=True)
