"""Fixtures of the end-to-end gateway suite: one real asya-gateway, real sidecars with
ASYA_GATEWAY_URL, real Python runtimes and the happy-end/error-end sidecars, all on one SQLite
queue file in a temp dir. The process code is reused from tests/sidecar/sidecar_harness.py
(Cluster, Actor) and tests/gateway/gateway_harness.py (Gateway); nothing is copied."""
import pathlib
import shutil
import sys
import tempfile

import pytest

HERE = pathlib.Path(__file__).resolve().parent
TESTS = HERE.parent
for suite in ("sidecar", "gateway"):
    if str(TESTS / suite) not in sys.path:
        sys.path.insert(0, str(TESTS / suite))

from gateway_harness import Gateway  # noqa: E402
from sidecar_harness import Cluster, pytest_runtest_makereport  # noqa: E402,F401  (logs of failed tests)

from e2e_routes import ROUTES  # noqa: E402,F401  (the tools of this suite's gateway)

# actor name -> (handler, extra sidecar/runtime environment)
ACTORS = {
    "echo": ("echo", {"ASYA_CONCURRENCY": "4", "ASYA_HANDLER_THREAD_SAFE": "true"}),
    "doubler": ("doubler", {}),
    "incrementer": ("incrementer", {}),
    "fail": ("fail", {}),
    "fanout": ("fanout", {}),
    "branch": ("branch", {}),
    "paced": ("paced", {}),
    "joiner": ("joiner", {"ASYA_JOIN": "true"}),
    "empty": ("empty", {}),
    "batched": ("batched", {"ASYA_BATCH_MAX_SIZE": "8", "ASYA_BATCH_MAX_WAIT": "100ms",
                            "ASYA_HANDLER_BATCH": "true"}),
    "sleeper": ("sleeper", {}),
    "slow-first": ("slow_first", {}),
    "slow-second": ("slow_second", {}),
}


# The stack runs twice: without tokens, and with both gateway tokens set (clients send
# ASYA_GATEWAY_TOKEN, sidecars ASYA_GATEWAY_INTERNAL_TOKEN; issue 11 item 4). In the second run the
# sidecars reach the gateway over its Unix socket (ASYA_GATEWAY_SOCKET, ASYA_GATEWAY_URL=unix:...),
# as `asya up` wires them: the same reports, checks, spans and token checks as over TCP.
TOKENS = {
    "no-tokens": {},
    "both-tokens": {"ASYA_GATEWAY_TOKEN": "e2e-client-token",
                    "ASYA_GATEWAY_INTERNAL_TOKEN": "e2e-sidecar-token"},
}


class Stack:
    """The running system: `gateway` (gateway_harness.Gateway), `cluster` (sidecar_harness.Cluster)
    and `results`, the directory of the file result store. `headers` are what a client sends
    (the client token when the gateway has one); `tokens` the gateway's token variables."""

    def __init__(self, gateway, cluster, tokens):
        self.gateway = gateway
        self.cluster = cluster
        self.results = cluster.results
        self.url = gateway.url
        self.tokens = tokens
        self.headers = gateway.client_headers()

    def logs(self):
        text = self.cluster.logs()
        if self.gateway.log.exists():
            text += "\n--- gateway\n" + self.gateway.log.read_text(errors="replace")[-4000:]
        return text


@pytest.fixture(scope="module", params=list(TOKENS))
def stack(build_path, request):
    tokens = TOKENS[request.param]
    tmp = tempfile.mkdtemp(prefix="asya-e2e-", dir="/tmp")  # short: Unix socket paths are limited
    cluster = Cluster("sqlite", build_path, tmp, handlers_dir=HERE, handler_module="e2e_handlers")
    gateway_binary = build_path / "src" / "gateway" / "asya-gateway"
    if not gateway_binary.exists():
        pytest.fail("%s is missing: build it first (ninja asya-gateway)" % gateway_binary)
    gateway_dir = pathlib.Path(tmp) / "gateway"
    gateway_dir.mkdir()
    over_socket = "ASYA_GATEWAY_INTERNAL_TOKEN" in tokens
    socket_env = {"ASYA_GATEWAY_SOCKET": str(gateway_dir / "gw.sock")} if over_socket else {}
    gateway = Gateway(gateway_binary, gateway_dir, ROUTES,
                      dict(tokens, ASYA_SQLITE_PATH=cluster.env["ASYA_SQLITE_PATH"],
                           ASYA_GATEWAY_POLL_INTERVAL="200ms", **socket_env))
    report_to = {"ASYA_GATEWAY_URL": "unix:" + socket_env["ASYA_GATEWAY_SOCKET"] if over_socket
                 else gateway.url}
    if "ASYA_GATEWAY_INTERNAL_TOKEN" in tokens:
        report_to["ASYA_GATEWAY_INTERNAL_TOKEN"] = tokens["ASYA_GATEWAY_INTERNAL_TOKEN"]
    gateway.start()
    s = Stack(gateway, cluster, tokens)
    try:
        for name, (handler, env) in ACTORS.items():
            cluster.actor(name, handler, env=dict(report_to, **env), start_sidecar=False)
        for name in ("happy-end", "error-end"):
            cluster.actor(name, runtime=False, env=report_to, start_sidecar=False)
        for actor in cluster.actors:
            actor.start_sidecar(wait_ready=False)
        for actor in cluster.actors:
            actor.wait_ready()
        yield s
    except BaseException:
        sys.stderr.write(s.logs())
        raise
    finally:
        cluster.stop()
        gateway.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def _logs_on_failure(request):
    # Only tests that use the stack (test_asya_up.py runs its own system and must not be
    # parametrized over the stack's tokens).
    stack = request.getfixturevalue("stack") if "stack" in request.fixturenames else None
    yield
    rep = getattr(request.node, "rep_call", None)
    if stack is not None and rep is not None and rep.failed:
        sys.stderr.write(stack.logs())
