"""Where the runtime imports a handler from (issue 19): the working directory (the manifest's
workingDir) goes first on sys.path, a handler file named like a standard-library module that is
already imported (tokenize.py: `inspect` imports tokenize) is loaded from the handler's directory,
a handler that names a standard-library module still gets it, and the "runtime ready" line names
the file that was loaded. Process tests run the real runtime on a socket, in-process tests call
load_handler/resolve_handler."""
import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

RUNTIME_DIR = pathlib.Path(__file__).resolve().parent.parent
RUNTIME_FILE = RUNTIME_DIR / "asya_runtime.py"
sys.path.insert(0, str(RUNTIME_DIR))

import asya_runtime as rt  # noqa: E402

START_TIMEOUT = 30.0

TOKENIZE_HANDLER = textwrap.dedent(
    """
    # A user's handler that happens to share its name with the standard library's tokenize.
    def process(payload):
        if payload.get("fail"):
            raise ValueError("cannot tokenize " + payload["text"])
        return {"tokens": payload["text"].split()}


    class Counter:
        def __init__(self):
            self.calls = 0

        def count(self, payload):
            self.calls += 1
            return {"tokens": len(payload["text"].split()), "calls": self.calls}
    """
)


class RuntimeProcess:
    """The runtime as a subprocess whose working directory is `workdir`; stderr kept in a file."""

    def __init__(self, workdir, handler, env=None):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="asya-imp-", dir="/tmp"))
        self.socket_path = self.dir / "rt.sock"
        self.ready_path = self.dir / "runtime-ready"
        self.stderr_path = self.dir / "stderr.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_") and k != "PYTHONPATH"}
        full_env.update({"ASYA_HANDLER": handler, "ASYA_SOCKET_PATH": str(self.socket_path),
                         "PYTHONDONTWRITEBYTECODE": "1"})
        full_env.update(env or {})
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen([sys.executable, str(RUNTIME_FILE)], env=full_env, cwd=str(workdir),
                                            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)

    def log_records(self):
        return [json.loads(line) for line in self.stderr_path.read_text().splitlines() if line.strip()]

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail("runtime exited %s before ready:\n%s" % (self.process.returncode,
                                                                     self.stderr_path.read_text()))
            if self.ready_path.exists():
                return self
            time.sleep(0.02)
        pytest.fail("runtime not ready within %.0f s:\n%s" % (START_TIMEOUT, self.stderr_path.read_text()))

    def wait_exit(self):
        return self.process.wait(START_TIMEOUT)

    def call(self, envelope):
        body = json.dumps(envelope).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(30)
            connection.connect(str(self.socket_path))
            connection.sendall(struct.pack(">I", len(body)) + body)
            header = connection.recv(4, socket.MSG_WAITALL)
            (length,) = struct.unpack(">I", header)
            return json.loads(connection.recv(length, socket.MSG_WAITALL))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start_runtime():
    started = []

    def start(workdir, handler, env=None):
        runtime = RuntimeProcess(workdir, handler, env)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.stop()


def ready_record(runtime):
    # The runtime creates its ready file just before it logs "runtime ready": wait for the line.
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        records = [r for r in runtime.log_records() if r["msg"] == "runtime ready"]
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(records) == 1, runtime.log_records()
    return records[0]


def envelope(payload, actors=("tok", "next")):
    return {"id": "e-1", "route": {"actors": list(actors), "current": 0}, "payload": payload}


# ------------------------------------------------------------------------------------------
# The runtime process.


def test_tokenize_py_handler_is_served_instead_of_the_standard_library_module(tmp_path, start_runtime):
    (tmp_path / "tokenize.py").write_text(TOKENIZE_HANDLER)
    runtime = start_runtime(tmp_path, "tokenize.process").wait_ready()
    ready = ready_record(runtime)
    assert ready["handler"] == "tokenize.process"
    assert ready["handler_file"] == str(tmp_path / "tokenize.py")
    shadow = [r for r in runtime.log_records() if r.get("module") == "tokenize"]
    assert shadow and shadow[0]["file"] == str(tmp_path / "tokenize.py"), runtime.log_records()
    assert shadow[0]["shadowed_file"].endswith("tokenize.py") and str(tmp_path) not in shadow[0]["shadowed_file"]

    assert runtime.call(envelope({"text": "a b c"})) == [
        {"payload": {"tokens": ["a", "b", "c"]}, "route": {"actors": ["tok", "next"], "current": 1}}
    ]
    # A raising handler still gets its traceback formatted: the standard library's own users of
    # tokenize (linecache, traceback) keep the module they imported.
    (error,) = runtime.call(envelope({"text": "x", "fail": True}))
    assert error["error"] == "processing_error"
    assert error["details"]["type"] == "ValueError"
    assert error["details"]["message"] == "cannot tokenize x"
    assert 'tokenize.py", line' in error["details"]["traceback"]
    assert 'raise ValueError("cannot tokenize " + payload["text"])' in error["details"]["traceback"]


def test_tokenize_py_class_handler_names_its_file_in_the_ready_line(tmp_path, start_runtime):
    (tmp_path / "tokenize.py").write_text(TOKENIZE_HANDLER)
    runtime = start_runtime(tmp_path, "tokenize.Counter.count").wait_ready()
    assert ready_record(runtime)["handler_file"] == str(tmp_path / "tokenize.py")
    assert runtime.call(envelope({"text": "a b"}))[0]["payload"] == {"tokens": 2, "calls": 1}


