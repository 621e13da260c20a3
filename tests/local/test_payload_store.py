"""`asya up` keeps large payloads in its state directory's payload store (docs/protocol.md §10):
`asya send` puts a payload over 256 KiB there and queues a reference, the actor's handler gets the
real payload, and `asya results` prints the real payload, never a reference."""
import json

from local_harness import manifest, wait_for


def test_asya_send_of_a_large_payload_travels_by_reference_and_results_show_the_payload(asya, tmp_path):
    (tmp_path / "echo.yaml").write_text(manifest("echo", "testing.slow_echo", env={"SLOW_SECONDS": "0"}))
    asya.up_detached(tmp_path / "echo.yaml")
    payload = {"data": "p" * (3 * 1024 * 1024), "n": 1.50}
    (tmp_path / "big.json").write_text(json.dumps(payload, separators=(",", ":")))
    asya.send("echo", "--payload", "@" + str(tmp_path / "big.json"), "--id", "big-1", "--wait",
              "--timeout", 120, timeout=180)
    objects = asya.state / "payloads" / "objects"
    # Written once by `asya send`; the echo's output is the same bytes, so its sidecar forwarded
    # the same reference instead of writing again.
    assert len(list(objects.iterdir())) == 1
    shown = asya.run("results", "big-1", check=0, timeout=60).stdout
    assert "asya-payload-ref" not in shown
    result = json.loads(shown)
    assert result["payload"]["data"] == payload["data"]
    assert wait_for(lambda: asya.results().get("big-1"), 30, "the stored result")["payload"]["n"] == 1.5


ROUTES = """tools:
  - name: big
    description: Echo a large text
    parameters:
      text: {type: string, required: true, description: anything}
    route: [echo]
    timeout: 120
"""


def test_gateway_call_with_a_large_argument_travels_by_reference_and_answers_the_payload(asya, tmp_path):
    (tmp_path / "echo.yaml").write_text(manifest("echo", "testing.slow_echo", env={"SLOW_SECONDS": "0"}))
    (tmp_path / "routes.yaml").write_text(ROUTES)
    asya.up_detached(tmp_path / "echo.yaml", "--routes", tmp_path / "routes.yaml", "--gateway-port", 0)
    wait_for(asya.gateway_url, 30, "the gateway URL in status.json")
    text = "g" * (2 * 1024 * 1024)
    status, answer = asya.post("/tools/call", {"name": "big", "arguments": {"text": text}}, timeout=180)
    assert status == 200, str(answer)[:500]
    assert answer["isError"] is False, str(answer)[:500]
    assert answer["structuredContent"] == {"text": text}
    # The gateway stored it once; the echo forwarded the same reference.
    assert len(list((asya.state / "payloads" / "objects").iterdir())) == 1
