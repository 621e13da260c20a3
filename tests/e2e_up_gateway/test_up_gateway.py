"""`asya call` end to end through `asya up --detach` with a routes.yaml (the REST/job cases through
`asya up` live in tests/e2e_gateway/test_asya_up.py).
Run: ASYA_BUILD_DIR=build-x /usr/bin/python3 -m pytest tests/e2e_up_gateway"""
import json
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
HANDLERS = HERE / "handlers"
sys.path.insert(0, str(REPO / "tests" / "local"))
from local_harness import Asya, manifest, wait_for  # noqa: E402

ACTORS = {"echo": "gw.echo", "doubler": "gw.doubler", "incrementer": "gw.incrementer",
          "fanout": "gw.fanout", "fail": "gw.fail", "slow": "gw.slow"}

ROUTES = """
tools:
  - name: echo
    route: [echo]
    parameters: {text: {type: string}, i: {type: integer}}
  - name: pipeline
    route: [doubler, incrementer]
    parameters: {value: {type: integer, required: true}}
  - name: fanout
    route: [fanout, echo]
    parameters: {n: {type: integer}}
  - name: fail
    route: [fail]
    parameters: {why: {type: string}}
  - name: slow
    route: [slow]
    timeout: 2
"""


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    work = tmp_path_factory.mktemp("gw")
    manifests = work / "manifests"
    manifests.mkdir()
    for name, handler in ACTORS.items():
        scaling = {"minReplicas": 2, "maxReplicas": 2} if name == "echo" else {}
        (manifests / f"{name}.yaml").write_text(manifest(name, handler, workdir=HANDLERS,
                                                         scaling=scaling))
    (manifests / "routes.yaml").write_text(ROUTES)
    asya = Asya(work)
    asya.up_detached(manifests, "--gateway-port", "0", "--state-dir", asya.state)
    try:
        wait_for(asya.gateway_url, 60, "the gateway url in status.json")
        wait_for(lambda: _ready(asya.gateway_url()), 60, "gateway /readyz")
        yield asya
    finally:
        asya.stop()


def _ready(url):
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_asya_call(up):
    env = dict(up.env)
    r = up.run("call", "pipeline", "value=20", "--state-dir", up.state, "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["value"] == 41
    r = up.run("call", "echo", "--args", '{"text": "hi"}', "--gateway", up.gateway_url())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"text": "hi"}
    assert "progress" in r.stderr  # not a TTY: plain progress lines
    r = up.run("call", "fail", "why=x", "--state-dir", up.state)
    assert r.returncode == 1 and "failed" in r.stderr, r.stderr
    r = up.run("call", "slow", "--state-dir", up.state)
    assert r.returncode == 3, r.stderr
    r = up.run("call", "nope", "--state-dir", up.state)
    assert r.returncode == 2 and "nope" in r.stderr
    env_r = subprocess.run([str(up.binary), "call", "echo", "text=a", "--gateway",
                            "http://127.0.0.1:1"], capture_output=True, text=True, env=env)
    assert env_r.returncode == 3 and "not reachable" in env_r.stderr
