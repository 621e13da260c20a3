"""`asya render` and join actors: ASYA_JOIN_STORE from --join-store-secret, --join-store or
spec.join.store (the manifest's wins), through manifest::sidecar_environment(); a join actor with
no store is printed with a warning (its branches would stay inside the pod)."""
import validate_k8s
from test_render import render

JOIN = """apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {name: combine}
spec:
  transport: rabbitmq
  join: {timeout: 5m%s}
  workload:
    template:
      spec:
        containers:
        - name: asya-runtime
          image: app:1
          env:
          - {name: ASYA_HANDLER, value: mod.combine}
"""


def sidecar_env(stream):
    docs = validate_k8s.load_documents(stream)
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "combine")
    sidecar = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "asya-sidecar")
    return {e["name"]: e for e in sidecar["env"]}


def test_the_join_store_comes_from_a_secret_the_option_or_the_manifest(tmp_path):
    path = tmp_path / "combine.yaml"
    path.write_text(JOIN % "")
    proc = render(path, "--no-end-actors", "--join-store-secret", "joins-db")
    env = sidecar_env(proc.stdout)
    assert env["ASYA_JOIN"]["value"] == "true"
    assert env["ASYA_JOIN_STORE"]["valueFrom"] == {"secretKeyRef": {"name": "joins-db", "key": "url"}}
    assert "warning" not in proc.stderr

    env = sidecar_env(render(path, "--no-end-actors", "--join-store", "postgresql://asya@db/joins").stdout)
    assert env["ASYA_JOIN_STORE"]["value"] == "postgresql://asya@db/joins"

    path.write_text(JOIN % ', store: "postgresql://asya@own-db/joins"')
    env = sidecar_env(render(path, "--no-end-actors", "--join-store", "postgresql://asya@db/joins").stdout)
    assert env["ASYA_JOIN_STORE"]["value"] == "postgresql://asya@own-db/joins"


def test_a_join_actor_without_a_store_is_printed_with_a_warning(tmp_path):
    path = tmp_path / "combine.yaml"
    path.write_text(JOIN % "")
    proc = render(path, "--no-end-actors")
    assert "ASYA_JOIN_STORE" not in sidecar_env(proc.stdout)
    assert ('asya render: warning: join actor "combine" keeps its waiting branches in SQLite inside '
            "its pod") in proc.stderr, proc.stderr
    assert "--join-store-secret" in proc.stderr


def test_a_join_store_that_is_not_a_url_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "combine.yaml"
    path.write_text(JOIN % ", store: joins")
    proc = render(path, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "combine.yaml:6: spec.join.store: \"joins\" is not a join store URL" in proc.stderr, proc.stderr
