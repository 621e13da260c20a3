"""Several `asya up` sharing one broker (docs/local.md, "Several machines, one broker"): two
supervisors, each with its own state dir, run the same actor against one RabbitMQ vhost (or one
SQS endpoint); each scales its own replicas from the shared queue depth, only one runs the end
actors, and every message ends in happy-end."""
import json

import pytest

from local_harness import Asya, manifest, wait_for

SCALING = {"pollingInterval": "200ms", "cooldownPeriod": 2, "minReplicas": 0, "maxReplicas": 2,
           "queueLength": 5}
COUNT = 60


@pytest.fixture(params=["rabbitmq", "sqs"])
def two_hosts(request, tmp_path):
    transport = request.param
    if transport == "rabbitmq":
        env = {"ASYA_RABBITMQ_URL": request.getfixturevalue("local_rabbitmq").new_vhost()}
    else:
        m = request.getfixturevalue("local_moto")
        m.reset()
        env = dict(m.env(), ASYA_SQS_WAIT_TIME_SECONDS="1")
    hosts = []
    for name in ["a", "b"]:
        (tmp_path / name).mkdir()
        hosts.append(Asya(tmp_path / name, transport=transport, transport_env=env))
    yield hosts
    for host in reversed(hosts):  # the actors-only host first, the end actors last
        host.stop()


def records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_supervisors_share_one_broker_and_lose_nothing(two_hosts, tmp_path):
    a, b = two_hosts
    for host in (a, b):
        (host.workdir / "shared.yaml").write_text(
            manifest("shared", "testing.recorded", scaling=SCALING,
                     env={"RECORD_FILE": str(host.workdir / "records.jsonl"),
                          "SLOW_SECONDS": "0.3"}))
    a.up_detached(a.workdir / "shared.yaml")
    b.up_detached(b.workdir / "shared.yaml", "--no-end-actors")
    assert [x["name"] for x in b.status()["actors"]] == ["shared"]  # no end actors on b

    ids = {f"m-{i}" for i in range(COUNT)}
    for i, message_id in enumerate(sorted(ids)):
        (a if i % 2 else b).send("shared", "--payload", json.dumps({"n": message_id}), "--id",
                                 message_id)
    # Both hosts scale up on the shared depth.
    wait_for(lambda: a.actor("shared")["replicas"]["running"] >= 1
             and b.actor("shared")["replicas"]["running"] >= 1, 60,
             "both hosts to run replicas of shared")
    done = wait_for(lambda: (r := a.results()) and set(r) >= ids and r, 120,
                    f"all {COUNT} results on the host running the end actors", interval=0.3)
    assert all(done[i]["payload"] == {"n": i} for i in ids)
    assert a.results("failed") == {} and b.results() == {}
    # Each host processed part of the work; together every message at least once.
    on_a = {r["n"] for r in records(a.workdir / "records.jsonl") if r["event"] == "end"}
    on_b = {r["n"] for r in records(b.workdir / "records.jsonl") if r["event"] == "end"}
    assert on_a and on_b, (len(on_a), len(on_b))
    assert on_a | on_b == ids
    # And each scales back to zero on its own after the cooldown.
    for host in (a, b):
        wait_for(lambda: host.actor("shared")["replicas"]["running"] == 0
                 and host.actor("shared")["replicas"]["stopping"] == 0, 30,
                 f"{host.workdir.name} to scale shared to 0")
    queues = {q["queue"]: q for q in json.loads(b.run("queues", "--json", check=0).stdout)}
    assert (queues["asya-shared"]["ready"], queues["asya-shared"]["in_flight"]) == (0, 0)