def test_working_directory_wins_over_the_runtime_folder_and_pythonpath(tmp_path, start_runtime):
    # `python3 asya_runtime.py` puts the runtime's folder (which holds bench_runtime.py) first and
    # PYTHONPATH next; the handler's working directory must come before both.
    other = tmp_path / "other"
    work = tmp_path / "work"
    other.mkdir()
    work.mkdir()
    for folder in (other, work):
        (folder / "bench_runtime.py").write_text("def process(payload):\n    return %r\n" % folder.name)
        (folder / "only_here.py").write_text("def process(payload):\n    return %r\n" % folder.name)
    runtime = start_runtime(work, "bench_runtime.process", env={"PYTHONPATH": str(other)}).wait_ready()
    assert ready_record(runtime)["handler_file"] == str(work / "bench_runtime.py")
    assert runtime.call(envelope(1))[0]["payload"] == "work"


def test_pythonpath_handler_is_found_when_the_working_directory_lacks_it(tmp_path, start_runtime):
    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenize.py").write_text(TOKENIZE_HANDLER)
    runtime = start_runtime(tmp_path, "tokenize.process", env={"PYTHONPATH": str(other)}).wait_ready()
    assert ready_record(runtime)["handler_file"] == str(other / "tokenize.py")
    assert runtime.call(envelope({"text": "p q"}))[0]["payload"] == {"tokens": ["p", "q"]}


def test_missing_handler_file_error_names_the_loaded_file_and_the_working_directory(tmp_path, start_runtime):
    runtime = start_runtime(tmp_path, "tokenize.process")
    assert runtime.wait_exit() == 1
    (record,) = runtime.log_records()
    assert record["level"] == "error"
    message = record["msg"]
    assert message.startswith("ASYA_HANDLER=tokenize.process: module 'tokenize' (loaded from ")
    loaded = message.split("loaded from ", 1)[1].split(",", 1)[0]
    assert os.path.basename(loaded) == "tokenize.py" and os.path.dirname(loaded) != str(tmp_path)
    assert "not in the working directory %s or PYTHONPATH" % tmp_path in message
    assert message.endswith("has no attribute 'process'")


# ------------------------------------------------------------------------------------------
# In process: load_handler / resolve_handler.


@pytest.fixture
def isolated_imports(monkeypatch):
    """Restores sys.path and the sys.modules entries a test touches."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = dict(sys.modules)
    yield monkeypatch
    for name in list(sys.modules):
        if name not in saved:
            del sys.modules[name]
    sys.modules.update(saved)


def test_working_directory_goes_first_on_sys_path(tmp_path, isolated_imports):
    (tmp_path / "uh_first.py").write_text("def process(payload):\n    return payload\n")
    isolated_imports.chdir(tmp_path)
    sys.path.append(str(tmp_path))  # already present further back: moved, not duplicated
    handler, module = rt.resolve_handler("uh_first.process")
    assert sys.path[0] == str(tmp_path)
    assert sys.path.count(str(tmp_path)) == 1
    assert "" not in sys.path
    assert module.__file__ == str(tmp_path / "uh_first.py")
    assert handler(3) == 3


def test_handler_module_replaces_an_imported_namesake_from_outside_its_directory(tmp_path, isolated_imports):
    library = tmp_path / "library"
    work = tmp_path / "work"
    library.mkdir()
    work.mkdir()
    (library / "uh_namesake.py").write_text("ORIGIN = 'library'\n")
    (work / "uh_namesake.py").write_text("ORIGIN = 'handler'\n\ndef process(payload):\n    return ORIGIN\n")
    sys.path.append(str(library))
    import uh_namesake as library_module  # stands for the standard library's tokenize

    assert library_module.ORIGIN == "library"
    isolated_imports.chdir(work)
    handler, module = rt.resolve_handler("uh_namesake.process")
    assert handler(None) == "handler"
    assert module.__file__ == str(work / "uh_namesake.py")
    assert sys.modules["uh_namesake"] is module  # later imports get the handler's module
    assert library_module.ORIGIN == "library"  # who imported the other one keeps it
    # Loading again reuses the handler's module (same file): no second execution.
    assert rt.resolve_handler("uh_namesake.process")[1] is module


def test_failing_namesake_import_names_the_file_and_keeps_the_imported_module(tmp_path, isolated_imports):
    library = tmp_path / "library"
    library.mkdir()
    (library / "uh_broken.py").write_text("ORIGIN = 'library'\n")
    (tmp_path / "uh_broken.py").write_text("import uh_no_such_dependency\n")
    sys.path.append(str(library))
    import uh_broken as library_module

    isolated_imports.chdir(tmp_path)
    with pytest.raises(rt.HandlerLoadError) as caught:
        rt.load_handler("uh_broken.process")
    assert str(caught.value) == (
        "ASYA_HANDLER=uh_broken.process: importing module 'uh_broken' from %s failed: "
        "ModuleNotFoundError: No module named 'uh_no_such_dependency'" % (tmp_path / "uh_broken.py")
    )
    assert sys.modules["uh_broken"] is library_module


def test_standard_library_module_is_kept_when_the_handler_directory_lacks_it(tmp_path, isolated_imports):
    import json as stdlib_json
    import tokenize as stdlib_tokenize

    isolated_imports.chdir(tmp_path)
    assert rt.load_handler("json.dumps") is stdlib_json.dumps
    assert sys.modules["tokenize"] is stdlib_tokenize
    # A handler that imports tokenize for its own use gets the standard library's.
    (tmp_path / "uh_uses_tokenize.py").write_text(textwrap.dedent(
        """
        import io
        import tokenize

        def process(payload):
            tokens = tokenize.generate_tokens(io.StringIO(payload).readline)
            return [token.string for token in tokens if token.string.strip()]
        """))
    assert rt.load_handler("uh_uses_tokenize.process")("a + b") == ["a", "+", "b"]
    assert sys.modules["tokenize"] is stdlib_tokenize
