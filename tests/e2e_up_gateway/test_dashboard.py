"""The dashboard (GET /, docs/dashboard.md) in a real browser: Debian's chromium, headless, driven
over the Chrome DevTools Protocol (cdp.py), against `asya up` with a gateway whose client token is
set. The page asks for the token, shows the live actors, calls a tool from the form generated from
its schema, follows the job's progress to its result and draws its trace (spans the test posts to
the gateway's OTLP receiver) with one bar per hop. Screenshots are written to the test's tmp dir.
Run: ASYA_BUILD_DIR=build /usr/bin/python3 -m pytest tests/e2e_up_gateway/test_dashboard.py"""
import json
import pathlib
import shutil
import sys
import urllib.error
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "local"))
sys.path.insert(0, str(REPO / "tests" / "gateway"))
from local_harness import Asya, manifest, wait_for  # noqa: E402
from otlp_spans import export_request, pipeline_spans  # noqa: E402

from cdp import Browser  # noqa: E402

CLIENT_TOKEN = "dash-client-token"
INTERNAL_TOKEN = "dash-internal-token"

ROUTES = """
tools:
  - name: greet
    description: Greets someone, slowly
    route: [prepare, finish]
    parameters:
      name: {type: string, required: true, description: Who to greet}
      times: {type: integer, default: 1}
      style: {type: string, options: [plain, loud], default: plain}
"""


