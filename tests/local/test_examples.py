"""The examples give their expected results through `asya up` and `asya send --wait`, on every
transport (sqlite, rabbitmq, sqs), and through the gateway when a routes.yaml is beside them."""
import json
import os
import pathlib
import stat

from local_harness import BROKER_SECRETS, build_dir, manifest, process_environment


def test_hello_example_greets(asya_on, repo):
    asya = asya_on
    # A plain interpreter: a pyenv shim for python3 would add its own variables to the runtime.
    asya.env["ASYA_PYTHON"] = "/usr/bin/python3"
    asya.env["SUPERVISOR_ONLY"] = "must not reach the runtime"
    asya.up_detached(repo / "examples" / "hello", "--no-gateway")
    out = asya.send("hello", "--payload", '{"name": "Ada"}', "--wait", "--timeout", 60)
    envelopes = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(envelopes) == 1
    assert envelopes[0]["payload"] == {"greeting": "hello Ada"}
    assert envelopes[0]["route"] == {"actors": ["hello"], "current": 1}
    stored = asya.run("results", envelopes[0]["id"], check=0)
    assert json.loads(stored.stdout) == envelopes[0]
    assert asya.status()["transport"] == asya.transport
    # Broker credentials go to sidecars only, never to the handler's runtime.
    hello = asya.actor("hello")["processes"][0]
    runtime_env = process_environment(hello["runtime"])
    sidecar_env = process_environment(hello["sidecar"])
    assert sidecar_env["ASYA_TRANSPORT"] == asya.transport
    # The whole runtime environment is the documented allow-list (docs/local.md): the basics,
    # the manifest's env and the socket; no transport setting, no ASYA_* of the sidecar.
    basics = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"}
    # The socket in both forms (ASYA_SOCKET_PATH; ASYA_SOCKET_DIR + ASYA_SOCKET_NAME).
    assert set(runtime_env) - basics == {"ASYA_HANDLER", "ASYA_SOCKET_PATH", "ASYA_SOCKET_DIR",
                                         "ASYA_SOCKET_NAME"}, runtime_env
    assert runtime_env["ASYA_HANDLER"] == "hello.greet"
    for secret in BROKER_SECRETS:
        assert secret not in runtime_env
        if secret in asya.env:
            assert sidecar_env[secret] == asya.env[secret]


def test_hello_tool_is_called_through_the_gateway(asya_on, repo):
    asya = asya_on
    out = asya.up_detached(repo / "examples" / "hello", "--gateway-port", 0)
    url = asya.gateway_url()
    assert url and url.startswith("http://127.0.0.1:")
    assert out.stdout.strip() == url  # --detach prints the gateway URL on stdout
    assert f"gateway on {url}" in out.stderr
    status, answer = asya.post("/tools/call", {"name": "hello", "arguments": {"name": "Ada"}})
    assert status == 200, answer
    assert answer["isError"] is False, answer
    assert answer["structuredContent"] == {"greeting": "hello Ada"}
    # The sidecars report to the gateway; the job is recorded there as succeeded.
    hello = asya.actor("hello")["processes"][0]
    # ... over the gateway's Unix socket in the state directory (owner-only), not loopback TCP.
    sidecar_url = process_environment(hello["sidecar"])["ASYA_GATEWAY_URL"]
    assert sidecar_url.startswith("unix:/") and sidecar_url.endswith("/gateway.sock"), sidecar_url
    gateway_socket = pathlib.Path(sidecar_url[len("unix:"):])
    assert stat.S_ISSOCK(gateway_socket.stat().st_mode)
    assert stat.S_IMODE(gateway_socket.stat().st_mode) == 0o600
    status, answer = asya.post("/tools/call", {"name": "hello", "arguments": {}})
    assert status == 400 and "name" in answer["error"], answer
    assert f"gateway: {url}" in asya.run("status", check=0).stdout
    assert asya.run("logs", "gateway", check=0).stdout.strip()  # the gateway's log


