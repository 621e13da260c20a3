"""Section `join` of bench/run: the cost of a durable join (PROTOCOL §4a) on SQLite.

    join_groups_per_s  G groups of 10: split (fan-out runtime) → join (no-op runtime, SQLite join
                       store) → happy-end, groups per second; baseline: the same split → a plain
                       actor (no-op runtime) → happy-end, the same 10·G messages, groups per
                       second (all 10 of a group arrived). ratio = asya / baseline.
    join_10k_s         one 10,000-way fan-out → join, seconds until the joined result arrived;
                       baseline: the same fan-out through the plain actor until all 10,000
                       arrived.
    join_rss_10k       the join sidecar's peak resident memory (VmHWM from /proc) at the end of
                       join_10k_s; baseline: the plain actor's sidecar's VmHWM after it passed
                       the same 10,000 branches on.
    join_rss_100k      the join sidecar's VmHWM after joining one group of 100,000 branches of
                       1 kB (a 100 MB join input, streamed to a runtime that answers small);
                       baseline: the same with 10,000 branches (10 MB). Equal figures show the
                       sidecar holds one branch at a time, not the group (PROTOCOL §4a).

The messages are queued while the split sidecar is stopped (SIGSTOP outside a write transaction,
as bench_queue hop does) and the clock starts when it is resumed, so process start-up is not
measured. Every round uses its own queue and join-store files and fresh envelope ids.
`bench_run` is bench/run's module (its Processes, Actor, record, ... helpers)."""
import json
import os
import signal
import sqlite3
import subprocess
import time

GROUP_WIDTH = 10
# The width of the join_10k rows; tests/bench/test_join_bench.py makes it smaller to run quickly.
WIDE = int(os.environ.get("ASYA_BENCH_JOIN_WIDE", 10_000))
# The width of join_rss_100k (its baseline is a tenth of it) and its branch payload size.
RSS_WIDE = int(os.environ.get("ASYA_BENCH_JOIN_RSS_WIDE", 100_000))
RSS_BRANCH_BYTES = 1000


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
        expected = groups if who == "asya" else groups * width
        run.driver(run.binary("bench/queue/bench_queue"), "wait", "--queue", "asya-happy-end",
                   "--count", expected, "--timeout", 240, env=run.queue_env(db), timeout=300)
        seconds = time.monotonic() - start
        split.check_alive()
        after.check_alive()
        # The process's peak resident memory so far, read before it is stopped.
        rss_mb = run.proc_status_kb(after.sidecar.pid, "VmHWM") / 1024.0 if rss else None
        return {"seconds": seconds, "rss_mb": rss_mb}
    finally:
        procs.stop_all()


def _join_peak_rss(run, workdir, width, tag):
    """One group of `width` branches of RSS_BRANCH_BYTES queued straight into the join's queue
    (as a split's fan-out would leave them), joined by a runtime answering {"bytes": N}; returns
    the join sidecar's VmHWM (MB) once the joined result arrived."""
    procs = run.Processes(workdir)
    db = workdir / ("join-rss-%s-%d.db" % (tag, width))
    try:
        run.prepare_db(db)
        join = run.Actor(procs, db, "join", runtime="bench/join/bench_join_count_runtime", extra_env={
            "ASYA_JOIN": "true", "ASYA_JOIN_STORE": "sqlite://%s/joins-rss-%s-%d.db" % (workdir, tag, width),
            "ASYA_RUNTIME_TIMEOUT": "300s", "ASYA_JOIN_TIMEOUT": "1h"})
        source = "rss-%s-%d" % (tag, width)
        filler = "x" * (RSS_BRANCH_BYTES - 2)
        _send(run, db, "asya-join", [
            {"id": "%s-%d" % (source, i), "route": {"actors": ["split", "join"], "current": 1},
             "headers": {"asya-fanout": [{"group": source + "@0", "index": i, "count": width}]},
             "payload": filler} for i in range(width)], workdir, "%s-%d" % (tag, width))
        run.driver(run.binary("bench/queue/bench_queue"), "wait", "--queue", "asya-happy-end",
                   "--count", 1, "--timeout", 900, env=run.queue_env(db), timeout=960)
        join.check_alive()
        return run.proc_status_kb(join.sidecar.pid, "VmHWM") / 1024.0
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
               "peak resident memory (VmHWM from /proc at the end) of the join's sidecar in "
               "join_10k_s. baseline: the plain actor's sidecar after it passed the same %d "
               "branches on" % WIDE)
    small = max(RSS_WIDE // 10, 1)
    peaks = {width: _join_peak_rss(run, workdir, width, tag) for width in
             ((RSS_WIDE, small) if args.round % 2 == 0 else (small, RSS_WIDE))}
    run.record("join_rss_100k", peaks[RSS_WIDE], peaks[small],
               "peak resident memory (VmHWM from /proc) of a join's sidecar after joining one "
               "group of %d branches of %d bytes (a %.0f MB join input, streamed to a C++ runtime "
               "that answers {\"bytes\": N}); the branches were queued straight into the join's "
               "queue. baseline: the same with %d branches (%.0f MB). A ratio near 1 shows the "
               "sidecar holds one branch at a time, not the group"
               % (RSS_WIDE, RSS_BRANCH_BYTES, RSS_WIDE * RSS_BRANCH_BYTES / 1e6, small,
                  small * RSS_BRANCH_BYTES / 1e6))
