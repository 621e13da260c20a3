"""Recovery of `asya up` under faults (issue 20): a killed sidecar's message comes back within the
documented lease bound, a broker outage neither freezes the supervisor nor `asya down`, status
says how old it is, a crash on a full disk shows its reason, restarts are counted, and global
options come before the command."""
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from local_harness import REPO, Asya, manifest, wait_for

sys.path.insert(0, str(REPO / "tests"))
from services import rabbitmq as rabbitmq_service  # noqa: E402

FIXED = {"enabled": False}
# docs/transports.md, "A killed sidecar's messages": a message held by a sidecar that was killed
# is delivered again at the latest after its lease, ASYA_VISIBILITY_TIMEOUT (10 s for end actors,
# 30 s for the others) on SQLite and SQS (on SQLite the restarted replica takes it back at
# start-up, sooner), at once on RabbitMQ. The deadlines below are these bounds plus a margin for
# a loaded machine.
END_ACTOR_BOUND = {"sqlite": 10, "rabbitmq": 0, "sqs": 10}
ACTOR_BOUND = {"sqlite": 30, "rabbitmq": 0, "sqs": 30}
MARGIN = 20


def blocked_opening_a_fifo(pid):
    """True while a thread of `pid` waits in open() of a FIFO for a reader."""
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
        try:
            if (task / "wchan").read_text().strip() == "wait_for_partner":
                return True
        except OSError:
            pass
    return False


def sidecar_of(asya, actor):
    running = [p for p in (asya.actor(actor) or {}).get("processes", []) if p["running"]]
    return running[0]["sidecar"] if running and running[0]["sidecar"] else None


def test_killed_end_actor_sidecar_hands_its_message_on_within_the_bound(asya_on, tmp_path):
    asya = asya_on  # on sqlite, rabbitmq and sqs
    (tmp_path / "echo.yaml").write_text(manifest("echo", "testing.slow_echo", scaling=FIXED))
    asya.up_detached(tmp_path / "echo.yaml")
    happy = wait_for(lambda: sidecar_of(asya, "happy-end"), 30, "the happy-end sidecar")
    # Hold happy-end inside its store write: its temporary result files are FIFOs, and opening a
    # FIFO for writing blocks until a reader comes (none does). It holds the message's lease
    # meanwhile (and extends it), as a sidecar killed in the middle of a write would.
    succeeded = asya.state / "results" / "succeeded"
    fifos = [succeeded / f".held-1.json.{happy}.{n}.tmp" for n in range(4)]
    for fifo in fifos:
        os.mkfifo(fifo)
    asya.send("echo", "--payload", '"x"', "--id", "held-1")
    wait_for(lambda: blocked_opening_a_fifo(happy), 60, "happy-end to hold the message")
    if asya.transport == "sqlite":
        # A store write that takes longer than the end actor's lease keeps it: the sidecar
        # extends the lease while the write is in progress.
        time.sleep(END_ACTOR_BOUND["sqlite"] + 3)
        queues = {q["queue"]: q for q in json.loads(asya.run("queues", "--json", check=0).stdout)}
        assert (queues["asya-happy-end"]["in_flight"], queues["asya-happy-end"]["ready"]) == (1, 0)
    for fifo in fifos:
        fifo.unlink()  # the blocked open keeps waiting; the restarted sidecar writes normally
    os.kill(happy, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: "held-1" in asya.results(), END_ACTOR_BOUND[asya.transport] + MARGIN,
             "the message held by the killed happy-end sidecar to be stored")
    print(f"stored {time.monotonic() - killed:.1f}s after the kill")
    assert asya.results()["held-1"]["payload"] == "x"
    wait_for(lambda: asya.actor("happy-end")["restarts"] == 1, 10, "the restart to be counted")


def test_killed_actor_sidecar_hands_its_message_on_within_the_bound(asya_on, tmp_path):
    asya = asya_on
    (tmp_path / "holder.yaml").write_text(manifest("holder", "testing.hold_first", scaling=FIXED))
    asya.up_detached(tmp_path / "holder.yaml")
    marker = tmp_path / "marker"
    asya.send("holder", "--payload", json.dumps({"marker": str(marker), "seconds": 600}), "--id",
              "held-2")
    wait_for(marker.exists, 60, "the handler to start on the message")
    sidecar = sidecar_of(asya, "holder")
    os.kill(sidecar, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: "held-2" in asya.results(), ACTOR_BOUND[asya.transport] + MARGIN,
             "the message of the killed sidecar to be processed again")
    print(f"processed {time.monotonic() - killed:.1f}s after the kill")
    assert asya.results("failed") == {}


