"""asya-operator against the in-test API server of fake_kube_api.py (no real cluster here).

Each test starts a FakeKubeAPI and the operator binary with a kubeconfig pointing at it. Queues
are created through the real SQLite transport (--queue-transport sqlite, ASYA_SQLITE_PATH in the
test's temp dir), while objects are rendered for RabbitMQ (--transport rabbitmq), the cluster
transport.

    ASYA_BUILD_DIR=build-x /usr/bin/python3 -m pytest tests/k8s/test_operator.py
"""

import base64
import os
import pathlib
import signal
import sqlite3
import subprocess

import pytest

from fake_kube_api import FakeKubeAPI
from validate_k8s import Validator, load_documents

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
NS = "team"
ACTORS = "asya.sh/v1alpha1", "asyncactors"
CRD = REPO / "deploy" / "crd" / "asyncactor.yaml"


def operator_binary() -> str:
    build = pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()
    path = build / "src" / "k8s" / "operator" / "asya-operator"
    if not path.is_file():
        pytest.fail(f"asya-operator is not built in {build}: run `ninja -C {build} asya-operator`")
    return str(path)


def spec(**overrides) -> dict:
    base = {
        "scaling": {"enabled": True, "minReplicas": 0, "maxReplicas": 5, "queueLength": 3},
        "workload": {"template": {"spec": {"containers": [{
            "name": "asya-runtime", "image": "python:3.12-slim",
            "env": [{"name": "ASYA_HANDLER", "value": "handlers.echo"}]}]}}},
    }
    base.update(overrides)
    return base


def condition(obj, kind):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return c
    return None


class Operator:
    def __init__(self, api: FakeKubeAPI, tmp: pathlib.Path, cluster_extra: str = ""):
        self.api = api
        self.tmp = tmp
        self.proc = None
        self.log_path = tmp / "operator.log"
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            "contexts:\n- name: test\n  context: {cluster: fake, user: op}\n"
            f"clusters:\n- name: fake\n  cluster: {{server: '{api.url}'{cluster_extra}}}\n"
            f"users:\n- name: op\n  user: {{token: {api.token}}}\n")

    def start(self, *args, env=None):
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith(("ASYA_", "KUBE"))}
        environ["ASYA_SQLITE_PATH"] = str(self.tmp / "queues.db")
        environ.update(env or {})
        cmd = [operator_binary(), "--kubeconfig", str(self.kubeconfig), "--log-level", "debug",
               "--resync-period", "0", *args]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=environ)
        return self

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("asya-operator did not stop within 15 s of SIGTERM:\n"
                                     + self.output())
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def api():
    server = FakeKubeAPI()
    yield server
    server.stop()


@pytest.fixture
def operator(api, tmp_path):
    op = Operator(api, tmp_path)
    yield op
    code = op.stop()
    assert code == 0, f"asya-operator exited with {code}:\n{op.output()}"


def wait_actor(api, name, predicate, what, timeout=20.0, operator=None):
    try:
        return api.wait_for(lambda: (lambda o: o if o and predicate(o) else None)(
            api.get(*ACTORS, NS, name)), timeout=timeout, what=what)
    except AssertionError as e:
        log = operator.output() if operator else ""
        raise AssertionError(f"{e}\nactor: {api.get(*ACTORS, NS, name)}\noperator log:\n{log}")


def ready(api, name, operator, generation=1):
    return wait_actor(
        api, name,
        lambda o: (condition(o, "Ready") or {}).get("status") == "True"
        and o["status"].get("observedGeneration") == generation,
        f"{name} Ready=True at generation {generation}", operator=operator)


def sqlite_queues(folder) -> set:
    with sqlite3.connect(folder / "queues.db") as db:
        return {row[0] for row in db.execute("SELECT name FROM queues")}


