"""`asya call` on the shipped examples (issue 19, "Calls"): one `asya up --detach` of
examples/hello and examples/text-pipeline, plus five copies of the hello actor, with the tools of
examples/hello/routes.yaml and a few more over the same handlers. Checks --list, arguments read
by the tool's schema, failures that say the error type, message and actor (CLI, REST and the
official MCP SDK), progress that never goes backwards, and the README's curl example as written.
Run: ASYA_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q tests/e2e_up_gateway/test_call_examples.py"""
import json
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXAMPLES = REPO / "examples"
MCP_CLIENT = REPO / "tests" / "gateway" / "mcp_client"
sys.path.insert(0, str(REPO / "tests" / "local"))
sys.path.insert(0, str(REPO / "tests" / "gateway"))
from local_harness import Asya, manifest, wait_for  # noqa: E402
from sse import SseStream  # noqa: E402

STEPS = [f"step{i}" for i in range(1, 6)]

# Appended to examples/hello/routes.yaml (its tool `hello` stays as shipped). The handlers are the
# examples' own: text-pipeline's score passes integers `index` and `count` on (its collect is a
# join now, reached only through split's fan-out, so it is not on these routes); hello's
# greeting has no `sentence`, so score raises KeyError('sentence').
EXTRA_TOOLS = """
  - name: score-sentence
    description: Score one sentence of a document
    parameters:
      sentence: {type: string, required: true}
      doc: {type: string, required: true}
      index: {type: integer, default: 0}
      count: {type: integer, default: 1}
    route: [score]
  - name: greet-then-score
    description: hello, then score (which needs a sentence)
    parameters:
      name: {type: string}
    route: [hello, score]
  - name: five-steps
    description: hello five times, each step its own actor
    parameters:
      name: {type: string}
    route: [step1, step2, step3, step4, step5]
"""

FAILURE = "KeyError: 'sentence' (processing_error in actor \"score\")"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("call")
    steps = work / "steps"
    steps.mkdir()
    # Warm replicas: consecutive hops overlap, so the sidecars' reports race at the gateway.
    for name in STEPS:
        (steps / f"{name}.yaml").write_text(manifest(
            name, "hello.greet", workdir=EXAMPLES / "hello",
            scaling={"minReplicas": 1, "maxReplicas": 1}, timeout={"gracefulShutdown": "1s"}))
    routes = work / "routes.yaml"
    routes.write_text((EXAMPLES / "hello" / "routes.yaml").read_text() + EXTRA_TOOLS)
    asya = Asya(work)
    for key in ("ASYA_GATEWAY_TOKEN", "ASYA_GATEWAY_INTERNAL_TOKEN", "ASYA_GATEWAY_URL"):
        asya.env.pop(key, None)
    asya.up_detached(EXAMPLES / "hello", EXAMPLES / "text-pipeline", steps, "--routes", routes,
                     "--gateway-port", "0")
    try:
        wait_for(asya.gateway_url, 60, "the gateway url in status.json")
        wait_for(lambda: _get(asya.gateway_url() + "/readyz")[0] == 200, 60, "gateway /readyz")
        yield asya
    finally:
        asya.stop()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
    except (urllib.error.URLError, OSError):
        return 0, None


def call(stack, *args, timeout=180):
    return stack.run("call", *args, timeout=timeout)


def test_list_shows_every_tool_with_its_parameters_and_descriptions(stack):
    r = call(stack, "--list")
    assert r.returncode == 0, r.stderr
    assert "hello  Greet someone by name\n    name=<string>  required. Who to greet\n" in r.stdout
    assert "score-sentence  Score one sentence of a document\n" in r.stdout
    assert re.search(r"\n    sentence=<string>\s+required\n", r.stdout), r.stdout
    assert re.search(r"\n    index=<integer>\s+default 0\n", r.stdout), r.stdout
    assert "five-steps  hello five times, each step its own actor\n" in r.stdout
    assert call(stack, "-l").stdout == r.stdout