def test_restarts_count_every_crash_and_crash_streak_only_the_quick_ones_in_a_row(asya,
                                                                                   tmp_path):
    (tmp_path / "victim.yaml").write_text(manifest("victim", "testing.slow_echo", scaling=FIXED))
    asya.up_detached(tmp_path / "victim.yaml")
    killed = []
    for _ in range(3):
        sidecar = wait_for(lambda: (s := sidecar_of(asya, "victim")) and s not in killed and s,
                           60, "a new victim sidecar")
        os.kill(sidecar, signal.SIGKILL)
        killed.append(sidecar)
    wait_for(lambda: asya.actor("victim")["restarts"] == 3, 30, "3 restarts counted")
    status = json.loads(asya.run("status", "--json", check=0).stdout)
    victim = next(a for a in status["actors"] if a["name"] == "victim")
    assert victim["restarts"] == 3
    assert victim["crash_streak"] == 3  # three quick crashes in a row: crash-looping
    assert "sidecar was killed by SIGKILL" in victim["last_crash"]
    # A replica that stays up for healthy_after (10 s) ends the streak; the total stays.
    wait_for(lambda: asya.actor("victim")["crash_streak"] == 0, 60, "the crash streak to end")
    assert asya.actor("victim")["restarts"] == 3
    assert asya.actor("victim")["state"] == "running"


def test_status_says_how_old_it_is_and_warns_when_the_supervisor_stopped_writing(asya,
                                                                                  tmp_path):
    (tmp_path / "echo.yaml").write_text(manifest("echo", "testing.slow_echo", scaling=FIXED))
    asya.up_detached(tmp_path / "echo.yaml")
    fresh = json.loads(asya.run("status", "--json", check=0).stdout)
    assert fresh["age_seconds"] < 5 and fresh["stale"] is False
    out = asya.run("status", check=0)
    assert "as of" in out.stdout and "warning" not in out.stderr
    supervisor = fresh["pid"]
    os.kill(supervisor, signal.SIGSTOP)  # blocked: status.json is not rewritten
    try:
        time.sleep(7)
        stale = json.loads(asya.run("status", "--json", check=0).stdout)
        assert stale["stale"] is True and stale["age_seconds"] >= 6, stale
        out = asya.run("status", check=0)
        assert "asya: warning: this status was written" in out.stderr
        assert "cannot write" in out.stderr and "or is blocked" in out.stderr
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_for(lambda: json.loads(asya.run("status", "--json").stdout)["stale"] is False, 30,
             "status to be fresh again")


def test_supervisor_says_why_it_cannot_write_status_and_status_shows_its_age(asya, tmp_path):
    (tmp_path / "echo.yaml").write_text(manifest("echo", "testing.slow_echo", scaling=FIXED))
    asya.up_detached(tmp_path / "echo.yaml")
    # A directory where the supervisor writes its temporary status file: every write fails.
    blocker = asya.state / "status.json.tmp"
    blocker.mkdir()
    log = asya.state / "logs" / "supervisor.log"
    # The reason names the step and the file (common/durable_file), e.g. `creating
    # "…/status.json.tmp" failed: Is a directory`.
    wait_for(lambda: "cannot write status.json (creating" in log.read_text(), 30,
             "the supervisor to log why it cannot write status.json")
    assert "status.json.tmp" in log.read_text() and "Is a directory" in log.read_text()
    stale = wait_for(lambda: (s := json.loads(asya.run("status", "--json").stdout))["stale"]
                     and s, 30, "status to be reported stale")
    assert stale["age_seconds"] >= 5
    assert "asya: warning: this status was written" in asya.run("status", check=0).stderr
    assert log.read_text().count("cannot write status.json") == 1  # once per cause, not per second
    blocker.rmdir()
    wait_for(lambda: "status.json is written again" in log.read_text(), 30, "the recovery")
    assert json.loads(asya.run("status", "--json", check=0).stdout)["stale"] is False


def test_global_options_come_before_the_command(tmp_path):
    state = tmp_path / "elsewhere"
    asya = Asya(tmp_path)
    asya.env.pop("ASYA_STATE_DIR")  # only the option says where the state is
    (tmp_path / "echo.yaml").write_text(manifest("echo", "testing.slow_echo", scaling=FIXED))
    try:
        asya.run("--state-dir", state, "up", "--detach", tmp_path / "echo.yaml", check=0,
                 timeout=90)
        out = asya.run("--state-dir", state, "send", "echo", "--payload", '"g"', "--id", "g-1",
                       "--wait", "--timeout", 60, check=0, timeout=90)
        assert json.loads(out.stdout)["payload"] == "g"
        assert json.loads(asya.run("--state-dir", state, "status", "--json", check=0).stdout)[
            "state_dir"] == str(state)
        assert "g-1" in asya.run("--state-dir", state, "results", check=0).stdout
        assert "asya-echo" in asya.run("--state-dir", state, "queues", check=0).stdout
        asya.run("--state-dir", state, "logs", "echo", check=0)
        # After the command, its own option wins over the global one.
        asya.run("--state-dir", tmp_path / "nothing-here", "status", "--state-dir", state,
                 check=0)
    finally:
        down = asya.run("--state-dir", state, "down", "--timeout", 60, timeout=90)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stderr
    assert not (tmp_path / ".asya").exists()  # nothing went to the default state dir