def test_create_applies_owned_objects_and_reports_ready(api, operator, tmp_path):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    api.create_actor(NS, "echo", spec())
    actor = ready(api, "echo", operator)

    uid = actor["metadata"]["uid"]
    assert actor["metadata"]["finalizers"] == ["asya.sh/finalizer"]
    owner = {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor", "name": "echo", "uid": uid,
             "controller": True, "blockOwnerDeletion": True}
    objects = {
        "Deployment": api.get("apps/v1", "deployments", NS, "echo"),
        "ScaledObject": api.get("keda.sh/v1alpha1", "scaledobjects", NS, "echo"),
        "TriggerAuthentication": api.get("keda.sh/v1alpha1", "triggerauthentications", NS,
                                         "echo-broker"),
        "ServiceAccount": api.get("v1", "serviceaccounts", NS, "echo"),
    }
    for kind, obj in objects.items():
        assert obj is not None, f"{kind} echo was not applied"
        assert obj["kind"] == kind
        assert obj["metadata"]["namespace"] == NS
        assert obj["metadata"]["ownerReferences"] == [owner], kind
        assert obj["metadata"]["managedFields"][0]["manager"] == "asya-operator"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "asya-operator"
    containers = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["asya-runtime", "asya-sidecar"]
    sidecar_env = {e["name"]: e.get("value") for e in containers[1]["env"]}
    assert sidecar_env["ASYA_TRANSPORT"] == "rabbitmq"
    trigger = objects["ScaledObject"]["spec"]["triggers"][0]
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["queueName"] == "asya-echo"
    assert objects["ScaledObject"]["spec"]["minReplicaCount"] == 0
    assert objects["ScaledObject"]["spec"]["maxReplicaCount"] == 5

    # The bundled Python runtime's ConfigMap is shared by actors: applied, not owned.
    runtime_cm = api.get("v1", "configmaps", NS, "asya-runtime")
    assert runtime_cm is not None and "asya_runtime.py" in runtime_cm["data"]
    assert "ownerReferences" not in runtime_cm["metadata"]

    applies = api.requests_matching(method="PATCH", path_contains="/namespaces/team/")
    applies = [r for r in applies if r["content_type"].startswith("application/apply-patch")]
    assert len(applies) >= 5
    for r in applies:
        assert r["query"].get("fieldManager") == "asya-operator", r
        assert r["query"].get("force") == "true", r

    # Status through the subresource, with observedGeneration and every condition.
    status_patches = api.requests_matching(method="PATCH", path_contains="/echo/status")
    assert status_patches and all(r["content_type"] == "application/merge-patch+json"
                                  for r in status_patches)
    status = actor["status"]
    assert status["observedGeneration"] == actor["metadata"]["generation"] == 1
    assert status["queue"] == "asya-echo"
    for kind, reason in [("Ready", "Reconciled"), ("TransportReady", "QueueReady"),
                         ("ScalingReady", "ScaledObjectApplied"), ("WorkloadReady", "Applied")]:
        c = condition(actor, kind)
        assert c["status"] == "True" and c["reason"] == reason, c
        assert c["observedGeneration"] == 1 and c["lastTransitionTime"]
    assert "asya-echo" in sqlite_queues(tmp_path)

    # What was sent validates against the Kubernetes and KEDA schemas, the status against the CRD.
    validator = Validator(load_documents(CRD.read_text()))
    for r in applies:
        result = validator.validate(r["body"], r["path"])
        assert result.status == "PASS", str(result)
    as_written = {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor",
                  "metadata": {"name": "echo"}, "spec": actor["spec"], "status": status}
    result = validator.validate(as_written, "status")
    assert result.status == "PASS", str(result)


def test_update_min_replicas_updates_scaled_object(api, operator):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    api.create_actor(NS, "echo", spec())
    ready(api, "echo", operator)
    changed = spec()
    changed["scaling"] = {**changed["scaling"], "minReplicas": 2}
    api.update_actor_spec(NS, "echo", changed)
    ready(api, "echo", operator, generation=2)
    scaled = api.get("keda.sh/v1alpha1", "scaledobjects", NS, "echo")
    assert scaled["spec"]["minReplicaCount"] == 2
    assert "between 2 and 5" in condition(api.get(*ACTORS, NS, "echo"), "ScalingReady")["message"]


def test_disabling_scaling_deletes_scaled_object(api, operator):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    api.create_actor(NS, "echo", spec())
    ready(api, "echo", operator)
    api.update_actor_spec(NS, "echo", spec(scaling={"enabled": False}, replicas=3))
    actor = ready(api, "echo", operator, generation=2)
    assert api.get("keda.sh/v1alpha1", "scaledobjects", NS, "echo") is None
    assert api.get("keda.sh/v1alpha1", "triggerauthentications", NS, "echo-broker") is None
    deletes = api.requests_matching(method="DELETE", path_contains="/scaledobjects/echo")
    assert deletes, "the operator did not DELETE the ScaledObject"
    assert condition(actor, "ScalingReady")["reason"] == "ScalingDisabled"
    assert api.get("apps/v1", "deployments", NS, "echo")["spec"]["replicas"] == 3


