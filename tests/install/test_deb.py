"""`make deb`: the Debian package CPack builds, unpacked with `dpkg -x` into a fresh directory (no
root, no dpkg database) and run from there: `asya --version`, and `asya up` of one echo actor on
SQLite with a message sent and its result read back."""
import glob
import pathlib
import subprocess

import pytest

from install_harness import (ECHO_HANDLER, PROGRAMS, REPO, InstalledAsya, build_dir,
                             echo_manifest, make_environment, project_version,
                             run_echo_pipeline, user_environment)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    result = subprocess.run(["make", "-s", "deb", f"BUILD_DIR={build_dir()}"], cwd=REPO,
                            capture_output=True, text=True, timeout=600, env=make_environment())
    assert result.returncode == 0, result.stdout + result.stderr
    packages = glob.glob(str(build_dir() / f"asya_{project_version()}_*.deb"))
    assert len(packages) == 1, packages
    return pathlib.Path(packages[0])


@pytest.fixture
def unpacked(deb, tmp_path):
    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=120)
    return root


def test_deb_declares_its_dependencies(deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert "Package: asya" in fields
    assert f"Version: {project_version()}" in fields
    for dependency in ["python3", "libboost-json1.81.0", "libsqlite3-0", "librabbitmq4", "libpq5"]:
        assert dependency in fields, f"Depends lacks {dependency}: {fields}"


def test_deb_holds_every_part_under_usr(unpacked):
    usr = unpacked / "usr"
    for path in [*[f"bin/{p}" for p in PROGRAMS], "share/asya/asya_runtime.py",
                 "include/asya/runtime.hpp", "lib/cmake/asya/asya-config.cmake",
                 "share/bash-completion/completions/asya", "share/zsh/vendor-completions/_asya",
                 *[f"share/man/man1/{p}.1" for p in PROGRAMS]]:
        assert (usr / path).is_file(), f"the .deb lacks /usr/{path}"


def test_unpacked_deb_runs_a_pipeline(unpacked, tmp_path):
    version = subprocess.run([str(unpacked / "usr" / "bin" / "asya"), "--version"],
                             capture_output=True, text=True, env=user_environment(tmp_path),
                             timeout=20)
    assert (version.returncode, version.stdout) == (0, f"asya {project_version()}\n")

    asya = InstalledAsya(unpacked / "usr" / "bin", tmp_path / "work")
    try:
        (asya.workdir / "echo_handler.py").write_text(ECHO_HANDLER)
        envelope, commands = run_echo_pipeline(asya, echo_manifest(asya.workdir))
    finally:
        asya.down()
    assert envelope["payload"] == {"echoed": "hi"}
    runtime = str(unpacked / "usr" / "share" / "asya" / "asya_runtime.py")
    assert any(runtime in c for c in commands), commands
    assert any(c[0] == str(unpacked / "usr" / "bin" / "asya-sidecar") for c in commands), commands
