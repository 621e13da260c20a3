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
