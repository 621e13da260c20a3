"""The first hour (issue 19), end to end with real `asya up` processes: mistakes that used to start
a system whose actor crash-loops (or whose gateway is another system's) now stop `asya up` with
exit code 2 and the reason before anything starts; callers stop with the reason instead of waiting
for an actor that does not exist or keeps crashing; `asya init` makes a project that runs as it
is."""
import json
import os
import pathlib
import stat
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from local_harness import Asya, HANDLERS, alive, manifest, process_environment, wait_for

FIXED = {"enabled": False}
ROUTES = textwrap.dedent("""\
    tools:
      - name: echo
        description: Echo the text
        parameters:
          text: {type: string, required: true, description: Any text}
        route: [echo]
        timeout: 60
    """)


def echo_system(workdir: pathlib.Path):
    """A folder with the actor `echo` (testing.slow_echo) and a routes.yaml with the tool echo."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "echo.yaml").write_text(manifest("echo", "testing.slow_echo", scaling=FIXED))
    (workdir / "routes.yaml").write_text(ROUTES)
    return workdir


def expect_nothing_started(asya):
    """Pre-flight refused: no supervisor, no state directory written."""
    assert not (asya.state / "status.json").exists()
    assert not (asya.state / "supervisor.pid").exists()
    assert not (asya.state / "queues.db").exists()


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


# ------------------------------------------------------------------------------------------
# The gateway port and the readiness check.


def test_a_taken_gateway_port_stops_the_second_system_and_leaves_the_first_untouched(asya, tmp_path):
    first = echo_system(tmp_path / "first")
    asya.up_detached(first, "--gateway-port", 0)
    url = asya.gateway_url()
    port = int(url.rsplit(":", 1)[1])
    gateway_pid = asya.status()["gateway"]["pid"]

    second = Asya(tmp_path / "other")
    second.workdir.mkdir()
    try:
        out = second.run("up", "--detach", "--gateway-port", port, echo_system(tmp_path / "second"))
        assert out.returncode == 2, out
        assert f"port {port} on 127.0.0.1 is not available" in out.stderr, out.stderr
        assert "--gateway-port 0" in out.stderr, out.stderr
        assert "nothing was started" in out.stderr
        assert out.stdout == ""  # no gateway URL printed
        expect_nothing_started(second)
        # Its `asya call` does not reach the first system's gateway.
        call = second.run("call", "echo", "text=hi")
        assert call.returncode == 2 and "no gateway" in call.stderr, call
    finally:
        second.stop()

    # The first system: same gateway process, still serving its own calls.
    assert asya.status()["gateway"]["pid"] == gateway_pid and alive(gateway_pid)
    call = asya.run("call", "echo", "text=still here", timeout=90, check=0)
    assert json.loads(call.stdout)["text"] == "still here"


def test_the_gateway_answers_readiness_with_the_instance_id_the_supervisor_gave_it(asya, tmp_path):
    asya.up_detached(echo_system(tmp_path / "sys"), "--gateway-port", 0)
    gateway = asya.status()["gateway"]
    instance = process_environment(gateway["pid"])["ASYA_GATEWAY_INSTANCE_ID"]
    assert len(instance) == 16
    assert get_json(gateway["url"] + "/readyz") == {"status": "ready", "instance": instance}
    assert get_json(gateway["url"] + "/healthz") == {"status": "ok", "instance": instance}


FOREIGN_GATEWAY = textwrap.dedent("""\
    # Stands in for the scenario of issue 19: while the gateway `asya up` started dies on
    # "Address already in use", ANOTHER system's gateway answers /readyz on the port.
    import http.server, os, sys, threading, time
    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"status":"ready","instance":"another-system"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", int(os.environ["ASYA_GATEWAY_PORT"])), Other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(3)
    print("asya-gateway: bind 127.0.0.1: Address already in use", file=sys.stderr)
    sys.exit(1)
    """)


def test_a_readiness_answer_from_another_process_is_not_taken_for_the_gateway(asya, tmp_path):
    fake = tmp_path / "fake_gateway.py"
    fake.write_text(FOREIGN_GATEWAY)
    wrapper = tmp_path / "asya-gateway"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {fake}\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    asya.env["ASYA_GATEWAY_BIN"] = str(wrapper)
    out = asya.run("up", "--detach", "--gateway-port", 0, echo_system(tmp_path / "sys"), timeout=90)
    # Before issue 19 the first 200 was taken as ready: exit 0 and the URL printed.
    assert out.returncode == 1, out
    assert "before it was ready" in out.stderr, out.stderr
    assert out.stdout == ""
    log = (asya.state / "logs" / "supervisor.log").read_text()
    assert "the gateway exited with status 1 before it was ready" in log, log


# ------------------------------------------------------------------------------------------
# Handlers that cannot be loaded, and bad settings.


def test_a_typo_in_asya_handler_stops_asya_up_naming_actor_module_and_file(asya, tmp_path):
    (tmp_path / "typo.yaml").write_text(manifest("typo", "tesitng.slow_echo", scaling=FIXED))
    (tmp_path / "missing.yaml").write_text(manifest("missing", "testing.slow_ecko", scaling=FIXED))
    out = asya.run("up", "--detach", tmp_path)
    assert out.returncode == 2, out
    assert f"{tmp_path / 'typo.yaml'}:1: actor typo: its Python handler cannot be loaded" in out.stderr
    assert "no module named 'tesitng'" in out.stderr and "module: tesitng" in out.stderr
    assert "file found: none" in out.stderr
    assert f"working directory: {HANDLERS} (its modules: " in out.stderr
    assert "testing.py" in out.stderr.split("(its modules: ")[1].split(")")[0]
    assert "actor missing: its Python handler cannot be loaded" in out.stderr
    assert "has no attribute 'slow_ecko'" in out.stderr
    assert f"file found: {HANDLERS / 'testing.py'}" in out.stderr
    assert "2 problem(s) found before start; nothing was started" in out.stderr
    expect_nothing_started(asya)


def test_a_syntax_error_in_the_handler_stops_the_foreground_asya_up_too(asya, tmp_path):
    handlers = tmp_path / "handlers"
    handlers.mkdir()
    (handlers / "broken.py").write_text("def process(payload)\n    return payload\n")
    (tmp_path / "broken.yaml").write_text(manifest("broken", "broken.process", workdir=handlers))
    out = asya.run("up", "--plain", tmp_path / "broken.yaml")
    assert out.returncode == 2, out
    assert "SyntaxError" in out.stderr and f"file found: {handlers / 'broken.py'}" in out.stderr
    expect_nothing_started(asya)


def test_a_bad_log_level_stops_asya_up(asya, tmp_path):
    # In the manifest: the runtime's setting.
    (tmp_path / "loud.yaml").write_text(
        manifest("loud", "testing.slow_echo", env={"ASYA_LOG_LEVEL": "verbose"}))
    out = asya.run("up", "--detach", tmp_path / "loud.yaml")
    assert out.returncode == 2, out
    assert "actor loud" in out.stderr and 'ASYA_LOG_LEVEL="verbose" is not valid' in out.stderr
    expect_nothing_started(asya)
    # In the environment of `asya up`: every process's.
    (tmp_path / "quiet.yaml").write_text(manifest("quiet", "testing.slow_echo"))
    asya.env["ASYA_LOG_LEVEL"] = "verbose"
    out = asya.run("up", "--detach", tmp_path / "quiet.yaml")
    assert out.returncode == 2, out
    assert 'ASYA_LOG_LEVEL="verbose" is not valid' in out.stderr
    expect_nothing_started(asya)


def test_a_bad_transport_setting_stops_asya_up_with_exit_2(asya, tmp_path):
    (tmp_path / "a.yaml").write_text(manifest("a", "testing.slow_echo"))
    asya.env["ASYA_SQLITE_BUSY_TIMEOUT"] = "5sec"
    out = asya.run("up", "--detach", tmp_path / "a.yaml")
    assert out.returncode == 2, out
    assert "the sidecars of a, happy-end, error-end" in out.stderr, out.stderr
    assert 'ASYA_SQLITE_BUSY_TIMEOUT="5sec"' in out.stderr
    assert "is set in the environment of `asya up`" in out.stderr
    expect_nothing_started(asya)


def test_a_bad_sidecar_setting_stops_asya_up_with_exit_2(asya, tmp_path):
    (tmp_path / "a.yaml").write_text(manifest("a", "testing.slow_echo"))
    asya.env["ASYA_RUNTIME_READY_TIMEOUT"] = "5 minutes"
    out = asya.run("up", "--detach", tmp_path / "a.yaml")
    assert out.returncode == 2, out
    assert 'ASYA_RUNTIME_READY_TIMEOUT="5 minutes" is not a duration' in out.stderr, out.stderr
    expect_nothing_started(asya)


# ------------------------------------------------------------------------------------------
# Fail fast for callers.


def test_send_to_an_unknown_actor_stops_at_once_and_sends_nothing(asya, tmp_path):
    asya.up_detached(echo_system(tmp_path / "sys"), "--gateway-port", 0)
    out = asya.send("nobody", "--payload", "1", "--wait", "--timeout", 120, check=2)
    assert 'unknown actor "nobody"' in out.stderr and "runs only echo" in out.stderr, out.stderr
    assert "nothing was sent" in out.stderr
    queues = json.loads(asya.run("queues", "--json", check=0).stdout)
    assert "asya-nobody" not in json.dumps(queues)
    # --force queues it for an actor that runs elsewhere.
    out = asya.send("nobody", "--payload", "1", "--id", "for-elsewhere", "--force", check=0)
    assert out.stdout.strip() == "for-elsewhere"


def test_call_of_a_tool_routed_to_an_unknown_actor_stops_with_the_reason(asya, tmp_path):
    system = echo_system(tmp_path / "sys")
    ghost = ROUTES.split("tools:\n", 1)[1].replace("echo", "ghost")
    (system / "routes.yaml").write_text(ROUTES + ghost)
    asya.up_detached(system, "--gateway-port", 0)
    out = asya.run("call", "ghost", "text=hi", timeout=90)
    assert out.returncode == 2, out
    assert 'tool ghost: unknown actor "ghost"' in out.stderr and "nothing was called" in out.stderr
    # --force calls it anyway (it waits: here until --timeout).
    out = asya.run("call", "ghost", "text=hi", "--force", "--timeout", 2, "-q", timeout=90)
    assert out.returncode == 3, out


def crash_looping_system(workdir: pathlib.Path):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "model.yaml").write_text(manifest("model", "testing.NeedsGpu.run", scaling=FIXED))
    (workdir / "routes.yaml").write_text(ROUTES.replace("echo", "model"))
    return workdir


def test_send_wait_stops_when_its_actor_starts_crash_looping(asya, tmp_path):
    # The class is checked, not created, before start: `asya up` starts, then the actor crashes.
    asya.up_detached(crash_looping_system(tmp_path / "sys"), "--gateway-port", 0)
    out = asya.send("model", "--payload", "{}", "--id", "m-1", "--wait", "--timeout", 300, check=None,
                    timeout=330)
    # Before issue 19: exit 3 after the whole timeout.
    assert out.returncode == 2, out
    assert 'actor "model" is crash-looping' in out.stderr, out.stderr
    assert "no GPU on this machine" in out.stderr  # the last crash's output
    assert "m-1 stays in its queue" in out.stderr
    queue = next(a for a in asya.status()["actors"] if a["name"] == "model")["queue"]
    assert queue["ready"] + queue["in_flight"] + queue["delayed"] == 1  # not lost


def test_callers_of_a_crash_looping_actor_stop_at_once(asya, tmp_path):
    asya.up_detached(crash_looping_system(tmp_path / "sys"), "--gateway-port", 0)
    wait_for(lambda: (a := asya.actor("model")) and a["state"] == "crash-looping", 120,
             "model to be crash-looping")
    out = asya.send("model", "--payload", "{}", "--wait", check=2)
    assert 'actor "model" is crash-looping' in out.stderr and "nothing was sent" in out.stderr
    out = asya.run("call", "model", "text=hi", timeout=90)
    assert out.returncode == 2, out
    assert 'tool model: actor "model" is crash-looping' in out.stderr
    assert "asya logs model" in out.stderr
    # Without --wait the message is queued for when the actor is fixed, with a warning.
    out = asya.send("model", "--payload", "{}", "--id", "later", check=0)
    assert out.stdout.strip() == "later" and "warning" in out.stderr


# ------------------------------------------------------------------------------------------
# asya init.


def test_init_makes_a_project_whose_test_passes_and_that_runs_as_it_is(asya, tmp_path):
    out = asya.run("init", "wordcount", check=0)
    project = tmp_path / "wordcount"
    for name in ["handler.py", "wordcount.yaml", "routes.yaml", "test_handler.py", "README.md"]:
        assert (project / name).is_file(), name
    assert "cd wordcount" in out.stdout

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tests = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout

    # Never overwrites.
    handler = (project / "handler.py").read_text()
    again = asya.run("init", "wordcount")
    assert again.returncode == 2 and "exists and is not empty" in again.stderr, again
    assert (project / "handler.py").read_text() == handler
    bad = asya.run("init", "Word_Count")
    assert bad.returncode == 2 and "cannot be an actor name" in bad.stderr, bad
    assert not (tmp_path / "Word_Count").exists()

    asya.workdir = project
    asya.up_detached("--gateway-port", 0)
    call = asya.run("call", "wordcount", "text=hello asya world", "-q", timeout=120, check=0)
    assert json.loads(call.stdout) == {"text": "hello asya world", "words": 3}
    sent = asya.send("wordcount", "--payload", '{"text": "a b"}', "--wait", "--timeout", 120, check=0)
    assert json.loads(sent.stdout)["payload"] == {"text": "a b", "words": 2}