# --- broker outage ------------------------------------------------------------------------------

def kill_broker(broker):
    """SIGKILLs the broker's Erlang VM: a crash, not a graceful stop."""
    pid = int((broker.dir / "rabbitmq.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not broker._accepts_connections(), 30, "the broker to be gone")


def test_broker_outage_keeps_status_fresh_and_asya_down_completes(tmp_path):
    if not rabbitmq_service.available():
        pytest.skip("rabbitmq-server is not installed (scripts/setup installs it)")
    with rabbitmq_service.broker() as broker:
        asya = Asya(tmp_path, transport="rabbitmq",
                    transport_env={"ASYA_RABBITMQ_URL": broker.new_vhost()})
        scaled = {"pollingInterval": "200ms", "cooldownPeriod": 2, "minReplicas": 1,
                  "maxReplicas": 2, "queueLength": 5}
        (tmp_path / "a.yaml").write_text(manifest("scaled", "testing.slow_echo", scaling=scaled))
        (tmp_path / "b.yaml").write_text(manifest("fixed", "testing.slow_echo", scaling=FIXED))
        try:
            asya.up_detached(tmp_path / "a.yaml", tmp_path / "b.yaml")
            out = asya.send("fixed", "--payload", '"before"', "--wait", "--timeout", 60,
                            timeout=90)
            assert json.loads(out.stdout)["payload"] == "before"
            kill_broker(broker)
            # Every second for 10 s: the supervisor keeps rewriting status.json (it used to
            # freeze for the broker's 30 s confirm timeout per actor), and says which counts
            # are not current.
            deadline = time.monotonic() + 10
            saw_stats_error = False
            while time.monotonic() < deadline:
                status = json.loads(asya.run("status", "--json", check=0).stdout)
                assert status["age_seconds"] < 4, status["age_seconds"]
                saw_stats_error |= any("stats_error" in a["queue"] for a in status["actors"])
                time.sleep(1)
            assert saw_stats_error
            started = time.monotonic()
            down = asya.run("down", "--timeout", 120, timeout=150)
            took = time.monotonic() - started
            assert down.returncode == 0, down.stderr
            print(f"asya down took {took:.1f}s during the outage")
            assert not (asya.state / "status.json").exists()
        finally:
            if (asya.state / "supervisor.pid").exists():
                asya.run("down", "--timeout", 5, timeout=30)
                asya.run("down", "--timeout", 30, timeout=60)


# --- full disk ----------------------------------------------------------------------------------

@contextlib.contextmanager
def full_disk(*directories):
    """Mounts a 64 KiB tmpfs on each directory and fills it: writes fail with ENOSPC. Yields the
    filler files (delete them to free the space); unmounts afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted, fillers = [], []
    try:
        for directory in directories:
            directory.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)],
                           check=True, capture_output=True)
            mounted.append(directory)
            filler = directory / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
            fillers.append(filler)
        yield fillers
    finally:
        for directory in reversed(mounted):
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def test_full_disk_crash_reason_is_shown_and_freeing_space_restarts_soon(asya, tmp_path):
    (tmp_path / "full.yaml").write_text(manifest("full", "testing.slow_echo", scaling=FIXED))
    # The runtime writes runtime-ready into <state>/run/full-0/ and logs into <state>/logs/full/.
    with full_disk(asya.state / "run", asya.state / "logs" / "full") as fillers:
        try:
            asya.up_detached(tmp_path / "full.yaml")
            # Six quick crashes in a row: an uncapped backoff would now be 16 s, then 30 s.
            actor = wait_for(lambda: (a := asya.actor("full")) and a["crash_streak"] >= 6 and a,
                             120, "six crashes on the full disk")
            assert any("No space left on device" in line for line in actor["last_crash_output"]), \
                actor
            assert "runtime exited with status 1" in actor["last_crash"]
            assert "cannot write" in actor["last_crash"] and "0.runtime.log" in actor["last_crash"]
            out = asya.run("status", check=0)
            assert "last crash: runtime exited with status 1" in out.stdout
            assert "No space left on device" in out.stdout  # the runtime's own line, via the pipe
            for filler in fillers:
                filler.unlink()
            freed = time.monotonic()
            # The restart follows at once (the supervisor watches free space), at the latest
            # after the 5 s cap of a full disk's backoff: within 5 s + margin, not 16-30 s.
            wait_for(lambda: asya.actor("full")["replicas"]["ready"] == 1, 5 + 10,
                     "the actor to run again after the disk was freed")
            print(f"ready {time.monotonic() - freed:.1f}s after the space was freed")
            out = asya.send("full", "--payload", '"ok"', "--wait", "--timeout", 60, timeout=90)
            assert json.loads(out.stdout)["payload"] == "ok"
        finally:
            asya.stop()
