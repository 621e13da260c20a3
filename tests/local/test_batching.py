"""Dynamic batching end to end through `asya up` (issue 14): a batch actor (spec.batching) gets
several envelopes per runtime call and still settles each alone: per-item errors to error-end,
aborts to happy-end, outputs routed; a sidecar or runtime killed in the middle of a batch loses no
item; a runtime that does not take batches behind a batching manifest stops at start with a
clear error. On SQLite and RabbitMQ.

The items come from one `asya send` to an actor `spray` that fans out N payloads to the batch
actor, so they arrive at once and the batch actor's queue fills while it works."""
import json
import os
import signal
import time

import pytest

from local_harness import build_dir, manifest, wait_for

FIXED = {"enabled": False}
BATCHING = {"maxSize": 32, "maxWait": "20ms"}
# A killed sidecar's batch comes back after its lease (docs/transports.md; test_recovery.py).
KILL_BOUND = {"sqlite": 30, "rabbitmq": 0}
MARGIN = 40
pytestmark = pytest.mark.parametrize("asya_on", ["sqlite", "rabbitmq"], indirect=True)


def start(asya, tmp_path, handler, count, hold=None, batching=BATCHING, command=None, env=None):
    (tmp_path / "spray.yaml").write_text(manifest("spray", "batch_handlers.spray", scaling=FIXED))
    (tmp_path / "batcher.yaml").write_text(
        manifest("batcher", handler, scaling=FIXED, batching=batching, command=command, env=env))
    asya.up_detached(tmp_path / "spray.yaml", tmp_path / "batcher.yaml")
    log = tmp_path / "batches.log"
    payload = {"count": count, "log": str(log), "hold": str(hold) if hold else None}
    asya.send("--route", "spray,batcher", "--payload", json.dumps(payload), "--id", "job")
    return log


def item_ids(count):
    """Fan-out output i of envelope "job" is "job" for i = 0, else "job-i" (PROTOCOL §4)."""
    return ["job"] + [f"job-{i}" for i in range(1, count)]


def batches(log):
    return [json.loads(line)["ns"] for line in log.read_text().splitlines()] if log.exists() else []


def ended(asya):
    return {**asya.results(), **asya.results("failed")}


def test_500_items_through_a_batch_actor_are_each_settled_alone(asya_on, tmp_path):
    asya = asya_on
    log = start(asya, tmp_path, "batch_handlers.mixed", 500)
    wait_for(lambda: len(ended(asya)) >= 500, 300, "all 500 items to reach an end actor")
    succeeded, failed = asya.results(), asya.results("failed")
    assert set(succeeded) | set(failed) == set(item_ids(500))
    assert not set(succeeded) & set(failed)
    for n, item in enumerate(item_ids(500)):
        if n % 10 == 3:
            error = failed[item]["payload"]
            assert error["error"] == "processing_error"
            assert error["details"]["type"] == "ValueError"
            assert error["details"]["message"] == f"item {n} is bad"
            assert "ValueError" in error["details"]["traceback"]
            assert error["actor"] == "batcher"
            assert error["original_payload"]["n"] == n
        elif n % 10 == 7:  # aborted: the input itself ends at happy-end
            assert succeeded[item]["payload"] == {"n": n, "log": str(log), "hold": None}
        else:
            assert succeeded[item]["payload"] == {"n": n, "doubled": 2 * n}
    sizes = [len(b) for b in batches(log)]
    # Every item reached the handler exactly once, in batches of up to maxSize.
    assert sorted(n for b in batches(log) for n in b) == list(range(500))
    assert max(sizes) > 1, f"no batch of more than one item: {sizes}"
    assert max(sizes) <= BATCHING["maxSize"]


@pytest.mark.parametrize("victim", ["sidecar", "runtime", "both"])
def test_a_kill_in_the_middle_of_a_batch_loses_no_item(asya_on, tmp_path, victim):
    asya = asya_on
    hold = tmp_path / "held"
    log = start(asya, tmp_path, "batch_handlers.hold_big_batch", 40, hold=hold)
    held = json.loads(wait_for(lambda: hold.exists() and hold.read_text(), 120,
                               "a batch of two or more items to be held by the handler"))
    assert len(held["ns"]) >= 2
    processes = [p for p in asya.actor("batcher")["processes"] if p["running"]]
    assert processes, asya.actor("batcher")
    victims = ["sidecar", "runtime"] if victim == "both" else [victim]
    pids = [processes[0][v] for v in victims]
    assert all(pids), processes
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: len(ended(asya)) >= 40, KILL_BOUND[asya.transport] + MARGIN + 60,
             f"every item to end after the {victim} was killed mid-batch")
    print(f"all items ended {time.monotonic() - killed:.1f}s after the kill")
    assert asya.results("failed") == {}
    succeeded = asya.results()
    assert set(succeeded) == set(item_ids(40))
    for n, item in enumerate(item_ids(40)):
        assert succeeded[item]["payload"] == {"n": n}
    # The held items were handled again after the kill (redelivered), none skipped.
    handled = {n for b in batches(log) for n in b}
    assert set(held["ns"]) <= handled
    assert handled == set(range(40))


def test_a_runtime_without_batch_support_stops_the_sidecar_at_start(asya_on, tmp_path):
    asya = asya_on
    # The C++ conformance runtime serves a plain (non-batch) handler: its ready file declares no
    # batch support, whatever ASYA_HANDLER_BATCH says.
    runtime = build_dir() / "tests" / "runtime_conformance" / "asya-conformance-runtime"
    assert runtime.exists(), f"build it: ninja -C {build_dir()} asya-conformance-runtime"
    (tmp_path / "batcher.yaml").write_text(
        manifest("batcher", "conformance_handlers.echo", scaling=FIXED, batching=BATCHING,
                 command=[str(runtime)]))
    asya.up_detached(tmp_path / "batcher.yaml")

    def refusal():
        logs = asya.run("logs", "batcher", check=0).stdout
        return [line for line in logs.splitlines() if "does not accept batches" in line]

    line = json.loads(wait_for(refusal, 60, "the sidecar to refuse the runtime")[0])
    assert line["level"] == "error"
    assert "ASYA_BATCH_MAX_SIZE=32" in line["msg"]
    assert "spec.batching" in line["msg"]
    assert "ASYA_HANDLER_BATCH=true" in line["msg"]  # what to do instead
