"""Harness of the tests/install suite: an Asya installed from the build directory into a temporary
prefix (`cmake --install`), or unpacked from the .deb, run the way a user runs it: no build tree,
no source tree, no ASYA_* variables. (A unique module name, so other suites' conftest.py never
shadow it.)"""
import json
import os
import pathlib
import re
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
PROGRAMS = ["asya", "asya-sidecar", "asya-gateway", "asya-operator", "asya-queue"]


def build_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()


def project_version() -> str:
    """The project VERSION of CMakeLists.txt: the one version every part must report."""
    text = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(asya VERSION (\d+\.\d+\.\d+)", text).group(1)


def user_environment(home: pathlib.Path) -> dict:
    """The environment of a user with nothing Asya-specific set, and no build tree on PATH."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("ASYA_") and key not in ("PYTHONPATH", "MAKEFLAGS", "MAKELEVEL")}
    env["HOME"] = str(home)
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def make_environment() -> dict:
    """This environment without an outer make's jobserver variables (make test runs this suite)."""
    return {key: value for key, value in os.environ.items()
            if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}


def wait_for(condition, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def install_into(prefix: pathlib.Path) -> pathlib.Path:
    """`cmake --install` of the build directory into `prefix`; fails naming what is missing."""
    build = build_dir()
    if not (build / "CMakeCache.txt").is_file():
        pytest.fail(f"{build} is not a configured build directory: run `make build` first")
    result = subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"cmake --install failed ({result.returncode}); run `make build` first\n"
                    f"{result.stdout}\n{result.stderr}")
    return prefix


ECHO_HANDLER = '''def handle(payload):
    return {"echoed": payload["message"]}
'''


def echo_manifest(workdir: pathlib.Path, command=None) -> str:
    """An AsyncActor `echo` on SQLite: the Python handler in workdir, or `command` (a C++ actor)."""
    container = [
        "        - name: asya-runtime",
        f"          workingDir: {workdir}",
    ]
    if command:
        container.append(f"          command: {json.dumps(command)}")
    else:
        container += ["          env:", "          - {name: ASYA_HANDLER, value: echo_handler.handle}"]
    return "\n".join([
        "apiVersion: asya.sh/v1alpha1",
        "kind: AsyncActor",
        "metadata: {name: echo}",
        "spec:",
        "  transport: sqlite",
        "  scaling: {minReplicas: 1, maxReplicas: 1}",
        "  workload:",
        "    template:",
        "      spec:",
        "        containers:",
        *container,
    ]) + "\n"


class InstalledAsya:
    """Runs an installed `asya` (PREFIX/bin/asya) as a user would, in its own work directory."""

    def __init__(self, bin_dir: pathlib.Path, workdir: pathlib.Path):
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.home = workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = user_environment(self.home)
        self.state = workdir / ".asya"
        self.started = False

    def run(self, *args, timeout=90, check=0):
        result = subprocess.run([str(self.bin_dir / "asya"), *map(str, args)], cwd=self.workdir,
                                env=self.env, capture_output=True, text=True, timeout=timeout)
        if check is not None and result.returncode != check:
            pytest.fail(f"asya {' '.join(map(str, args))} exited {result.returncode}, expected "
                        f"{check}\nstdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def up(self, *paths):
        self.started = True
        return self.run("up", "--detach", "--no-gateway", *paths)

    def status(self):
        try:
            return json.loads((self.state / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def process_command_lines(self):
        """The command lines of the supervisor's sidecars and runtimes, from status.json."""
        lines = []
        for actor in (self.status() or {}).get("actors", []):
            for process in actor.get("processes", []):
                for key in ("sidecar", "runtime"):
                    try:
                        raw = pathlib.Path(f"/proc/{process[key]}/cmdline").read_bytes()
                    except (KeyError, OSError):
                        continue
                    lines.append([part.decode() for part in raw.split(b"\0") if part])
        return lines

    def down(self):
        if self.started:
            self.run("down", "--timeout", 60, check=None, timeout=90)
            self.started = False


def run_echo_pipeline(asya: InstalledAsya, manifest: str):
    """`asya up` of one echo actor, one message sent and waited for; returns (envelope, command
    lines of the actor's processes)."""
    (asya.workdir / "echo.yaml").write_text(manifest)
    asya.up(asya.workdir / "echo.yaml")
    result = asya.run("send", "echo", "--payload", '{"message": "hi"}', "--wait",
                      "--timeout", 60, timeout=120)
    envelope = json.loads(result.stdout)
    commands = wait_for(asya.process_command_lines, 30, "the actor's processes in status.json")
    return envelope, commands
