"""The cancellation feed end to end (PROTOCOL §7): real sidecars follow a real gateway's feed, and
the gateway is killed and restarted mid-job. A job cancelled on the restarted gateway while its
envelope waits in a queue stops at the next actor, and the sidecar's feed comes back on its own."""
import json
import pathlib
import shutil
import signal
import tempfile
import uuid

import pytest

from e2e_routes import ROUTES
from gateway_harness import Gateway, http_json, wait_until
from sidecar_harness import Cluster

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture
def system(build_path):
    tmp = tempfile.mkdtemp(prefix="asya-cf-", dir="/tmp")
    cluster = Cluster("sqlite", build_path, tmp, handlers_dir=HERE, handler_module="e2e_handlers")
    gateway = Gateway(build_path / "src" / "gateway" / "asya-gateway", tmp, ROUTES,
                      {"ASYA_SQLITE_PATH": cluster.env["ASYA_SQLITE_PATH"],
                       "ASYA_GATEWAY_POLL_INTERVAL": "200ms"}).start()
    env = {"ASYA_GATEWAY_URL": gateway.url}
    try:
        cluster.actor("slow-first", "slow_first", env=env)
        cluster.actor("slow-second", "slow_second", env=env)
        for name in ("happy-end", "error-end"):
            cluster.actor(name, runtime=False, env=env)
        yield cluster, gateway
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
        gateway.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def start(gateway, tag, sleep):
    status, answer, _ = http_json("POST", gateway.url + "/tools/call",
                                  {"name": "slow_task", "arguments": {"tag": tag, "sleep": sleep}})
    assert status == 200, answer
    return answer["structuredContent"]["job_id"]


def test_a_job_cancelled_on_a_restarted_gateway_stops_at_the_next_actor(system):
    cluster, gateway = system
    first_actor = cluster.actors[0]
    running, queued = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    running_job = start(gateway, running, 4)
    wait_until(lambda: cluster.markers_named(running + "."), 30, "slow-first to start")
    # slow-first takes one message at a time: this one waits in its queue.
    queued_job = start(gateway, queued, 0)
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait()
    wait_until(lambda: "cancellation feed GET" in first_actor.sidecar.text(), 30,
               "the sidecar to notice the feed is gone")
    gateway.start()  # the same port and job store
    status, answer, _ = http_json("POST", "%s/envelopes/%s/cancel" % (gateway.url, queued_job), {})
    assert status == 200 and answer["status"] == "cancelled", answer
    results = cluster.results
    wait_until(lambda: (results / ("%s.json" % queued_job)).exists(), 60, "the cancelled job's end")
    out = json.loads((results / ("%s.json" % queued_job)).read_text())
    assert out["payload"]["error"] == "cancelled", out
    assert "before actor slow-first started" in out["payload"]["details"]["message"], out
    assert cluster.markers_named(queued + ".") == []  # its handler never ran
    # The job that was not cancelled goes on to its result.
    wait_until(lambda: (results / ("%s.json" % running_job)).exists(), 60, "the running job's end")
    assert cluster.markers_named(running + ".") == [running + ".slow-first", running + ".slow-second"]
    # The feed came back by itself (the sidecar follows the restarted gateway again).
    wait_until(lambda: "cancellation feed answers again" in first_actor.sidecar.text(), 30,
               "the feed to answer again")
