"""The gateway's cancellation feed as a sidecar follows it (PROTOCOL §7 GET
/envelopes/cancellations), against the recording gateway of sidecar_harness playing the feed: with
a live feed a cancelled job stops at the next actor with no check per message; a gateway without
the feed, or one whose feed answers garbage, gets a check per message as before."""
import pytest

from sidecar_harness import running_cluster, wait_for
from test_sidecar import ERROR, HAPPY, envelope, only


@pytest.fixture
def sqlite_cluster(request, build_path):
    with running_cluster(request, build_path, "sqlite") as c:
        yield c


def reports_about(gateway, id_):
    return [(path.rsplit("/", 1)[1], body) for path, body in gateway.snapshot()
            if path.startswith("/envelopes/%s/" % id_)]


def test_with_a_live_feed_a_cancelled_job_stops_and_no_message_is_checked(sqlite_cluster, gateway):
    gateway.feed = "live"
    gateway.accept_progress_in_checks = True
    cluster = sqlite_cluster
    # A short hold, so the held request is answered (and asked again) while the test runs too.
    env = {"ASYA_GATEWAY_URL": gateway.url, "ASYA_GATEWAY_CANCEL_FEED_WAIT": "2s"}
    cluster.actor("echo", "echo", env=env)
    # The catch-up request and the first held one: the feed is live.
    wait_for(lambda: gateway.feed_requests >= 2, 30, "the sidecar to follow the feed")
    cluster.queues.send("asya-echo", envelope("K0", ["echo"], payload={"i": 0}, job="K0"))
    assert only(cluster.queues.collect(HAPPY, 1, timeout=60))["id"] == "K0"
    # The cancel answers the held request; the sidecar asks again once it took the answer.
    asked = gateway.feed_requests
    gateway.cancel("K1")
    wait_for(lambda: gateway.feed_requests > asked, 30, "the sidecar to take the feed's answer")
    cluster.queues.send("asya-echo", envelope("K1-2", ["echo"], payload={"i": 1}, job="K1"))
    out = only(cluster.queues.collect(ERROR, 1, timeout=60))
    assert out["id"] == "K1-2" and out["payload"]["error"] == "cancelled", out
    assert "before actor echo started" in str(out["payload"]), out  # the handler never ran
    # K0's progress still reached the gateway (batched or alone), and nothing was checked.
    wait_for(lambda: len(reports_about(gateway, "K0")) == 2, 30, "K0's two progress reports")
    assert [body["status"] for _, body in reports_about(gateway, "K0")] == ["processing", "completed"]
    assert not [p for p, _ in gateway.snapshot() if p.endswith("/check")], gateway.snapshot()


def test_a_gateway_without_the_feed_gets_a_check_per_message(sqlite_cluster, gateway):
    gateway.accept_progress_in_checks = True
    gateway.cancelled_jobs = {"N1"}
    cluster = sqlite_cluster
    cluster.actor("echo", "echo", env={"ASYA_GATEWAY_URL": gateway.url})
    wait_for(lambda: gateway.feed_requests >= 1, 30, "the sidecar to try the feed")
    cluster.queues.send("asya-echo", envelope("N0", ["echo"], payload={"i": 0}, job="N0"))
    cluster.queues.send("asya-echo", envelope("N1", ["echo"], payload={"i": 1}, job="N1"))
    assert only(cluster.queues.collect(HAPPY, 1, timeout=60))["id"] == "N0"
    out = only(cluster.queues.collect(ERROR, 1, timeout=60))
    assert out["id"] == "N1" and out["payload"]["error"] == "cancelled", out
    checks = [p for p, _ in gateway.snapshot() if p.endswith("/check")]
    assert checks == ["/envelopes/N0/check", "/envelopes/N1/check"], gateway.snapshot()
    # A 404 is asked again only after a minute, not per message.
    assert gateway.feed_requests == 1


def test_a_rogue_feed_answer_is_logged_and_every_message_is_checked(sqlite_cluster, gateway):
    gateway.feed = "garbage"
    gateway.accept_progress_in_checks = True
    gateway.cancelled_jobs = {"G1"}
    cluster = sqlite_cluster
    actor = cluster.actor("echo", "echo", env={"ASYA_GATEWAY_URL": gateway.url})
    wait_for(lambda: "rogue answer" in actor.sidecar.text(), 30, "the rogue answer's warning")
    log = actor.sidecar.text()
    assert "next_after" in log and "is missing or not an integer" in log, log[-2000:]
    assert "checking each message with the gateway" in log, log[-2000:]
    cluster.queues.send("asya-echo", envelope("G1", ["echo"], payload={"i": 1}, job="G1"))
    out = only(cluster.queues.collect(ERROR, 1, timeout=60))
    assert out["id"] == "G1" and out["payload"]["error"] == "cancelled", out
    assert [p for p, _ in gateway.snapshot() if p.endswith("/check")] == ["/envelopes/G1/check"]
