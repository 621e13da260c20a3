"""Forged list cursors and filters on both job stores (GET /envelopes, MCP tasks/list): bytes that
are not UTF-8, or a NUL, in a cursor's id or a `tool` filter are refused with 400 / Invalid params,
as any cursor the gateway did not give; never a 503 carrying the database's error (PostgreSQL
refuses such a parameter), and every error answer is valid JSON (UTF-8) even when it quotes bytes
that are not."""
import base64
import json

import pytest

from gateway_harness import ROUTES, Gateway, http
from services import postgres as postgres_service
from test_mcp import initialize, rpc

FORGED_IDS = [b"\xff\xfe", b"\xc3\x28", b"a\x00b", b"\xed\xa0\x80"]


def b64(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture(params=["sqlite", "postgres"])
def store_gateway(request, gateway_binary, tmp_path):
    env = {}
    if request.param == "postgres":
        env["ASYA_DATABASE_URL"] = postgres_service.fresh_database(request.getfixturevalue("postgres_url"))
    gw = Gateway(gateway_binary, tmp_path, ROUTES, env).start()
    try:
        yield gw
    finally:
        gw.stop()


def json_error(status, body):
    text = body.decode("utf-8")  # raises on bytes that are not UTF-8
    return status, json.loads(text)["error"]


def test_a_rest_cursor_whose_id_is_not_text_is_refused_with_400(store_gateway):
    for job_id in FORGED_IDS:
        for place in (b"123:", b"123.4:"):  # an earlier version's form, and this one's
            status, error = json_error(*http("GET", f"{store_gateway.url}/envelopes?cursor={b64(place + job_id)}")[::2])
            assert status == 400 and "is not one this gateway gave out" in error, (job_id, status, error)
    assert store_gateway.process.poll() is None


def test_a_tool_filter_that_is_not_text_is_refused_with_400(store_gateway):
    for raw in (b"\xff", b"a\x00b"):
        escaped = "".join("%%%02X" % byte for byte in raw)
        status, error = json_error(*http("GET", f"{store_gateway.url}/envelopes?tool={escaped}")[::2])
        assert status == 400 and error.startswith("tool must name a tool"), (raw, status, error)


def test_an_error_quoting_bytes_that_are_not_utf8_is_valid_json(store_gateway):
    status, error = json_error(*http("GET", f"{store_gateway.url}/envelopes?cursor=%FF")[::2])
    assert status == 400 and "\ufffd" in error, error


def test_a_tasks_list_cursor_whose_id_is_not_text_is_invalid_params(store_gateway):
    session, _ = initialize(store_gateway, "2025-11-25")
    for job_id in FORGED_IDS:
        for place in (b"123:", b"123.4:"):
            cursor = "c1." + (place + job_id).hex()
            status, _, body = rpc(store_gateway, {"jsonrpc": "2.0", "id": 1, "method": "tasks/list",
                                                  "params": {"cursor": cursor}},
                                  session, {"Accept": "application/json"})
            answer = json.loads(body.decode("utf-8"))
            assert status == 200 and answer["error"]["code"] == -32602, (job_id, answer)
            assert "is not a cursor this server gave" in answer["error"]["message"], answer