def test_routes_mistake_stops_asya_up_before_anything_starts(asya, repo, tmp_path):
    (tmp_path / "hello.yaml").write_text((repo / "examples" / "hello" / "hello.yaml").read_text())
    (tmp_path / "routes.yaml").write_text(
        "tools:\n- name: hello\n  route: [hello]\n  retries: 3\n  async: maybe\n")
    out = asya.run("up", "--detach", "--gateway-port", 0, tmp_path, check=2)
    # Every mistake is reported, not only the first.
    assert f"{tmp_path / 'routes.yaml'}:4: tools[hello].retries: unknown key" in out.stderr
    assert (f"{tmp_path / 'routes.yaml'}:5: tools[hello].async: expected true or false, got "
            '"maybe"') in out.stderr, out.stderr
    assert "nothing was started" in out.stderr
    assert not (asya.state / "status.json").exists()


def test_cpp_echo_example_runs_the_built_binary(asya, repo):
    # The manifest's command is $(ASYA_BUILD_DIR)/examples/cpp-echo/asya-cpp-echo; unset, asya
    # uses the build tree it runs from.
    binary = build_dir() / "examples" / "cpp-echo" / "asya-cpp-echo"
    assert binary.exists(), f"build it: ninja -C {build_dir()} asya-cpp-echo"
    asya.env.pop("ASYA_BUILD_DIR", None)
    asya.up_detached(repo / "examples" / "cpp-echo")
    out = asya.send("echo", "--payload", '{"message": "hi"}', "--wait", "--timeout", 30)
    envelope = json.loads(out.stdout)
    assert envelope["payload"] == {"echoed": "hi"}
    assert envelope["route"] == {"actors": ["echo"], "current": 1}
    runtime = asya.actor("echo")["processes"][0]["runtime"]
    assert os.readlink(f"/proc/{runtime}/exe") == str(binary.resolve())
    # spec.sidecar reaches the sidecar's environment.
    sidecar_env = process_environment(asya.actor("echo")["processes"][0]["sidecar"])
    assert (sidecar_env["ASYA_CONCURRENCY"], sidecar_env["ASYA_MAX_DELIVERIES"]) == ("4", "3")
    out = asya.send("echo", "--payload", '"plain"', "--wait", "--timeout", 30)
    assert json.loads(out.stdout)["payload"] == "plain"


def test_unresolved_command_reference_is_refused(asya, tmp_path):
    (tmp_path / "x.yaml").write_text(
        manifest("x", "a.b", command=["$(NO_SUCH_DIR_XYZ)/bin/x"]))
    out = asya.run("up", "--detach", tmp_path / "x.yaml", check=2)
    assert (f"{tmp_path / 'x.yaml'}:1: spec.workload.template.spec.containers[0].command[0]: "
            "$(NO_SUCH_DIR_XYZ) in \"$(NO_SUCH_DIR_XYZ)/bin/x\" is not set") in out.stderr
    assert "nothing was started" in out.stderr


def test_text_pipeline_example_summarises_each_document(asya, repo):
    asya.up_detached(repo / "examples" / "text-pipeline")
    doc = {"doc": "r1", "text": "I love this library. The build was slow! It works."}
    out = asya.send("--route", "split,score,collect", "--payload", json.dumps(doc), "--id", "doc-1",
                    "--wait", "--timeout", 40)
    envelopes = [json.loads(line) for line in out.stdout.splitlines()]
    # collect is a join: the three sentences end in it and one summary goes on under the
    # document's id.
    assert [e["id"] for e in envelopes] == ["doc-1"]
    summaries = [e["payload"] for e in envelopes]
    assert summaries[0]["doc"] == "r1"
    assert summaries[0]["summary"] == {"sentences": 3, "average": 0.0, "label": "neutral"}
    assert [s["text"] for s in summaries[0]["sentences"]] == [
        "I love this library.", "The build was slow!", "It works."]
    assert [s["score"] for s in summaries[0]["sentences"]] == [1.0, -1.0, 0.0]


def test_demo_script_runs_and_stops_cleanly(repo, tmp_path):
    import os
    import subprocess
    from local_harness import build_dir
    env = dict(os.environ, ASYA_BUILD_DIR=str(build_dir()), TMPDIR=str(tmp_path))
    env.pop("ASYA_STATE_DIR", None)
    import time
    started = time.monotonic()
    result = subprocess.run([str(repo / "scripts" / "demo")], env=env, capture_output=True,
                            text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 60, f"make demo took {elapsed:.1f}s after the build; the issue asks < 1 min"
    assert "review-1: positive" in result.stdout
    assert "review-2: negative" in result.stdout
    assert "asya: stopped" in result.stderr
    assert list(tmp_path.iterdir()) == []  # the temp state dir was removed
