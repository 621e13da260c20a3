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
from local_harness import Asya, manifest, process_environment, wait_for  # noqa: E402

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


# The gateway's token variables in the environment of `asya up` (and of `asya call`, which sends
# ASYA_GATEWAY_TOKEN): none; the client token only, so `asya up` generates the internal token of
# the run for the gateway and the sidecars; both (issue 11 item 4).
TOKENS = {
    "no-tokens": {},
    "client-token-only": {"ASYA_GATEWAY_TOKEN": "up-client-token"},
    "both-tokens": {"ASYA_GATEWAY_TOKEN": "up-client-token",
                    "ASYA_GATEWAY_INTERNAL_TOKEN": "up-sidecar-token"},
}


@pytest.fixture(scope="module", params=list(TOKENS))
def up(tmp_path_factory, request):
    work = tmp_path_factory.mktemp("gw")
    manifests = work / "manifests"
    manifests.mkdir()
    for name, handler in ACTORS.items():
        # Scale from zero within half a second of a call (the default polls every 10 s, which
        # made each run of the module wait about 30 s).
        scaling = {"minReplicas": 2, "maxReplicas": 2} if name == "echo" else {}
        scaling["pollingInterval"] = "500ms"
        # `slow` is still busy when the stack stops: a short drain keeps `asya down` quick.
        (manifests / f"{name}.yaml").write_text(manifest(name, handler, workdir=HANDLERS,
                                                         scaling=scaling,
                                                         timeout={"gracefulShutdown": "1s"}))
    (manifests / "routes.yaml").write_text(ROUTES)
    asya = Asya(work)
    for key in ("ASYA_GATEWAY_TOKEN", "ASYA_GATEWAY_INTERNAL_TOKEN"):
        asya.env.pop(key, None)
    asya.env.update(TOKENS[request.param])
    asya.tokens = TOKENS[request.param]
    asya.up_detached(manifests, "--gateway-port", "0", "--state-dir", asya.state)
    try:
        wait_for(asya.gateway_url, 60, "the gateway url in status.json")
        wait_for(lambda: _ready(asya.gateway_url()), 60, "gateway /readyz")
        yield asya
    finally:
        asya.stop()


def _post(url, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


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


def test_sidecars_carry_the_gateway_internal_token(up):
    """Every sidecar gets the gateway's internal token (the user's, or one `asya up` generated when
    only the client token is set); runtimes never see a token; the gateway enforces it."""
    gateway_env = process_environment(up.status()["gateway"]["pid"])
    internal = gateway_env.get("ASYA_GATEWAY_INTERNAL_TOKEN", "")
    client = up.tokens.get("ASYA_GATEWAY_TOKEN")
    if "ASYA_GATEWAY_INTERNAL_TOKEN" in up.tokens:
        assert internal == up.tokens["ASYA_GATEWAY_INTERNAL_TOKEN"]
    elif client:
        assert len(internal) == 64 and all(c in "0123456789abcdef" for c in internal), internal
    else:
        assert internal == ""
    for actor in up.status()["actors"]:
        for p in actor["processes"]:
            assert process_environment(p["sidecar"]).get("ASYA_GATEWAY_INTERNAL_TOKEN", "") == internal
            if p["runtime"]:
                runtime_env = process_environment(p["runtime"])
                assert "ASYA_GATEWAY_INTERNAL_TOKEN" not in runtime_env
                assert "ASYA_GATEWAY_TOKEN" not in runtime_env
    final = up.gateway_url() + "/envelopes/forged/final"
    forged = {"id": "forged", "status": "succeeded", "result": 1}
    if internal:
        assert _post(final, forged, client) == 401
        assert _post(final, forged) == 401
    if client:
        assert _post(up.gateway_url() + "/tools/call", {"name": "echo", "arguments": {}}) == 401
    logs = "".join(p.read_text(errors="replace") for p in (up.state / "logs").rglob("*.sidecar.log"))
    assert "gateway refused" not in logs and "dropped after" not in logs, logs[-3000:]