def test_queue_error_sets_transport_not_ready_and_applies_no_deployment(api, operator, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the queue database's folder should be")
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite",
                   env={"ASYA_SQLITE_PATH": str(blocker / "queues.db")})
    api.create_actor(NS, "echo", spec())
    actor = wait_actor(api, "echo",
                       lambda o: (condition(o, "TransportReady") or {}).get("status") == "False",
                       "TransportReady=False", operator=operator)
    transport = condition(actor, "TransportReady")
    assert transport["reason"] == "QueueError"
    assert "asya-echo" in transport["message"] and "sqlite" in transport["message"]
    assert condition(actor, "Ready")["status"] == "False"
    assert condition(actor, "WorkloadReady")["reason"] == "WaitingForQueue"
    assert api.get("apps/v1", "deployments", NS, "echo") is None
    assert not api.requests_matching(method="PATCH", path_contains="/deployments/")
    # The operator retries with backoff (1 s, then 2 s, ...), not in a tight loop ...
    api.wait_for(lambda: "retrying in 2000 ms" in operator.output(), what="a second attempt")
    assert "retrying in 4000 ms" not in operator.output()
    # ... and recovers once the transport works: the queue, then the Deployment.
    blocker.unlink()
    blocker.mkdir()
    ready(api, "echo", operator)
    assert "asya-echo" in sqlite_queues(blocker)
    assert api.get("apps/v1", "deployments", NS, "echo") is not None


def test_sqlite_actor_without_cluster_transport_is_unsupported(api, operator):
    operator.start("--queue-transport", "sqlite")  # no --transport: sqlite actors cannot run
    api.create_actor(NS, "echo", spec())
    actor = wait_actor(api, "echo",
                       lambda o: (condition(o, "TransportReady") or {}).get("status") == "False",
                       "TransportReady=False", operator=operator)
    c = condition(actor, "TransportReady")
    assert c["reason"] == "UnsupportedTransport"
    assert '"sqlite"' in c["message"] and "--transport" in c["message"]
    assert condition(actor, "Ready")["reason"] == "UnsupportedTransport"
    assert api.get("apps/v1", "deployments", NS, "echo") is None


def test_invalid_spec_reports_invalid_spec_then_recovers(api, operator):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    bad = spec()
    bad["scaling"] = {**bad["scaling"], "minReplicas": -1}
    api.create_actor(NS, "echo", bad)
    actor = wait_actor(api, "echo",
                       lambda o: (condition(o, "Ready") or {}).get("reason") == "InvalidSpec",
                       "Ready=False InvalidSpec", operator=operator)
    c = condition(actor, "Ready")
    assert c["status"] == "False"
    assert c["message"].startswith("spec.scaling.minReplicas: "), c["message"]
    assert "-1" in c["message"]
    assert api.get("apps/v1", "deployments", NS, "echo") is None
    api.update_actor_spec(NS, "echo", spec())
    ready(api, "echo", operator, generation=2)
    assert api.get("apps/v1", "deployments", NS, "echo") is not None


def test_delete_cleans_up_and_removes_finalizer(api, operator):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    api.create_actor(NS, "echo", spec())
    ready(api, "echo", operator)
    api.delete_actor(NS, "echo")
    # With our finalizer the object stays (deletionTimestamp) until the operator lets it go.
    api.wait_for(lambda: api.get(*ACTORS, NS, "echo") is None, what="the AsyncActor to be gone")
    assert api.requests_matching(method="DELETE", path_contains="/scaledobjects/echo")
    finalizer_patches = [r for r in api.requests_matching(method="PATCH",
                                                          path_contains="/asyncactors/echo")
                         if not r["path"].endswith("/status")
                         and r["content_type"] == "application/merge-patch+json"]
    assert finalizer_patches[-1]["body"]["metadata"]["finalizers"] == []
    # Owned objects go with it (the fake server garbage-collects by ownerReferences).
    assert api.get("apps/v1", "deployments", NS, "echo") is None
    assert api.get("v1", "serviceaccounts", NS, "echo") is None


def watch_requests(api):
    return api.requests_matching(method="GET", path_contains="/asyncactors", query_has="watch")


def list_requests(api):
    return [r for r in api.requests_matching(method="GET", path_contains="/asyncactors")
            if "watch" not in r["query"]]


