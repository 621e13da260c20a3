"""The physical floors of the CPU rows (bench/floor): bench_floor_sqlite and bench_floor_rabbitmq,
real processes on a real database file and a real broker. The consumer passes every paced message
on exactly once (each input deleted with its output written, bodies intact), with either wake-up,
with the settle split in two transactions, and with the hand-off (messages leased to the consumer
by the pacer and copied to a shared slot, or read when too large for one); messages queued before
it started are taken too; a pacer without a consumer, or a bad argument,
fails with a message that says what to do. bench/run records the floor beside the CPU rows
(fields, note, goals table) without replacing their baseline, the bare transport consumer."""
import json
import pathlib
import sqlite3
import subprocess
import time
import urllib.parse

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run"


def rows(db):
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT queue, body FROM floor ORDER BY id").fetchall()


def wait_until(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


@pytest.fixture
def sqlite_floor(build_path):
    return build_path / "bench/floor/bench_floor_sqlite"


@pytest.mark.parametrize("wake,transactions,hand_off,payload", [
    ("futex", "2", "false", 10), ("inotify", "2", "false", 10), ("futex", "3", "false", 10),
    ("futex", "2", "true", 10),
    ("futex", "2", "true", 1000),  # too large for a hand-off slot: the consumer reads it
])
def test_the_sqlite_floor_passes_every_paced_message_on_once(tmp_path, sqlite_floor, wake,
                                                             transactions, hand_off, payload):
    db = tmp_path / "floor.db"
    consumer = subprocess.Popen([sqlite_floor, "consume", "--db", db, "--wake", wake,
                                 "--transactions", transactions, "--hand-off", hand_off])
    try:
        paced = subprocess.run([sqlite_floor, "pace", "--db", db, "--rate", "200", "--seconds",
                                "0.15", "--payload", str(payload), "--wake", wake, "--hand-off",
                                hand_off], capture_output=True, text=True, timeout=120)
        assert paced.returncode == 0, paced.stderr
        assert json.loads(paced.stdout)["sent"] == 30
        # pace returns once "in" is empty; every input became exactly one output.
        got = rows(db)
        assert [queue for queue, _ in got] == ["out"] * 30
        assert all(json.loads(body)["payload"]["message"] == "x" * payload for _, body in got)
        assert consumer.poll() is None  # still waiting for more
        again = subprocess.run([sqlite_floor, "pace", "--db", db, "--rate", "100", "--seconds",
                                "0.1", "--wake", wake, "--hand-off", hand_off],
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert [queue for queue, _ in rows(db)] == ["out"] * 40
    finally:
        consumer.kill()
        consumer.wait()


@pytest.mark.parametrize("hand_off", ["false", "true"])
def test_the_sqlite_floor_takes_what_was_queued_before_it_started(tmp_path, sqlite_floor,
                                                                  hand_off):
    db = tmp_path / "floor.db"
    # A pacer with nobody consuming: it queues its messages (handed: already leased to the
    # consumer), then gives up with a clear message.
    lonely = subprocess.run([sqlite_floor, "pace", "--db", db, "--rate", "500", "--seconds",
                             "0.02", "--timeout", "0.2", "--hand-off", hand_off],
                            capture_output=True, text=True, timeout=60)
    assert lonely.returncode == 1
    assert "10 messages still in \"in\"" in lonely.stderr
    assert "is a consumer running" in lonely.stderr
    assert [queue for queue, _ in rows(db)] == ["in"] * 10
    consumer = subprocess.Popen([sqlite_floor, "consume", "--db", db, "--hand-off", hand_off])
    try:
        wait_until(lambda: [q for q, _ in rows(db)] == ["out"] * 10, "the queued messages")
        # The wake counter still says 10 committed: the next paced messages are not missed.
        paced = subprocess.run([sqlite_floor, "pace", "--db", db, "--rate", "200", "--seconds",
                                "0.05", "--hand-off", hand_off], capture_output=True, text=True,
                               timeout=120)
        assert paced.returncode == 0, paced.stderr
        assert [queue for queue, _ in rows(db)] == ["out"] * 20
    finally:
        consumer.kill()
        consumer.wait()


def test_the_floor_programs_reject_bad_arguments(tmp_path, build_path, sqlite_floor):
    bad_wake = subprocess.run([sqlite_floor, "consume", "--db", tmp_path / "x.db", "--wake",
                               "poll"], capture_output=True, text=True, timeout=30)
    assert bad_wake.returncode == 2
    assert "--wake \"poll\" is not known: use futex or inotify" in bad_wake.stderr
    bad_split = subprocess.run([sqlite_floor, "consume", "--db", tmp_path / "x.db",
                                "--transactions", "1"], capture_output=True, text=True, timeout=30)
    assert bad_split.returncode == 2
    assert "--transactions \"1\" is not known: use 2 or 3" in bad_split.stderr
    bad_hand_off = subprocess.run([sqlite_floor, "pace", "--db", tmp_path / "x.db", "--hand-off",
                                   "yes"], capture_output=True, text=True, timeout=30)
    assert bad_hand_off.returncode == 2
    assert "--hand-off \"yes\" is not known: use true or false" in bad_hand_off.stderr
    bad_rate = subprocess.run([sqlite_floor, "pace", "--db", tmp_path / "x.db", "--rate", "fast"],
                              capture_output=True, text=True, timeout=30)
    assert bad_rate.returncode == 2
    assert "--rate \"fast\" is not a number" in bad_rate.stderr
    for program in (sqlite_floor, build_path / "bench/floor/bench_floor_rabbitmq"):
        usage = subprocess.run([program, "drain"], capture_output=True, text=True, timeout=30)
        assert usage.returncode == 2
        assert "usage:" in usage.stderr
    bad_type = subprocess.run([build_path / "bench/floor/bench_floor_rabbitmq", "consume",
                               "--queue-type", "stream"], capture_output=True, text=True,
                              timeout=30)
    assert bad_type.returncode == 2
    assert "--queue-type \"stream\" is not known" in bad_type.stderr


def test_the_rabbitmq_floor_passes_every_paced_message_on(build_path, rabbitmq_broker):
    program = build_path / "bench/floor/bench_floor_rabbitmq"
    url = urllib.parse.urlparse(rabbitmq_broker.new_vhost())
    where = ["--host", url.hostname, "--port", str(url.port), "--vhost",
             urllib.parse.unquote(url.path[1:])]
    consumer = subprocess.Popen([program, "consume"] + where)
    try:
        for expected in (30, 10):  # the second pace counts from what "out" already holds
            paced = subprocess.run([program, "pace", "--rate", "200", "--seconds",
                                    str(expected / 200)] + where,
                                   capture_output=True, text=True, timeout=120)
            assert paced.returncode == 0, paced.stderr
            assert json.loads(paced.stdout)["sent"] == expected
        assert consumer.poll() is None
    finally:
        consumer.kill()
        consumer.wait()


def load_bench_run():
    """bench/run as a module (it is a script without .py), as bench/otlp/trace_cpu_split.py
    loads it."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("bench_run_floor_test", str(RUN))
    spec = importlib.util.spec_from_loader("bench_run_floor_test", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def window(sidecar, reference, floor=None):
    per = {"sidecar": sidecar, "reference": reference, "end": 900.0, "gateway": 1400.0,
           "runtime": 20.0}
    if floor is not None:
        per["floor"] = floor
    return {"per_msg_us": per, "per_msg_stat_us": dict(per), "gateway_requests_per_msg": 3.0}


def test_the_cpu_rows_keep_the_bare_consumer_as_baseline_and_carry_the_floor_beside_it():
    bench = load_bench_run()
    for sidecar, reference, floor in ((450.0, 225.0, 150.0), (500.0, 250.0, 100.0),
                                      (480.0, 240.0, 120.0)):
        bench.record_cpu_per_msg("sidecar_cpu_per_msg", window(sidecar, reference, floor),
                                 "SQLite", 100, 2, load=1.0)
    bench.record_cpu_per_msg("sidecar_cpu_per_msg_rabbitmq", window(260.0, 110.0), "RabbitMQ",
                             100, 2, load=1.0)  # a build without bench/floor: no floor
    rows = {r["id"]: r for r in bench.build_rows()}
    row = rows["sidecar_cpu_per_msg"]
    assert (row["asya"], row["baseline"]) == (480.0, 240.0)  # medians; baseline = bare consumer
    assert row["floor_us_rounds"] == [150.0, 100.0, 120.0]
    assert row["floor_us"] == 120.0
    assert row["ratio_to_floor"] == 4.0  # median of 3.0, 5.0 and 4.0
    assert row["end_actor_us"] == 900.0  # the row's other fields stay
    assert "Physical floor in the same window: 120 µs per message (bench_floor_sqlite" in \
        row["note"]
    goals = bench.goals_table(list(rows.values()))
    line = next(x for x in goals.splitlines() if x.startswith("| sidecar_cpu_per_msg |"))
    assert line.startswith("| sidecar_cpu_per_msg | ≤ 150 µs | 480 µs (")
    assert line.endswith("; raw floor 120 µs (4.0×) | **missed** |")
    rabbit = rows["sidecar_cpu_per_msg_rabbitmq"]
    assert "floor_us" not in rabbit and "Physical floor" not in rabbit["note"]
    line = next(x for x in goals.splitlines() if x.startswith("| sidecar_cpu_per_msg_rabbitmq"))
    assert "260 µs" in line and "raw floor" not in line
