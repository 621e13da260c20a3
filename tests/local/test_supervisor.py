"""`asya up` behaviour: autoscaling, recovery, crash loops, manifest errors, graceful stop."""
import json
import os
import re
import signal
import subprocess
import time

from local_harness import alive, build_dir, manifest, wait_for

FAST = {"pollingInterval": "200ms", "cooldownPeriod": 2, "minReplicas": 0, "maxReplicas": 3,
        "queueLength": 5}


def send_many(asya, actor, count, prefix):
    """Sends `count` messages with ids prefix-0.. with `asya send`, one process per message (on a
    loaded machine a few per second: use queue_at_once() when they must all be queued at once)."""
    ids = [f"{prefix}-{i}" for i in range(count)]
    for message_id in ids:
        asya.send(actor, "--payload", json.dumps({"n": message_id}), "--id", message_id)
    return ids


def queue_at_once(asya, actor, count, prefix):
    """Queues `count` messages with ids prefix-0.. on the actor's SQLite queue in one run of
    `asya-queue send --lines`: a real burst. One `asya send` per message is not one on a loaded
    machine (a tenth of a second or more each): the first replicas drain the queue meanwhile and
    it never gets deep enough to need more."""
    ids = [f"{prefix}-{i}" for i in range(count)]
    lines = "".join(json.dumps({"id": i, "route": {"actors": [actor], "current": 0},
                                "payload": {"n": i}}) + "\n" for i in ids)
    tool = build_dir() / "tests" / "tools" / "asya-queue"
    env = dict(asya.env, ASYA_TRANSPORT="sqlite", ASYA_SQLITE_PATH=str(asya.state / "queues.db"))
    subprocess.run([str(tool), "send", f"asya-{actor}", lines, "--lines"], env=env, check=True,
                   capture_output=True, timeout=120)
    return ids


def test_burst_scales_from_zero_to_max_and_back_to_zero(asya, tmp_path):
    (tmp_path / "burst.yaml").write_text(
        manifest("burst", "testing.slow_echo", scaling=FAST, env={"SLOW_SECONDS": "0.1"}))
    asya.up_detached(tmp_path / "burst.yaml")
    assert asya.actor("burst")["replicas"]["running"] == 0  # minReplicas 0: nothing before work

    ids = set(queue_at_once(asya, "burst", 300, "b"))
    seen_max = wait_for(lambda: asya.actor("burst")["replicas"]["running"] == 3, 60,
                        "burst to reach maxReplicas=3")
    assert seen_max
    done = wait_for(lambda: (r := asya.results()) and set(r) >= ids and r, 120,
                    "all 300 results", interval=0.3)
    assert set(done) >= ids  # every message processed, none lost
    assert asya.results("failed") == {}
    for message_id in ids:
        assert done[message_id]["payload"] == {"n": message_id}
    # Back to zero only after the cooldown without work.
    wait_for(lambda: asya.actor("burst")["replicas"]["running"] == 0
             and asya.actor("burst")["replicas"]["stopping"] == 0, 30, "burst to scale to 0")
    queues = json.loads(asya.run("queues", "--json", check=0).stdout)
    burst = next(q for q in queues if q["queue"] == "asya-burst")
    assert (burst["ready"], burst["in_flight"], burst["delayed"]) == (0, 0, 0)


def test_activation_from_zero_only_above_activation_queue_length(asya, tmp_path):
    scaling = dict(FAST, activationQueueLength=3)
    (tmp_path / "lazy.yaml").write_text(manifest("lazy", "testing.slow_echo", scaling=scaling))
    asya.up_detached(tmp_path / "lazy.yaml")
    send_many(asya, "lazy", 3, "l")
    # Three messages are not above 3: the actor stays at zero over many polling intervals.
    deadline = time.monotonic() + 3  # 15 polls, 3 status refreshes
    while time.monotonic() < deadline:
        lazy = asya.actor("lazy")
        assert lazy["replicas"]["running"] == 0 and lazy["replicas"]["desired"] == 0, lazy
        time.sleep(0.1)
    assert asya.actor("lazy")["queue"]["ready"] == 3
    send_many(asya, "lazy", 1, "l4")  # the fourth activates it
    wait_for(lambda: set(asya.results()) == {"l-0", "l-1", "l-2", "l4-0"}, 60, "all 4 results")


