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

The messages of the timed rows are queued while the split sidecar is stopped (SIGSTOP outside a
write transaction, as bench_queue hop does) and the clock starts when it is resumed, so process
start-up is not measured; every round uses its own queue and join-store files and fresh
envelope ids. The memory row's queues are written once per run (one file per width) and every
round's join runs on a copy of one, with its own join store; its rounds run side by side after
the timed rows (a peak resident figure does not depend on the CPU share).
`bench_run` is bench/run's module (its Processes, Actor, record, ... helpers)."""
import json
import os
import pathlib
import shutil
import signal
import sqlite3
import sys
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
    """Queues `envelopes` on `queue` with bench_queue send-lines (send_many: up to 64 messages per
    SQLite transaction; asya-queue send, used before, commits each message alone)."""
    path = workdir / ("join-bodies-%s.jsonl" % tag)
    path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in envelopes))
    run.driver(run.binary("bench/queue/bench_queue"), "send-lines", "--queue", queue, "--file",
               path, env=run.queue_env(db), timeout=300)
    path.unlink()


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
        # Started together, then waited for (the queue file was prepared by the first start).
        after = run.Actor(procs, db, second, extra_env=extra, wait=False)
        split = run.Actor(procs, db, "split", runtime="bench/join/bench_fanout_runtime",
                          wait=False)
        after.wait_ready()
        split.wait_ready()
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


def _rss_template(run, workdir, width):
    """The join's queue file holding one group of `width` branches of RSS_BRANCH_BYTES (as a
    split's fan-out would leave them), written once per run: every round joins a copy of it.
    Written again for every round, the 110,000 branches took a fifth of the section's time."""
    db = workdir / ("join-rss-template-%d.db" % width)
    run.prepare_db(db)
    source = "rss-%d" % width
    filler = "x" * (RSS_BRANCH_BYTES - 2)
    _send(run, db, "asya-join", [
        {"id": "%s-%d" % (source, i), "route": {"actors": ["split", "join"], "current": 1},
         "headers": {"asya-fanout": [{"group": source + "@0", "index": i, "count": width}]},
         "payload": filler} for i in range(width)], workdir, source)
    # Everything into the main file (nothing left in its WAL), so a copy of it is the queue.
    probe = sqlite3.connect(str(db), isolation_level=None)
    try:
        probe.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        probe.close()
    return db


class _RssJoin:
    """One join of the memory row: a copy of the template queue (one group, fully queued) and a
    join actor (sidecar, a runtime answering {"bytes": N}) started on it; peak_mb() waits until
    the joined result arrived and returns the join sidecar's VmHWM (MB). The queue file and the
    join store are this join's own, so several run side by side."""

    def __init__(self, run, workdir, template, width, tag):
        self.run, self.procs = run, run.Processes(workdir)
        self.db = workdir / ("join-rss-%s-%d.db" % (tag, width))
        shutil.copyfile(template, self.db)
        bodies = pathlib.Path(str(template) + ".bodies")
        if bodies.exists():
            shutil.copytree(bodies, str(self.db) + ".bodies")
        try:
            self.join = run.Actor(
                self.procs, self.db, "join", runtime="bench/join/bench_join_count_runtime",
                wait=False, extra_env={
                    "ASYA_JOIN": "true",
                    "ASYA_JOIN_STORE": "sqlite://%s/joins-rss-%s-%d.db" % (workdir, tag, width),
                    "ASYA_RUNTIME_TIMEOUT": "300s", "ASYA_JOIN_TIMEOUT": "1h"})
        except BaseException:
            self.procs.stop_all()
            raise

    def peak_mb(self):
        run = self.run
        try:
            self.join.wait_ready()
            run.driver(run.binary("bench/queue/bench_queue"), "wait", "--queue", "asya-happy-end",
                       "--count", 1, "--timeout", 900, env=run.queue_env(self.db), timeout=960)
            self.join.check_alive()
            return run.proc_status_kb(self.join.sidecar.pid, "VmHWM") / 1024.0
        finally:
            self.procs.stop_all()


def _join_rss_rows(run, args, workdir):
    """join_rss_100k, all rounds: the two template queues are written once, then every round's
    join of RSS_WIDE branches and its baseline of a tenth of them run side by side, and the
    rounds too. The row measures peak memory, which the CPU share does not change (each join
    holds one branch at a time and its own files); run one after another, the six joins (330,000
    branches in all) took most of the section's time."""
    small = max(RSS_WIDE // 10, 1)
    templates = {width: _rss_template(run, workdir, width) for width in (RSS_WIDE, small)}
    joins = []
    try:
        for r in range(args.rounds):
            for width in ((RSS_WIDE, small) if r % 2 == 0 else (small, RSS_WIDE)):
                joins.append((r, width, _RssJoin(run, workdir, templates[width], width,
                                                 "r%d" % r)))
        peaks = {}
        for r, width, join in joins:
            peaks[(r, width)] = join.peak_mb()
    finally:
        for _, _, join in joins:
            join.procs.stop_all()
    for r in range(args.rounds):
        run.record("join_rss_100k", peaks[(r, RSS_WIDE)], peaks[(r, small)],
                   "peak resident memory (VmHWM from /proc) of a join's sidecar after joining one "
                   "group of %d branches of %d bytes (a %.0f MB join input, streamed to a C++ "
                   "runtime that answers {\"bytes\": N}); the branches were queued straight into "
                   "the join's queue before its sidecar started. baseline: the same with %d "
                   "branches (%.0f MB). A ratio near 1 shows the sidecar holds one branch at a "
                   "time, not the group. The %d rounds' joins ran side by side (a memory figure), "
                   "each on its own copy of the queue and its own join store"
                   % (RSS_WIDE, RSS_BRANCH_BYTES, RSS_WIDE * RSS_BRANCH_BYTES / 1e6, small,
                      small * RSS_BRANCH_BYTES / 1e6, args.rounds))


def section_join(run, args, workdir):
    """Every round of the section's rows (bench/run lists `join` in SELF_ROUNDED): the timed rows
    round by round, then the memory row's rounds side by side."""
    for args.round in range(args.rounds):
        print("bench: join, round %d ..." % (args.round + 1), file=sys.stderr, flush=True)
        try:
            _timed_rows(run, args, workdir)
        except Exception as error:  # noqa: BLE001 - a failed round must not stop the others
            print("bench: join failed: %s" % error, file=sys.stderr, flush=True)
            for row_id in ("join_groups_per_s", "join_10k_s", "join_rss_10k"):
                run.missing(row_id, "measurement failed (round %d): %s" % (args.round + 1, error))
    print("bench: join, memory row: %d rounds side by side ..." % args.rounds, file=sys.stderr,
          flush=True)
    try:
        _join_rss_rows(run, args, workdir)
    except Exception as error:  # noqa: BLE001
        print("bench: join failed: %s" % error, file=sys.stderr, flush=True)
        run.missing("join_rss_100k", "measurement failed: %s" % error)


def _timed_rows(run, args, workdir):
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