def test_watch_reconnects_from_last_version_after_server_closes_stream(api, operator):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    api.create_actor(NS, "echo", spec())
    ready(api, "echo", operator)
    api.wait_for(lambda: api.active_watches == 1, what="an open watch")
    assert len(list_requests(api)) == 1
    before = len(watch_requests(api))
    last_version = api.get(*ACTORS, NS, "echo")["metadata"]["resourceVersion"]
    api.close_watches()
    api.wait_for(lambda: len(watch_requests(api)) > before and api.active_watches == 1,
                 what="a new watch request")
    resumed = watch_requests(api)[before]
    assert resumed["query"]["resourceVersion"] == last_version
    changed = spec()
    changed["scaling"] = {**changed["scaling"], "maxReplicas": 7}
    api.update_actor_spec(NS, "echo", changed)
    ready(api, "echo", operator, generation=2)
    assert api.get("keda.sh/v1alpha1", "scaledobjects", NS, "echo")["spec"]["maxReplicaCount"] == 7
    assert len(list_requests(api)) == 1, "a closed stream must resume, not list again"


def test_gone_resource_version_lists_again(api, operator):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    api.create_actor(NS, "echo", spec())
    ready(api, "echo", operator)
    api.wait_for(lambda: api.active_watches == 1, what="an open watch")
    api.suspend_watches()
    api.wait_for(lambda: api.active_watches == 0, what="the watch to end")
    # Changes the operator does not see as events: the watch history is compacted past them.
    changed = spec()
    changed["scaling"] = {**changed["scaling"], "minReplicas": 3}
    api.update_actor_spec(NS, "echo", changed)
    api.create_actor(NS, "second", spec())
    api.compact()
    api.resume_watches()
    ready(api, "echo", operator, generation=2)
    ready(api, "second", operator)
    assert len(list_requests(api)) == 2, "410 Gone must make the operator list again"
    assert api.get("keda.sh/v1alpha1", "scaledobjects", NS, "echo")["spec"]["minReplicaCount"] == 3
    assert "listing again" in operator.output()


def test_namespace_flag_limits_the_watch(api, operator):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite", "--namespace", NS)
    api.create_actor("elsewhere", "other", spec())
    api.create_actor(NS, "echo", spec())
    ready(api, "echo", operator)
    assert all("/namespaces/team/asyncactors" in r["path"] for r in watch_requests(api))
    assert api.get(*ACTORS, "elsewhere", "other").get("status") is None
    assert api.get("apps/v1", "deployments", "elsewhere", "other") is None


def test_rejected_token_is_logged_and_retried(api, operator):
    api.token = "another-token"
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    api.wait_for(lambda: len(list_requests(api)) >= 2, what="a retried list")
    assert "HTTP 401" in operator.output()
    api.token = "test-token"  # credentials fixed: the next retry succeeds
    api.create_actor(NS, "echo", spec())
    ready(api, "echo", operator, generation=1)


def make_certificates(folder: pathlib.Path):
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl CLI)."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=asya-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def test_https_with_certificate_authority_data(tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    api = FakeKubeAPI(tls=(str(cert), str(key)))
    ca_data = base64.b64encode(ca.read_bytes()).decode()
    op = Operator(api, tmp_path, cluster_extra=f", certificate-authority-data: {ca_data}")
    try:
        op.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
        api.create_actor(NS, "echo", spec())
        ready(api, "echo", op)
    finally:
        assert op.stop() == 0, op.output()
        api.stop()


def test_https_with_unknown_ca_fails_verification_and_retries(tmp_path):
    _, cert, key = make_certificates(tmp_path)
    api = FakeKubeAPI(tls=(str(cert), str(key)))
    op = Operator(api, tmp_path)  # no CA: the system store does not trust the test CA
    try:
        op.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
        api.wait_for(lambda: op.output().count("retrying in") >= 2, what="two failed lists")
        assert "certificate-authority-data" in op.output()
        assert not api.requests, "no request may pass an unverified TLS handshake"
    finally:
        assert op.stop() == 0, op.output()
        api.stop()


def test_switching_workload_kind_deletes_the_previous_workload(api, operator):
    operator.start("--transport", "rabbitmq", "--queue-transport", "sqlite")
    stateful = spec()
    stateful["workload"] = {**stateful["workload"], "kind": "StatefulSet"}
    api.create_actor(NS, "echo", stateful)
    ready(api, "echo", operator)
    assert api.get("apps/v1", "statefulsets", NS, "echo") is not None
    assert api.get("v1", "services", NS, "echo") is not None  # its headless Service
    assert api.get("apps/v1", "deployments", NS, "echo") is None
    api.update_actor_spec(NS, "echo", spec())
    ready(api, "echo", operator, generation=2)
    assert api.get("apps/v1", "deployments", NS, "echo") is not None
    assert api.get("apps/v1", "statefulsets", NS, "echo") is None
    assert api.get("v1", "services", NS, "echo") is None
    assert api.get("keda.sh/v1alpha1", "scaledobjects", NS, "echo")["spec"]["scaleTargetRef"][
        "kind"] == "Deployment"
