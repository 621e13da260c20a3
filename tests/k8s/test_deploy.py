"""The deploy/ kustomize tree and the AsyncActor CRD validate against the official schemas."""
import pathlib
import shutil
import subprocess

import pytest

import validate_k8s

REPO = pathlib.Path(__file__).resolve().parents[2]
CRD = REPO / "deploy" / "crd" / "asyncactor.yaml"
KUSTOMIZATIONS = ["deploy/base", "deploy/crd", "deploy/overlays/rabbitmq", "deploy/overlays/sqs"]


def kustomize(path: str) -> str:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    proc = subprocess.run(["kubectl", "kustomize", str(REPO / path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return proc.stdout


def crd_validator() -> validate_k8s.Validator:
    return validate_k8s.Validator(validate_k8s.load_documents(CRD.read_text()))


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kustomization_renders_offline_and_every_object_validates(path):
    results = validate_k8s.Validator().validate_stream(kustomize(path), path)
    assert results, f"{path} rendered nothing"
    failed = [str(r) for r in results if r.status == "FAIL"]
    assert not failed, "\n".join(failed)
    skipped = {r.name.split()[-1].split("/")[0] for r in results if r.status == "SKIP"}
    assert skipped <= {"Namespace"}, f"kinds without a schema: {skipped}"


@pytest.mark.parametrize("overlay,transport,secret_env", [
    ("rabbitmq", "rabbitmq", {"ASYA_RABBITMQ_URL": ("asya-rabbitmq", "url")}),
    ("sqs", "sqs", {"AWS_ACCESS_KEY_ID": ("asya-sqs", "AWS_ACCESS_KEY_ID"),
                    "AWS_SECRET_ACCESS_KEY": ("asya-sqs", "AWS_SECRET_ACCESS_KEY")}),
])
def test_overlay_sets_the_transport_and_broker_secret_on_every_deployment(overlay, transport,
                                                                          secret_env):
    docs = validate_k8s.load_documents(kustomize(f"deploy/overlays/{overlay}"))
    config = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("asya-config")]
    assert len(config) == 1 and config[0]["data"]["ASYA_TRANSPORT"] == transport
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"asya-operator", "asya-gateway", "happy-end", "error-end"}
    for name, deployment in deployments.items():
        assert deployment["metadata"]["namespace"] == "asya"
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = env_of(container)
        for var, (secret, key) in secret_env.items():
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == (secret, key), f"{name}: {var}"
        # The generated ConfigMap name (with its hash suffix) is wired into envFrom.
        assert container["envFrom"][0]["configMapRef"]["name"] == config[0]["metadata"]["name"]


def test_operator_rbac_covers_what_it_applies():
    docs = validate_k8s.load_documents(kustomize("deploy/base"))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               if "patch" in rule["verbs"]}
    for needed in [("asya.sh", "asyncactors"), ("asya.sh", "asyncactors/status"),
                   ("apps", "deployments"), ("apps", "statefulsets"), ("", "serviceaccounts"),
                   ("", "configmaps"), ("", "services"), ("keda.sh", "scaledobjects"),
                   ("keda.sh", "triggerauthentications")]:
        assert needed in granted, needed
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": "asya-operator",
                                      "namespace": "asya"}


def test_crd_is_a_valid_structural_schema():
    docs = validate_k8s.load_documents(CRD.read_text())
    assert len(docs) == 1
    assert validate_k8s.check_crd(docs[0]) == []


