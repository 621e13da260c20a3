"""The dashboard (docs/dashboard.md) in a real browser against a gateway with two client tokens
(docs/gateway.md, "Authentication and callers"): the page, given one caller's token, lists only
that caller's jobs, opens them, and shows another caller's job as unknown.
Run: ASYA_BUILD_DIR=build /usr/bin/python3 -m pytest tests/e2e_up_gateway/test_dashboard_callers.py"""
import pathlib
import shutil
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "gateway"))
from gateway_harness import ROUTES, Gateway, gateway_binary, http_json  # noqa: E402,F401 (a fixture)

from cdp import Browser  # noqa: E402

ALICE_TOKEN = "alice-dash-token"
BOB_TOKEN = "bob-dash-token"


def start_job(gateway, token, text):
    status, answer, headers = http_json("POST", gateway.url + "/tools/call",
                                        {"name": "pipeline", "arguments": {"text": text}},
                                        {"Authorization": f"Bearer {token}"})
    assert status == 200, answer
    return headers["Asya-Job-Id"]


@pytest.fixture
def browser():
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: run scripts/setup")
    b = Browser()
    yield b
    b.close()


def test_each_callers_dashboard_shows_only_its_own_jobs(gateway_binary, tmp_path, browser):
    gw = Gateway(gateway_binary, tmp_path, ROUTES,
                 {"ASYA_GATEWAY_TOKEN": f"{ALICE_TOKEN},{BOB_TOKEN}"}).start()
    try:
        alice_jobs = [start_job(gw, ALICE_TOKEN, "first"), start_job(gw, ALICE_TOKEN, "second")]
        bob_job = start_job(gw, BOB_TOKEN, "bob's secret")

        browser.navigate(gw.url + "/#/jobs")
        browser.wait_for("document.getElementById('token-panel') && !document.getElementById('token-panel').hidden",
                         what="the token form")
        browser.evaluate("document.getElementById('token-input').focus()")
        browser.type_text(ALICE_TOKEN)
        browser.press_enter()
        browser.evaluate("location.hash = '#/jobs'")
        browser.wait_for(f"!!document.querySelector('#jobs-table tr[data-job=\"{alice_jobs[0]}\"]')",
                         what="Alice's jobs in the list")
        rows = browser.evaluate("[...document.querySelectorAll('#jobs-table tr[data-job]')].map(r => r.dataset.job)")
        assert rows == list(reversed(alice_jobs))
        browser.screenshot(tmp_path / "alice-jobs.png")

        browser.evaluate(f"location.hash = '#/jobs/{alice_jobs[1]}'")
        browser.wait_for("!!document.querySelector('#job-payload pre')", what="Alice's job page")
        assert "second" in browser.evaluate("document.querySelector('#job-payload pre').textContent")

        # Bob's job opens as an unknown id would: the gateway's 404 in the notice, no payload.
        browser.evaluate(f"location.hash = '#/jobs/{bob_job}'")
        browser.wait_for(f"document.getElementById('notice').textContent === "
                         f"'no job or envelope with id \"{bob_job}\"'", what="the unknown-job notice")
        assert "secret" not in browser.evaluate("document.body.textContent")
        browser.screenshot(tmp_path / "bob-job-as-alice.png")

        problems = [m for m in browser.console_messages() if "Content Security Policy" in m or "exception" in m]
        assert problems == []
    finally:
        gw.stop()
