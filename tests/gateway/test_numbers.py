"""Numbers in tool arguments and results keep their spelling (issue 11, item 11): arguments go into
the envelope byte for byte, an `integer` parameter refuses fractions and numbers beyond 64 bits,
and every double the gateway prints is in shortest form (8.1, never 8.1E0)."""
import json
import subprocess

import pytest

from gateway_harness import Gateway, http, http_json

ROUTES = """
tools:
  - name: measure
    parameters:
      rate: {type: number}
      count: {type: integer}
      big: {type: integer}
      deep: {type: object}
      scale: {type: number, default: 0.25}
    route: [measure]
    async: true
"""


@pytest.fixture
def numbers_gateway(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES).start()
    yield gw
    gw.stop()


def receive_raw(queue_tool, gateway, actor):
    result = subprocess.run([str(queue_tool), "recv", "asya-" + actor, "--max", "1", "--wait", "10s", "--ack"],
                            env=gateway.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"no envelope arrived on asya-{actor}"
    return json.loads(lines[0])["body"]


def test_arguments_reach_the_envelope_byte_for_byte(numbers_gateway, queue_tool):
    body = ('{"name":"measure","arguments":{"rate": 8.1, "count":100, "big":12345678901234567890,'
            '"deep":{"x":1.50,"y":[1e2, -0.0]}}}')
    status, _, answer = http("POST", numbers_gateway.url + "/tools/call", body)
    assert status == 200, answer
    job_id = json.loads(json.loads(answer)["content"][0]["text"])["job_id"]
    envelope = receive_raw(queue_tool, numbers_gateway, "measure")
    assert ('"payload":{"rate":8.1,"count":100,"big":12345678901234567890,'
            '"deep":{"x":1.50,"y":[1e2, -0.0]},"scale":0.25}') in envelope, envelope
    # The job's payload as stored and shown: shortest doubles, never Boost's 8.1E0.
    status, _, shown = http("GET", f"{numbers_gateway.url}/envelopes/{job_id}")
    assert status == 200 and b'"rate":8.1' in shown and b"E0" not in shown, shown


def test_a_whole_number_written_as_a_double_is_forwarded_as_an_integer(numbers_gateway, queue_tool):
    status, _, answer = http("POST", numbers_gateway.url + "/tools/call",
                             '{"name":"measure","arguments":{"count":4.0}}')
    assert status == 200, answer
    assert '"payload":{"count":4,"scale":0.25}' in receive_raw(queue_tool, numbers_gateway, "measure")


@pytest.mark.parametrize("value, why", [("1e30", "1e+30 (outside the 64-bit integer range"),
                                        ("8.1", "8.1 (it has a fractional part)"),
                                        ("18446744073709551616", "18446744073709551616.0 (outside")])
def test_an_integer_parameter_refuses_fractions_and_huge_numbers(numbers_gateway, value, why):
    status, answer, _ = http_json("POST", numbers_gateway.url + "/tools/call",
                                  '{"name":"measure","arguments":{"count":%s}}' % value)
    assert status == 400
    assert answer["error"].startswith("invalid argument count: expected an integer, got " + why), answer


def test_a_reported_result_keeps_its_numbers(numbers_gateway, queue_tool):
    status, answer, _ = http_json("POST", numbers_gateway.url + "/tools/call",
                                  {"name": "measure", "arguments": {}})
    job_id = json.loads(answer["content"][0]["text"])["job_id"]
    receive_raw(queue_tool, numbers_gateway, "measure")
    status, _, _ = http("POST", f"{numbers_gateway.url}/envelopes/{job_id}/final",
                        '{"status":"succeeded","result":{"v":8.1,"n":0.0,"w":12345678901234567890}}')
    assert status == 200
    status, _, shown = http("GET", f"{numbers_gateway.url}/envelopes/{job_id}")
    assert b'"result":{"v":8.1,"n":0.0,"w":12345678901234567890}' in shown, shown
