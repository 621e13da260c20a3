"""Callers of a fan-out + join pipeline (issue 13, "Callers"): `asya call` and an MCP tools/call
through the official MCP SDK finish once, with the join's result, not with the first branch's.
One `asya up --detach` of examples/text-pipeline (split → score → collect, collect a join with
several replicas) with a tool over the whole pipeline.
Run: ASYA_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q tests/e2e_up_gateway/test_join_calls.py"""
import json
import pathlib
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
from local_harness import Asya, wait_for  # noqa: E402

ROUTES = """
tools:
  - name: analyze
    description: Score every sentence of a document and summarise them
    parameters:
      text: {type: string, required: true}
      doc: {type: string}
    route: [split, score, collect]
"""

TEXT = "I love this. This is bad. It is fine. Great work!"
SENTENCES = ["I love this.", "This is bad.", "It is fine.", "Great work!"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("joincall")
    routes = work / "routes.yaml"
    routes.write_text(ROUTES)
    asya = Asya(work)
    for key in ("ASYA_GATEWAY_TOKEN", "ASYA_GATEWAY_INTERNAL_TOKEN", "ASYA_GATEWAY_URL"):
        asya.env.pop(key, None)
    asya.up_detached(EXAMPLES / "text-pipeline", "--routes", routes, "--gateway-port", "0")
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


def _assert_joined(result, doc):
    """The join's output: one summary of every sentence, in the document's order (a branch's
    result would be one scored sentence)."""
    assert result["doc"] == doc
    assert [s["text"] for s in result["sentences"]] == SENTENCES
    assert result["summary"]["sentences"] == len(SENTENCES)
    assert "failed" not in result["summary"]


def _jobs_of(stack, tool):
    status, listing = _get(f"{stack.gateway_url()}/envelopes?tool={tool}&limit=100")
    assert status == 200, listing
    return listing["jobs"] if isinstance(listing, dict) else listing


def test_asya_call_through_a_fan_out_and_a_join_finishes_once_with_the_joined_result(stack):
    before = len(_jobs_of(stack, "analyze"))
    r = stack.run("call", "analyze", f"text={TEXT}", "doc=cli-doc", timeout=180)
    assert r.returncode == 0, r.stderr
    _assert_joined(json.loads(r.stdout), "cli-doc")
    progress = [line for line in r.stderr.splitlines() if line.startswith("progress ")]
    assert progress and progress[-1] == "progress 100% succeeded", r.stderr
    assert sum(1 for line in progress if line.endswith("succeeded")) == 1, r.stderr
    # One job for the call, final with the joined result (the branches ended in the join).
    jobs = _jobs_of(stack, "analyze")
    assert len(jobs) == before + 1, jobs
    status, job = _get(f"{stack.gateway_url()}/envelopes/{jobs[0]['id']}")
    assert status == 200
    assert job["status"] == "succeeded", job
    _assert_joined(job["result"], "cli-doc")


def _npm_ready():
    if not (MCP_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm not installed: the MCP test needs node and npm")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=MCP_CLIENT, check=True,
                       timeout=600)


def test_an_mcp_tools_call_through_a_fan_out_and_a_join_finishes_once_with_the_joined_result(stack):
    _npm_ready()
    before = len(_jobs_of(stack, "analyze"))
    proc = subprocess.run(["node", str(MCP_CLIENT / "call_tool.mjs"), stack.gateway_url(), "analyze",
                           json.dumps({"text": TEXT, "doc": "mcp-doc"})],
                          capture_output=True, text=True, timeout=180, env=stack.env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # one answer
    answer = json.loads(lines[0])
    result = answer["result"]
    assert result.get("isError") is not True, result
    joined = result.get("structuredContent") or json.loads(result["content"][0]["text"])
    _assert_joined(joined, "mcp-doc")
    # Progress never announced the end before the join's output (no 100 before the last).
    percents = [p["progress"] / p["total"] * 100 for p in answer["progress"] if p.get("total")]
    assert all(a <= b for a, b in zip(percents, percents[1:])), answer["progress"]
    jobs = _jobs_of(stack, "analyze")
    assert len(jobs) == before + 1, jobs
    status, job = _get(f"{stack.gateway_url()}/envelopes/{jobs[0]['id']}")
    assert status == 200 and job["status"] == "succeeded", job
    _assert_joined(job["result"], "mcp-doc")
