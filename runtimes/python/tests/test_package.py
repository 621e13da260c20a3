"""The runtime as a package: `pip install --no-build-isolation ./runtimes/python` works offline
with the system's setuptools (Debian: python3-setuptools, python3-wheel; scripts/setup installs
them), and a user's unit test imports asya_runtime.testing from the installed copy, with no
sys.path hack. The installed runtime also runs as a program (`asya-runtime`)."""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

RUNTIME_DIR = pathlib.Path(__file__).resolve().parent.parent
REPO = RUNTIME_DIR.parent.parent
PACKAGE_FILES = ["pyproject.toml", "asya_runtime.py", "README.md"]


def build_python():
    """A Python with pip, setuptools and wheel: this one, else Debian's."""
    for candidate in [sys.executable, "/usr/bin/python3"]:
        if not candidate or not os.path.exists(candidate):
            continue
        probe = subprocess.run([candidate, "-c", "import setuptools, wheel, pip"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    pytest.fail("no Python with pip, setuptools and wheel (%s or /usr/bin/python3): run scripts/setup "
                "(python3-pip python3-setuptools python3-wheel)" % sys.executable)


def offline_env(**extra):
    """An environment in which pip cannot reach any index: no index, no config, a dead proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra)
    return env


def test_version_matches_the_project_version():
    import ast

    tree = ast.parse((RUNTIME_DIR / "asya_runtime.py").read_text())
    version = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                   and any(getattr(t, "id", None) == "__version__" for t in node.targets))
    project = re.search(r"project\(asya VERSION ([0-9.]+)", (REPO / "CMakeLists.txt").read_text()).group(1)
    assert version == project


def test_pip_install_offline_and_import_testing_from_the_installed_copy(tmp_path):
    python = build_python()
    # Build from a copy: pip builds in the source tree (build/, *.egg-info), and tests may run in
    # parallel.
    source = tmp_path / "source"
    source.mkdir()
    for name in PACKAGE_FILES:
        shutil.copy(RUNTIME_DIR / name, source / name)
    target = tmp_path / "site"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps", "--no-cache-dir",
         "--target", str(target), str(source)],
        cwd=str(tmp_path), env=offline_env(), capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    assert (target / "asya_runtime.py").read_bytes() == (RUNTIME_DIR / "asya_runtime.py").read_bytes()
    assert list(target.glob("asya_runtime-0.1.0.dist-info")), sorted(p.name for p in target.iterdir())
    assert (target / "bin" / "asya-runtime").is_file()
    assert not (target / "tests").exists() and not (target / "bench_runtime.py").exists()

    # A user's project: a handler and its unit test, nothing of Asya's source tree on sys.path.
    project = tmp_path / "project"
    project.mkdir()
    (project / "shop.py").write_text(textwrap.dedent(
        """
        def price(payload):
            return [{"item": item, "cents": 100 * len(item)} for item in payload["items"]]
        """))
    (project / "test_shop.py").write_text(textwrap.dedent(
        """
        import asya_runtime
        from asya_runtime.testing import HandlerError, call_payload, payloads
        from shop import price


        def test_installed_copy_is_used():
            assert asya_runtime.__file__.startswith(%r)


        def test_fan_out():
            outputs = call_payload(price, {"items": ["tea", "milk"]}, route=["price", "bill"])
            assert payloads(outputs) == [{"item": "tea", "cents": 300}, {"item": "milk", "cents": 400}]
            assert outputs[0]["route"] == {"actors": ["price", "bill"], "current": 1}


        def test_error():
            try:
                call_payload(price, {})
            except HandlerError as error:
                assert error.error_type == "KeyError"
            else:
                raise AssertionError("no HandlerError")
        """ % str(target)))
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shop.py"],
                         cwd=str(project), env=offline_env(PYTHONPATH=str(target)),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout, run.stdout

    # The installed `asya-runtime` program serves the handler like `python3 asya_runtime.py`.
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="asya-pkg-", dir="/tmp"))
    server = subprocess.Popen(
        [str(target / "bin" / "asya-runtime")], cwd=str(project), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=offline_env(PYTHONPATH=str(target), ASYA_HANDLER="shop.price", ASYA_SOCKET_PATH=str(run_dir / "rt.sock")))
    try:
        deadline = time.monotonic() + 30
        while not (run_dir / "runtime-ready").exists():
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "asya-runtime not ready within 30 s"
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        ready = [json.loads(line) for line in server.stderr.read().decode().splitlines()
                 if '"runtime ready"' in line]
        assert ready and ready[0]["handler_file"] == str(project / "shop.py"), ready
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        shutil.rmtree(run_dir, ignore_errors=True)
