"""A 10,000-way fan-out joined into one result through `asya up` (PROTOCOL §4a): the join store is
the default one, next to the queues in the state directory, so `asya up` needs nothing new."""
import json

from local_harness import manifest

N = 10_000


def join_manifest(name, handler, extra):
    text = manifest(name, handler, scaling={"enabled": False}, timeout={"processing": "60s"})
    return text.replace("spec:\n", "spec:\n" + extra, 1)


def test_ten_thousand_way_fan_out_is_joined_into_one_result(asya, tmp_path):
    (tmp_path / "wide.yaml").write_text(join_manifest("wide", "joins.wide", ""))
    (tmp_path / "square.yaml").write_text(join_manifest("square", "joins.square", "  replicas: 2\n"))
    (tmp_path / "total.yaml").write_text(
        join_manifest("total", "joins.total", "  replicas: 2\n  join: {timeout: 10m}\n"))
    asya.up_detached(tmp_path / "wide.yaml", tmp_path / "square.yaml", tmp_path / "total.yaml")
    out = asya.send("--route", "wide,square,total", "--payload", json.dumps({"n": N}), "--id", "big",
                    "--wait", "--timeout", 900, timeout=960)
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in results] == ["big"]
    assert results[0]["payload"] == {"count": N, "in_order": True,
                                     "sum": sum(i * i for i in range(N))}
    assert (asya.state / "joins.db").exists()
