"""Duplicates after a broker crash stay bounded (issues 11.12 and 20.6).

A RabbitMQ node of its own is SIGKILLed while 300 messages flow through a two-actor pipeline of
real sidecars and Python runtimes on quorum queues (the default), then started again on its data
(tests/sidecar/redelivery_scenario.py does the work; bench/redelivery/rabbitmq_duplicates.py runs
the same scenario with 2,000 messages for the table in docs/transports.md). Every message must
reach happy-end, the handler calls that repeated earlier work must stay within the bound
documented in docs/transports.md, and the sidecars' asya_actor_redeliveries_total must count the
redeliveries behind them.
"""
import subprocess

import pytest

import redelivery_scenario
from sidecar_harness import rabbitmq_service

pytestmark = pytest.mark.skipif(not rabbitmq_service.available(),
                                reason="rabbitmq-server is not installed (run scripts/setup)")

MESSAGES = 300
CONCURRENCY = 2
PREFETCH = 10  # the default ASYA_RABBITMQ_PREFETCH the scenario runs with
# docs/transports.md, "Duplicates after a broker fault": after a crash on quorum queues a hop
# repeats the calls of the messages in its handlers (ASYA_CONCURRENCY) and of those whose outputs
# were not confirmed yet (up to the prefetch: the settle window keeps that many settling), plus a
# few acks not yet durable, plus the repeats of the hops before it.
PER_HOP = max(3 * CONCURRENCY, PREFETCH + CONCURRENCY)
BOUND = PER_HOP + 2 * PER_HOP  # first hop, second hop (its own plus the first hop's)


def test_broker_sigkill_on_quorum_queues_loses_nothing_and_bounds_duplicates(build_path):
    # 20 ms per handler call: at least 3 s of work per actor, so the crash lands while deliveries
    # are in flight even when a loaded machine makes this process slow to see the first quarter
    # arrive (at 5 ms the pipeline sometimes all but finished first, and nothing was redelivered).
    r = redelivery_scenario.run(build_path, MESSAGES, "quorum", "kill", concurrency=CONCURRENCY,
                                sleep=0.02)
    assert not r["lost"], "%d message(s) lost: %s" % (len(r["lost"]), r["lost"][:20])
    assert r["unique_at_happy_end"] == MESSAGES
    assert r["never_called"] == {"first": 0, "second": 0}, r
    assert r["duplicate_calls"]["first"] <= PER_HOP, r
    assert r["duplicate_calls_total"] <= BOUND, r
    # Every repeated call at the first actor was a redelivery (its input was sent before the
    # crash, once), and the sidecars counted them; the crash left deliveries in flight, so there
    # were some.
    redelivered = r["redeliveries"]
    assert None not in redelivered.values(), r["metrics"]
    assert redelivered["first"] >= r["duplicate_calls"]["first"], r
    assert sum(redelivered.values()) >= 1, r
    for name, text in r["metrics"].items():
        check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                               capture_output=True)
        assert check.returncode == 0, (name, check.stdout + check.stderr)