def test_a_string_parameter_given_a_number_gets_the_text(stack):
    # Before: `expected a string, got 5` (the CLI sent the number 5).
    r = call(stack, "hello", "name=5", "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"greeting": "hello 5"}
    # Integers go as integers, strings as given: doc "5" stays a string through the actor.
    r = call(stack, "score-sentence", "sentence=I love this", "doc=5", "index=0", "count=1", "-q")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["doc"] == "5"
    assert (result["index"], result["count"], result["score"]) == (0, 1, 1.0)


def test_a_value_that_is_not_of_the_parameters_type_is_refused_before_the_call(stack):
    r = call(stack, "score-sentence", "sentence=x", "doc=d", "index=abc")
    assert r.returncode == 2, r.stderr
    assert r.stderr == ('asya: argument "index=abc": parameter "index" of tool "score-sentence" '
                        'takes an integer, and "abc" is not one (e.g. index=3)\n')
    assert r.stdout == ""
    r = call(stack, "hello", "nmae=Ada")
    assert r.returncode == 2
    assert 'tool "hello" has no parameter "nmae" (its parameters: name;' in r.stderr
    r = call(stack, "nope")
    assert r.returncode == 2 and 'unknown tool "nope"' in r.stderr and "hello" in r.stderr
    # key:=JSON is passed as is: the gateway refuses a number for a string parameter.
    r = call(stack, "hello", "name:=5")
    assert r.returncode == 2 and "expected a string, got 5" in r.stderr, r.stderr


def test_a_failing_pipeline_says_the_error_type_message_and_actor(stack):
    r = call(stack, "greet-then-score", "name=Ada")
    assert r.returncode == 1, r.stderr
    match = re.search(r"asya: job (\S+) failed: (.*)\n", r.stderr)
    assert match, r.stderr
    assert match.group(2) == FAILURE
    # Then the handler's traceback, indented: where in the example's file it failed.
    after = r.stderr.split(match.group(0), 1)[1]
    assert after.startswith("  Traceback (most recent call last):\n"), r.stderr
    assert f'  File "{EXAMPLES / "text-pipeline" / "score.py"}", line ' in after, r.stderr
    assert after.endswith("  KeyError: 'sentence'\n"), r.stderr
    # The last progress line says it too.
    progress = [line for line in r.stderr.splitlines() if line.startswith("progress ")]
    assert progress[-1].endswith(f"% failed: {FAILURE}"), r.stderr
    # REST: the job keeps the parts and the line.
    status, job = _get(f"{stack.gateway_url()}/envelopes/{match.group(1)}")
    assert status == 200
    assert job["status"] == "failed" and job["error"] == "processing_error"
    assert job["failed_actor"] == "score" and job["error_message"] == FAILURE
    assert job["error_details"]["type"] == "KeyError"
    assert job["error_details"]["message"] == "'sentence'"
    assert "Traceback" in job["error_details"]["traceback"]
    # REST, a sync call: the CallToolResult's text.
    status, answer = stack.post("/tools/call", {"name": "greet-then-score",
                                                "arguments": {"name": "Ada"}}, timeout=120)
    assert status == 200 and answer["isError"] is True, answer
    assert answer["content"][0]["text"] == FAILURE
    assert answer["structuredContent"]["failed_actor"] == "score"


def _npm_ready():
    if not (MCP_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm not installed: the MCP test needs node and npm")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=MCP_CLIENT, check=True,
                       timeout=600)


def test_a_failing_pipeline_through_the_mcp_sdk_says_the_error_type_message_and_actor(stack):
    _npm_ready()
    proc = subprocess.run(["node", str(MCP_CLIENT / "call_tool.mjs"), stack.gateway_url(),
                           "greet-then-score", json.dumps({"name": "Ada"})],
                          capture_output=True, text=True, timeout=120, env=stack.env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])["result"]
    assert result["isError"] is True
    assert result["content"] == [{"type": "text", "text": FAILURE}]


PROGRESS_LINE = re.compile(r"^progress (\d+)% (?:\[(\d)/5 (step\d)\] )?(.*)$")


def test_progress_lines_name_the_actor_and_never_go_backwards(stack):
    for _ in range(3):
        r = call(stack, "five-steps", "name=Ada")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"greeting": "hello world"}
        lines = [line for line in r.stderr.splitlines() if line.startswith("progress ")]
        assert lines[-1] == "progress 100% succeeded", r.stderr
        percents, places = [], []
        for line in lines:
            match = PROGRESS_LINE.match(line)
            assert match, line
            percents.append(int(match.group(1)))
            if match.group(2):
                place = int(match.group(2))
                assert match.group(3) == f"step{place}", line
                assert match.group(4).endswith(f" step{place}"), line  # "received by step2"
                places.append(place)
        assert percents == sorted(percents), r.stderr
        assert places == sorted(places) and places, r.stderr
        assert len(lines) == len(set(lines)), r.stderr  # nothing printed twice


def test_the_gateways_events_never_go_backwards(stack):
    """The stream itself (not only what `asya call` shows): each actor's sidecar reports on its own
    connection, and before the fix actor 2's "received" overtook actor 1's "completed" on most
    runs, moving the job's actor back."""
    for _ in range(3):
        status, answer = stack.post("/tools/call", {"name": "five-steps",
                                                    "arguments": {"name": "x"}, "async": True})
        assert status == 200, answer
        job_id = answer["structuredContent"]["job_id"]
        stream = SseStream(f"{stack.gateway_url()}/envelopes/{job_id}/stream", timeout=120)
        events = [data for _, _, data in stream.events()]
        stream.close()
        assert events[-1]["status"] == "succeeded", events[-1]
        rank = {"received": 0, "processing": 1, "completed": 2}
        positions = [(e["current_actor_idx"], rank[e["envelope_state"]]) for e in events
                     if e["envelope_state"] in rank]
        assert positions == sorted(positions), positions
        percents = [e["progress_percent"] for e in events]
        assert percents == sorted(percents), percents


def test_the_readme_rest_example_runs_as_written(stack):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"REST, with curl:\n\n```sh\n(.*?)```", readme, re.S)
    assert block, "README.md has no 'REST, with curl:' block"
    port = stack.gateway_url().rsplit(":", 1)[1]
    script = block.group(1).replace("localhost:8080", f"127.0.0.1:{port}")
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True,
                          text=True, timeout=180, cwd=stack.workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert '"structuredContent":{"greeting":"hello Ada"}' in out, out  # the sync call
    assert "event: update" in out and '"status":"succeeded"' in out, out  # the stream
    last = json.loads(out.strip().splitlines()[-1])  # GET /envelopes/$job
    assert last["status"] == "succeeded" and last["result"] == {"greeting": "hello Ada"}, last
