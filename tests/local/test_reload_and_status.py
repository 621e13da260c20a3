"""`asya status` right after `asya send --wait`, and `asya up --reload` (issue 19)."""
import json
import os
import time

import pytest

from local_harness import manifest, wait_for

RELOADABLE = '''import json
import os
import time

VERSION = "{version}"


def _record(event, payload):
    line = json.dumps({{"event": event, "n": payload["n"], "version": VERSION}}) + "\\n"
    fd = os.open(os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def process(payload):
    _record("start", payload)
    time.sleep(float(payload.get("seconds", 0)))
    _record("end", payload)
    return {{"n": payload["n"], "version": VERSION}}
'''


# Autoscaled with a long polling interval: the autoscaler reads the queue every 30 s, but the
# status still shows a read made after `asya status` asked (it showed the autoscaler's read).
@pytest.mark.parametrize("scaling", [{"enabled": False},
                                     {"enabled": True, "minReplicas": 1, "pollingInterval": "30s"}],
                         ids=["fixed", "autoscaled"])
def test_status_right_after_send_wait_shows_the_message_processed(asya, tmp_path, scaling):
    (tmp_path / "echo.yaml").write_text(manifest("echo", "testing.slow_echo", scaling=scaling))
    asya.up_detached(tmp_path / "echo.yaml")
    for n in range(1, 6):
        out = asya.send("echo", "--payload", json.dumps({"n": n}), "--wait", check=0)
        assert json.loads(out.stdout)["payload"] == {"n": n}
        # No waiting here: the status must already count the message and show its queue empty.
        asked = time.monotonic()
        status = json.loads(asya.run("status", "--json", check=0).stdout)
        took = time.monotonic() - asked
        echo = next(a for a in status["actors"] if a["name"] == "echo")
        assert echo["processed"] >= n, echo
        assert (echo["queue"]["ready"], echo["queue"]["in_flight"]) == (0, 0), echo
        assert status["stale"] is False
        # Every queue was read after the command asked (unless the supervisor gave up waiting
        # for a read, after 2 s): no count is older than the command itself. A status written
        # by the periodic refresh in between used to carry counts read before the request.
        if took < 2:
            for actor in status["actors"]:
                assert actor["queue"]["age_seconds"] <= took + 0.05, (took, actor)


def records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_reload_restarts_the_actor_on_a_handler_change_and_loses_no_message(asya, tmp_path):
    handlers = tmp_path / "handlers"
    handlers.mkdir()
    handler = handlers / "reloadable.py"
    handler.write_text(RELOADABLE.format(version="v1"))
    record = tmp_path / "record.jsonl"
    (tmp_path / "reloadable.yaml").write_text(
        manifest("reloadable", "reloadable.process", workdir=handlers,
                 scaling={"enabled": False}, env={"RECORD_FILE": str(record)}))
    asya.up_detached("--reload", tmp_path / "reloadable.yaml")

    out = asya.send("reloadable", "--payload", '{"n": 1}', "--wait", check=0)
    assert json.loads(out.stdout)["payload"] == {"n": 1, "version": "v1"}

    # A message in the old runtime's hands when the file changes: it must finish there.
    asya.send("reloadable", "--payload", '{"n": 2, "seconds": 2}', "--id", "in-flight", check=0)
    wait_for(lambda: any(r["n"] == 2 for r in records(record)), 30,
             "the old runtime to start message 2")
    # Editor files next to it change nothing; the new text is longer (a same-size rewrite in the
    # same second could meet a stale __pycache__ entry).
    (handlers / ".reloadable.py.swp").write_text("junk")
    handler.write_text(RELOADABLE.format(version="v2-reloaded"))
    # A message sent while the actor reloads.
    asya.send("reloadable", "--payload", '{"n": 3}', "--id", "during-reload", check=0)

    def new_answer():
        out = asya.send("reloadable", "--payload", '{"n": 4}', "--wait", check=0)
        return json.loads(out.stdout)["payload"]["version"] == "v2-reloaded"
    wait_for(new_answer, 90, "a send to answer with the new handler", interval=0.5)

    results = wait_for(lambda: (r := asya.results()) and {"in-flight", "during-reload"} <= set(r)
                       and r, 60, "the results of the messages sent around the reload")
    assert results["in-flight"]["payload"] == {"n": 2, "version": "v1"}
    assert results["during-reload"]["payload"]["n"] == 3
    # Exactly once: every message was started and finished by one runtime, one time.
    lines = records(record)
    for n in (1, 2, 3):
        starts = [r for r in lines if r["n"] == n and r["event"] == "start"]
        ends = [r for r in lines if r["n"] == n and r["event"] == "end"]
        assert len(starts) == 1 and len(ends) == 1, (n, lines)
    log = (asya.state / "logs" / "supervisor.log").read_text()
    reload_lines = [line for line in log.splitlines() if "reload: reloadable:" in line]
    assert reload_lines and f"{handler} changed" in reload_lines[0], log
    assert ".swp" not in log
