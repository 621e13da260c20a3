"""`asya trace ID` against a real gateway, with spans the test posts to its OTLP receiver."""
import json
import subprocess

import pytest

from gateway_harness import ROUTES, Gateway, http_json
from otlp_spans import export_request, pipeline_spans


@pytest.fixture(scope="module")
def asya_binary(build_path):
    path = build_path / "src" / "cli" / "asya"
    if not path.exists():
        pytest.fail(f"{path} not built: ninja -C {build_path} asya")
    return path


def trace(asya_binary, gateway, job_id, *flags, token=None):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(gateway.workdir)}
    if token:
        env["ASYA_GATEWAY_TOKEN"] = token
    return subprocess.run([str(asya_binary), "trace", job_id, "--gateway", gateway.url, *flags],
                          capture_output=True, text=True, timeout=60, env=env)


def test_trace_prints_a_waterfall_and_json_of_the_hops(asya_binary, gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TOKEN": "c"}).start()
    try:
        _, answer, _ = http_json("POST", gw.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "w"}},
                                 gw.client_headers())
        job_id = answer["structuredContent"]["job_id"]
        job = http_json("GET", f"{gw.url}/envelopes/{job_id}", headers=gw.client_headers())[1]
        trace_id, spans = pipeline_spans(job_id, ["first", "second"], trace_id=job["trace_id"], queue_wait_ms=4,
                                         handler_ms=30, publish_ms=2, fan_out=(0, 2))
        assert http_json("POST", gw.url + "/envelopes", {"id": f"{job_id}-1", "parent_id": job_id},
                         gw.internal_headers())[0] == 201
        assert http_json("POST", gw.url + "/v1/traces", export_request(spans))[0:2] == (200, {})

        shown = trace(asya_binary, gw, job_id, token="c")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0].startswith(f"job {job_id} (running), trace {trace_id}, 3 hops, 68.0ms")  # the branch made it run
        assert lines[1].split() == ["ACTOR", "ENVELOPE", "START", "WAIT", "HANDLER", "PUBLISH", "OUTCOME",
                                    "TIMELINE"]
        rows = [line.split() for line in lines[2:]]
        assert [r[0] for r in rows] == ["first", "second", "second"]
        assert sorted(r[1] for r in rows[1:]) == [job_id, f"{job_id}-1"]
        assert rows[0][2:7] == ["0.0ms", "4.0ms", "30.0ms", "2.0ms", "routed"]
        assert rows[1][2] == "36.0ms"  # 32 ms of the first hop, then 4 ms queue wait
        bars = [line[line.index("|"):] for line in lines[2:]]
        assert bars[0].startswith("|..#") and bars[1].startswith("|" + " " * 20 + "..#"), bars

        as_json = trace(asya_binary, gw, job_id, "--json", token="c")
        assert as_json.returncode == 0, as_json.stderr
        data = json.loads(as_json.stdout)
        assert data["job_id"] == job_id and data["trace_ids"] == [trace_id]
        assert [h["actor"] for h in data["hops"]] == ["first", "second", "second"]
        first = data["hops"][0]
        assert (first["queue_wait_ms"], first["handler_ms"], first["publish_ms"], first["duration_ms"]) == \
            (4.0, 30.0, 2.0, 32.0)
        assert len(data["spans"]) == len(spans) == 9

        # Without the client token the gateway refuses, and the message says which token.
        refused = trace(asya_binary, gw, job_id)
        assert refused.returncode == 3 and "ASYA_GATEWAY_TOKEN" in refused.stderr
        unknown = trace(asya_binary, gw, "no-such-job", token="c")
        assert unknown.returncode == 2 and 'no job or envelope with id "no-such-job"' in unknown.stderr
    finally:
        gw.stop()
