"""Section `join` of bench/run: the cost of a durable join (PROTOCOL §4a) on SQLite.

    join_groups_per_s  G groups of 10: split (fan-out runtime) → join (no-op runtime, SQLite join
                       store) → happy-end, groups per second; baseline: the same split → a plain
                       actor (no-op runtime) → happy-end, the same 10·G messages, groups per
                       second (all 10 of a group arrived). ratio = asya / baseline.
    join_10k_s         one 10,000-way fan-out → join, seconds until the joined result arrived;
                       baseline: the same fan-out through the plain actor until all 10,000
                       arrived.
    join_rss_10k       the join sidecar's peak VmRSS during join_10k_s; baseline: the plain
                       actor's sidecar's peak VmRSS while it passed the same 10,000 branches on.

The messages are queued while the split sidecar is stopped (SIGSTOP outside a write transaction,
as bench_queue hop does) and the clock starts when it is resumed, so process start-up is not
measured. Every round uses its own queue and join-store files and fresh envelope ids.
`bench_run` is bench/run's module (its Processes, Actor, record, ... helpers)."""
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time

GROUP_WIDTH = 10
# The width of the join_10k rows; tests/bench/test_join_bench.py makes it smaller to run quickly.
WIDE = int(os.environ.get("ASYA_BENCH_JOIN_WIDE", 10_000))


def _stop_outside_transaction(pid, db):
    """SIGSTOP `pid` at a moment it holds no SQLite write lock on `db` (else others would wait
    for a stopped process)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.002)
        probe = sqlite3.connect(str(db), timeout=0.05, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.001)
        finally:
            probe.close()
    raise RuntimeError("could not stop the split sidecar outside a write transaction")


def _send(run, db, queue, envelopes, workdir, tag):
    path = workdir / ("join-bodies-%s.jsonl" % tag)
    path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in envelopes))
    tool = run.binary("tests/tools/asya-queue")
    done = subprocess.run([str(tool), "send", queue, "@%s" % path, "--lines"], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **run.queue_env(db)))
    if done.returncode != 0:
        raise RuntimeError("asya-queue send failed: %s" % done.stderr.strip()[-300:])


def _measure(run, args, workdir, who, groups, width, tag, rss=False):
    """Seconds from resuming the split until the outputs of `groups` fan-outs of `width` arrived
    at asya-happy-end (one per group through the join, `width` per group through the plain
    actor); with `rss`, also the peak VmRSS (MB) of the second actor's sidecar."""
    procs = run.Processes(workdir)
    db = workdir / ("join-%s-%s.db" % (who, tag))
    try:
        second = "join" if who == "asya" else "plain"
        extra = {"ASYA_JOIN": "true", "ASYA_JOIN_STORE": "sqlite://%s/joins-%s.db" % (workdir, tag),
                 "ASYA_RUNTIME_TIMEOUT": "120s"} if who == "asya" else {}
        after = run.Actor(procs, db, second, extra_env=extra)
        split = run.Actor(procs, db, "split", runtime="bench/join/bench_fanout_runtime")
        run.driver(run.binary("bench/queue/bench_queue"), "wait", "--queue", "asya-happy-end",
                   "--count", 0, env=run.queue_env(db))
        _stop_outside_transaction(split.sidecar.pid, db)
        try:
            _send(run, db, "asya-split", [
                {"id": "%s-%s-%d" % (tag, who, g), "route": {"actors": ["split", second], "current": 0},
                 "payload": {"n": width}} for g in range(groups)], workdir, tag + who)
        finally:
            os.kill(split.sidecar.pid, signal.SIGCONT)
        start = time.monotonic()
        samples = []
        stop_sampling = threading.Event()

        def sample():
            while not stop_sampling.is_set():
                try:
                    samples.append(run.proc_status_kb(after.sidecar.pid, "VmRSS"))
                except (OSError, RuntimeError):
                    return
                time.sleep(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        if rss:
            sampler.start()
        expected = groups if who == "asya" else groups * width
        run.driver(run.binary("bench/queue/bench_queue"), "wait", "--queue", "asya-happy-end",
                   "--count", expected, "--timeout", 240, env=run.queue_env(db), timeout=300)
        seconds = time.monotonic() - start
        stop_sampling.set()
        if rss:
            sampler.join(5)
        split.check_alive()
        after.check_alive()
        return {"seconds": seconds, "rss_mb": max(samples) / 1024.0 if samples else None}
    finally:
        procs.stop_all()


def section_join(run, args, workdir):
    groups = 50 if args.quick else 150
    tag = "r%d" % args.round
    sides = ("asya", "baseline") if args.round % 2 == 0 else ("baseline", "asya")
    many = {who: _measure(run, args, workdir, who, groups, GROUP_WIDTH, tag + "g") for who in sides}
    run.record("join_groups_per_s", groups / many["asya"]["seconds"],
               groups / many["baseline"]["seconds"],
               "%d groups of %d queued at once: split (C++ fan-out runtime) → join (ASYA_JOIN, "
               "SQLite join store: every branch stored in its own transaction before its ack, one "
               "runtime call per group) → happy-end, until all %d joined results arrived. "
               "baseline: the same split → a plain actor (C++ no-op runtime) → happy-end, until "
               "all %d branches arrived; concurrency 1 everywhere" % (
                   groups, GROUP_WIDTH, groups, groups * GROUP_WIDTH))
    wide = {who: _measure(run, args, workdir, who, 1, WIDE, tag + "w", rss=True) for who in sides}
    run.record("join_10k_s", wide["asya"]["seconds"], wide["baseline"]["seconds"],
               "one envelope fanned out into %d branches by the split, joined into one result "
               "(a list of %d payloads handed to the join's runtime as one stream), seconds "
               "until it arrived at happy-end. baseline: the same fan-out through a plain actor, "
               "until all %d branches arrived" % (WIDE, WIDE, WIDE))
    run.record("join_rss_10k", wide["asya"]["rss_mb"], wide["baseline"]["rss_mb"],
               "peak VmRSS (sampled every 50 ms) of the join's sidecar during join_10k_s. "
               "baseline: the plain actor's sidecar while it passed the same %d branches on"
               % WIDE)