def request(url, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    work = tmp_path_factory.mktemp("dash")
    manifests = work / "manifests"
    manifests.mkdir()
    for name in ("prepare", "finish"):
        (manifests / f"{name}.yaml").write_text(manifest(
            name, f"dash.{name}", workdir=HERE / "handlers",
            scaling={"minReplicas": 1, "maxReplicas": 1, "pollingInterval": "500ms"},
            timeout={"gracefulShutdown": "1s"}))
    (manifests / "routes.yaml").write_text(ROUTES)
    asya = Asya(work)
    asya.env.update({"ASYA_GATEWAY_TOKEN": CLIENT_TOKEN, "ASYA_GATEWAY_INTERNAL_TOKEN": INTERNAL_TOKEN})
    asya.up_detached(manifests, "--gateway-port", "0", "--state-dir", asya.state)
    try:
        wait_for(asya.gateway_url, 60, "the gateway url in status.json")
        wait_for(lambda: request(asya.gateway_url() + "/readyz")[0] == 200, 60, "gateway /readyz")
        yield asya
    finally:
        asya.stop()


@pytest.fixture
def browser():
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: run scripts/setup")
    b = Browser()
    yield b
    b.close()


def test_the_page_is_public_but_its_api_calls_need_the_token(up):
    url = up.gateway_url()
    status, headers, body = request(url + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script src="/dashboard/app.js" defer></script>' in body
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert request(url + "/dashboard/app.js")[1]["Content-Type"] == "text/javascript; charset=utf-8"
    assert request(url + "/dashboard/nope.js")[0] == 404
    for path in ("/actors", "/envelopes", "/tools"):
        assert request(url + path)[0] == 401, path
        assert request(url + path, CLIENT_TOKEN)[0] == 200, path
    # A page of another site cannot call the API with the visitor's browser.
    cross = urllib.request.Request(url + "/actors", headers={"Origin": "http://evil.example",
                                                             "Authorization": f"Bearer {CLIENT_TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(cross, timeout=30)
    assert refused.value.code == 403


def test_actors_tool_form_job_progress_result_and_trace(up, browser, tmp_path):
    url = up.gateway_url()
    browser.navigate(url + "/")
    # Without a token every API call is refused: the page asks for it.
    browser.wait_for("document.getElementById('token-panel') && !document.getElementById('token-panel').hidden",
                     what="the token panel")
    assert browser.evaluate("document.activeElement.id") == "token-input"
    browser.type_text(CLIENT_TOKEN)
    browser.press_enter()

    # The actors table shows the live actors with their replicas (from the supervisor's status).
    browser.wait_for("""(() => { const r = document.querySelector('#actors-table tr[data-actor="prepare"]');
                        return r && r.cells[2].textContent === '1/1'; })()""", what="prepare with 1/1 replicas")
    actors = browser.evaluate("[...document.querySelectorAll('#actors-table tbody tr')].map(r => r.dataset.actor)")
    assert actors == ["prepare", "finish", "happy-end", "error-end"]
    assert browser.evaluate("document.querySelector('#actors-table tr[data-actor=\"finish\"]').cells[2].textContent") \
        == "1/1"
    assert browser.evaluate("document.querySelectorAll('#actors-table svg.spark').length") >= 4
    browser.screenshot(tmp_path / "actors.png")

    # The tool's form, generated from its schema; every input has a label.
    browser.evaluate("location.hash = '#/tools/greet'")
    browser.wait_for("!!document.getElementById('tool-form')", what="the tool form")
    fields = browser.evaluate("""[...document.querySelectorAll('#tool-form input, #tool-form select')]
        .map(i => [i.name, i.type, i.labels.length, i.required])""")
    assert fields == [["name", "text", 1, True], ["times", "number", 1, False], ["style", "select-one", 1, False]]
    assert browser.evaluate("document.getElementById('arg-times').value") == "1"
    # Called with the keyboard only: focus the first field, type, Enter submits.
    browser.evaluate("document.getElementById('arg-name').focus()")
    browser.type_text("Ada")
    browser.press_enter()
    job_id = browser.wait_for("location.hash.startsWith('#/jobs/') && decodeURIComponent(location.hash.slice(7))",
                              what="the job page")
    # Record every progress value the page shows while the job runs.
    browser.evaluate("""(() => { window.seen = [];
        const record = () => { const p = document.getElementById('job-progress');
                               if (p) window.seen.push(Number(p.value)); };
        setInterval(record, 50); })()""")
    browser.wait_for("!!document.getElementById('job-result')", timeout=90, what="the result on the job page")
    seen = browser.evaluate("window.seen")
    assert any(0 < v < 100 for v in seen), seen  # progress was shown before the result
    assert seen == sorted(seen)
    assert json.loads(browser.evaluate("document.querySelector('#job-result pre').textContent")) == \
        {"greeting": "hello Ada", "times": 1}
    assert browser.evaluate("document.getElementById('job-percent').textContent") == "100%"
    assert json.loads(browser.evaluate("document.querySelector('#job-payload pre').textContent")) == \
        {"name": "Ada", "times": 1, "style": "plain"}

    # The job's trace: the spans every sidecar of `asya up` exported to the gateway (the actors'
    # hops and happy-end's), one bar per hop.
    browser.wait_for("document.querySelectorAll('#timeline .hop-row').length === 3", timeout=60,
                     what="one timeline bar per hop")
    rows = browser.evaluate("""[...document.querySelectorAll('#timeline .hop-row')].map(r => [r.dataset.actor,
        r.querySelectorAll('.seg.wait').length, r.querySelectorAll('.seg.handler').length,
        r.querySelector('.track').getAttribute('aria-label')])""")
    assert [r[0] for r in rows] == ["prepare", "finish", "happy-end"]
    assert all(r[2] == 1 for r in rows[:2]), rows
    assert rows[0][3].startswith("prepare: queue wait "), rows
    assert " handler " in rows[0][3], rows
    browser.screenshot(tmp_path / "job.png")

    # The jobs list names the job; the status filter narrows it.
    browser.evaluate("location.hash = '#/jobs'")
    browser.wait_for(f"!!document.querySelector('#jobs-table tr[data-job=\"{job_id}\"]')", what="the job in the list")
    assert browser.evaluate(f"document.querySelector('#jobs-table tr[data-job=\"{job_id}\"]').cells[2].textContent") \
        == "succeeded"
    browser.evaluate("const s = document.getElementById('job-status-filter'); s.value = 'failed';"
                     "s.dispatchEvent(new Event('change'))")
    browser.wait_for("location.hash === '#/jobs?status=failed' && !!document.querySelector('#jobs-table td.muted')",
                     what="an empty list of failed jobs")
    browser.screenshot(tmp_path / "jobs.png")

    # A failed job's page shows the error and the handler's traceback.
    status, headers, _ = request(url + "/tools/call", CLIENT_TOKEN,
                                 {"name": "greet", "arguments": {"name": "crash"}, "async": True})
    assert status == 200
    failed_id = headers["Asya-Job-Id"]
    browser.evaluate(f"location.hash = '#/jobs/{failed_id}'")
    browser.wait_for("!!document.getElementById('job-traceback')", timeout=90, what="the traceback")
    assert "ValueError: cannot greet crash" in browser.evaluate("document.getElementById('job-error').textContent")
    assert "Traceback" in browser.evaluate("document.getElementById('job-traceback').textContent")
    browser.screenshot(tmp_path / "failed-job.png")

    # The page ran under its Content-Security-Policy without a violation or an error.
    problems = [m for m in browser.console_messages() if "Content Security Policy" in m or "exception" in m]
    assert problems == []
    print(f"screenshots: {tmp_path}")