def test_crd_checker_rejects_a_broken_crd():
    doc = validate_k8s.load_documents(CRD.read_text())[0]
    spec_schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec_schema["properties"]["timeout"]["type"]
    spec_schema["properties"]["scaling"]["properties"]["minReplicas"]["minimum"] = "zero"
    doc["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = "text"
    errors = "\n".join(validate_k8s.check_crd(doc))
    assert "timeout: every schema node needs a type" in errors
    assert "not a valid JSON Schema" in errors
    assert "additionalPrinterColumns[0].type: 'text'" in errors


FULL_ACTOR = """
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: text-classifier, namespace: ml}
spec:
  transport: rabbitmq
  replicas: 1
  scaling: {enabled: true, minReplicas: 0, maxReplicas: 8, queueLength: 5,
            activationQueueLength: 0, pollingInterval: 10, cooldownPeriod: 2m}
  timeout: {processing: 300, gracefulShutdown: 30s}
  retry: {maxAttempts: 3, backoff: 500ms, backoffMax: 1m, retryOn: [processing_error]}
  sidecar: {concurrency: 2, maxDeliveries: 5}
  workload:
    kind: Deployment
    template:
      metadata:
        labels: {team: nlp}
        annotations: {example.com/owner: ml-team}
      spec:
        nodeSelector: {pool: gpu}
        terminationGracePeriodSeconds: 320
        volumes: [{name: models, emptyDir: {}}]
        containers:
        - name: asya-runtime
          image: my-classifier:latest
          imagePullPolicy: IfNotPresent
          env:
          - {name: ASYA_HANDLER, value: classifier.TextClassifier.process}
          - name: TOKEN
            valueFrom: {secretKeyRef: {name: tok, key: t}}
          resources: {limits: {memory: 1Gi}}
          volumeMounts: [{name: models, mountPath: /models}]
"""


def test_a_complete_actor_validates_against_the_crd():
    results = crd_validator().validate_stream(FULL_ACTOR, "actor")
    assert [r.status for r in results] == ["PASS"], [str(r) for r in results]


@pytest.mark.parametrize("change,expected", [
    (("transport: rabbitmq", "transport: kafka"), "spec.transport: 'kafka' is not one of"),
    (("minReplicas: 0", "minReplicas: -1"), "spec.scaling.minReplicas: -1 is less than the minimum of 0"),
    (("queueLength: 5", "queueLength: 5, queueLenght: 3"), "spec.scaling: Additional properties are not allowed ('queueLenght'"),
    (("kind: Deployment", "kind: DaemonSet"), "spec.workload.kind: 'DaemonSet' is not one of"),
    (("processing: 300", "processing: five minutes"), "spec.timeout.processing: 'five minutes' does not match"),
    (("retryOn: [processing_error]", "retryOn: [always]"), "spec.retry.retryOn.0: 'always' is not one of"),
    (("replicas: 1", "replicas: -2"), "spec.replicas: -2 is less than the minimum of 0"),
    (("maxDeliveries: 5", "maxDeliveries: 0"), "spec.sidecar.maxDeliveries: 0 is less than the minimum of 1"),
    (("team: nlp", "team: 1"), "spec.workload.template.metadata.labels.team: 1 is not of type 'string'"),
    (("imagePullPolicy: IfNotPresent", "readinessProbe: {exec: {command: [x]}}"),
     "spec.workload.template.spec.containers.0: Additional properties are not allowed ('readinessProbe'"),
    (("          image: my-classifier:latest\n", ""),
     "spec.workload.template.spec.containers.0: 'image' is a required property"),
    (("- {name: ASYA_HANDLER,", "- {name: 9HANDLER,"), "spec.workload.template.spec.containers.0.env.0.name: '9HANDLER' does not match"),
    (("nodeSelector: {pool: gpu}", "hostNetwork: true"),
     "spec.workload.template.spec: Additional properties are not allowed ('hostNetwork'"),
])
def test_actor_mistakes_are_rejected_by_the_crd_schema(change, expected):
    results = crd_validator().validate_stream(FULL_ACTOR.replace(*change), "actor")
    assert results[0].status == "FAIL"
    assert expected in "\n".join(results[0].messages), results[0].messages


def test_every_example_and_test_actor_validates_against_the_crd():
    files = [p for root in ("examples", "tests/k8s/manifests")
             for p in sorted((REPO / root).rglob("*.y*ml")) if "kind: AsyncActor" in p.read_text()]
    assert files
    validator = crd_validator()
    for path in files:
        for result in validator.validate_stream(path.read_text(), str(path.relative_to(REPO))):
            if result.name.split()[-1].startswith("AsyncActor/"):
                assert result.status == "PASS", str(result)


@pytest.mark.parametrize("change,expected", [
    (None, None),
    (("transport: rabbitmq", "transport: kafka"), "spec.transport"),
    (("minReplicas: 0", "minReplicas: -1"), "spec.scaling.minReplicas"),
    (("queueLength: 5", "queueLength: 5, queueLenght: 3"), "spec.scaling.queueLenght"),
    (("kind: Deployment", "kind: DaemonSet"), "spec.workload.kind"),
    (("retryOn: [processing_error]", "retryOn: [always]"), "spec.retry.retryOn"),
    (("maxDeliveries: 5", "maxDeliveries: 0"), "spec.sidecar.maxDeliveries"),
    (("imagePullPolicy: IfNotPresent", "readinessProbe: {exec: {command: [x]}}"),
     "containers[0].readinessProbe"),
    (("          image: my-classifier:latest\n", ""), "containers[0].image"),
    (("nodeSelector: {pool: gpu}", "hostNetwork: true"), "spec.workload.template.spec.hostNetwork"),
])
def test_asya_render_and_the_crd_agree_on_what_an_actor_may_say(tmp_path, change, expected):
    """What `kubectl apply` accepts as an AsyncActor (the CRD), `asya render` and the operator
    render; what the CRD rejects, `asya render` rejects too, naming the same field."""
    from test_render import render
    text = FULL_ACTOR if change is None else FULL_ACTOR.replace(*change)
    crd_ok = crd_validator().validate_stream(text, "actor")[0].status == "PASS"
    path = tmp_path / "actor.yaml"
    path.write_text(text)
    proc = render(path, "--no-end-actors", check=False)
    assert (proc.returncode == 0) == crd_ok == (change is None), proc.stderr
    if expected:
        assert expected in proc.stderr and proc.stdout == "", proc.stderr
