"""Shared pytest fixtures: where the build is and where the repository is.

Suites live in subfolders (tests/<suite>/) with their own conftest.py. Every suite that needs a
binary takes it from the build directory: $ASYA_BUILD_DIR, or <repo>/build.
"""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def build_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def build_path() -> pathlib.Path:
    path = build_dir()
    if not path.is_dir():
        pytest.fail(f"build directory {path} does not exist: run `make build` first")
    return path