def test_killing_a_runtime_mid_run_loses_nothing(asya_on, tmp_path):
    asya = asya_on  # on sqlite, rabbitmq and sqs
    scaling = {"enabled": False}
    (tmp_path / "victim.yaml").write_text(
        manifest("victim", "testing.slow_echo", scaling=scaling, env={"SLOW_SECONDS": "0.2"}))
    asya.up_detached(tmp_path / "victim.yaml")
    ids = set(send_many(asya, "victim", 20, "k"))
    wait_for(lambda: len(asya.results()) >= 3, 30, "a few results before the kill")
    runtime = asya.actor("victim")["processes"][0]["runtime"]
    os.kill(runtime, signal.SIGKILL)
    # The pair is restarted with a new runtime...
    wait_for(lambda: any(p["runtime"] not in (0, runtime) and p["running"]
                         for p in asya.actor("victim")["processes"]), 30, "a restarted runtime")
    # ...and every message still ends in happy-end (the interrupted one is redelivered).
    wait_for(lambda: set(asya.results()) >= ids, 90, "all 20 results after the kill")
    assert asya.results("failed") == {}


def read_records(path):
    """The start/end lines written by testing.recorded: {n: [records]}."""
    out = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        record = json.loads(line)
        out.setdefault(record["n"], []).append(record)
    return out


def test_scale_down_drains_a_busy_replica_instead_of_killing_it(asya, tmp_path):
    # queueLength 2, at most 2 replicas, one message at a time each: 4 messages of 3 s start 2
    # replicas; when 2 remain (one in each replica), the actor scales down to 1 while both
    # replicas are busy. The stopped replica must finish its message (no redelivery).
    record = tmp_path / "records.jsonl"
    scaling = {"pollingInterval": "200ms", "cooldownPeriod": "1s", "minReplicas": 0,
               "maxReplicas": 2, "queueLength": 2}
    (tmp_path / "busy.yaml").write_text(
        manifest("busy", "testing.recorded", scaling=scaling, env={"RECORD_FILE": str(record)},
                 sidecar={"concurrency": 1}, timeout={"gracefulShutdown": 30}))
    asya.up_detached(tmp_path / "busy.yaml")
    ids = [f"d-{i}" for i in range(4)]
    for message_id in ids:
        asya.send("busy", "--payload", json.dumps({"n": message_id, "seconds": 3}), "--id",
                  message_id)

    def stopping_while_busy():
        actor = asya.actor("busy")
        stopping = [p["runtime"] for p in actor["processes"] if not p["running"]]
        if not stopping:
            return None
        records = read_records(record)
        open_on_stopping = [n for n, rs in records.items()
                            if any(r["pid"] in stopping and r["event"] == "start" for r in rs)
                            and not any(r["event"] == "end" for r in rs)]
        return open_on_stopping and (stopping, open_on_stopping)

    stopping, busy_ids = wait_for(stopping_while_busy, 60,
                                  "a replica being scaled down while it processes a message")
    # It finishes that message, then exits; the actor goes on with one replica, then zero.
    wait_for(lambda: set(asya.results()) >= set(ids), 60, "all 4 results")
    wait_for(lambda: asya.actor("busy")["replicas"] == {"ready": 0, "running": 0, "stopping": 0,
                                                        "desired": 0}, 30, "busy to scale to 0")
    records = read_records(record)
    for message_id in ids:
        events = [r["event"] for r in records[message_id]]
        assert events == ["start", "end"], (message_id, records[message_id])  # exactly once
    for message_id in busy_ids:
        assert records[message_id][1]["pid"] in stopping  # finished where it started
    log = (asya.state / "logs" / "supervisor.log").read_text()
    assert "busy: scaling 2 -> 1" in log
    assert "crashed" not in log


def test_crash_looping_actor_is_reported(asya, tmp_path):
    # A handler whose class fails in __init__ (a missing module stops `asya up` before start:
    # test_preflight.py).
    (tmp_path / "broken.yaml").write_text(
        manifest("broken", "testing.NeedsGpu.run", scaling={"enabled": False}))
    asya.up_detached(tmp_path / "broken.yaml")
    actor = wait_for(lambda: (a := asya.actor("broken")) and a["state"] == "crash-looping" and a,
                     60, "broken to be reported crash-looping")
    assert "runtime exited with status 1" in actor["last_crash"]
    assert any("no GPU on this machine" in line for line in actor["last_crash_output"]), actor
    status = asya.run("status", check=0)
    assert "crash-looping" in status.stdout
    assert "last crash: runtime exited with status 1" in status.stdout
    log = (asya.state / "logs" / "supervisor.log").read_text()
    assert "broken: CRASH-LOOPING" in log
    # Restarts slow down: exponential backoff from 0.5 s, then the crash loop is declared.
    delays = re.findall(r"broken: replica \d+ crashed: .*; restart in (\S+)", log)
    assert delays[:2] == ["500ms", "1s"], log
    assert log.index("restart in 1s") < log.index("broken: CRASH-LOOPING: 3 quick crashes")
    assert len(re.findall(r"broken: replica \d+ crashed", log)) <= 6


CRASH_AT_ONCE = "import os, time; open(os.environ['STARTS'], 'a').write(f'{time.time()}\\n'); exit(1)"


