"""`asya render`: golden files per example and transport, schema validation of every object,
and clear errors for broken manifests.

Regenerate the golden files after an intended change with
    ASYA_UPDATE_GOLDEN=1 ASYA_BUILD_DIR=build /usr/bin/python3 -m pytest tests/k8s
and review the diff.
"""
import os
import re
import pathlib
import subprocess

import pytest
import yaml

import validate_k8s

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
GOLDEN = HERE / "golden"
CRD = REPO / "deploy" / "crd" / "asyncactor.yaml"
RUNTIME = REPO / "runtimes" / "python" / "asya_runtime.py"
TRANSPORTS = ["rabbitmq", "sqs"]


def render_binary() -> list:
    build = pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()
    for candidate in [build / "src" / "cli" / "asya", build / "tests" / "k8s" / "asya-render-driver"]:
        if candidate.is_file():
            return [str(candidate)]
    pytest.fail(f"neither asya nor asya-render-driver is built in {build}: run "
                f"`ninja -C {build} asya-render-driver`")


def render(*args, check=True):
    proc = subprocess.run(render_binary() + ["render", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    if check:
        assert proc.returncode == 0, f"asya render {args} failed:\n{proc.stderr}"
    return proc


def example_dirs():
    """Every folder of examples/ holding an AsyncActor manifest, plus tests/k8s/manifests/*."""
    dirs = []
    for root in [REPO / "examples", HERE / "manifests"]:
        for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            if any("kind: AsyncActor" in f.read_text(errors="replace")
                   for f in d.rglob("*.y*ml") if f.is_file()):
                dirs.append(d)
    return dirs


CASES = [(d, t) for d in example_dirs() for t in TRANSPORTS]


def case_id(case):
    d, t = case
    return f"{d.name}-{t}"


def without_runtime_source(stream: str) -> str:
    """The golden files leave out the embedded asya_runtime.py (checked separately against the
    file itself), so they stay readable and do not change with every runtime edit."""
    docs = re.split(r"(?m)^---\n", stream)
    out = []
    for doc in docs:
        if doc.startswith("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: asya-runtime\n"):
            data = yaml.safe_load(doc)["data"]
            assert data == {"asya_runtime.py": RUNTIME.read_text()}, "asya-runtime ConfigMap differs"
            doc = doc.split("\ndata:\n")[0] + "\ndata:\n  asya_runtime.py: <runtimes/python/asya_runtime.py>\n"
        out.append(doc)
    return "---\n".join(out)


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_render_matches_the_golden_file_and_every_object_validates(case):
    directory, transport = case
    stream = render(directory.relative_to(REPO), "--transport", transport, "--namespace", "asya",
                    "--sqs-queue-url-base", "https://sqs.us-east-1.amazonaws.com/000000000000").stdout
    validator = validate_k8s.Validator(validate_k8s.load_documents(CRD.read_text()))
    results = validator.validate_stream(stream, f"{directory.name}-{transport}")
    failed = [str(r) for r in results if r.status != "PASS"]
    assert not failed, "\n".join(failed)
    kinds = [r.name.split()[-1].split("/")[0] for r in results]
    assert "Deployment" in kinds

    golden = GOLDEN / f"{directory.name}-{transport}.yaml"
    actual = without_runtime_source(stream)
    if os.environ.get("ASYA_UPDATE_GOLDEN"):
        golden.write_text(actual)
    assert golden.exists(), f"{golden} missing: run with ASYA_UPDATE_GOLDEN=1"
    assert actual == golden.read_text(), (
        f"render output differs from {golden.relative_to(REPO)}; if intended, regenerate with "
        "ASYA_UPDATE_GOLDEN=1")


def test_every_golden_file_belongs_to_a_case():
    expected = {f"{case_id(c)}.yaml" for c in CASES}
    stale = {p.name for p in GOLDEN.glob("*.yaml")} - expected
    assert not stale, f"golden files without an example: {sorted(stale)}"


def test_rendered_stream_parses_as_yaml_with_string_env_values():
    stream = render(HERE / "manifests" / "pipeline", "--transport", "rabbitmq").stdout
    for doc in validate_k8s.load_documents(stream):
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            for var in container.get("env", []):
                assert "valueFrom" in var or isinstance(var["value"], str), var


BROKEN = """apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: broken}
spec:
  scaling: {minReplicas: -1}
  workload:
    template:
      spec:
        containers:
        - name: asya-runtime
          image: x
          env: [{name: ASYA_HANDLER, value: m.f}]
"""


def test_a_broken_manifest_prints_its_error_and_no_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    proc = render(path, "--transport", "rabbitmq", check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert f"{path}:5:" in proc.stderr and "spec.scaling.minReplicas" in proc.stderr, proc.stderr
    assert "no objects printed" in proc.stderr


def test_sqlite_actor_without_cluster_transport_is_refused(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(BROKEN.replace("  scaling: {minReplicas: -1}\n", ""))
    proc = render(path, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "spec.transport \"sqlite\" only works on one machine" in proc.stderr, proc.stderr
    assert "--transport" in proc.stderr


def test_options_reach_the_objects(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(BROKEN.replace("  scaling: {minReplicas: -1}\n", "  transport: sqs\n"))
    stream = render(path, "--namespace", "prod", "--sidecar-image", "reg/sidecar:9",
                    "--sqs-region", "eu-central-1", "--sqs-secret", "aws-creds",
                    "--sqs-endpoint", "http://localstack:4566", "--no-end-actors").stdout
    docs = validate_k8s.load_documents(stream)
    assert {d["metadata"]["namespace"] for d in docs} == {"prod"}
    assert not [d for d in docs if d["metadata"]["name"] in ("happy-end", "error-end")]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    sidecar = deployment["spec"]["template"]["spec"]["containers"][1]
    assert sidecar["image"] == "reg/sidecar:9"
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["AWS_REGION"]["value"] == "eu-central-1"
    assert env["ASYA_SQS_ENDPOINT"]["value"] == "http://localstack:4566"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "aws-creds"
    trigger = next(d for d in docs if d["kind"] == "ScaledObject")["spec"]["triggers"][0]
    assert trigger["metadata"]["awsEndpoint"] == "http://localstack:4566"


def test_rabbitmq_gateway_and_naming_options_reach_the_objects(tmp_path):
    (tmp_path / "a.yaml").write_text(BROKEN.replace("  scaling: {minReplicas: -1}\n", ""))
    (tmp_path / "routes.yaml").write_text("tools:\n- name: t\n  route: [broken]\n")
    stream = render(tmp_path, "--transport", "rabbitmq", "--namespace", "team-a",
                    "--sidecar-image", "reg.example/asya-sidecar:1.2.3",
                    "--gateway-image", "reg.example/asya-gateway:4.5.6",
                    "--queue-prefix", "dev-", "--log-level", "debug", "--metrics-port", "9100",
                    "--rabbitmq-secret", "amqp-creds", "--rabbitmq-secret-key", "amqp-url",
                    "--rabbitmq-management-secret-key", "api-url",
                    "--rabbitmq-exchange", "asya-dev", "--result-store", "s3://bucket/results",
                    "--gateway-url", "http://gw.team-a.svc:8080").stdout
    docs = validate_k8s.load_documents(stream)
    results = validate_k8s.Validator().validate_stream(stream, "options")
    assert all(r.status == "PASS" for r in results), [str(r) for r in results if r.status != "PASS"]
    assert {d["metadata"]["namespace"] for d in docs} == {"team-a"}
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    pods = {name: d["spec"]["template"]["spec"] for (kind, name), d in by_name.items()
            if kind == "Deployment"}
    assert set(pods) == {"broken", "happy-end", "error-end", "asya-gateway"}
    for name, pod in pods.items():
        container = next(c for c in pod["containers"]
                         if c["name"] in ("asya-sidecar", "gateway"))
        env = {e["name"]: e for e in container["env"]}
        assert env["ASYA_QUEUE_PREFIX"]["value"] == "dev-", name
        assert env["ASYA_LOG_LEVEL"]["value"] == "debug", name
        assert env["ASYA_RABBITMQ_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "amqp-creds", "key": "amqp-url"}, name
        assert env["ASYA_RABBITMQ_EXCHANGE"]["value"] == "asya-dev", name
        if name == "asya-gateway":
            assert container["image"] == "reg.example/asya-gateway:4.5.6"
            continue
        assert container["image"] == "reg.example/asya-sidecar:1.2.3", name
        assert env["ASYA_METRICS_ADDR"]["value"] == ":9100", name
        assert container["ports"][0]["containerPort"] == 9100, name
        assert env["ASYA_GATEWAY_URL"]["value"] == "http://gw.team-a.svc:8080", name
        if name in ("happy-end", "error-end"):
            assert env["ASYA_RESULT_STORE"]["value"] == "s3://bucket/results"
            assert "volumes" not in pod, "an s3 store needs no results volume"
    trigger = by_name[("ScaledObject", "broken")]["spec"]["triggers"][0]
    assert trigger["metadata"]["queueName"] == "dev-broken"
    auth = by_name[("TriggerAuthentication", "broken-broker")]["spec"]
    # KEDA reads the management API (counts unacknowledged messages too), the sidecars AMQP.
    assert trigger["metadata"]["protocol"] == "http"
    assert auth == {"secretTargetRef": [{"parameter": "host", "name": "amqp-creds",
                                         "key": "api-url"}]}
    routes = by_name[("ConfigMap", "asya-gateway-routes")]["data"]["routes.yaml"]
    assert routes == (tmp_path / "routes.yaml").read_text()


def test_a_grace_period_shorter_than_processing_plus_margin_prints_its_error_and_no_yaml(
        tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(
        "apiVersion: asya.sh/v1alpha1\nkind: AsyncActor\nmetadata: {name: slow}\n"
        "spec:\n  transport: rabbitmq\n  timeout: {processing: 10m}\n"
        "  workload:\n    template:\n      spec:\n        terminationGracePeriodSeconds: 60\n"
        "        containers:\n        - {name: asya-runtime, image: slow:1, command: [slow]}\n")
    proc = render(path, check=False)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert "terminationGracePeriodSeconds: 60 is shorter" in proc.stderr, proc.stderr
    assert "at least 610" in proc.stderr, proc.stderr
    path.write_text(path.read_text().replace("GracePeriodSeconds: 60", "GracePeriodSeconds: 610"))
    docs = validate_k8s.load_documents(render(path, "--no-end-actors").stdout)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 610


def test_a_routes_file_the_gateway_would_refuse_prints_its_error_and_no_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text(BROKEN.replace("  scaling: {minReplicas: -1}\n", ""))
    (tmp_path / "routes.yaml").write_text("tools:\n- name: t\n  route: [broken]\n  timeout: soon\n")
    proc = render(tmp_path, "--transport", "sqs", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{tmp_path / 'routes.yaml'}:4: tools[t].timeout" in proc.stderr, proc.stderr
    assert "no objects printed" in proc.stderr


def test_a_tool_routed_to_an_unknown_actor_is_a_warning(tmp_path):
    (tmp_path / "a.yaml").write_text(BROKEN.replace("  scaling: {minReplicas: -1}\n", ""))
    (tmp_path / "routes.yaml").write_text("tools:\n- name: t\n  route: [broken, nobody]\n")
    proc = render(tmp_path, "--transport", "sqs")
    assert "ConfigMap" in proc.stdout
    assert 'tool "t"' in proc.stderr and 'actor "nobody"' in proc.stderr, proc.stderr


def test_an_actor_on_another_network_transport_than_the_cluster_is_refused(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(BROKEN.replace("  scaling: {minReplicas: -1}\n", "  transport: rabbitmq\n"))
    proc = render(path, "--transport", "sqs", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{path}:1: actor broken: spec.transport \"rabbitmq\" differs from --transport sqs" \
        in proc.stderr, proc.stderr


def test_the_examples_image_holds_every_python_handler_the_examples_name():
    """deploy/examples/Dockerfile (docs/kubernetes.md, "Deploy the examples") copies the modules
    that the examples' ASYA_HANDLER names import; no docker here, so check its COPY lines. An
    example needing more than python:3.11-slim (examples/batched-model: torch) names its own image
    asya/<name>:latest, built by deploy/examples/<name>.Dockerfile, which must copy its module."""
    def copied_by(dockerfile):
        return [p for line in dockerfile.read_text().splitlines() if line.startswith("COPY ")
                for p in line.split()[1:-1]]
    examples = REPO / "examples"
    for manifest in sorted(examples.rglob("*.yaml")):
        for doc in validate_k8s.load_documents(manifest.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "AsyncActor":
                continue
            for container in doc["spec"]["workload"]["template"]["spec"]["containers"]:
                handler = {e["name"]: e.get("value") for e in container.get("env", [])}.get("ASYA_HANDLER")
                if container.get("command") or not handler:
                    continue
                module = manifest.parent / (handler.split(".")[0] + ".py")
                assert module.is_file(), module
                rel = module.relative_to(examples)
                image = container["image"]
                if image == "python:3.11-slim":  # docs/kubernetes.md replaces it with the examples image
                    dockerfile = REPO / "deploy" / "examples" / "Dockerfile"
                else:
                    assert re.fullmatch(r"asya/[a-z0-9-]+:latest", image), image
                    dockerfile = REPO / "deploy" / "examples" / (image[5:-7] + ".Dockerfile")
                    assert dockerfile.is_file(), f"{image} of {manifest.relative_to(REPO)}: no {dockerfile}"
                copied = copied_by(dockerfile)
                assert any(rel.match(pattern) for pattern in copied), \
                    f"{rel} (ASYA_HANDLER of {manifest.relative_to(REPO)}) is not copied by {copied}"


def test_image_and_build_dir_options(tmp_path):
    stream = render("examples", "--transport", "rabbitmq", "--image",
                    "python:3.11-slim=reg.example/asya-examples:1", "--image",
                    "asya/cpp-echo:latest=reg.example/cpp-echo:1", "--build-dir", "/build").stdout
    images = {}
    for doc in validate_k8s.load_documents(stream):
        if doc["kind"] == "Deployment" and doc["metadata"]["labels"]["app.kubernetes.io/component"] == "actor":
            runtime = doc["spec"]["template"]["spec"]["containers"][0]
            images[doc["metadata"]["name"]] = runtime["image"]
            if doc["metadata"]["name"] == "echo":
                env = {e["name"]: e["value"] for e in runtime["env"]}
                assert env["ASYA_BUILD_DIR"] == "/build"
    assert images == {"echo": "reg.example/cpp-echo:1", "hello": "reg.example/asya-examples:1",
                      "classify": "asya/batched-model:latest",  # no --image for it: unchanged
                      "split": "reg.example/asya-examples:1", "score": "reg.example/asya-examples:1",
                      "collect": "reg.example/asya-examples:1"}
    bad = render("examples/hello", "--transport", "sqs", "--image", "python", check=False)
    assert bad.returncode != 0 and bad.stdout == "" and "is not FROM=TO" in bad.stderr


ISOLATED = HERE / "manifests" / "isolated"


def render_env(*args, env):
    proc = subprocess.run(render_binary() + ["render", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("ASYA_GATEWAY_TOKEN", "ASYA_GATEWAY_INTERNAL_TOKEN")}
    env.update(extra)
    return env


def token_refs(container):
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if e["name"] in ("ASYA_GATEWAY_TOKEN", "ASYA_GATEWAY_INTERNAL_TOKEN")}


def test_gateway_tokens_come_from_a_secret_printed_when_the_tokens_are_given():
    stream = render_env(ISOLATED, "--transport", "rabbitmq", "--namespace", "asya",
                        env=clean_env(ASYA_GATEWAY_TOKEN="client-secret",
                                      ASYA_GATEWAY_INTERNAL_TOKEN="sidecar-secret")).stdout
    results = validate_k8s.Validator().validate_stream(stream, "tokens")
    assert all(r.status == "PASS" for r in results), [str(r) for r in results if r.status != "PASS"]
    docs = validate_k8s.load_documents(stream)
    secrets = [d for d in docs if d["kind"] == "Secret"]
    assert len(secrets) == 1
    assert secrets[0]["metadata"]["name"] == "asya-gateway-token"
    assert secrets[0]["stringData"] == {"internal-token": "sidecar-secret", "token": "client-secret"}
    # Applied before the pods that read it.
    assert docs.index(secrets[0]) < min(i for i, d in enumerate(docs) if d["kind"] == "Deployment")
    internal = {"name": "asya-gateway-token", "key": "internal-token", "optional": True}
    deployments = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs
                   if d["kind"] == "Deployment"}
    assert set(deployments) == {"sandboxed", "happy-end", "error-end", "asya-gateway"}
    for name, pod in deployments.items():
        container = next(c for c in pod["containers"] if c["name"] in ("asya-sidecar", "gateway"))
        if name == "asya-gateway":
            assert token_refs(container) == {
                "ASYA_GATEWAY_INTERNAL_TOKEN": internal,
                "ASYA_GATEWAY_TOKEN": {"name": "asya-gateway-token", "key": "token",
                                       "optional": True}}
        else:
            assert token_refs(container) == {"ASYA_GATEWAY_INTERNAL_TOKEN": internal}, name
        # The runtime never gets a token.
        for other in pod["containers"]:
            if other is not container:
                assert not token_refs(other), name
    # The token values appear only in the Secret.
    assert stream.count("sidecar-secret") == 1 and stream.count("client-secret") == 1


def test_without_tokens_no_secret_is_printed_and_a_client_token_alone_warns():
    plain = render_env(ISOLATED, "--transport", "rabbitmq", env=clean_env())
    assert "kind: Secret" not in plain.stdout and plain.stderr == ""
    client_only = render_env(ISOLATED, "--transport", "rabbitmq",
                             env=clean_env(ASYA_GATEWAY_TOKEN="client-secret"))
    assert "kind: Secret" not in client_only.stdout and "client-secret" not in client_only.stdout
    assert "ASYA_GATEWAY_INTERNAL_TOKEN is not" in client_only.stderr


def egress_policy(stream):
    policies = [d for d in validate_k8s.load_documents(stream) if d["kind"] == "NetworkPolicy"]
    assert len(policies) == 1
    return policies[0]


def test_isolated_actor_gets_a_network_policy_limiting_egress_to_dns_broker_and_gateway():
    stream = render_env(ISOLATED, "--transport", "rabbitmq", "--namespace", "asya",
                        "--broker-cidr", "10.0.5.0/24",
                        "--broker-pod-label", "app.kubernetes.io/name=rabbitmq",
                        env=clean_env()).stdout
    results = validate_k8s.Validator().validate_stream(stream, "isolated")
    assert all(r.status == "PASS" for r in results), [str(r) for r in results if r.status != "PASS"]
    policy = egress_policy(stream)
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["name"] == "sandboxed-egress"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"asya.sh/actor": "sandboxed"}}
    assert spec["policyTypes"] == ["Egress"]
    dns, broker, gateway = spec["egress"]
    assert dns["to"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert broker["ports"] == [{"protocol": "TCP", "port": 5672}, {"protocol": "TCP", "port": 5671}]
    assert broker["to"] == [{"ipBlock": {"cidr": "10.0.5.0/24"}},
                            {"namespaceSelector": {},
                             "podSelector": {"matchLabels": {"app.kubernetes.io/name": "rabbitmq"}}}]
    assert gateway == {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "asya-gateway"}}}],
                       "ports": [{"protocol": "TCP", "port": 8080}]}


def test_network_policy_follows_the_sqs_endpoint_and_an_external_gateway():
    stream = render_env(ISOLATED, "--transport", "sqs", "--no-gateway",
                        "--sqs-endpoint", "http://localstack:4566",
                        "--gateway-url", "https://gw.example.com", env=clean_env()).stdout
    dns, broker, gateway = egress_policy(stream)["spec"]["egress"]
    assert broker == {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 4566}]}
    assert gateway == {"ports": [{"protocol": "TCP", "port": 443}]}
    # Actors without spec.isolation get no policy.
    plain = render_env(HERE / "manifests" / "pipeline", "--transport", "sqs", env=clean_env()).stdout
    assert "NetworkPolicy" not in plain


def test_operator_rbac_covers_the_network_policy():
    rbac = (REPO / "deploy" / "base" / "operator" / "rbac.yaml").read_text()
    docs = validate_k8s.load_documents(rbac)
    rules = next(d for d in docs if d["kind"] == "ClusterRole")["rules"]
    assert any("networking.k8s.io" in r["apiGroups"] and "networkpolicies" in r["resources"]
               and {"create", "patch", "delete"} <= set(r["verbs"]) for r in rules)