def test_crashed_pair_is_restarted_after_an_exponential_backoff(asya, tmp_path):
    starts = tmp_path / "starts"
    (tmp_path / "c.yaml").write_text(
        manifest("crasher", "a.b", scaling={"enabled": False}, env={"STARTS": str(starts)},
                 command=["python3", "-c", CRASH_AT_ONCE]))
    asya.up_detached(tmp_path / "c.yaml")
    times = wait_for(lambda: starts.exists() and len(t := starts.read_text().split()) >= 4
                     and [float(x) for x in t], 60, "four starts of the crashing runtime")
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Each crash is quick, so the restart waits 0.5 s, 1 s, 2 s (plus the start-up time).
    for gap, backoff in zip(gaps, [0.5, 1, 2]):
        assert backoff <= gap < backoff + 3, gaps
    assert asya.actor("crasher")["state"] == "crash-looping"


def test_handler_error_ends_in_error_end_and_send_wait_exits_1(asya, tmp_path):
    (tmp_path / "f.yaml").write_text(manifest("refuser", "testing.fail", scaling=FAST))
    asya.up_detached(tmp_path / "f.yaml")
    out = asya.send("refuser", "--payload", '"x"', "--id", "bad-1", "--wait", "--timeout", 30,
                    check=1)
    envelope = json.loads(out.stdout)
    assert envelope["id"] == "bad-1"
    assert envelope["payload"]["error"] == "processing_error"
    assert "refused 'x'" in envelope["payload"]["details"]["message"]
    assert asya.run("results", "bad-1").returncode == 1


BAD = """apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: happy-end}
spec:
  replicas: -2
  scaling: {minReplicas: 4, maxReplicas: 2, queueLenght: 3, enabled: sometimes}
  workload:
    template:
      spec:
        containers:
        - name: asya-runtime
          env:
          - {name: ASYA_HANDLER, value: a.b}
          - {name: 9LIVES, value: x}
---
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: twin}
spec:
  workload: {template: {spec: {containers: [{name: r, env: [{name: ASYA_HANDLER, value: a.b}]}]}}}
"""


def test_manifest_mistakes_are_all_reported_and_nothing_starts(asya, tmp_path):
    (tmp_path / "bad.yaml").write_text(BAD)
    twin = manifest("twin", "a.b")
    (tmp_path / "twin.yaml").write_text(twin)
    out = asya.run("up", tmp_path, check=2)
    bad = tmp_path / "bad.yaml"
    c = "spec.workload.template.spec.containers[0]"
    expected = [
        f'{bad}:3: metadata.name: "happy-end" is reserved for the end actor that asya starts '
        "itself; choose another name",
        f"{bad}:5: spec.replicas: -2 is negative; use an integer from 0 to 1000",
        f"{bad}:6: spec.scaling.queueLenght: unknown field; allowed here: enabled, minReplicas, "
        "maxReplicas, queueLength, pollingInterval, cooldownPeriod, activationQueueLength",
        f'{bad}:6: spec.scaling.enabled: expected true or false, got "sometimes"',
        f"{bad}:6: spec.scaling.minReplicas: 4 is greater than maxReplicas (2); use minReplicas "
        "<= maxReplicas",
        f'{bad}:14: {c}.env[1].name: "9LIVES" is not a valid environment variable name; use '
        "letters, digits and '_', not starting with a digit",
        f'{tmp_path / "twin.yaml"}:1: metadata.name: actor "twin" is already defined at '
        f"{bad}:16; each actor name must be unique",
    ]
    assert out.stderr.splitlines()[:-1] == expected
    assert "7 problem(s) in the manifests; nothing was started" in out.stderr
    assert not (asya.state / "status.json").exists()


def test_sigint_stops_everything_with_no_orphan_and_nothing_in_flight(asya, tmp_path):
    (tmp_path / "slow.yaml").write_text(
        manifest("slow", "testing.slow_echo", env={"SLOW_SECONDS": "1"},
                 scaling={"enabled": False}, timeout={"gracefulShutdown": 20}))
    proc = asya.up_foreground(tmp_path / "slow.yaml")
    ids = set(send_many(asya, "slow", 5, "s"))
    wait_for(lambda: asya.actor("slow")["queue"]["in_flight"] >= 1, 30, "a message in flight")
    pids = asya.all_pids()
    assert len(pids) == 5  # supervisor, two end sidecars, sidecar + runtime of slow
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped: every replica drained and exited" in stderr
    for pid in pids:
        assert not alive(pid), f"process {pid} survived the supervisor"
    # The message being processed finished; the rest are back in the queue, none in flight.
    queues = {q["queue"]: q for q in json.loads(asya.run("queues", "--json", check=0).stdout)}
    assert all(q["in_flight"] == 0 for q in queues.values()), queues
    finished = set(asya.results())
    assert finished and finished <= ids
    assert len(finished) + queues["asya-slow"]["ready"] + queues["asya-slow"]["delayed"] == 5
